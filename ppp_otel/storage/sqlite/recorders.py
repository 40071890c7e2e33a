"""The ``recorder_stats`` table: each recording process's counters, for ``ppp-otel status``."""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from ppp_otel.storage.base import RECORDER_COLUMNS

_UPSERT = f"""
INSERT INTO recorder_stats ({', '.join(RECORDER_COLUMNS)})
VALUES ({', '.join('?' * len(RECORDER_COLUMNS))})
ON CONFLICT (recorder_id) DO UPDATE SET updated_at = excluded.updated_at,
    enqueued = excluded.enqueued, written_turns = excluded.written_turns,
    duplicates = excluded.duplicates, dropped = excluded.dropped,
    rejected = excluded.rejected, write_errors = excluded.write_errors,
    last_error = excluded.last_error
"""


def save_recorder_stats(conn: sqlite3.Connection, row: Sequence[Any]) -> None:
    """One recorder's counters, in :data:`RECORDER_COLUMNS` order; replaces its earlier row."""
    conn.execute(_UPSERT, tuple(row))


def recorders(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Each recording process's counters (drops, errors), most recently active first.

    A file from before schema version 3 has no such table: no recorders to show.
    """
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'recorder_stats'"
    ).fetchone() is None:
        return []
    rows = conn.execute(
        f"SELECT {', '.join(RECORDER_COLUMNS)} FROM recorder_stats ORDER BY updated_at DESC"
    ).fetchall()
    return [dict(zip(RECORDER_COLUMNS, row)) for row in rows]
