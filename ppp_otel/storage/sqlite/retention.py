"""Retention: deleting old trajectories, optionally archiving them first, and giving the space back.

A trajectory is past retention when its ``created_at`` is older than
``older_than_days``. It goes with its turns, questions and violations
(``ON DELETE CASCADE``).

Work is done in chunks of trajectories, each in its own short
``BEGIN IMMEDIATE`` transaction, so a recorder writing to the same file waits
at most one chunk (well inside its busy timeout), never the whole cleanup.

With an archive, each chunk is copied into the archive file (``ATTACH`` +
``INSERT ... SELECT``) in the same transaction that deletes it, so a failure
leaves both files as they were. The archive has the trajectory schema
(:func:`ppp_otel.storage.sqlite.migrations.connect`), so the read API and scoring open it like any
trajectory database. Ids are kept when the archive does not have them yet;
when it does (an archive fed by several databases, or ids SQLite reused after
everything was deleted) the chunk is moved up past the archive's highest id,
turns and their questions and violations moving with it. A trajectory whose
span the archive already holds is not copied twice: with a WAL main database a
crash can land between the two files' commits, and running cleanup again
must then neither lose nor duplicate it. (Rows written by other tools without
span ids cannot be recognised so, and could then be copied twice.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ppp_otel.config.settings import Config, process_config, retention_problem
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.sqlite.reader import file_size
from ppp_otel.storage.sqlite.transaction import transaction

logger = logging.getLogger(__name__)

__all__ = ["ArchivalScheduler", "CleanupSummary", "cleanup", "cutoff_for", "retention_problem"]

DEFAULT_CHUNK_SIZE = 200
#: Pages freed per ``incremental_vacuum`` step, so the write lock is held briefly each time.
_VACUUM_STEP_PAGES = 2000

Progress = Callable[[int, int], None]  # (trajectories done, trajectories in total)


@dataclass
class CleanupSummary:
    """What a cleanup did (or, with ``dry_run``, would do)."""

    db_path: str
    cutoff: str  # trajectories created before this instant (UTC, ISO 8601) are past retention
    dry_run: bool
    trajectories: int = 0
    turns: int = 0
    questions: int = 0
    violations: int = 0
    archive_path: str | None = None
    archived: int = 0  # trajectories copied (fewer than deleted when the archive already had some)
    renumbered: bool = False  # ids had to move up to fit into the archive
    # How space was given back: "incremental" (freed now), "full" (SQLite frees
    # it itself), "vacuum" (VACUUM was run), "needed" (run `cleanup --vacuum`), "none".
    space: str = "none"
    freed_bytes: int = 0
    free_pages_left: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cutoff_for(older_than_days: float, now: datetime | None = None) -> str:
    """The instant ``older_than_days`` before ``now``, spelled as the recorder spells ``created_at``."""
    now = now or datetime.now(tz=timezone.utc)
    problem = retention_problem(older_than_days, now)
    if problem:
        raise ValueError(f"older_than_days {problem}, got {older_than_days}")
    moment = (now - timedelta(days=older_than_days)).astimezone(timezone.utc).replace(tzinfo=None)
    # isoformat, not strftime: its year has four digits before the year 1000 too.
    return moment.isoformat(timespec="milliseconds") + "Z"


# The text comparison uses idx_trajectories_created; julianday() then decides
# exactly, since rows written by other tools may spell the time
# "YYYY-MM-DD HH:MM:SS", which sorts differently on the cutoff's own day.
_PAST_RETENTION = (
    "created_at < :bound AND julianday(created_at) < julianday(:cutoff)"
)


def _bound(cutoff: str) -> str:
    # "T" sorts after " ", so the next day's date is above every same-day spelling.
    day = datetime.strptime(cutoff[:10], "%Y-%m-%d") + timedelta(days=1)
    return day.strftime("%Y-%m-%d")


def _params(cutoff: str) -> dict[str, str]:
    return {"cutoff": cutoff, "bound": _bound(cutoff)}


def cleanup_cutoff(older_than_days: float | None, now: datetime | None, *, chunk_size: int,
                   config: Any = None) -> str:
    """A cleanup's cutoff, its arguments checked: ``older_than_days`` defaults to
    ``[ppp.archival] retention_days`` of ``config``, else of the process's configuration."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if older_than_days is None:
        older_than_days = (config or process_config()).archival.retention_days
    return cutoff_for(older_than_days, now)


def in_chunks(one_chunk: Callable[[], int], total: int, progress: Progress | None,
              cancel: threading.Event | None) -> None:
    """``one_chunk()`` (how many trajectories it moved) until none is left or ``cancel`` is set,
    ``progress(done, total)`` after each."""
    done = 0
    while cancel is None or not cancel.is_set():
        moved = one_chunk()
        if not moved:
            break
        done += moved
        if progress is not None:
            progress(done, total)


def cleanup(
    db_path: str | os.PathLike[str],
    *,
    older_than_days: float | None = None,
    archive_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    vacuum: bool = False,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    cancel: threading.Event | None = None,
    config: Config | None = None,
) -> CleanupSummary:
    """Delete (and optionally archive) the trajectories past retention; give the space back.

    ``older_than_days`` defaults to ``[ppp.archival] retention_days`` of
    ``config``, else of the process's configuration (``PPP_OTEL_CONFIG``). ``archive_path`` copies each trajectory there before it is
    deleted. ``vacuum`` runs a full ``VACUUM`` when the file cannot give space
    back incrementally (older files, made before incremental auto-vacuum).
    ``progress(done, total)`` is called after each chunk; ``cancel``, once
    set, stops the work after the current chunk (what is done stays done).
    """
    cutoff = cleanup_cutoff(older_than_days, now, chunk_size=chunk_size, config=config)
    path = os.fspath(db_path)
    archive = os.fspath(archive_path) if archive_path else None
    summary = CleanupSummary(path, cutoff, dry_run, archive_path=archive)

    if dry_run:
        with closing(schema.connect(path, must_exist=True, read_only=True)) as conn:
            _count_doomed(conn, cutoff, summary)
        return summary

    size_before = file_size(path)
    with closing(schema.connect(path, must_exist=True)) as conn:
        total = conn.execute(
            f"SELECT count(*) FROM trajectories WHERE {_PAST_RETENTION}", _params(cutoff)
        ).fetchone()[0]
        if archive is not None:
            if os.path.abspath(archive) == os.path.abspath(path):
                raise ValueError(f"the archive must be another file than the database ({path})")
            # Created and migrated like any trajectory database; a rollback
            # journal keeps it one self-contained file.
            schema.connect(archive, wal=False).close()
            conn.execute("ATTACH DATABASE ? AS archive", (archive,))
        try:
            _prepare_temp_tables(conn)
            in_chunks(lambda: _one_chunk(conn, cutoff, chunk_size, archive is not None, summary),
                      total, progress, cancel)
        finally:
            if archive is not None:
                conn.execute("DETACH DATABASE archive")
        if summary.trajectories:
            _give_space_back(conn, summary, vacuum=vacuum)
        else:
            summary.free_pages_left = conn.execute("PRAGMA freelist_count").fetchone()[0]
    summary.freed_bytes = max(0, size_before - file_size(path))
    return summary


def _count_doomed(conn: sqlite3.Connection, cutoff: str, summary: CleanupSummary) -> None:
    doomed = f"SELECT id FROM trajectories WHERE {_PAST_RETENTION}"
    turns = f"SELECT id FROM trajectory_turns WHERE trajectory_id IN ({doomed})"
    p = _params(cutoff)
    summary.trajectories = conn.execute(f"SELECT count(*) FROM ({doomed})", p).fetchone()[0]
    summary.turns = conn.execute(f"SELECT count(*) FROM ({turns})", p).fetchone()[0]
    summary.questions = conn.execute(
        f"SELECT count(*) FROM trajectory_questions WHERE turn_id IN ({turns})", p
    ).fetchone()[0]
    summary.violations = conn.execute(
        f"SELECT count(*) FROM trajectory_violations WHERE turn_id IN ({turns})", p
    ).fetchone()[0]


def _prepare_temp_tables(conn: sqlite3.Connection) -> None:
    # TEMP tables live with this connection only: nothing of them reaches either file.
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS cleanup_doomed (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS cleanup_copy (id INTEGER PRIMARY KEY, new_id INTEGER)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS cleanup_turns (id INTEGER PRIMARY KEY, new_id INTEGER)")


def _columns(conn: sqlite3.Connection, schema_name: str, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA {schema_name}.table_info({table})")]


def _copy_columns(
    conn: sqlite3.Connection, table: str, *, leave_out: tuple[str, ...], alias: str = "t"
) -> tuple[str, str]:
    """The columns both files have, minus those the copy computes itself, as
    the INSERT's column list and the SELECT's (qualified by ``alias``)."""
    archived = set(_columns(conn, "archive", table))
    columns = [c for c in _columns(conn, "main", table) if c in archived and c not in leave_out]
    return ", ".join(columns), ", ".join(f"{alias}.{c}" for c in columns)


def _one_chunk(
    conn: sqlite3.Connection, cutoff: str, chunk_size: int, archiving: bool, summary: CleanupSummary
) -> int:
    """Archive and delete up to ``chunk_size`` trajectories in one transaction; how many."""
    with transaction(conn, join=False):
        for table in ("cleanup_doomed", "cleanup_copy", "cleanup_turns"):
            conn.execute(f"DELETE FROM temp.{table}")
        conn.execute(
            f"""INSERT INTO temp.cleanup_doomed (id)
                SELECT id FROM trajectories WHERE {_PAST_RETENTION} ORDER BY id LIMIT :limit""",
            {**_params(cutoff), "limit": chunk_size},
        )
        moved = conn.execute("SELECT count(*) FROM temp.cleanup_doomed").fetchone()[0]
        if moved:
            _count_chunk(conn, summary)
            if archiving:
                _copy_chunk(conn, summary)
            conn.execute("DELETE FROM trajectories WHERE id IN (SELECT id FROM temp.cleanup_doomed)")
            summary.trajectories += moved
    return moved


def _count_chunk(conn: sqlite3.Connection, summary: CleanupSummary) -> None:
    turns = "SELECT id FROM trajectory_turns WHERE trajectory_id IN (SELECT id FROM temp.cleanup_doomed)"
    summary.turns += conn.execute(f"SELECT count(*) FROM ({turns})").fetchone()[0]
    summary.questions += conn.execute(
        f"SELECT count(*) FROM trajectory_questions WHERE turn_id IN ({turns})"
    ).fetchone()[0]
    summary.violations += conn.execute(
        f"SELECT count(*) FROM trajectory_violations WHERE turn_id IN ({turns})"
    ).fetchone()[0]


def _shift_for(conn: sqlite3.Connection, chunk: str, table: str) -> int:
    """0 when the chunk's ids are free in the archive, else how far to move them up."""
    taken = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {chunk} c JOIN archive.{table} a ON a.id = c.id)"
    ).fetchone()[0]
    if not taken:
        return 0
    top = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM archive.{table}").fetchone()[0]
    low = conn.execute(f"SELECT MIN(id) FROM {chunk}").fetchone()[0]
    return top - low + 1


def _copy_chunk(conn: sqlite3.Connection, summary: CleanupSummary) -> None:
    # Trajectories the archive already holds (same span) are deleted, not copied again.
    conn.execute(
        """INSERT INTO temp.cleanup_copy (id)
           SELECT d.id FROM temp.cleanup_doomed d JOIN main.trajectories t ON t.id = d.id
           WHERE t.trace_id IS NULL OR t.span_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM archive.trajectories a
               WHERE a.trace_id = t.trace_id AND a.span_id = t.span_id)"""
    )
    shift = _shift_for(conn, "temp.cleanup_copy", "trajectories")
    conn.execute("UPDATE temp.cleanup_copy SET new_id = id + ?", (shift,))
    conn.execute(
        """INSERT INTO temp.cleanup_turns (id)
           SELECT id FROM main.trajectory_turns
           WHERE trajectory_id IN (SELECT id FROM temp.cleanup_copy)"""
    )
    turn_shift = _shift_for(conn, "temp.cleanup_turns", "trajectory_turns")
    conn.execute("UPDATE temp.cleanup_turns SET new_id = id + ?", (turn_shift,))
    summary.renumbered = summary.renumbered or bool(shift or turn_shift)

    listed, selected = _copy_columns(conn, "trajectories", leave_out=("id", "parent_trajectory_id"))
    # A parent link survives when the parent is archived in this chunk; a
    # parent still kept in the main file has no row to point at in the archive.
    conn.execute(
        f"""INSERT INTO archive.trajectories (id, parent_trajectory_id, {listed})
            SELECT c.new_id, p.new_id, {selected}
            FROM temp.cleanup_copy c JOIN main.trajectories t ON t.id = c.id
            LEFT JOIN temp.cleanup_copy p ON p.id = t.parent_trajectory_id
            ORDER BY c.id"""
    )
    summary.archived += conn.execute("SELECT count(*) FROM temp.cleanup_copy").fetchone()[0]

    listed, selected = _copy_columns(conn, "trajectory_turns", leave_out=("id", "trajectory_id"))
    conn.execute(
        f"""INSERT INTO archive.trajectory_turns (id, trajectory_id, {listed})
            SELECT m.new_id, c.new_id, {selected}
            FROM temp.cleanup_turns m JOIN main.trajectory_turns t ON t.id = m.id
            JOIN temp.cleanup_copy c ON c.id = t.trajectory_id
            ORDER BY m.id"""
    )
    for table in ("trajectory_questions", "trajectory_violations"):
        # Nothing points at question or violation ids: the archive numbers them.
        listed, selected = _copy_columns(conn, table, leave_out=("id", "turn_id"), alias="x")
        conn.execute(
            f"""INSERT INTO archive.{table} (turn_id, {listed})
                SELECT m.new_id, {selected}
                FROM temp.cleanup_turns m JOIN main.{table} x ON x.turn_id = m.id
                ORDER BY x.id"""
        )


def _give_space_back(conn: sqlite3.Connection, summary: CleanupSummary, *, vacuum: bool) -> None:
    mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]  # 0 none, 1 full, 2 incremental
    space = None
    if mode == 2:
        # Step by step, each step its own short write, so recording keeps going.
        while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
            before = conn.execute("PRAGMA freelist_count").fetchone()[0]
            conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES})").fetchall()
            if conn.execute("PRAGMA freelist_count").fetchone()[0] >= before:
                break  # another connection holds the pages; the next cleanup frees them
        space = "incremental"
    elif mode == 1:
        space = "full"
    elif vacuum:
        # Rewrites the whole file and holds the write lock meanwhile: only when asked.
        conn.execute("VACUUM")
        space = "vacuum"
    _checkpoint(conn)
    summary.free_pages_left = conn.execute("PRAGMA freelist_count").fetchone()[0]
    # Nothing given back: --vacuum would, when there is something to give.
    summary.space = space or ("needed" if summary.free_pages_left else "none")


def _checkpoint(conn: sqlite3.Connection) -> None:
    # The freed pages leave the main file only once the WAL is written back;
    # TRUNCATE then shrinks the WAL too. Busy readers just make it partial.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class ArchivalScheduler(SpanProcessor):
    """Runs :func:`cleanup` in a background thread every ``interval_s``.

    It is added to the tracer provider as a span processor only so that it
    stops when the provider shuts down; it ignores spans. The thread is a
    daemon, so it never keeps a process alive, and it runs cleanup's short
    chunked transactions, so the recorder is never blocked for long. The first
    run is right after start, so short-lived processes clean up too.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        retention_days: float,
        interval_s: float,
        archive_path: str | os.PathLike[str] | None = None,
    ):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        # Absolute now: a later change of the working directory must not move either file.
        from ppp_otel.storage import fixed_path

        self.db_path = fixed_path(db_path)
        self.retention_days = retention_days
        # threading refuses a longer wait than TIMEOUT_MAX (about 292 years): never, all the same.
        self.interval_s = min(interval_s, threading.TIMEOUT_MAX - 1)
        self.archive_path = fixed_path(archive_path) if archive_path else None
        self.runs = 0
        self.failures = 0
        self.last_summary: CleanupSummary | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="ppp-otel-archival", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)

    def run_once(self) -> CleanupSummary | None:
        from ppp_otel.storage import display_name  # the URL without its password

        try:
            from ppp_otel.storage import cleanup as any_cleanup

            summary = any_cleanup(
                self.db_path, older_than_days=self.retention_days,
                archive_path=self.archive_path, cancel=self._stop,
            )
            self.last_summary, self.last_error = summary, None
            if summary.trajectories:
                logger.info(
                    "ppp-otel: cleanup removed %d trajectories older than %s from %s%s",
                    summary.trajectories, summary.cutoff, display_name(self.db_path),
                    f" (archived to {self.archive_path})" if self.archive_path else "",
                )
        except Exception as exc:  # a background chore must never take the app down
            summary = None
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("ppp-otel: automatic cleanup of %s failed: %s", display_name(self.db_path), exc)
        with self._ran:
            self.runs += 1
            self._ran.notify_all()
        return summary

    def wait_for_runs(self, count: int, timeout_s: float) -> bool:
        """True once ``count`` runs have finished (for tests and diagnostics)."""
        with self._ran:
            return self._ran.wait_for(lambda: self.runs >= count, timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # SpanProcessor: spans are not its business; shutdown is.
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            # A run in progress finishes its current chunk first.
            self._thread.join(30)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
