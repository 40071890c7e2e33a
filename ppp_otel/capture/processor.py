"""TrajectorySpanProcessor: a recorder whose queue takes OpenTelemetry spans.

The app thread does two dictionary operations in ``on_start`` (to know which
trajectory a span belongs to, since children end before their parent) and one
bounded append in ``on_end``. The recorder's single writer thread turns the
queued spans into records (``_convert``, here), judges their questions and
violations, and writes them in batches (:mod:`ppp_otel.recorder`). Nothing
here raises into the caller: failures become counts, a log line and
``last_error``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ppp_otel import conventions as c
from ppp_otel.capture import numbering
from ppp_otel.config.settings import default_db_path
from ppp_otel.recorder import Recorder
from ppp_otel.records import (
    TrajectoryRecord,
    TurnRecord,
    format_span_id,
    format_trace_id,
    trajectory_record,
    turn_record,
)

logger = logging.getLogger(__name__)

# Spans started inside trajectories and never ended (an abandoned stream) must
# not grow the membership map without bound: past this, the oldest is forgotten.
MAX_OPEN_SPANS = 1_000_000


# What the processor knows of an open span inside a trajectory, as a tuple
# (trajectory key, role, turn number): tuples because on_start runs on the app thread.
_TRAJECTORY, _TURN_ROLE, _IN_TURN, _OTHER = 0, 1, 2, 3
# For a turn, the third item is (its number, whether the number came from the sequence).
_Member = tuple[tuple[int, int], int, "tuple[object, bool] | None"]

# Queue items: (kind, payload). Converting spans to records happens on the writer thread.
_START, _END, _TURN, _RECORD = "start", "end", "turn", "record"


def _is_start(item: tuple) -> bool:
    # A forked child keeps the trajectory starts (an upsert, harmless twice):
    # turns of a trajectory begun in the parent find it.
    return item[0] == _START


class TrajectorySpanProcessor(Recorder, SpanProcessor):
    """Records trajectory and turn spans into the SQLite trajectory database.

    Attach it to any SDK ``TracerProvider`` beside other processors::

        provider.add_span_processor(TrajectorySpanProcessor("runs.db"))

    A :class:`~ppp_otel.recorder.Recorder` whose queue takes spans: ``options``
    are the recorder's (``buffer_size``, ``flush_interval_ms``, ``max_queue_size``,
    ``on_full``, ``block_timeout_ms``, ``wal``, ``busy_timeout_ms``, ``classifier``,
    ``shutdown_timeout_ms``, ``connection_hook``; defaults ``[ppp.trajectory]``).
    ``db_path`` defaults to ``$PPP_OTEL_DB``, else ``ppp_trajectories.db``.
    """

    def __init__(self, db_path: str | os.PathLike | None = None, **options: Any):
        self._open: dict[int, _Member] = {}
        self.forgotten_spans = 0
        super().__init__(
            db_path or default_db_path(read_file=False),
            convert=self._convert, carry_after_fork=_is_start, **options,
        )
        # Bound once: on_end's append is the engine's put, with no call in between.
        self._put = self.engine.put

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start (since fork in a child). ``written_trajectories``
        counts trajectory records (a start and an end each); ``enqueued`` plus
        ``dropped`` is everything offered; of the enqueued, those not written are
        ``rejected`` or, when the file stayed unwritable at shutdown, ``lost_at_shutdown``."""
        return self.stats_dict(forgotten_spans=self.forgotten_spans)

    @property
    def internal_errors(self) -> int:
        return self.counters.internal_errors

    @internal_errors.setter
    def internal_errors(self, value: int) -> None:
        self.counters.internal_errors = value

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

    # ------------------------------------------------------------ writer thread

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
