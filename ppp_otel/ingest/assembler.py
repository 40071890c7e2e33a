"""Which trajectory an OTLP span belongs to, when spans arrive in any order.

In process, the recorder sees a span start and knows its parent at once. Over
OTLP, spans arrive when they end, so a turn usually arrives before its
trajectory span, possibly in an earlier batch. The assembler remembers where
each span it has seen sits (inside which trajectory, inside a turn or not),
holds spans whose parent it has not seen yet, and releases them when the
parent shows up: the trajectory record first, then its turns in start order,
(spans that started together keep the order they arrived in), since the
writer numbers unnumbered turns in the order it gets them and refuses a turn
whose trajectory row does not exist yet.

Which spans are turns is decided by :mod:`ppp_otel.dialects`, as in process:
the same spans give the same rows by both paths. A trajectory span inside
another trajectory (a sub-agent's) records its parent, once the spans between
them have arrived.

Held spans are durable: each is handed back in ``Assembled.staged`` to be
written to ``pending_spans`` with the request's other records (see staging),
and the keys of those a parent released come back in ``Assembled.released``.
Memory is bounded: the map of seen spans forgets the least recently used, and
held spans leave memory after ``pending_ttl_s`` or when more than
``max_pending_spans`` wait; only their parent's key stays, and when that
parent arrives they are read back from the database.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ppp_otel import conventions as c
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS, might_be_turn
from ppp_otel.dialects.content import ContentlessCalls
from ppp_otel.dialects.resolve import Step, TurnResolver
from ppp_otel.ingest.wire import OtlpSpan
from ppp_otel.records import (
    RecordError, TrajectoryKey, TrajectoryRecord, TurnRecord, candidate_of, carry, fold_costs, trajectory_record, turn_record,
)
from ppp_otel.logs import LogLimiter
from ppp_otel.lru import LRUMap

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
#: Reads back the staged spans that wait for a parent.
LoadStaged = Callable[[SpanKey], "list[OtlpSpan]"]


@dataclass
class Assembled:
    """What one batch released: records ready for the writer, in order, and bad spans."""

    records: list[TrajectoryRecord | TurnRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    staged: list[tuple[OtlpSpan, bool]] = field(default_factory=list)  # newly held: (span, is a turn)
    released: list[SpanKey] = field(default_factory=list)  # held before, placed now


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
        load_staged: LoadStaged | None = None,
        question_tools: Sequence[str] = DEFAULT_QUESTION_TOOLS,
    ):
        if max_pending_spans < 1 or max_known_spans < 1:
            raise ValueError("max_pending_spans and max_known_spans must be >= 1")
        self._lookup = lookup
        self.pending_ttl_s = pending_ttl_s
        self.max_pending_spans = max_pending_spans
        self.max_known_spans = max_known_spans
        self._clock = clock
        self.question_tools = tuple(question_tools)
        self._resolver = TurnResolver()
        self._arrivals = 0  # every span gets a number as it arrives: the tie-break of equal start times
        # Sub-agent trajectories whose parent span has not been placed yet, by that span.
        self._links: collections.OrderedDict[SpanKey, list[TrajectoryRecord]] = collections.OrderedDict()
        self._known: LRUMap[SpanKey, Placement] = LRUMap(max_known_spans)
        # Held spans grouped by the parent they wait for, oldest group first.
        self._waiting: collections.OrderedDict[SpanKey, tuple[float, dict[str, tuple[int, OtlpSpan]]]] = (
            collections.OrderedDict())
        # Parents whose waiting children are in the database only (out of memory, or from before a restart).
        self._staged_only: set[SpanKey] = set()
        self._load_staged = load_staged
        # Spans held during the current add(): staged only if still waiting at its end.
        self._new_held: dict[SpanKey, tuple[OtlpSpan, bool]] = {}
        self.pending = 0  # held spans in memory
        self.orphans = 0  # turns that left memory still waiting (they stay in pending_spans)
        self.expired = 0  # every held span that left memory, turns or not
        self._log_orphan = LogLimiter(logger)
        # Model calls sent without message content: said once per instrumentation, as in process.
        self.contentless = ContentlessCalls(logger, "ppp-otel ingest", remote=True)

    # ------------------------------------------------------------------ input

    def add(self, spans: Iterable[OtlpSpan]) -> Assembled:
        out = Assembled()
        trajectories: list[TrajectoryRecord] = []
        turns: list[tuple[int, int, Step]] = []
        for span in spans:
            self._place((self._arrive(), span), trajectories, turns, out)
        out.staged.extend(self._new_held.values())
        self._new_held.clear()
        # Only now, once this request's held spans are to be staged, may they leave memory.
        while self.pending > self.max_pending_spans:
            self._give_up(*self._waiting.popitem(last=False), reason="more spans wait than memory holds")
        self.expire()
        self._emit(trajectories, turns, out)
        return out

    def _arrive(self) -> int:
        self._arrivals += 1
        return self._arrivals

    def _emit(self, trajectories: list[TrajectoryRecord], turns: list, out: Assembled) -> None:
        out.records.extend(trajectories)
        # Model calls in start order, so that a tool-call-only step goes with the turn after it.
        for _, _, step in sorted(turns, key=lambda item: (item[0], item[1])):
            resolved = self._resolver.add(step)
            if resolved is not None:
                out.records.append(fold_costs(carry(step.record, resolved.tool_calls, resolved.questions), resolved))
        for record in trajectories:
            if record.ended_at is not None:
                resolved = self._resolver.close(record.key)
                if resolved is not None:
                    out.records.append(fold_costs(
                        carry(resolved.step.record, resolved.tool_calls, resolved.questions), resolved))

    def resume(self, parents: Iterable[SpanKey], *, stored: bool = False) -> Assembled:
        """At startup: the parents staged spans wait for; those already stored release them now.
        With ``stored``: parents stored since by another process; only they are looked up."""
        out = Assembled()
        trajectories: list[TrajectoryRecord] = []
        turns: list[tuple[int, int, Step]] = []
        parents = list(parents)
        self._staged_only.update(parents)
        for parent in parents if stored else list(self._staged_only):
            placement = self._lookup(*parent) if self._lookup is not None else None
            if placement is not None:
                self._remember(parent, placement)
                self._release(parent, trajectories, turns, out)
        self._emit(trajectories, turns, out)
        return out

    def placement_of(self, trace_id: str, span_id: str) -> Placement | None:
        """Where a span seen lately sits (None: not seen, or forgotten)."""
        return self._known.get((trace_id, span_id))

    def _place(self, first: tuple[int, OtlpSpan], trajectories: list, turns: list, out: Assembled) -> None:
        stack = [first]
        while stack:
            arrival, span = stack.pop()
            placement = self._placement(arrival, span, trajectories, turns, out)
            if placement is None:
                continue
            key = (span.trace_id, span.span_id)
            self._remember(key, placement)
            self._link(key, placement, trajectories)
            if key in self._waiting or key in self._staged_only:
                stack.extend(self._released(key, out))

    def _release(self, parent: SpanKey, trajectories: list, turns: list, out: Assembled) -> None:
        for span in self._released(parent, out):
            self._place(span, trajectories, turns, out)

    def _released(self, parent: SpanKey, out: Assembled) -> list[tuple[int, OtlpSpan]]:
        """The spans that waited for ``parent``, from memory and from the database, once each,
        with their arrival numbers (read back from the database, they arrive now)."""
        found: dict[str, tuple[int, OtlpSpan]] = {}
        held = self._waiting.pop(parent, None)
        if held is not None:
            self.pending -= len(held[1])
            found.update(held[1])
        if parent in self._staged_only:
            self._staged_only.discard(parent)
            if self._load_staged is not None:
                for span in self._load_staged(parent):
                    if span.span_id not in found:
                        found[span.span_id] = (self._arrive(), span)
        for span_id in found:
            key = (parent[0], span_id)
            # Held and released within one request: never staged, nothing to unstage.
            if self._new_held.pop(key, None) is None:
                out.released.append(key)
        return list(found.values())

    def _placement(self, arrival: int, span: OtlpSpan, trajectories: list, turns: list,
                   out: Assembled) -> Placement | None:
        """Where the span sits, after emitting its record; None when it has to wait."""
        rejected = out.rejected
        attrs = span.attributes
        if c.is_trajectory_span(span.name, attrs):
            key = (span.trace_id, span.span_id)
            try:
                record = trajectory_record(span.trace_id, span.span_id, attrs, start_ns=span.start_ns,
                                           end_ns=span.end_ns)
            except Exception as exc:  # RecordError, or a value no check foresaw: one bad span
                rejected.append(f"trajectory span {span.span_id}: {_reason(exc)}")
                return OUTSIDE
            trajectories.append(record)
            if span.parent_span_id is not None:
                self._find_parent(span, record)
            return Placement(key)
        if span.parent_span_id is None:
            return OUTSIDE
        owner = self._owner(span)
        if owner is None:
            self._hold(arrival, span, out)
            return None
        if owner.trajectory is not None and not owner.in_turn and might_be_turn(span.name, attrs):
            try:
                candidate = candidate_of(span.name, attrs, span.events, self.question_tools)
                if candidate is None:
                    return owner
                self.contentless.check(span.name, span.scope, candidate, span.resource.get("service.name"))
                record = turn_record(
                    span.trace_id, span.span_id, owner.trajectory, attrs, span.events,
                    start_ns=span.start_ns, end_ns=span.end_ns, candidate=candidate,
                )
            except Exception as exc:
                rejected.append(f"turn span {span.span_id}: {_reason(exc)}")
                return Placement(owner.trajectory, in_turn=True)
            step = Step(owner.trajectory, span.start_ns, span.end_ns, candidate, record)
            turns.append((span.start_ns or 0, arrival, step))
            return Placement(owner.trajectory, in_turn=True)
        return owner

    # -------------------------------------------------------------- sub-agents

    def _find_parent(self, span: OtlpSpan, record: TrajectoryRecord) -> None:
        """A trajectory inside another: its parent now, or once the span above it is placed."""
        parent = (span.trace_id, span.parent_span_id)
        placement = self._known.get(parent)
        if placement is None and self._lookup is not None and parent not in self._waiting:
            placement = self._lookup(*parent)
        if placement is not None:
            record.parent = placement.trajectory
            return
        self._links.setdefault(parent, []).append(record)
        self._links.move_to_end(parent)
        while len(self._links) > self.max_pending_spans:
            self._links.popitem(last=False)

    def _link(self, key: SpanKey, placement: Placement, trajectories: list) -> None:
        children = self._links.pop(key, None)
        if children and placement.trajectory is not None:
            # Written again after the parent's record: the row takes its parent then.
            trajectories.extend(dataclasses.replace(child, parent=placement.trajectory) for child in children)

    def _owner(self, span: OtlpSpan) -> Placement | None:
        parent = (span.trace_id, span.parent_span_id)
        placement = self._known.get(parent)
        if placement is not None:
            return placement
        if parent in self._waiting or parent in self._staged_only or self._lookup is None:
            return None  # already asked the database about this parent
        placement = self._lookup(*parent)
        if placement is not None:
            self._remember(parent, placement)
        return placement

    def _remember(self, key: SpanKey, placement: Placement) -> None:
        self._known.put(key, placement)

    def _hold(self, arrival: int, span: OtlpSpan, out: Assembled) -> None:
        parent = (span.trace_id, span.parent_span_id)
        group = self._waiting.get(parent)
        if group is None:
            group = self._waiting[parent] = (self._clock(), {})
        if span.span_id not in group[1]:  # a redelivered span waits once
            self.pending += 1
            self._new_held[(span.trace_id, span.span_id)] = (span, might_be_turn(span.name, span.attributes))
        group[1][span.span_id] = (arrival, span)

    # ----------------------------------------------------------------- expiry

    def expire(self, now: float | None = None) -> int:
        """Let spans held longer than the TTL leave memory; returns how many turns did."""
        now = self._clock() if now is None else now
        before = self.orphans
        while self._waiting:
            parent, (since, _) = next(iter(self._waiting.items()))
            if now - since < self.pending_ttl_s:
                break
            self._give_up(*self._waiting.popitem(last=False), reason=f"no parent within {self.pending_ttl_s:g}s")
        return self.orphans - before

    def _give_up(self, parent: SpanKey, group: tuple[float, dict[str, tuple[int, OtlpSpan]]], *, reason: str) -> None:
        """Out of memory, not out of storage: the spans stay in pending_spans for their parent."""
        held = group[1]
        self.pending -= len(held)
        self.expired += len(held)
        self._staged_only.add(parent)
        for _, span in held.values():
            if might_be_turn(span.name, span.attributes):
                self.orphans += 1
                self._log_orphan(
                    "ppp-otel ingest: turn span %s of trace %s still waits for parent %s (%s); "
                    "it stays in pending_spans", span.span_id, span.trace_id, parent[1], reason,
                )


def adopt(assembler: TrajectoryAssembler, spans: Iterable[OtlpSpan]) -> Assembled:
    """Spans another ingest replica staged (claimed from a store replicas share) whose parent
    is now stored: held by ``assembler`` as if they arrived now, then released with their
    parents, so that the records made from them come with their keys in ``released``."""
    a = assembler
    out, trajectories, turns = Assembled(), [], []
    spans = list(spans)
    for span in spans:
        a._hold(a._arrive(), span, out)
    for span in spans:  # staged already: not again, and released once placed
        a._new_held.pop((span.trace_id, span.span_id), None)
    for parent in dict.fromkeys((s.trace_id, s.parent_span_id) for s in spans):
        placement = a._known.get(parent) or (a._lookup(*parent) if a._lookup else None)
        if placement is not None:  # else they wait here, and in the store for another claim
            a._remember(parent, placement)
            a._release(parent, trajectories, turns, out)
    out.staged.extend(a._new_held.values())
    a._new_held.clear()
    a._emit(trajectories, turns, out)
    return out
