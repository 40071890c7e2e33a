"""Which trajectory an OTLP span belongs to, when spans arrive in any order.

In process, the recorder sees a span start and knows its parent at once. Over
OTLP, spans arrive when they end, so a turn usually arrives before its
trajectory span, possibly in an earlier batch. The assembler remembers where
each span it has seen sits (inside which trajectory, inside a turn or not),
holds spans whose parent it has not seen yet, and releases them when the
parent shows up: the trajectory record first, then its turns in start order,
since the writer numbers unnumbered turns in the order it gets them and
refuses a turn whose trajectory row does not exist yet.

Memory is bounded: the map of seen spans forgets the least recently used, and
held spans are given up (counted, logged) after ``pending_ttl_s`` or when more
than ``max_pending_spans`` wait.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ppp_otel import conventions as c
from ppp_otel.ingest.wire import OtlpSpan
from ppp_otel.records import RecordError, TrajectoryKey, TrajectoryRecord, TurnRecord, trajectory_record, turn_record
from ppp_otel.logs import LogLimiter

logger = logging.getLogger(__name__)

SpanKey = tuple[str, str]  # (trace id hex, span id hex)


@dataclass(slots=True, frozen=True)
class Placement:
    """Where a span sits: inside which trajectory (None: none), and whether inside a turn."""

    trajectory: TrajectoryKey | None
    in_turn: bool = False


OUTSIDE = Placement(None)

#: Finds a span already stored by an earlier process: its placement or None.
Lookup = Callable[[str, str], "Placement | None"]


@dataclass
class Assembled:
    """What one batch released: records ready for the writer, in order, and bad spans."""

    records: list[TrajectoryRecord | TurnRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"[:300]


class TrajectoryAssembler:
    """Not thread-safe: the ingest service calls it under one lock."""

    def __init__(
        self,
        lookup: Lookup | None = None,
        *,
        pending_ttl_s: float = 600.0,
        max_pending_spans: int = 100_000,
        max_known_spans: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_pending_spans < 1 or max_known_spans < 1:
            raise ValueError("max_pending_spans and max_known_spans must be >= 1")
        self._lookup = lookup
        self.pending_ttl_s = pending_ttl_s
        self.max_pending_spans = max_pending_spans
        self.max_known_spans = max_known_spans
        self._clock = clock
        self._known: collections.OrderedDict[SpanKey, Placement] = collections.OrderedDict()
        # Held spans grouped by the parent they wait for, oldest group first.
        self._waiting: collections.OrderedDict[SpanKey, tuple[float, dict[str, OtlpSpan]]] = collections.OrderedDict()
        self.pending = 0
        self.orphans = 0  # turns given up because their trajectory never arrived
        self.expired = 0  # every held span given up, turns or not
        self._log_orphan = LogLimiter(logger)

    # ------------------------------------------------------------------ input

    def add(self, spans: Iterable[OtlpSpan]) -> Assembled:
        out = Assembled()
        trajectories: list[TrajectoryRecord] = []
        turns: list[tuple[int, TurnRecord]] = []
        # Trajectory spans first: their turns in the same batch then find them here,
        # not by asking the store (a round trip each when the store is a server).
        spans = sorted(spans, key=lambda s: not c.is_trajectory_span(s.name, s.attributes))
        for span in spans:
            self._place(span, trajectories, turns, out.rejected)
        self.expire()
        out.records.extend(trajectories)
        out.records.extend(record for _, record in sorted(turns, key=lambda item: item[0]))
        return out

    def _place(self, first: OtlpSpan, trajectories: list, turns: list, rejected: list[str]) -> None:
        stack = [first]
        while stack:
            span = stack.pop()
            placement = self._placement(span, trajectories, turns, rejected)
            if placement is None:
                continue
            self._remember((span.trace_id, span.span_id), placement)
            released = self._waiting.pop((span.trace_id, span.span_id), None)
            if released is not None:
                self.pending -= len(released[1])
                stack.extend(released[1].values())

    def _placement(self, span: OtlpSpan, trajectories: list, turns: list, rejected: list[str]) -> Placement | None:
        """Where the span sits, after emitting its record; None when it has to wait."""
        attrs = span.attributes
        if c.is_trajectory_span(span.name, attrs):
            key = (span.trace_id, span.span_id)
            try:
                trajectories.append(
                    trajectory_record(span.trace_id, span.span_id, attrs, start_ns=span.start_ns, end_ns=span.end_ns)
                )
            except Exception as exc:  # RecordError, or a value no check foresaw: one bad span
                rejected.append(f"trajectory span {span.span_id}: {_reason(exc)}")
                return OUTSIDE
            return Placement(key)
        if span.parent_span_id is None:
            return OUTSIDE
        owner = self._owner(span)
        if owner is None:
            self._hold(span)
            return None
        if owner.trajectory is not None and not owner.in_turn and c.is_turn_span(span.name, attrs):
            try:
                record = turn_record(
                    span.trace_id, span.span_id, owner.trajectory, attrs, span.events,
                    start_ns=span.start_ns, end_ns=span.end_ns,
                )
            except Exception as exc:
                rejected.append(f"turn span {span.span_id}: {_reason(exc)}")
                return Placement(owner.trajectory, in_turn=True)
            turns.append((span.start_ns or 0, record))
            return Placement(owner.trajectory, in_turn=True)
        return owner

    def _owner(self, span: OtlpSpan) -> Placement | None:
        parent = (span.trace_id, span.parent_span_id)
        placement = self._known.get(parent)
        if placement is not None:
            self._known.move_to_end(parent)
            return placement
        if parent in self._waiting or self._lookup is None:
            return None  # already asked the database about this parent
        placement = self._lookup(*parent)
        if placement is not None:
            self._remember(parent, placement)
        return placement

    def _remember(self, key: SpanKey, placement: Placement) -> None:
        self._known[key] = placement
        self._known.move_to_end(key)
        while len(self._known) > self.max_known_spans:
            self._known.popitem(last=False)

    def _hold(self, span: OtlpSpan) -> None:
        parent = (span.trace_id, span.parent_span_id)
        group = self._waiting.get(parent)
        if group is None:
            group = self._waiting[parent] = (self._clock(), {})
        if span.span_id not in group[1]:  # a redelivered span waits once
            self.pending += 1
        group[1][span.span_id] = span
        while self.pending > self.max_pending_spans:
            self._give_up(*self._waiting.popitem(last=False), reason="the pending buffer is full")

    def take_waiting(self) -> list[OtlpSpan]:
        """Hand over every held span and forget it (ingest replicas hold them in the store instead)."""
        held = [span for _, group in self._waiting.values() for span in group.values()]
        self._waiting.clear()
        self.pending = 0
        return held

    def placement_of(self, trace_id: str, span_id: str) -> Placement | None:
        """Where a span seen lately sits (None: not seen, or forgotten)."""
        return self._known.get((trace_id, span_id))

    # ----------------------------------------------------------------- expiry

    def expire(self, now: float | None = None) -> int:
        """Give up spans held longer than the TTL; returns how many turns became orphans."""
        now = self._clock() if now is None else now
        before = self.orphans
        while self._waiting:
            parent, (since, _) = next(iter(self._waiting.items()))
            if now - since < self.pending_ttl_s:
                break
            self._give_up(*self._waiting.popitem(last=False), reason=f"no parent within {self.pending_ttl_s:g}s")
        return self.orphans - before

    def expire_all(self) -> int:
        """Give up everything held (at shutdown); returns how many turns became orphans."""
        before = self.orphans
        while self._waiting:
            self._give_up(*self._waiting.popitem(last=False), reason="the receiver is stopping")
        return self.orphans - before

    def _give_up(self, parent: SpanKey, group: tuple[float, dict[str, OtlpSpan]], *, reason: str) -> None:
        held = group[1]
        self.pending -= len(held)
        self.expired += len(held)
        for span in held.values():
            if c.is_turn_span(span.name, span.attributes):
                self.orphans += 1
                self._log_orphan(
                    "ppp-otel ingest: turn span %s of trace %s dropped as an orphan: parent %s never arrived (%s)",
                    span.span_id, span.trace_id, parent[1], reason,
                )
