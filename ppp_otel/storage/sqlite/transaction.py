"""One write transaction on an autocommit connection, as a context manager."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def transaction(conn: sqlite3.Connection, *, join: bool = True, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

    IMMEDIATE takes the write lock at the start, so a transaction that reads
    and then writes cannot fail half-way on another writer. With ``join``,
    inside a transaction the caller already opened, the work joins it (the
    caller commits). ``mode=""`` is a plain deferred ``BEGIN``: a read snapshot.
    """
    if join and conn.in_transaction:
        yield conn
        return
    conn.execute(f"BEGIN {mode}".rstrip())
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
