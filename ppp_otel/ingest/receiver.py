"""An OTLP request in, a committed answer out: the ingest core that HTTP and gRPC share.

:class:`SpanIngest` places a request's spans in their trajectories (the
:class:`~ppp_otel.ingest.assembler.TrajectoryAssembler`), queues the records on a
:class:`~ppp_otel.recorder.Recorder` and waits until the writer has committed
them, or tells why the client should send the request again: the queue was
full, the writes fail, or the deadline passed. Spans that arrive before their
parent wait durably in ``pending_spans``; on a shared store each replica also
claims those whose parent another replica stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS
from ppp_otel.ingest import wire as otlp
from ppp_otel.ingest.assembler import Placement, TrajectoryAssembler, adopt
from ppp_otel.recorder import Recorder
from ppp_otel.records import TurnRecord
from ppp_otel.storage import open_store
from ppp_otel.storage.base import StorageError, TrajectoryBackend
from ppp_otel.storage.sqlite import staging

logger = logging.getLogger(__name__)

#: How long a request waits for its spans to be committed before it is told to retry.
DEFAULT_COMMIT_TIMEOUT_S = 30.0
#: While a request waits for its commit, how often it checks whether the writes fail meanwhile.
_FAILING_CHECK_S = 0.2
_PURGE_EVERY_S = 60.0
#: How often a replica of a shared store claims the spans whose parent another replica stored.
_CLAIM_EVERY_S = 0.2
#: How often an ingest on a store of its own (SQLite, which another ingest process may write
#: too) looks for stored parents of the spans waiting there.
_LOOK_AGAIN_EVERY_S = 1.0


@dataclass
class IngestOutcome:
    spans: int = 0
    queued: int = 0  # records handed to the writer
    rejected: int = 0  # spans that could not be used
    not_queued: int = 0  # records the full queue refused; the client should retry
    first_error: str | None = None
    committed: bool = False  # everything taken is in the database
    write_failing: str | None = None  # why the database cannot be written now, when it cannot

    def why_not_committed(self) -> str:
        """For a 503 / UNAVAILABLE: why the client should send this request again."""
        if self.write_failing:
            return f"the database cannot be written now ({self.write_failing}); retry"
        if self.not_queued:
            return f"queue full; {self.not_queued} records not taken"
        return "the writer has not committed this request yet"


class _Committed:
    """Woken by the writer thread once the records queued before it are committed."""

    __slots__ = ("event", "loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.event = threading.Event()
        self.loop = loop
        self.future = loop.create_future() if loop is not None else None

    def set(self) -> None:
        self.event.set()
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:  # the loop has closed: nobody waits on the future any more
                pass

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(True)


def _given_up(outcome: IngestOutcome, processor: Any, deadline: float) -> bool:
    """Stop waiting for a commit: the deadline has passed, or the writes fail meanwhile (the
    client is told to retry now, not when its own timeout ends; ``outcome`` says why)."""
    outcome.write_failing = processor.write_failing
    return bool(outcome.write_failing) or time.monotonic() >= deadline


def _committed_in_time(waiter: _Committed, outcome: IngestOutcome, processor: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not waiter.event.wait(min(_FAILING_CHECK_S, max(0.0, deadline - time.monotonic()))):
        if _given_up(outcome, processor, deadline):
            return False
    return True


async def _committed_in_time_async(waiter: _Committed, outcome: IngestOutcome, processor: Any,
                                   timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future),
                                   min(_FAILING_CHECK_S, max(0.0, deadline - time.monotonic())))
            return True
        except asyncio.TimeoutError:
            if _given_up(outcome, processor, deadline):
                return False


class Tally:
    """A count several threads add to (gRPC's pool and the HTTP loop): none is lost."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SpanIngest:
    """OTLP requests in, records durably written by a :class:`~ppp_otel.recorder.Recorder`; thread-safe."""

    def __init__(self, processor: Recorder | TrajectorySpanProcessor, assembler: TrajectoryAssembler | None = None,
                 *, pending_retention_s: float = staging.DEFAULT_RETENTION_S,
                 question_tools: Sequence[str] = DEFAULT_QUESTION_TOOLS):
        self.processor = processor
        self.pending_retention_s = pending_retention_s
        self._lock = threading.Lock()
        self._db: TrajectoryBackend | None = None
        self.assembler = assembler or TrajectoryAssembler(self._stored_placement, load_staged=self._load_staged,
                                                          question_tools=question_tools)
        self.received_spans = 0
        self.rejected_spans = 0
        # Requests answered with an error before any span was read (a wrong token, a body
        # that does not parse, ...), over HTTP and gRPC alike; not those told to retry.
        self.refusals = Tally()
        self.repaired_text = 0
        self.purged_turns = 0
        self.claimed_spans = 0
        self._last_purge = 0.0
        self._last_claim = 0.0
        self._shared: bool | None = None  # does the store share pending spans with other replicas

    # ------------------------------------------------------------- requests

    def submit(self, request: Any) -> tuple[IngestOutcome, _Committed | None, int]:
        """Queue a request's records; returns the outcome so far, what to wait on and the
        loss count to compare with once woken (see :meth:`settle`). No waiter: nothing queued."""
        outcome = IngestOutcome()
        good = []
        for item in otlp.spans(request):
            outcome.spans += 1
            if isinstance(item, str):
                outcome.rejected += 1
                outcome.first_error = outcome.first_error or item
            else:
                good.append(item)
        with self._lock:
            self.received_spans += outcome.spans
            # All or nothing: the assembler's state changes for good once spans are
            # added (held turns are released), so a request is refused (503, to be
            # retried) before anything changes rather than half taken. Spans that
            # wait for their parent are in the database, not the queue: they take no room.
            # Nor is it queued while writes fail: it could not be committed before its deadline.
            outcome.write_failing = self.processor.write_failing
            if outcome.write_failing or not self.processor.has_room(len(good) + 1):  # a record a span, a release
                outcome.not_queued = len(good)
                return outcome, None, 0
            assembled = self.assembler.add(good)
            records = self._records_of(assembled, good)
            lost = self.processor.lost_at_shutdown
            # Under the lock, so a trajectory record is queued before turns another request releases.
            taken = self.processor.submit(records, force=True)
            waiter = _Committed(_running_loop())
            self.processor.when_written(waiter)
            self.rejected_spans += outcome.rejected + len(assembled.rejected)
        outcome.rejected += len(assembled.rejected)
        if assembled.rejected:
            outcome.first_error = outcome.first_error or assembled.rejected[0]
        outcome.queued = taken
        outcome.not_queued = len(records) - taken
        return outcome, waiter, lost

    def _records_of(self, assembled: Any, spans: list) -> list:
        """What the writer gets: the records, the spans that now wait, those that stopped
        waiting and, on a shared store, where the spans that make no row sit."""
        records: list = list(assembled.records)
        if assembled.staged:
            records.extend(staging.staged_records(assembled.staged))
        if assembled.released:
            records.append(staging.Unstaged(assembled.released))
        if spans and self._shares_pending():
            placed = self._placements(spans, assembled)
            if placed:
                records.append(staging.Placed(placed))
        return records

    def _placements(self, spans: list, assembled: Any) -> list:
        # A chain or tool span between a trajectory and its model calls is stored nowhere:
        # another replica can learn only from here where a span below it belongs.
        turns = {(r.trace_id, r.span_id) for r in assembled.records if isinstance(r, TurnRecord)}
        placed = []
        for span in spans:
            key = (span.trace_id, span.span_id)
            if key in turns:
                continue
            placement = self.assembler.placement_of(*key)
            if placement is not None and placement.trajectory is not None and placement.trajectory != key:
                placed.append((span.trace_id, span.span_id, placement.trajectory, placement.in_turn))
        return placed

    def _shares_pending(self) -> bool:
        if self._shared is None:
            try:
                self._shared = bool(getattr(self._store(), "shares_pending", False))
            except StorageError:
                return False
        return self._shared

    def claim_once(self) -> int:
        """On a shared store: write the spans (staged by any replica) whose parent has since
        been stored by any replica; how many were claimed."""
        with self._lock:
            if not self._shares_pending():
                return 0
            claimed = self._store().claim_pending()
            if not claimed:
                return 0
            assembled = adopt(self.assembler, claimed)
            records = self._records_of(assembled, claimed)
            self.processor.submit(records, force=True)
            self.claimed_spans += len(claimed)
            self.rejected_spans += len(assembled.rejected)
        return len(claimed)

    def settle(self, outcome: IngestOutcome, lost_before: int) -> IngestOutcome:
        """After the waiter fired: committed unless the writer gave records up meanwhile."""
        outcome.committed = not outcome.not_queued and self.processor.lost_at_shutdown == lost_before
        return outcome

    def ingest(self, request: Any, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> IngestOutcome:
        """Queue a request and wait (this thread) until it is committed, ``timeout_s`` passed
        or the writes fail."""
        outcome, waiter, lost = self.submit(request)
        if waiter is None or not _committed_in_time(waiter, outcome, self.processor, timeout_s):
            return outcome
        return self.settle(outcome, lost)

    async def ingest_async(self, request: Any, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> IngestOutcome:
        outcome, waiter, lost = self.submit(request)
        if waiter is None or not await _committed_in_time_async(waiter, outcome, self.processor, timeout_s):
            return outcome
        return self.settle(outcome, lost)

    # ---------------------------------------------------------- housekeeping

    def resume(self, *, at_start: bool = True) -> int:
        """At startup: spans staged before a restart wait again; those whose parent is stored land.
        Then now and then on SQLite: another ingest process on the file may have stored a parent."""
        with self._lock:
            try:
                # Later, only the parents stored meanwhile: one query, not a lookup for every
                # span still waiting, under the lock every request takes.
                store = self._store()
                parents = store.waiting_parents() if at_start else store.stored_waiting_parents()
            except StorageError as exc:
                logger.warning("ppp-otel ingest: cannot read pending spans: %s", exc)
                return 0
            assembled = self.assembler.resume(parents, stored=not at_start)
            records: list = list(assembled.records)
            if assembled.released:
                records.append(staging.Unstaged(assembled.released))
            if records:
                self.processor.submit(records, force=True)
        if parents and (at_start or assembled.released):
            logger.info("ppp-otel ingest: %d parents awaited by pending spans; %d spans released",
                        len(parents), len(assembled.released))
        return len(assembled.released)

    def tick(self) -> None:
        """Ten times a second: held spans past the TTL leave memory; on a shared store the spans
        other replicas' parents freed are claimed; now and then old ones are purged."""
        now = time.monotonic()
        shared = self._shares_pending()
        if now - self._last_claim >= (_CLAIM_EVERY_S if shared else _LOOK_AGAIN_EVERY_S):
            self._last_claim = now
            try:
                while shared and self.claim_once():
                    pass
                if not shared:
                    self.resume(at_start=False)
            except StorageError as exc:  # the server is down or restarting: next round
                logger.debug("ppp-otel ingest: claiming pending spans failed: %s", exc)
        with self._lock:
            self.assembler.expire()
            if now - self._last_purge < _PURGE_EVERY_S:
                return
            self._last_purge = now
            try:
                purged = self._store().purge_pending(self.pending_retention_s)
            except StorageError as exc:
                logger.debug("ppp-otel ingest: purging pending spans failed: %s", exc)
                return
        if purged:
            self.purged_turns += purged
            logger.warning("ppp-otel ingest: %d turns waited longer than %gs for their trajectory and were "
                           "deleted", purged, self.pending_retention_s)

    def close(self) -> None:
        """Write everything queued. Spans still waiting for a parent are already in the database
        (on a shared store, for the other replicas too)."""
        try:
            if self._shares_pending():
                # Parents this replica just accepted free spans other replicas hold: write those now.
                self.processor.force_flush(5_000)
                while self.claim_once():
                    pass
        except StorageError as exc:
            logger.warning("ppp-otel ingest: pending spans left for the other replicas: %s", exc)
        with self._lock:
            if self.assembler.pending:
                logger.info("ppp-otel ingest: %d spans wait for their parent in pending_spans",
                            self.assembler.pending)
            if self._db is not None:
                self._db.close()
                self._db = None
        self.processor.shutdown()

    @property
    def stats(self) -> dict[str, Any]:
        a = self.assembler
        return {
            "received_spans": self.received_spans,
            "rejected_spans": self.rejected_spans,
            "refused_requests": self.refusals.count,
            "pending_spans": a.pending,
            "repaired_text_in_bodies": self.repaired_text,
            "pending_turns_out_of_memory": a.orphans,
            "purged_pending_turns": self.purged_turns,
            "claimed_spans": self.claimed_spans,
            **a.contentless.stats(),
            **self.processor.stats,
        }

    def _store(self) -> TrajectoryBackend:
        if self._db is None:
            self._db = open_store(self.processor.db_path, must_exist=False,
                                  check_same_thread=False, migrate_schema=False)
        return self._db

    def _stored_placement(self, trace_id: str, span_id: str) -> Placement | None:
        """A parent recorded earlier (another process, a restart): a trajectory or a turn."""
        try:
            found = self._store().placement(trace_id, span_id)
        except StorageError as exc:
            logger.debug("ppp-otel ingest: parent lookup failed: %s", exc)
            return None
        if found is None:
            return None
        trajectory, in_turn = found
        return Placement(trajectory, in_turn=in_turn)

    def _load_staged(self, parent: tuple[str, str]) -> list[otlp.OtlpSpan]:
        try:
            return self._store().staged_children(parent)
        except (StorageError, ValueError) as exc:
            logger.warning("ppp-otel ingest: reading the spans waiting for %s failed: %s", parent[1], exc)
            return []


__all__ = ["DEFAULT_COMMIT_TIMEOUT_S", "IngestOutcome", "SpanIngest"]
