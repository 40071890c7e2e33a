"""TrajectorySpanProcessor: a recorder whose queue takes OpenTelemetry spans.

The app thread does two dictionary operations in ``on_start`` (to know which
trajectory a span belongs to, since children end before their parent) and, in
``on_end``, a few attribute lookups (could it be a model call?) and one bounded
append. Whether a span is a turn is decided on the writer thread, from the
finished span (several instrumentations set their kind or content only at its
end), by :mod:`ppp_otel.dialects`, as ingest and imports decide it. The
recorder's single writer thread turns the queued spans into records
(``_convert``, here), judges their questions and violations, and writes them in
batches (:mod:`ppp_otel.recorder`). Nothing here raises into the caller:
failures become counts, a log line and ``last_error``.
"""

from __future__ import annotations

import logging
import os
from operator import attrgetter, itemgetter
from typing import Any, Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext

from ppp_otel import conventions as c
from ppp_otel.capture import api as instrument
from ppp_otel.capture import numbering
from ppp_otel.config.settings import default_db_path
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS, might_be_turn
from ppp_otel.dialects.content import ContentlessCalls
from ppp_otel.dialects.resolve import Step, TurnResolver
from ppp_otel.recorder import Recorder
from ppp_otel.storage.base import directory_named
from ppp_otel.records import (
    TrajectoryRecord,
    TurnRecord,
    candidate_of,
    carry,
    fold_costs,
    format_span_id,
    format_trace_id,
    trajectory_record,
    turn_record,
)

logger = logging.getLogger(__name__)

# Spans started inside trajectories and never ended (an abandoned stream) must
# not grow the membership map without bound: past this, the oldest is forgotten.
MAX_OPEN_SPANS = 1_000_000
#: Trajectories whose formatted ids are kept for their next turns.
_MAX_KEYS = 10_000


# What the processor knows of an open span inside a trajectory, as a tuple
# (trajectory key, role, turn number): tuples because on_start runs on the app thread.
# _TURN_ROLE: a turn() span; _CALL: a model call by its start attributes (what
# starts inside it is part of it); _OTHER: anything else, decided at its end.
_TRAJECTORY, _TURN_ROLE, _IN_TURN, _OTHER, _CALL = 0, 1, 2, 3, 4
# For a turn() span, the third item is (its number, whether the number came from the sequence).
_Member = tuple[tuple[int, int], int, "tuple[object, bool] | None"]

# Queue items: (kind, payload). Converting spans to records happens on the writer thread.
_START, _END, _TURN, _RECORD = "start", "end", "turn", "record"
# Read on the app thread for every span started: module constants, not attribute lookups.
_TURN_SPAN, _TURN_NUMBER, _SPAN_KIND, _KIND_LLM = c.TURN_SPAN, c.TURN_NUMBER, c.SPAN_KIND, c.KIND_LLM


def _context_readers() -> tuple[Callable[[SpanContext], int], Callable[[SpanContext], tuple[int, int]]]:
    """How a SpanContext's span id, and its (trace id, span id), are read. The context is
    a tuple (trace_id, span_id, ...) whose ``trace_id`` and ``span_id`` properties are a
    Python call each time; its items are not. The properties, should a version of the API
    lay the tuple out otherwise."""
    try:
        probe = SpanContext(0xA, 0xB, False)
        if probe[0] == 0xA and probe[1] == 0xB:
            return itemgetter(1), itemgetter(0, 1)
    except (TypeError, IndexError, KeyError):
        pass
    return attrgetter("span_id"), attrgetter("trace_id", "span_id")


_span_id, _ids = _context_readers()


def _is_start(item: tuple) -> bool:
    # A forked child keeps the trajectory starts (an upsert, harmless twice):
    # turns of a trajectory begun in the parent find it.
    return item[0] == _START


class TrajectorySpanProcessor(Recorder, SpanProcessor):
    """Records trajectory and turn spans into the trajectory database.

    Attach it to any SDK ``TracerProvider`` beside other processors::

        provider.add_span_processor(TrajectorySpanProcessor("runs.db"))

    A :class:`~ppp_otel.recorder.Recorder` whose queue takes spans: ``options``
    are the recorder's (``buffer_size``, ``flush_interval_ms``, ``max_queue_size``,
    ``on_full``, ``block_timeout_ms``, ``wal``, ``busy_timeout_ms``, ``classifier``,
    ``shutdown_timeout_ms``, ``connection_hook``, ``on_judged``; defaults
    ``[ppp.trajectory]``). ``db_path`` defaults to ``$PPP_OTEL_DB``, else
    ``ppp_trajectories.db``. ``question_tools`` names the tools through which an
    agent asks its user (``ask_user``, ...): their calls are questions of the turn.
    """

    def __init__(self, db_path: str | os.PathLike | None = None, *,
                 question_tools: Sequence[str] = DEFAULT_QUESTION_TOOLS, **options: Any):
        self._open: dict[int, _Member] = {}
        self.forgotten_spans = 0
        self.question_tools = tuple(question_tools)
        # A model call with neither prompt nor reply: its instrumentation records no message
        # content (several do not unless told to). Said once per instrumentation, and counted.
        self.contentless = ContentlessCalls(logger)
        # One model call traced twice is one turn; a step that only calls tools
        # goes with the turn it leads to (writer thread only).
        self._resolver = TurnResolver()
        self._keys: dict[tuple[int, int], tuple[str, str]] = {}  # trajectory ids -> their hex (writer thread)
        db_path = db_path or default_db_path(read_file=False)
        # A directory never becomes a database, so retrying would only lose the turns
        # later; a missing directory may yet be made, and is retried.
        named = directory_named(db_path)
        if named:
            raise IsADirectoryError(f"cannot record to {os.fspath(db_path)} ({named})")
        super().__init__(
            db_path,
            convert=self._convert, carry_after_fork=_is_start, **options,
        )
        # Bound once: on_end's append is the engine's put, with no call in between.
        self._put = self.engine.put

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start (since fork in a child). ``written_trajectories``
        counts trajectories (a trajectory's start and end are one; its end is one of the
        ``trajectory_updates``); ``enqueued`` plus
        ``dropped`` is everything offered; of the enqueued, those not written are
        ``rejected`` or, when the file stayed unwritable at shutdown, ``lost_at_shutdown``;
        ``turns_without_content`` counts model calls stored with no prompt or response (their
        instrumentation records no message content), by instrumentation in
        ``turns_without_content_by_instrumentation``."""
        return self.stats_dict(
            forgotten_spans=self.forgotten_spans,
            duplicate_calls=self._resolver.duplicates, tool_steps_folded=self._resolver.folded,
            **self.contentless.stats(),
        )

    @property
    def internal_errors(self) -> int:
        return self.counters.internal_errors

    @internal_errors.setter
    def internal_errors(self, value: int) -> None:
        self.counters.internal_errors = value

    # -------------------------------------------------------------- app thread

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            try:  # the SDK span's own fields, which its properties return, without a call each
                name, parent, ctx, attrs = span._name, span._parent, span._context, span._attributes._dict
            except AttributeError:
                name, parent, ctx, attrs = span.name, span.parent, span.get_span_context(), None
            if not isinstance(attrs, dict):
                attrs = _plain_attributes(span)
            # Most spans started are turns, and a turn is never a trajectory: not asked.
            if name != _TURN_SPAN and c.is_trajectory_span(name, attrs):
                self._open[ctx.span_id] = ((ctx.trace_id, ctx.span_id), _TRAJECTORY, None)
                numbering.open_trajectory(ctx.span_id)
                # A trajectory inside another is a sub-agent's: it records its parent.
                owner = self._open.get(parent.span_id) if parent is not None else None
                within = owner[0] if owner is not None else None
                self._put((_START, (ctx.trace_id, ctx.span_id, dict(attrs), span.start_time, within)), force=True)
                return
            owner = self._open.get(_span_id(parent)) if parent is not None else None
            if owner is None:
                return
            trajectory, role, _ = owner
            span_id = _span_id(ctx)
            # A model call inside a turn is part of that turn, not another one.
            if role == _TRAJECTORY or role == _OTHER:
                if name == _TURN_SPAN:
                    # turn() numbers its spans itself; a ppp.turn span made by hand is
                    # numbered here, from the same sequence, in start order. Model calls
                    # are numbered once they are known to be turns (on the writer thread).
                    number = attrs.get(_TURN_NUMBER)
                    if number is None:
                        number = numbering.next_turn_number(trajectory[1])
                        sequenced = number is not None  # just handed out: no need to ask
                    else:
                        sequenced = numbering.was_handed_out(trajectory[1], number)
                    self._open[span_id] = (trajectory, _TURN_ROLE, (number, sequenced))
                    return
                self._open[span_id] = (trajectory, _CALL if attrs.get(_SPAN_KIND) == _KIND_LLM else _OTHER, None)
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
            try:  # as in on_start
                ctx = span._context
            except AttributeError:
                ctx = span.context
            member = self._open.pop(_span_id(ctx), None)
            if member is None:
                return
            trajectory, role, number = member
            if role == _TURN_ROLE:
                self._put((_TURN, (span, trajectory, number)))
            elif (role == _CALL or role == _OTHER) and might_be_turn(span.name, _plain_attributes(span)):
                # turn() shows its own conversation on the trajectory span; other model calls are told.
                instrument.note_model_turn(trajectory[1], span)
                self._put((_TURN, (span, trajectory, None)))
            elif role == _TRAJECTORY:
                numbering.close_trajectory(trajectory[1])
                # Never dropped: without it every turn of the trajectory would be an orphan.
                self._put((_END, span), force=True, due=True)
        except Exception:
            self.internal_errors += 1
            logger.exception("ppp-otel: on_end failed")

    # ------------------------------------------------------------ writer thread

    def _convert(self, item: tuple) -> TrajectoryRecord | TurnRecord | list | None:
        """The records a queued item makes: none (not a turn after all), one, or, at a
        trajectory's end, the turn its last tool-call step asked plus the trajectory."""
        kind, payload = item
        if kind == _TURN:  # asked first: nearly every item is one
            return self._turn(*payload)
        if kind == _RECORD:
            return payload
        if kind == _START:
            trace_id, span_id, attrs, start_ns, within = payload
            record = trajectory_record(format_trace_id(trace_id), format_span_id(span_id), attrs, start_ns=start_ns)
            if within is not None:
                record.parent = (format_trace_id(within[0]), format_span_id(within[1]))
            return record
        if kind == _END:
            span = payload
            ctx = span.context
            self._keys.pop((ctx.trace_id, ctx.span_id), None)
            record = trajectory_record(
                format_trace_id(ctx.trace_id), format_span_id(ctx.span_id), span.attributes or {},
                start_ns=span.start_time, end_ns=span.end_time,
            )
            last = self._closed(record, ctx.span_id)
            return record if last is None else [last, record]
        return self._turn(*payload)

    def _turn(self, span: ReadableSpan, ids: tuple[int, int], numbered) -> TurnRecord | None:
        # An SDK span's own fields, which its properties return, without a call each. Its
        # attributes and events are read in place: an ended span's no longer change, a miss
        # in the public mapping raises inside the SDK, and ``span.events`` copies under a lock.
        try:
            name, ctx, start_ns, end_ns = span._name, span._context, span._start_time, span._end_time
            attrs, raw_events = span._attributes._dict, span._events._dq
        except AttributeError:
            name, ctx, start_ns, end_ns = span.name, span.context, span.start_time, span.end_time
            attrs = raw_events = None
        if not isinstance(attrs, dict):
            attrs = _plain_attributes(span)
            if not isinstance(attrs, dict):
                attrs = dict(attrs or {})
        if raw_events is None:
            raw_events = getattr(getattr(span, "_events", None), "_dq", None)
            if raw_events is None:
                raw_events = span.events
        events = [(e.name, e.attributes or {}) for e in raw_events] if raw_events else []
        candidate = candidate_of(name, attrs, events, self.question_tools)
        if candidate is None:
            return None  # its kind, set at its end, says it is no model call
        if numbered is None:  # a turn() span leaves out what it chooses to
            scope = getattr(getattr(span, "instrumentation_scope", None), "name", None)
            self.contentless.check(name, scope, candidate)
        trajectory = self._keys.get(ids)
        if trajectory is None:  # every turn of a trajectory shares its key: formatted once
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            trajectory = self._keys[ids] = (format_trace_id(ids[0]), format_span_id(ids[1]))
        trace_id, span_id = _ids(ctx)
        trace_hex = trajectory[0] if trace_id == ids[0] else format_trace_id(trace_id)
        record = turn_record(
            trace_hex, format_span_id(span_id), trajectory, attrs, events,
            start_ns=start_ns, end_ns=end_ns, turn_number=numbered[0] if numbered else None, candidate=candidate,
            renumber_on_conflict=numbered[1] if numbered else False,  # what _numbered gives a numbered one
        )
        if candidate.dialect == "ppp":  # what the resolver's add does with it, without a Step to make
            tool_calls, questions = self._resolver.declared(trajectory, candidate)
            if tool_calls or questions:  # most turns carry nothing: carry would return them as they are
                carry(record, tool_calls, questions)
            return record if numbered is not None else self._numbered(record, ids[1], None)
        resolved = self._resolver.add(Step(trajectory, start_ns, end_ns, candidate, record))
        if resolved is None:
            return None  # a second trace of one call, or a step that only called tools
        return self._numbered(fold_costs(carry(record, resolved.tool_calls, resolved.questions), resolved),
                              ids[1], numbered)

    @staticmethod
    def _numbered(record: TurnRecord, traj_span_id: int, numbered) -> TurnRecord:
        if numbered is not None:
            record.renumber_on_conflict = numbered[1]
        elif record.turn_number is None:
            # Numbered when known to be a turn, from the sequence turn() draws from;
            # once the trajectory has ended, the writer numbers it after the last.
            record.turn_number = numbering.next_turn_number(traj_span_id)
            record.renumber_on_conflict = True
        return record

    def _closed(self, record: TrajectoryRecord, traj_span_id: int) -> TurnRecord | None:
        """A trajectory's end: the tool-call-only step it ended on, if that asked the user something."""
        resolved = self._resolver.close(record.key)
        if resolved is None:
            return None
        return self._numbered(fold_costs(carry(resolved.step.record, resolved.tool_calls, resolved.questions), resolved),
                              traj_span_id, None)


def _plain_attributes(span: ReadableSpan):
    """The span's attributes as the dict under the SDK's mapping when there is one:
    a miss through ``span.attributes`` raises and catches a KeyError inside the SDK,
    several times slower, and most spans miss every key asked for here."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return inner if isinstance(inner, dict) else (span.attributes or {})
