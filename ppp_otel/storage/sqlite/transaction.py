"""One write transaction on an autocommit connection, as a context manager."""

from __future__ import annotations

import sqlite3


class transaction:  # noqa: N801 - used like a function: ``with transaction(conn):``
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

    IMMEDIATE takes the write lock at the start, so a transaction that reads
    and then writes cannot fail half-way on another writer. With ``join``,
    inside a transaction the caller already opened, the work joins it (the
    caller commits). ``mode=""`` is a plain deferred ``BEGIN``: a read snapshot.

    A class rather than a generator: the writer enters one per batch.
    """

    __slots__ = ("conn", "_begin", "_join", "_joined")

    def __init__(self, conn: sqlite3.Connection, *, join: bool = True, mode: str = "IMMEDIATE"):
        self.conn = conn
        self._begin = f"BEGIN {mode}".rstrip()
        self._join = join
        self._joined = False

    def __enter__(self) -> sqlite3.Connection:
        if self._join and self.conn.in_transaction:
            self._joined = True
        else:
            self.conn.execute(self._begin)
        return self.conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if self._joined:
            return
        if kind is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
