"""sqlite3's exceptions turned into the storage errors of :mod:`ppp_otel.storage.base`.

By SQLite's result code (``sqlite_errorcode``), never by message text: the
text is for people and changes between SQLite versions.
"""

from __future__ import annotations

import sqlite3

from ppp_otel.storage.base import DatabaseError, ReadOnlyError, StorageError

# Primary result codes (the low byte of an extended code).
SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB, SQLITE_READONLY = 11, 14, 26, 8
#: An extended code: a UNIQUE or PRIMARY KEY constraint failed.
SQLITE_CONSTRAINT_UNIQUE = 2067
SQLITE_CONSTRAINT_PRIMARYKEY = 1555


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_unique_violation(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY)


def translate(exc: sqlite3.Error, default: type[StorageError] = StorageError) -> StorageError:
    """The storage error for ``exc``; its message is SQLite's, unchanged."""
    code = primary_code(exc)
    if code == SQLITE_READONLY:
        kind: type[StorageError] = ReadOnlyError
    elif code in (SQLITE_NOTADB, SQLITE_CORRUPT, SQLITE_CANTOPEN):
        kind = DatabaseError
    else:
        kind = default
    error = kind(str(exc))
    error.__cause__ = exc
    return error


class storage_errors:  # noqa: N801 - used like a function: ``with storage_errors():``
    """Let no sqlite3.Error out: each leaves as a :class:`StorageError` (``default``
    unless its result code says more). A class: the writer enters one per batch."""

    __slots__ = ("default",)

    def __init__(self, default: type[StorageError] = StorageError):
        self.default = default

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise translate(exc, self.default) from exc
