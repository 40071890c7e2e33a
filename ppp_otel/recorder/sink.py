"""What the queue engine's worker does with a batch: convert, write, hand over for judgment.

Items become records through the ``convert`` function the user of the engine
gives (the span processor turns spans into records; ingest and import queue
ready-made records). The writer commits the batch in one transaction. The
judgment (:mod:`ppp_otel.analysis.judgment_stage`: questions, their effort,
violations) is made in that batch when the judges are the rules, which cost
microseconds and cannot hang; an LLM or custom judge judges on its own thread
after the write, so a slow judge never delays a write. A file that cannot be written is
retried with backoff until shutdown's deadline; a record that is wrong is
counted as rejected and the rest of its batch is kept.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, Callable

from ppp_otel import textrepair
from ppp_otel.analysis.analyzer import EffortClassifier, PreferenceJudge
from ppp_otel.analysis.judgment_stage import JudgmentStage, as_written
from ppp_otel.logs import LogLimiter
from ppp_otel.recorder.stats import RecorderStats
from ppp_otel.records import MAX_TEXT_CHARS, RecordError, TrajectoryRecord, TurnRecord, now_iso
from ppp_otel.storage import display_name, open_store
from ppp_otel.storage.base import DatabaseNewerError, NotADatabaseError, StorageError, TrajectoryBackend
from ppp_otel.storage.lazy import LazyStore
from ppp_otel.storage.sqlite import staging

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
        classifier: EffortClassifier | None = None,
        preference_judge: PreferenceJudge | None = None,
        on_judged: Callable[[list[TurnRecord]], None] | None = None,
        **store_options: Any,
    ):
        self.db_path = db_path
        self.stats = stats
        self.convert = convert
        # For the backend: for SQLite wal, busy_timeout_ms, and connection_hook
        # (called with every new writer connection: site pragmas, and the tests'
        # way to make SQLite report a full disk).
        self._store_options = {**store_options, "must_exist": False}
        self._log_rejected = LogLimiter(logger)
        self._log_write = LogLimiter(logger)
        # Refuse an unusable database at setup, where the error is seen; a locked
        # or read-only one is only logged, the writer keeps retrying.
        try:
            open_store(self.db_path, **self._store_options).close()
        except StorageError as exc:
            if isinstance(exc, (DatabaseNewerError, NotADatabaseError)):
                raise
            logger.warning("ppp-otel: %s; recording will retry", exc)
        # Trajectories whose start this recorder wrote and whose end it has not: their end
        # completes a trajectory already counted. Bounded by the trajectories open at once.
        self._open_trajectories: set = set()
        # The rules judge each batch in the transaction that writes it; an LLM or custom
        # judge runs on its own thread and connection, after the writes.
        self.judgment = JudgmentStage(db_path, classifier, preference_judge, on_judged=on_judged,
                                      **store_options)
        self._fresh_state()

    def _fresh_state(self) -> None:
        # Its lock is held whenever this thread touches the database, and taken by fork.
        self._db = LazyStore(self.db_path, self._store_options)
        self._db_lock = self._db.lock
        self._recorder_id = uuid.uuid4().hex
        self._started_at = now_iso()
        self._stats_written_at = 0.0

    def after_fork(self) -> None:
        # The parent's connection must not be used across fork, nor closed here.
        self._db.abandon()
        self._fresh_state()
        self.judgment.after_fork()

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
                made = self.convert(item)
                if made is None:
                    continue  # not a record after all (a span that was no model call)
                if isinstance(made, list):
                    records.extend(made)
                else:
                    records.append(made)
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
            self._keep_storable(record)
        # Spans waiting for their parent are stored as they came; they are judged once released.
        waiting = [r for r in records if isinstance(r, staging.STAGING_RECORDS)]
        if waiting:
            records = [r for r in records if not isinstance(r, staging.STAGING_RECORDS)]
        judgment = self.judgment
        if judgment.in_batch:
            records = judgment.judge_batch(records)
            self._write(records + waiting, engine)
            judgment.batch_written(records)
        else:
            self._write(as_written(records) + waiting, engine)
            judgment.submit(records)

    def _keep_storable(self, record: Record) -> None:
        repaired = textrepair.repair_record(record)
        if repaired:
            self.stats.repaired_text += repaired
            self._log_rejected("ppp-otel: %d characters SQLite cannot store became U+FFFD", repaired)
        dropped = getattr(record, "dropped_values", 0)
        if dropped:
            self.stats.dropped_values += dropped
            self._log_rejected("ppp-otel: %d values dropped from turn %s (a number out of range, or an "
                               "effort or severity the schema does not have)", dropped, record.span_id)

    # ---------------------------------------------------------------- writes

    def _connection(self) -> TrajectoryBackend:
        return self._db.get()

    def _write(self, records: list, engine: Any) -> None:
        stats = self.stats
        delay = 0.05
        while True:
            try:
                with self._db_lock:
                    outcome = self._connection().write(records)
                break
            except (StorageError, OSError) as exc:
                engine.writer_stuck = True
                stats.write_errors += 1
                stats.dirty = True
                stats.last_error = f"write failed: {exc}"
                self._log_write("ppp-otel: writing %d records to %s failed: %s", len(records),
                               display_name(self.db_path), exc)
                self.close()
                if engine.giving_up:
                    # Past the deadline nothing more can be written: count all that is left.
                    left = engine.discard_queued()
                    stats.lost_at_shutdown += len(records) + left
                    logger.error("ppp-otel: shutting down with %s unwritable; %d records lost",
                                 display_name(self.db_path), len(records) + left)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)
        engine.writer_stuck = False
        if outcome.trajectories:
            self._count_trajectories(records, outcome)
        stats.written_turns += outcome.turns
        stats.duplicates += outcome.duplicates
        for record, reason in outcome.rejected:
            self._reject("turn" if isinstance(record, TurnRecord) else "trajectory", reason)
        stats.dirty = True

    def _count_trajectories(self, records: list, outcome: Any) -> None:
        """``written_trajectories`` counts trajectories, not records: the end of one whose
        start this recorder wrote is a ``trajectory_updates``."""
        rejected = {id(r) for r, _ in outcome.rejected}
        opened = self._open_trajectories
        new = updates = 0
        for r in records:
            if type(r) is not TrajectoryRecord or id(r) in rejected:
                continue
            key = r.key
            if key in opened:
                updates += 1
                if r.ended_at is not None:
                    opened.discard(key)
            else:
                new += 1
                if r.ended_at is None:
                    opened.add(key)
        self.stats.written_trajectories += new
        self.stats.trajectory_updates += updates

    def close(self) -> None:
        self._db.close()
        self.judgment.close_in_batch()

    def tick(self, *, final: bool = False) -> None:
        """Save the counters for ``ppp-otel status``, at most once a second unless ``final``."""
        stats = self.stats
        now = time.monotonic()
        if not stats.dirty or (not final and now - self._stats_written_at < _STATS_EVERY_S):
            return
        self._stats_written_at = now
        try:
            # In RECORDER_COLUMNS order.
            with self._db_lock:
                self._connection().save_recorder_stats(
                    (self._recorder_id, os.getpid(), self._started_at, now_iso(), stats.enqueued,
                     stats.written_turns, stats.duplicates, stats.dropped, stats.rejected,
                     stats.write_errors, stats.last_error),
                )
            stats.dirty = False
        except (StorageError, OSError):
            self.close()  # the counters stay in memory; the log has the error
