"""TrajectorySpanProcessor: spans in, SQLite rows out, off the app thread.

The app thread does two dictionary operations in ``on_start`` (to know which
trajectory a span belongs to, since children end before their parent) and one
bounded append in ``on_end``. A single writer thread turns spans into records,
judges their questions and violations, and writes them in batches. Nothing
here raises into the caller: failures become counts, a log line and
``last_error``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ppp_otel import conventions as c
from ppp_otel.capture import numbering
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.analysis.analyzer import EffortClassifier, TurnAnalyzer
from ppp_otel.logs import LogLimiter
from ppp_otel.model import TurnText
from ppp_otel.records import (
    MAX_TEXT_CHARS,
    RecordError,
    TrajectoryRecord,
    TurnRecord,
    format_span_id,
    format_trace_id,
    now_iso,
    trajectory_record,
    turn_record,
)
from ppp_otel.storage.sqlite.reader import parse_preferences
from ppp_otel.storage import backends
from ppp_otel.storage.sqlite.writer import TrajectoryWriter

logger = logging.getLogger(__name__)

_ON_FULL = ("drop", "block")
# Spans started inside trajectories and never ended (an abandoned stream) must
# not grow the membership map without bound: past this, the oldest is forgotten.
MAX_OPEN_SPANS = 1_000_000
_MAX_RETRY_DELAY_S = 1.0
_STATS_EVERY_S = 1.0


# What the processor knows of an open span inside a trajectory, as a tuple
# (trajectory key, role, turn number): tuples because on_start runs on the app thread.
_TRAJECTORY, _TURN_ROLE, _IN_TURN, _OTHER = 0, 1, 2, 3
# For a turn, the third item is (its number, whether the number came from the sequence).
_Member = tuple[tuple[int, int], int, "tuple[object, bool] | None"]

# Queue items: (kind, payload). Converting spans to records happens on the writer thread.
_START, _END, _TURN, _RECORD = "start", "end", "turn", "record"


class TrajectorySpanProcessor(SpanProcessor):
    """Records trajectory and turn spans into the trajectory store (a SQLite file, or a
    ``postgresql://`` URL).

    Attach it to any SDK ``TracerProvider`` beside other processors::

        provider.add_span_processor(TrajectorySpanProcessor("runs.db"))

    ``buffer_size`` records are written per transaction; a partial batch is
    written once its oldest record is ``flush_interval_ms`` old. When
    ``max_queue_size`` records wait, ``on_full="drop"`` drops the newest and
    counts it, ``on_full="block"`` waits up to ``block_timeout_ms`` first.
    """

    def __init__(
        self,
        db_path: str | os.PathLike | None = None,
        *,
        buffer_size: int = 10,
        flush_interval_ms: float = 500,
        max_queue_size: int = 20_000,
        on_full: str = "drop",
        block_timeout_ms: float = 1000,
        wal: bool = True,
        busy_timeout_ms: int = schema.DEFAULT_BUSY_TIMEOUT_MS,
        classifier: EffortClassifier | None = None,
        shutdown_timeout_ms: float = 30_000,
        connection_hook: Callable[[sqlite3.Connection], None] | None = None,
    ):
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if flush_interval_ms <= 0:
            raise ValueError(f"flush_interval_ms must be > 0, got {flush_interval_ms}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full must be one of {', '.join(_ON_FULL)}, got {on_full!r}")
        self.db_path = os.fspath(db_path or os.environ.get("PPP_OTEL_DB") or schema.DEFAULT_DB_PATH)
        self.buffer_size = buffer_size
        self.flush_interval_s = flush_interval_ms / 1000
        self.max_queue_size = max_queue_size
        self.on_full = on_full
        self._hard_limit = max_queue_size + max(10, max_queue_size // 10)
        self.block_timeout_s = block_timeout_ms / 1000
        self.shutdown_timeout_s = shutdown_timeout_ms / 1000
        self._wal = wal
        self._busy_timeout_ms = busy_timeout_ms
        self._classifier = classifier
        # Called with every new writer connection: site pragmas, and the tests'
        # way to make SQLite report a full disk (PRAGMA max_page_count).
        self._connection_hook = connection_hook

        # Refuse an unusable file at setup, where the error is seen; a locked or
        # read-only file is only logged, the writer keeps retrying.
        self._storage_errors = backends.storage_errors()
        try:
            backends.connect(self.db_path, wal=wal, busy_timeout_ms=busy_timeout_ms).close()
        except schema.DatabaseError as exc:
            if isinstance(exc, schema.SchemaTooNewError) or "not a SQLite" in str(exc) \
                    or "pip install" in str(exc):
                raise
            logger.warning("ppp-otel: %s; recording will retry", exc)

        self._open: dict[int, _Member] = {}
        self.forgotten_spans = 0
        self._init_worker_state()
        self._start_worker()
        ref = weakref.WeakMethod(self._after_fork_in_child)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    # ------------------------------------------------------------------ state

    def _init_worker_state(self) -> None:
        # The app thread takes the bare lock (cheaper than entering the Condition).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque = collections.deque()
        self._oldest: float | None = None
        # force_flush waits for a sequence number: everything enqueued before it.
        self._flush_waiters: list[tuple[int, threading.Event]] = []
        self._taken = 0  # items taken by the writer, in queue order
        self._inflight_starts: list[tuple] = []
        self._done = 0  # of those, items written (or counted as dropped/rejected)
        self._stopping = False
        self._shutdown_deadline = float("inf")
        self._stopped = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._writer: TrajectoryWriter | None = None
        self._analyzer = TurnAnalyzer(self._classifier, lookup=self._lookup)
        self._recorder_id = uuid.uuid4().hex
        self._started_at = now_iso()
        self._stats_written_at = 0.0
        self._stats_dirty = False
        # Counters. ``dropped`` changes under the queue lock; the rest only on the writer thread.
        self.enqueued = 0
        self.dropped = 0
        self.rejected = 0
        self.written_turns = 0
        self.written_trajectories = 0
        self.duplicates = 0
        self.write_errors = 0
        self.internal_errors = 0
        self.truncated = 0
        self.lost_at_shutdown = 0  # queued, then given up: the file stayed unwritable past the deadline
        self.last_error: str | None = None
        self._log_rejected = LogLimiter(logger)
        self._log_dropped = LogLimiter(logger)
        self._log_write = LogLimiter(logger)

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ppp-otel-writer", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its connection must not be
        # used across fork; queued items belong to the parent, which writes them.
        # Open spans and the trajectory starts are kept (a trajectory row is an
        # upsert, so writing it from both processes is harmless): turns of a
        # trajectory begun in the parent find it.
        abandoned = self._conn
        if abandoned is not None:
            _ABANDONED_CONNECTIONS.append(abandoned)
        starts = self._inflight_starts + [item for item in self._queue if item[0] == _START]
        self._init_worker_state()
        if starts:
            self._queue.extend(starts)
            self.enqueued = len(starts)
            self._oldest = time.monotonic()
        self._start_worker()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start (since fork in a child). ``written_trajectories``
        counts trajectory records (a start and an end each); ``enqueued`` plus
        ``dropped`` is everything offered; of the enqueued, those not written are
        ``rejected`` or, when the file stayed unwritable at shutdown, ``lost_at_shutdown``."""
        return {
            "db_path": backends.display_name(self.db_path),
            "queued": len(self._queue),
            "enqueued": self.enqueued,
            "written_trajectories": self.written_trajectories,
            "written_turns": self.written_turns,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "write_errors": self.write_errors,
            "internal_errors": self.internal_errors,
            "truncated": self.truncated,
            "forgotten_spans": self.forgotten_spans,
            "lost_at_shutdown": self.lost_at_shutdown,
            "unknown_preferences": self._analyzer.unknown_preferences,
            "classifier_failures": self._analyzer.classifier_failures,
            "last_error": self.last_error,
        }

    # -------------------------------------------------------------- app thread

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            name = span.name
            attrs = span.attributes
            if c.is_trajectory_span(name, attrs):
                ctx = span.get_span_context()
                self._open[ctx.span_id] = ((ctx.trace_id, ctx.span_id), _TRAJECTORY, None)
                numbering.open_trajectory(ctx.span_id)
                self._put((_START, (ctx.trace_id, ctx.span_id, dict(attrs), span.start_time)), force=True)
                return
            parent = span.parent
            owner = self._open.get(parent.span_id) if parent is not None else None
            if owner is None:
                return
            trajectory, role, _ = owner
            span_id = span.get_span_context().span_id
            # An LLM span inside a turn is part of that turn, not another one.
            if role == _TRAJECTORY or role == _OTHER:
                if name == c.TURN_SPAN or attrs.get(c.SPAN_KIND) == c.KIND_LLM:
                    # turn() numbers its spans itself; others (auto-instrumented LLM
                    # spans) get theirs here, kept for SQLite only: setting it on
                    # the span would double this hook's cost on the app thread.
                    number = attrs.get(c.TURN_NUMBER)
                    if number is None:
                        number = numbering.next_turn_number(trajectory[1])
                    sequenced = numbering.was_handed_out(trajectory[1], number)
                    self._open[span_id] = (trajectory, _TURN_ROLE, (number, sequenced))
                    return
                self._open[span_id] = (trajectory, _OTHER, None)
            else:
                self._open[span_id] = (trajectory, _IN_TURN, None)
            if len(self._open) > MAX_OPEN_SPANS:
                self._open.pop(next(iter(self._open)), None)
                self.forgotten_spans += 1
        except Exception:  # never into the app
            self.internal_errors += 1
            logger.exception("ppp-otel: on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            member = self._open.pop(span.context.span_id, None)
            if member is None:
                return
            trajectory, role, number = member
            if role == _TURN_ROLE:
                self._put((_TURN, (span, trajectory, number)))
            elif role == _TRAJECTORY:
                numbering.close_trajectory(trajectory[1])
                # Never dropped: without it every turn of the trajectory would be an orphan.
                self._put((_END, span), force=True)
        except Exception:
            self.internal_errors += 1
            logger.exception("ppp-otel: on_end failed")

    def submit(self, records: Sequence[TrajectoryRecord | TurnRecord], *, force: bool = False) -> int:
        """Queue ready-made records (OTLP ingest, imports); returns how many were taken.

        ``force`` lets them into the queue's headroom; for a caller that
        checked :meth:`has_room` first and must not be half served.
        """
        taken = 0
        for record in records:
            taken += self._put((_RECORD, record), force=force)
        return taken

    def has_room(self, n: int) -> bool:
        """Whether ``n`` more records fit in the queue now."""
        return len(self._queue) + n <= self.max_queue_size

    def _put(self, item: tuple, *, force: bool = False) -> bool:
        """Queue one item; False when the queue is full and it was dropped (and counted).

        ``force`` lets an item into the headroom above ``max_queue_size`` (a
        tenth of it): trajectory start and end records, without which every
        turn of the trajectory would be an orphan. Past the headroom even they
        are dropped, so memory stays bounded when the writer cannot keep up.
        """
        with self._lock:
            if self._stopping:
                self.dropped += 1  # as BatchSpanProcessor does after shutdown
                return False
            n = len(self._queue)
            if n >= self.max_queue_size and (not force or n >= self._hard_limit):
                return self._put_when_full(item)
            self._queue.append(item)
            self.enqueued += 1
            n = len(self._queue)
            if n == 1:
                self._oldest = time.monotonic()
                self._cond.notify_all()
            elif n == self.buffer_size:
                self._cond.notify_all()
        return True

    def _put_when_full(self, item: tuple) -> bool:
        # Called with the lock held.
        if self.on_full == "block" and not self._stopping:
            deadline = time.monotonic() + self.block_timeout_s
            while len(self._queue) >= self.max_queue_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._stopping and len(self._queue) < self.max_queue_size:
                self._queue.append(item)
                self.enqueued += 1
                n = len(self._queue)
                if n == 1:
                    self._oldest = time.monotonic()
                if n == 1 or n >= self.buffer_size:
                    self._cond.notify_all()
                return True
        self.dropped += 1
        self._stats_dirty = True
        self._log_dropped("ppp-otel: queue full (%d), record dropped", self.max_queue_size)
        return False

    # ---------------------------------------------------------- flush/shutdown

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True once everything queued before this call is committed."""
        if self._stopped.is_set() or not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        with self._cond:
            if self._stopped.is_set():  # the writer ended meanwhile: nothing will release us
                return not self._queue
            target = self.enqueued
            if self._done >= target:
                return True
            self._flush_waiters.append((target, done))
            self._cond.notify_all()
        return done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Write everything queued, then stop the writer thread. Idempotent."""
        with self._cond:
            if self._stopping:
                already = True
            else:
                already = False
                self._shutdown_deadline = time.monotonic() + self.shutdown_timeout_s
                self._stopping = True
                self._cond.notify_all()
        if not already and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.shutdown_timeout_s + 1)

    # ------------------------------------------------------------ writer thread

    def _take(self) -> tuple[list, bool]:
        cond = self._cond
        with cond:
            while True:
                n = len(self._queue)
                if self._stopping or n >= self.buffer_size or (n and self._flush_waiters):
                    break
                if n:
                    remaining = self._oldest + self.flush_interval_s - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                else:
                    cond.wait(_STATS_EVERY_S if self._stats_dirty else None)
                    if self._stats_dirty and not self._queue and not self._stopping:
                        return [], False
            batch = [self._queue.popleft() for _ in range(min(self.buffer_size, len(self._queue)))]
            self._taken += len(batch)
            # A fork before this batch commits must still give the child its trajectories.
            self._inflight_starts = [item for item in batch if item[0] == _START]
            if self._queue:
                # Whatever stays behind a full batch is already due.
                self._oldest = time.monotonic() - self.flush_interval_s
            else:
                self._oldest = None
            stopping = self._stopping and not self._queue
            cond.notify_all()  # producers blocked on a full queue
        return batch, stopping

    def _release_flushes(self) -> None:
        with self._cond:
            self._done = self._taken
            waiting = []
            for target, event in self._flush_waiters:
                if target <= self._done:
                    event.set()
                else:
                    waiting.append((target, event))
            self._flush_waiters = waiting

    def _run(self) -> None:
        try:
            while True:
                batch, stopping = self._take()
                if batch:
                    try:
                        self._process(batch)
                    except Exception as exc:
                        # A bug must not end recording: count the batch, keep the thread.
                        self.internal_errors += 1
                        self.rejected += len(batch)
                        self.last_error = f"internal error: {exc!r}"
                        logger.exception("ppp-otel: a batch of %d records could not be written", len(batch))
                self._release_flushes()
                self._save_stats(force=stopping)
                if stopping:
                    break
        except Exception:
            self.internal_errors += 1
            logger.exception("ppp-otel: writer thread stopped unexpectedly")
        finally:
            self._drop_connection()
            self._stopped.set()
            with self._cond:
                for _, event in self._flush_waiters:
                    event.set()
                self._flush_waiters = []

    def _convert(self, item: tuple) -> TrajectoryRecord | TurnRecord:
        kind, payload = item
        if kind == _RECORD:
            return payload
        if kind == _START:
            trace_id, span_id, attrs, start_ns = payload
            return trajectory_record(format_trace_id(trace_id), format_span_id(span_id), attrs, start_ns=start_ns)
        if kind == _END:
            span = payload
            ctx = span.context
            return trajectory_record(
                format_trace_id(ctx.trace_id), format_span_id(ctx.span_id), span.attributes or {},
                start_ns=span.start_time, end_ns=span.end_time,
            )
        span, (trace_id, traj_span_id), (number, sequenced) = payload
        ctx = span.context
        record = turn_record(
            format_trace_id(ctx.trace_id),
            format_span_id(ctx.span_id),
            (format_trace_id(trace_id), format_span_id(traj_span_id)),
            dict(span.attributes or {}),  # plain dict: the SDK mapping makes every miss raise
            [(e.name, e.attributes or {}) for e in span.events],
            start_ns=span.start_time,
            end_ns=span.end_time,
            turn_number=number,
        )
        record.renumber_on_conflict = sequenced
        return record

    def _reject(self, what: str, reason: str) -> None:
        self.rejected += 1
        self._stats_dirty = True
        self.last_error = f"rejected {what}: {reason}"
        self._log_rejected("ppp-otel: rejected %s: %s", what, reason)

    def _process(self, batch: list[tuple]) -> None:
        records: list[TrajectoryRecord | TurnRecord] = []
        for item in batch:
            try:
                records.append(self._convert(item))
            except RecordError as exc:
                self._reject(item[0], str(exc))
            except Exception as exc:  # a span we did not expect: count it, keep the rest
                self._reject(item[0], f"{type(exc).__name__}: {exc}")
        if not records:
            return
        for record in records:
            if getattr(record, "truncated", False):
                self.truncated += 1
                self._log_rejected("ppp-otel: a turn's text was cut to %d characters", MAX_TEXT_CHARS)
        records = self._analyze(records)
        self._write(records)

    def _analyze(self, records: list) -> list:
        try:
            self._analyzer.analyze(records)
            return records
        except Exception:
            # One record broke the batch's analysis: find it, keep the others.
            kept = []
            for record in records:
                try:
                    self._analyzer.analyze([record])
                    kept.append(record)
                except Exception as exc:
                    self._reject("turn" if isinstance(record, TurnRecord) else "trajectory", str(exc))
            return kept

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = backends.connect(self.db_path, wal=self._wal, busy_timeout_ms=self._busy_timeout_ms)
            if self._connection_hook is not None:
                try:
                    self._connection_hook(conn)
                except Exception as exc:
                    conn.close()
                    if isinstance(exc, sqlite3.Error):
                        raise
                    raise schema.DatabaseError(f"connection_hook failed: {exc!r}") from exc
            self._conn = conn
            self._writer = backends.writer_for(self._conn)
        return self._conn

    def _write(self, records: list) -> None:
        delay = 0.05
        while True:
            try:
                self._connection()
                outcome = self._writer.write(records)
                break
            except self._storage_errors as exc:
                self.write_errors += 1
                self._stats_dirty = True
                self.last_error = f"write failed: {exc}"
                self._log_write("ppp-otel: writing %d records to %s failed: %s", len(records),
                                backends.display_name(self.db_path), exc)
                self._drop_connection()
                if self._stopping and time.monotonic() > self._shutdown_deadline:
                    # Past the deadline nothing more can be written: count all that is left.
                    with self._cond:
                        left = len(self._queue)
                        self._queue.clear()
                        self._taken += left
                        self._oldest = None
                        self.lost_at_shutdown += len(records) + left
                    logger.error("ppp-otel: shutting down with %s unwritable; %d records lost",
                                 backends.display_name(self.db_path), len(records) + left)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)
        self.written_trajectories += outcome.trajectories
        self.written_turns += outcome.turns
        self.duplicates += outcome.duplicates
        for record, reason in outcome.rejected:
            self._reject("turn" if isinstance(record, TurnRecord) else "trajectory", reason)
        self._stats_dirty = True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a connection already broken closes as it can
                pass
        self._conn = None
        self._writer = None

    def _save_stats(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._stats_dirty or (not force and now - self._stats_written_at < _STATS_EVERY_S):
            return
        self._stats_written_at = now
        try:
            conn = self._connection()
            row = (self._recorder_id, os.getpid(), self._started_at, now_iso(), self.enqueued,
                   self.written_turns, self.duplicates, self.dropped, self.rejected,
                   self.write_errors, self.last_error)
            if backends.is_postgres_connection(conn):
                from ppp_otel.storage.postgres.writer import save_recorder_stats

                save_recorder_stats(conn, row)
                self._stats_dirty = False
                return
            conn.execute(
                """INSERT INTO recorder_stats (recorder_id, pid, started_at, updated_at, enqueued,
                       written_turns, duplicates, dropped, rejected, write_errors, last_error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (recorder_id) DO UPDATE SET updated_at = excluded.updated_at,
                       enqueued = excluded.enqueued, written_turns = excluded.written_turns,
                       duplicates = excluded.duplicates, dropped = excluded.dropped,
                       rejected = excluded.rejected, write_errors = excluded.write_errors,
                       last_error = excluded.last_error""",
                (self._recorder_id, os.getpid(), self._started_at, now_iso(), self.enqueued,
                 self.written_turns, self.duplicates, self.dropped, self.rejected,
                 self.write_errors, self.last_error),
            )
            self._stats_dirty = False
        except self._storage_errors:
            self._drop_connection()  # the counters stay in memory; the log has the error

    def _lookup(self, key: tuple[str, str]) -> tuple[tuple[str, ...], list[TurnText]] | None:
        """Preferences and earlier turns of a trajectory begun before this process knew it.

        None when they cannot be read now (not written yet, a locked file):
        the analyzer then asks again for the next turn instead of remembering nothing.
        """
        try:
            conn = self._connection()
            if backends.is_postgres_connection(conn):
                from ppp_otel.storage.postgres.reader import trajectory_context

                found = trajectory_context(conn, key)
                if found is None:
                    return None
                preferences, rows = found
                return preferences, [TurnText(n, p or "", r or "", tuple(qs or ())) for n, p, r, qs in rows]
            row = conn.execute(
                "SELECT id, preferences FROM trajectories WHERE trace_id = ? AND span_id = ?", key
            ).fetchone()
            if row is None:
                return None
            preferences = tuple(parse_preferences(row[1]))
            if not preferences:
                return (), []
            turns = conn.execute(
                """SELECT t.turn_number, t.prompt, t.response,
                          (SELECT json_group_array(question_text) FROM trajectory_questions q
                           WHERE q.turn_id = t.id)
                   FROM trajectory_turns t WHERE t.trajectory_id = ? ORDER BY t.turn_number""",
                (row[0],),
            ).fetchall()
        except self._storage_errors:
            return None
        history = [
            TurnText(n, p or "", r or "", tuple(json.loads(qs) if qs else ()))
            for n, p, r, qs in turns
        ]
        return preferences, history


_ABANDONED_CONNECTIONS: list[sqlite3.Connection] = []
