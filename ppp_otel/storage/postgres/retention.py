"""Retention on PostgreSQL: :func:`ppp_otel.storage.sqlite.retention.cleanup`'s
behaviour and :class:`~ppp_otel.storage.sqlite.retention.CleanupSummary`.

Chunks of trajectories past retention are deleted in short transactions (their
turns, questions and violations go by ``ON DELETE CASCADE``); the rows are
locked ``FOR UPDATE SKIP LOCKED``, so cleanups started on two hosts at once
share the work instead of waiting for each other. With an archive, each chunk
is first copied into a SQLite archive file (:mod:`ppp_otel.storage.copy`), and
the archive commits before PostgreSQL deletes: a crash in between leaves the
chunk in both, and the next cleanup, finding the spans in the archive,
deletes without copying them twice.

Space: PostgreSQL's autovacuum makes deleted rows reusable on its own
(``space = "autovacuum"``); ``vacuum=True`` runs ``VACUUM`` on the trajectory
tables at once (``"vacuum"``).
"""

from __future__ import annotations

import os
import threading
from contextlib import closing
from datetime import datetime
from typing import Any

from ppp_otel.storage.copy import CopySummary, copy_chunk
from ppp_otel.storage.postgres import migrations as schema
from ppp_otel.storage.sqlite import migrations as sqlite_schema
from ppp_otel.storage.sqlite.retention import (
    DEFAULT_CHUNK_SIZE,
    CleanupSummary,
    Progress,
    _bound,
    cleanup_cutoff,
    in_chunks,
)

__all__ = ["cleanup"]

# The text comparison uses idx_trajectories_created; the cast then decides exactly
# for rows other tools spelled "YYYY-MM-DD HH:MM:SS", and a spelling that is no
# time at all is never taken for an old one.
_PAST_RETENTION = """created_at < %(bound)s AND CASE
    WHEN created_at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?Z?$'
    THEN created_at::timestamp < %(cutoff)s::timestamp ELSE false END"""

_TRAJECTORY_TABLES = ("trajectories", "trajectory_turns", "trajectory_questions", "trajectory_violations")


def _params(cutoff: str) -> dict[str, str]:
    return {"cutoff": cutoff, "bound": _bound(cutoff)}


def _count(conn: Any, summary: CleanupSummary, doomed: str, params: Any) -> None:
    turns = f"SELECT id FROM trajectory_turns WHERE trajectory_id IN ({doomed})"
    summary.turns += conn.execute(f"SELECT count(*) FROM ({turns}) t", params).fetchone()[0]
    summary.questions += conn.execute(
        f"SELECT count(*) FROM trajectory_questions WHERE turn_id IN ({turns})", params).fetchone()[0]
    summary.violations += conn.execute(
        f"SELECT count(*) FROM trajectory_violations WHERE turn_id IN ({turns})", params).fetchone()[0]


def cleanup(
    url: str,
    *,
    older_than_days: float | None = None,
    archive_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    vacuum: bool = False,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    cancel: threading.Event | None = None,
    config: Any = None,
) -> CleanupSummary:
    cutoff = cleanup_cutoff(older_than_days, now, chunk_size=chunk_size, config=config)
    archive = os.fspath(archive_path) if archive_path else None
    if archive is not None and archive.startswith(("postgresql://", "postgres://")):
        raise ValueError("the archive is a SQLite file; to copy into another PostgreSQL use `ppp-otel copy`")
    summary = CleanupSummary(schema.redact(url), cutoff, dry_run, archive_path=archive)
    params = _params(cutoff)
    with closing(schema.connect(url, must_exist=True, read_only=dry_run, migrate_schema=not dry_run)) as conn:
        doomed = f"SELECT id FROM trajectories WHERE {_PAST_RETENTION}"
        if dry_run:
            summary.trajectories = conn.execute(f"SELECT count(*) FROM ({doomed}) d", params).fetchone()[0]
            _count(conn, summary, doomed, params)
            return summary
        size_before = _size(conn)
        total = conn.execute(f"SELECT count(*) FROM ({doomed}) d", params).fetchone()[0]
        archive_conn = sqlite_schema.connect(archive, wal=False) if archive is not None else None
        copied = CopySummary(summary.db_path, archive or "")
        try:
            in_chunks(lambda: _one_chunk(conn, archive_conn, params, chunk_size, summary, copied),
                      total, progress, cancel)
        finally:
            if archive_conn is not None:
                archive_conn.close()
        summary.archived = copied.trajectories
        summary.renumbered = copied.renumbered
        if summary.trajectories:
            if vacuum:
                for table in _TRAJECTORY_TABLES:
                    conn.execute(f"VACUUM (ANALYZE) {table}")
                summary.space = "vacuum"
            else:
                summary.space = "autovacuum"
            summary.freed_bytes = max(0, size_before - _size(conn))
    return summary


def _size(conn: Any) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def _one_chunk(conn: Any, archive: Any, params: dict, chunk_size: int, summary: CleanupSummary,
               copied: CopySummary) -> int:
    with conn.transaction():
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM trajectories WHERE {_PAST_RETENTION} ORDER BY id "
            "LIMIT %(limit)s FOR UPDATE SKIP LOCKED", {**params, "limit": chunk_size})]
        if not ids:
            return 0
        _count(conn, summary, "SELECT unnest(%(ids)s::bigint[])", {"ids": ids})
        if archive is not None:
            archive.execute("BEGIN IMMEDIATE")
            try:
                copy_chunk(conn, archive, ids, copied)
                archive.execute("COMMIT")
            except BaseException:
                archive.execute("ROLLBACK")
                raise
        conn.execute("DELETE FROM trajectories WHERE id = ANY(%s)", (ids,))
        summary.trajectories += len(ids)
    return len(ids)
