"""The trajectory store: everything that reads or writes trajectories goes through here.

    from ppp_otel.storage import open_store, TrajectoryStore, AsyncTrajectoryStore

    with open_store("runs.db") as store:          # SQLite; "postgresql://..." for PostgreSQL
        store.list_trajectories(spec_id="spec-1")

The interface and its errors are :mod:`ppp_otel.storage.base`; ``sqlite/``
implements it, and ``postgres/`` (the ``ppp-otel[postgres]`` extra) beside it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any

from ppp_otel.storage.base import (
    BackendNotInstalled,
    DatabaseError,
    DatabaseNewerError,
    NoSuchDatabase,
    ReadOnlyError,
    StorageError,
    TrajectoryBackend,
    TurnNumberClash,
    WriteFailed,
    directory_named,
    redact_url,
)

POSTGRES_PREFIXES = ("postgresql://", "postgres://")

# What reads return (defined with the read API), importable from here.
_READ_TYPES = ("TrajectoryStore", "Trajectory", "TrajectorySummary", "Turn", "RecordedQuestion",
               "RecordedViolation")

__all__ = [
    "AsyncTrajectoryStore",
    "BackendNotInstalled",
    "DatabaseError",
    "DatabaseNewerError",
    "NoSuchDatabase",
    "ReadOnlyError",
    "StorageError",
    "TrajectoryBackend",
    "TrajectoryStore",
    "TurnNumberClash",
    "WriteFailed",
    "check_creatable",
    "cleanup",
    "display_name",
    "fixed_path",
    "is_postgres_url",
    "open_store",
    "redact_url",
    "refuse_unknown_url",
    "using_store",
]


def is_postgres_url(url_or_path: Any) -> bool:
    return isinstance(url_or_path, str) and url_or_path.startswith(POSTGRES_PREFIXES)


# A scheme (two letters or more: "C:/x.db" is a path) and a slash, or PostgreSQL's
# scheme with its colon lost: a URL, not a file name, whatever it names.
_URL_LIKE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]+:/|postgres(?:ql)?//)", re.I)


def refuse_unknown_url(url_or_path: Any) -> None:
    """DatabaseError for a name that is a URL but not one a backend opens (a typo in
    ``postgresql://``, another database's URL), rather than SQLite taking it for a file
    name and answering "no such database file" about it."""
    if not isinstance(url_or_path, str) or is_postgres_url(url_or_path) or not _URL_LIKE.match(url_or_path):
        return
    raise DatabaseError(
        f"{redact_url(url_or_path)}: not a database ppp-otel can open: a PostgreSQL store is "
        "postgresql://USER@HOST:PORT/DATABASE (or postgres://...), a SQLite store a file path"
    )


def fixed_path(url_or_path: str | os.PathLike) -> str:
    """A SQLite file's path made absolute, so that a later change of the working directory
    does not move the database; a URL or ``:memory:`` as given."""
    path = os.fspath(url_or_path)
    return path if path == ":memory:" or "://" in path else os.path.abspath(path)


def check_creatable(url_or_path: str | os.PathLike, *, choose: str = "db_path / PPP_OTEL_DB") -> None:
    """FileNotFoundError now when a SQLite file can never be created (its directory is
    missing), IsADirectoryError when the path names a directory (it is one, or ends in a
    separator), rather than a writer that retries until it gives up. ``choose`` names
    where the user picks the database, for the hint."""
    refuse_unknown_url(url_or_path)
    path = os.fspath(url_or_path)
    if path == ":memory:" or "://" in path:
        return
    named = directory_named(path)
    if named:
        raise IsADirectoryError(f"cannot record to {path} ({named})")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"cannot record to {path}: the directory {directory} does not exist "
            f"(create it, or choose another {choose})"
        )


def open_store(url_or_path: str | os.PathLike, **options: Any) -> TrajectoryBackend:
    """Open the store at a file path (SQLite) or a ``postgresql://`` URL.

    ``options`` go to the backend (for SQLite: ``must_exist``, ``read_only``,
    ``migrate_schema``, ``wal``, ``busy_timeout_ms``...). Raises
    :class:`DatabaseError` for a database that cannot be used and
    :class:`BackendNotInstalled` for a backend that is not there.
    """
    if is_postgres_url(url_or_path):
        try:
            from ppp_otel.storage.postgres.store import PostgresStore  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BackendNotInstalled(
                f"{redact_url(url_or_path)}: the PostgreSQL backend is not installed "
                f"({exc}); pip install 'ppp-otel[postgres]'"
            ) from exc
        return PostgresStore(url_or_path, **options)
    refuse_unknown_url(url_or_path)
    from ppp_otel.storage.sqlite.store import SQLiteStore

    return SQLiteStore(url_or_path, **options)


def cleanup(db: str | os.PathLike, **options: Any) -> Any:
    """Delete (and optionally archive) trajectories past retention, in the backend's way.

    For SQLite, :func:`ppp_otel.storage.sqlite.retention.cleanup` and its options.
    """
    if is_postgres_url(db):
        with open_store(db) as store:
            return store.cleanup(**options)
    from ppp_otel.storage.sqlite.retention import cleanup as sqlite_cleanup

    return sqlite_cleanup(db, **options)


def display_name(db: Any) -> str:
    """How to name a database to a person: a path, or a URL without its password."""
    if is_postgres_url(db) or (isinstance(db, str) and _URL_LIKE.match(db)):
        return redact_url(db)
    return os.fspath(db) if isinstance(db, (str, os.PathLike)) else str(db)


_STORE_CLASSES: dict[str, type] = {}


def _store_class(backend: str) -> type:
    # Imported on first use (a PostgreSQL user needs no SQLite modules), then looked up.
    found = _STORE_CLASSES.get(backend)
    if found is None:
        if backend == "sqlite":
            from ppp_otel.storage.sqlite.store import SQLiteStore as found
        else:
            from ppp_otel.storage.postgres.store import PostgresStore as found
        _STORE_CLASSES[backend] = found
    return found


class using_store:
    """A store as given, a sqlite3 connection wrapped (not closed), or a path or URL
    opened (it must exist) and closed afterwards::

        with using_store(db) as store:
            ...
    """

    # A class, not a generator context manager: scoring enters one per call,
    # and a generator's setup costs as much as a small spec's rows.
    __slots__ = ("_db", "_options", "_opened")

    def __init__(self, db: Any, **options: Any):
        self._db = db
        self._options = options
        self._opened: TrajectoryBackend | None = None

    def __enter__(self) -> TrajectoryBackend:
        db = self._db
        if isinstance(db, sqlite3.Connection):
            return _store_class("sqlite").from_connection(db)
        if type(db).__module__.startswith("psycopg"):  # a psycopg connection the caller opened
            return _store_class("postgresql").from_connection(db)
        # Not isinstance(db, TrajectoryBackend): a runtime Protocol check looks up every
        # member, on every scoring call.
        if not isinstance(db, (str, os.PathLike)) and hasattr(db, "score_counts"):
            return db
        self._options.setdefault("must_exist", True)
        self._opened = open_store(db, **self._options)
        return self._opened.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._opened is not None:
            opened, self._opened = self._opened, None
            opened.__exit__(*exc)


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing the package does not load the
    # SQLite modules (a PostgreSQL user needs none of them).
    if name == "AsyncTrajectoryStore":
        from ppp_otel.storage.aio import AsyncTrajectoryStore

        return AsyncTrajectoryStore
    if name in _READ_TYPES:
        from ppp_otel.storage.sqlite import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
