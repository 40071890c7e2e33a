"""What the queue engine's worker does with a batch: convert, analyse, write.

Items become records through the ``convert`` function the user of the engine
gives (the span processor turns spans into records; ingest and import queue
ready-made records). The analyzer judges questions and preferences; the
writer commits the batch in one transaction. A file that cannot be written is
retried with backoff until shutdown's deadline; a record that is wrong is
counted as rejected and the rest of its batch is kept.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from typing import Any, Callable

from ppp_otel.analysis.analyzer import EffortClassifier, TurnAnalyzer
from ppp_otel.logs import LogLimiter
from ppp_otel.model import TurnText
from ppp_otel.recorder.stats import RecorderStats
from ppp_otel.records import MAX_TEXT_CHARS, RecordError, TrajectoryRecord, TurnRecord, now_iso
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.sqlite.reader import parse_preferences
from ppp_otel.storage.sqlite.writer import TrajectoryWriter

logger = logging.getLogger(__name__)

_MAX_RETRY_DELAY_S = 1.0
_STATS_EVERY_S = 1.0

#: The queue item of a ready-made record: (RECORD, record).
RECORD = "record"

Record = TrajectoryRecord | TurnRecord


def record_item(item: tuple) -> Record:
    """``convert`` for users that queue only ready-made records."""
    kind, payload = item
    if kind != RECORD:
        raise RecordError(f"not a record: {kind!r}")
    return payload


class RecordSink:
    def __init__(
        self,
        db_path: str,
        stats: RecorderStats,
        *,
        convert: Callable[[tuple], Record] = record_item,
        wal: bool = True,
        busy_timeout_ms: int = schema.DEFAULT_BUSY_TIMEOUT_MS,
        classifier: EffortClassifier | None = None,
        connection_hook: Callable[[sqlite3.Connection], None] | None = None,
    ):
        self.db_path = db_path
        self.stats = stats
        self.convert = convert
        self._wal = wal
        self._busy_timeout_ms = busy_timeout_ms
        self._classifier = classifier
        # Called with every new writer connection: site pragmas, and the tests'
        # way to make SQLite report a full disk (PRAGMA max_page_count).
        self._connection_hook = connection_hook
        self._log_rejected = LogLimiter(logger)
        self._log_write = LogLimiter(logger)
        # Refuse an unusable file at setup, where the error is seen; a locked or
        # read-only file is only logged, the writer keeps retrying.
        try:
            schema.connect(self.db_path, wal=wal, busy_timeout_ms=busy_timeout_ms).close()
        except schema.DatabaseError as exc:
            if isinstance(exc, schema.SchemaTooNewError) or "not a SQLite" in str(exc):
                raise
            logger.warning("ppp-otel: %s; recording will retry", exc)
        self._conn: sqlite3.Connection | None = None
        self._fresh_state()

    def _fresh_state(self) -> None:
        self._conn = None
        self._writer: TrajectoryWriter | None = None
        self.analyzer = TurnAnalyzer(self._classifier, lookup=self._lookup)
        self._recorder_id = uuid.uuid4().hex
        self._started_at = now_iso()
        self._stats_written_at = 0.0

    def after_fork(self) -> None:
        # The parent's connection must not be used across fork, nor closed here.
        if self._conn is not None:
            _ABANDONED_CONNECTIONS.append(self._conn)
        self._fresh_state()

    # ----------------------------------------------------------------- batch

    def _reject(self, what: str, reason: str) -> None:
        stats = self.stats
        stats.rejected += 1
        stats.dirty = True
        stats.last_error = f"rejected {what}: {reason}"
        self._log_rejected("ppp-otel: rejected %s: %s", what, reason)

    def process(self, batch: list[tuple], engine: Any) -> None:
        records: list[Record] = []
        for item in batch:
            try:
                records.append(self.convert(item))
            except RecordError as exc:
                self._reject(item[0], str(exc))
            except Exception as exc:  # an item we did not expect: count it, keep the rest
                self._reject(item[0], f"{type(exc).__name__}: {exc}")
        if not records:
            return
        for record in records:
            if getattr(record, "truncated", False):
                self.stats.truncated += 1
                self._log_rejected("ppp-otel: a turn's text was cut to %d characters", MAX_TEXT_CHARS)
        records = self._analyze(records)
        self._write(records, engine)

    def _analyze(self, records: list) -> list:
        try:
            self.analyzer.analyze(records)
            return records
        except Exception:
            # One record broke the batch's analysis: find it, keep the others.
            kept = []
            for record in records:
                try:
                    self.analyzer.analyze([record])
                    kept.append(record)
                except Exception as exc:
                    self._reject("turn" if isinstance(record, TurnRecord) else "trajectory", str(exc))
            return kept

    # ---------------------------------------------------------------- writes

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = schema.connect(self.db_path, wal=self._wal, busy_timeout_ms=self._busy_timeout_ms)
            if self._connection_hook is not None:
                try:
                    self._connection_hook(conn)
                except Exception as exc:
                    conn.close()
                    if isinstance(exc, sqlite3.Error):
                        raise
                    raise schema.DatabaseError(f"connection_hook failed: {exc!r}") from exc
            self._conn = conn
            self._writer = TrajectoryWriter(self._conn)
        return self._conn

    def _write(self, records: list, engine: Any) -> None:
        stats = self.stats
        delay = 0.05
        while True:
            try:
                self._connection()
                outcome = self._writer.write(records)
                break
            except (sqlite3.Error, schema.DatabaseError, OSError) as exc:
                stats.write_errors += 1
                stats.dirty = True
                stats.last_error = f"write failed: {exc}"
                self._log_write("ppp-otel: writing %d records to %s failed: %s", len(records), self.db_path, exc)
                self.close()
                if engine.giving_up:
                    # Past the deadline nothing more can be written: count all that is left.
                    left = engine.discard_queued()
                    stats.lost_at_shutdown += len(records) + left
                    logger.error("ppp-otel: shutting down with %s unwritable; %d records lost",
                                 self.db_path, len(records) + left)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)
        stats.written_trajectories += outcome.trajectories
        stats.written_turns += outcome.turns
        stats.duplicates += outcome.duplicates
        for record, reason in outcome.rejected:
            self._reject("turn" if isinstance(record, TurnRecord) else "trajectory", reason)
        stats.dirty = True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None
        self._writer = None

    def tick(self, *, final: bool = False) -> None:
        """Save the counters for ``ppp-otel status``, at most once a second unless ``final``."""
        stats = self.stats
        now = time.monotonic()
        if not stats.dirty or (not final and now - self._stats_written_at < _STATS_EVERY_S):
            return
        self._stats_written_at = now
        try:
            conn = self._connection()
            conn.execute(
                """INSERT INTO recorder_stats (recorder_id, pid, started_at, updated_at, enqueued,
                       written_turns, duplicates, dropped, rejected, write_errors, last_error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (recorder_id) DO UPDATE SET updated_at = excluded.updated_at,
                       enqueued = excluded.enqueued, written_turns = excluded.written_turns,
                       duplicates = excluded.duplicates, dropped = excluded.dropped,
                       rejected = excluded.rejected, write_errors = excluded.write_errors,
                       last_error = excluded.last_error""",
                (self._recorder_id, os.getpid(), self._started_at, now_iso(), stats.enqueued,
                 stats.written_turns, stats.duplicates, stats.dropped, stats.rejected,
                 stats.write_errors, stats.last_error),
            )
            stats.dirty = False
        except (sqlite3.Error, schema.DatabaseError, OSError):
            self.close()  # the counters stay in memory; the log has the error

    def _lookup(self, key: tuple[str, str]) -> tuple[tuple[str, ...], list[TurnText]] | None:
        """Preferences and earlier turns of a trajectory begun before this process knew it.

        None when they cannot be read now (not written yet, a locked file):
        the analyzer then asks again for the next turn instead of remembering nothing.
        """
        try:
            conn = self._connection()
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
        except (sqlite3.Error, schema.DatabaseError):
            return None
        history = [
            TurnText(n, p or "", r or "", tuple(json.loads(qs) if qs else ()))
            for n, p, r, qs in turns
        ]
        return preferences, history


_ABANDONED_CONNECTIONS: list[sqlite3.Connection] = []
