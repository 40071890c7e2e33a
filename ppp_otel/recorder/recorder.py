"""A recorder: the queue engine with the record sink behind it, writing to one database.

OTLP ingest and ATIF import use it as it is (they queue ready-made records);
the span processor builds one with its own span-to-record conversion.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable, Sequence

import time

from ppp_otel.analysis.analyzer import EffortClassifier, PreferenceJudge
from ppp_otel.recorder.engine import QueueEngine, check_arguments
from ppp_otel.recorder.fork import finish_in_child
from ppp_otel.recorder.sink import RECORD, Record, RecordSink, record_item
from ppp_otel.recorder.stats import RecorderStats
from ppp_otel.config.settings import RECORDING
from ppp_otel.storage import display_name, fixed_path


class Recorder:
    """Records in, committed rows out, off the caller's thread; never raises into the caller.

    ``buffer_size`` records are written per transaction; a partial batch is
    written once its oldest record is ``flush_interval_ms`` old. When
    ``max_queue_size`` records wait, ``on_full="drop"`` drops the newest and
    counts it, ``on_full="block"`` waits up to ``block_timeout_ms`` first.
    """

    def __init__(
        self,
        db_path: str | os.PathLike,
        *,
        buffer_size: int = RECORDING.buffer_size,
        flush_interval_ms: float = RECORDING.flush_interval_ms,
        max_queue_size: int = RECORDING.max_queue_size,
        on_full: str = RECORDING.on_full,
        block_timeout_ms: float = RECORDING.block_timeout_ms,
        wal: bool = RECORDING.enable_wal,
        busy_timeout_ms: int = RECORDING.busy_timeout_ms,
        classifier: EffortClassifier | None = None,
        preference_judge: PreferenceJudge | None = None,
        shutdown_timeout_ms: float = 30_000,
        connection_hook: Callable[[sqlite3.Connection], None] | None = None,
        convert: Callable[[tuple], Record] = record_item,
        carry_after_fork: Callable[[Any], bool] | None = None,
        on_judged: Callable[[list], None] | None = None,
    ):
        self.db_path = os.fspath(db_path)
        self.counters = RecorderStats()
        # The engine checks its arguments before the sink touches the file.
        check_arguments(buffer_size, flush_interval_ms, max_queue_size, on_full)
        # A relative path is the working directory's at setup: an app that changes
        # directory later must not have its turns written to a second database there.
        self.sink = RecordSink(
            fixed_path(self.db_path), self.counters, convert=convert, classifier=classifier,
            preference_judge=preference_judge, on_judged=on_judged,
            wal=wal, busy_timeout_ms=busy_timeout_ms, connection_hook=connection_hook,
        )
        self.engine = QueueEngine(
            self.sink, self.counters, buffer_size=buffer_size, flush_interval_ms=flush_interval_ms,
            max_queue_size=max_queue_size, on_full=on_full, block_timeout_ms=block_timeout_ms,
            shutdown_timeout_ms=shutdown_timeout_ms, carry_after_fork=carry_after_fork,
        )
        self.put = self.engine.put
        self.has_room = self.engine.has_room
        engine = self.engine
        self.buffer_size = engine.buffer_size
        self.flush_interval_s = engine.flush_interval_s
        self.max_queue_size = engine.max_queue_size
        self.on_full = engine.on_full
        self.block_timeout_s = engine.block_timeout_s
        self.shutdown_timeout_s = engine.shutdown_timeout_s
        self.last_flush: str | None = None  # what the last force_flush waited for: done, writes, judgment
        # A child multiprocessing forked exits without atexit: its recorder writes what it holds first.
        finish_in_child(self.shutdown)

    def submit(self, records: Sequence[Record], *, force: bool = False) -> int:
        """Queue ready-made records; returns how many were taken.

        ``force`` lets them into the queue's headroom; for a caller that
        checked :meth:`has_room` first and must not be half served.
        """
        put = self.engine.put
        taken = 0
        for record in records:
            taken += put((RECORD, record), force=force)
        return taken

    def add_judged_listener(self, on_judged: Callable[[list], None]) -> None:
        """Also give ``on_judged`` each batch of judged turns from now on, as the
        ``on_judged`` argument is given them (on the judge's thread; it must not block)."""
        self.sink.judgment.listeners.add(on_judged)

    def when_written(self, waiter: Any) -> None:
        """Call ``waiter.set()`` from the writer thread once everything queued so far is
        committed (see :meth:`QueueEngine.when_done`)."""
        self.engine.when_done(waiter)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True once everything queued before this call is committed and judged.

        False when the timeout came first; ``last_flush`` says which part was
        still waiting: ``"writes"`` or ``"judgment"`` (the turns are stored then,
        and their judgment follows).
        """
        deadline = time.monotonic() + timeout_millis / 1000
        if not self.engine.force_flush(timeout_millis):
            self.last_flush = "writes"
            return False
        judged = self.sink.judgment.flush(deadline - time.monotonic())
        self.last_flush = "done" if judged else "judgment"
        return judged

    def shutdown(self) -> None:
        """Write everything queued, judge what can be before the deadline, then stop both
        threads (turns left unjudged wait for ``ppp-otel judge --pending``). Idempotent."""
        deadline = time.monotonic() + self.shutdown_timeout_s
        self.engine.shutdown()
        self.sink.judgment.shutdown(max(0.0, deadline - time.monotonic()))

    @property
    def stopped(self) -> bool:
        """Shut down (or shutting down): it records nothing more."""
        return self.engine.stopping

    @property
    def write_failing(self) -> str | None:
        """While writes fail and are being retried (a locked or read-only file, a server
        that is down): the last error; otherwise None."""
        return (self.counters.last_error or "write failed") if self.engine.writer_stuck else None

    @property
    def lost_at_shutdown(self) -> int:
        """Records queued, then given up because the database stayed unwritable at shutdown."""
        return self.counters.lost_at_shutdown

    def stats_dict(self, *, forgotten_spans: int = 0, **extra: Any) -> dict[str, Any]:
        return self.counters.as_dict(
            db_path=display_name(self.db_path), queued=self.engine.queued,
            forgotten_spans=forgotten_spans, judgment=self.sink.judgment.stats, **extra,
        )

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start (since fork in a child); see ``TrajectorySpanProcessor.stats``."""
        return self.stats_dict()
