"""The ``ppp.consensus`` span: a consensus run put back onto the trace.

Attributes (names in :mod:`ppp_otel.conventions`)::

    ppp.consensus.spec_id, ppp.consensus.best_agent, ppp.consensus.confidence,
    ppp.consensus.weights.technical, ppp.consensus.weights.interaction,
    ppp.consensus.id (the stored run, when stored),
    ppp.consensus.agent.<name>.{technical,r_proact,r_pers,final,rank,technical_only}

plus ``openinference.span.kind=EVALUATOR``, what was judged (spec, stage, run)
as ``input.value`` and the result as JSON in ``output.value``, so Phoenix's
trace list tells one consensus from another and its output pane shows the result. The span is a root of
its own trace and links to every trajectory span it judged.
"""

from __future__ import annotations

import json
import sqlite3

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, TraceFlags, TracerProvider

from ppp_otel import conventions as c
from ppp_otel.capture import api as instrument
from ppp_otel.scoring.consensus import ConsensusResult, record_consensus_span
from ppp_otel.scoring.rewards import Database
from ppp_otel.records import format_span_id, format_trace_id

__all__ = ["consensus_attributes", "emit_consensus_span"]


def judged_what(result: ConsensusResult) -> str:
    """What Phoenix's trace list shows as the span's input: which spec, stage and run were
    judged, so that one consensus is told from another without opening it."""
    parts = [f"spec {result.spec_id}"]
    if result.stage is not None:
        parts.append(f"stage {result.stage}")
    if result.run_id is not None:
        parts.append(f"run {result.run_id}")
    return ", ".join(parts)


def consensus_attributes(result: ConsensusResult) -> dict[str, object]:
    attributes: dict[str, object] = {
        c.SPAN_KIND: c.KIND_EVALUATOR,
        c.CONSENSUS_SPEC_ID: result.spec_id,
        c.CONSENSUS_BEST_AGENT: result.best_agent,
        c.CONSENSUS_CONFIDENCE: result.confidence,
        c.CONSENSUS_W_TECHNICAL: result.weights.technical,
        c.CONSENSUS_W_INTERACTION: result.weights.interaction,
        c.CONSENSUS_REWARDS: result.rewards,
        c.INPUT_VALUE: judged_what(result),
        c.OUTPUT_VALUE: json.dumps(result.to_dict()),
        c.OUTPUT_MIME_TYPE: "application/json",
    }
    if result.consensus_id is not None:
        attributes[c.CONSENSUS_RUN_ID] = result.consensus_id
    if result.stage is not None:
        attributes[c.CONSENSUS_STAGE] = result.stage
    if result.run_id is not None:
        attributes[c.CONSENSUS_JUDGED_RUN] = result.run_id
    for agent in result.agents:
        prefix = f"{c.CONSENSUS_AGENT_PREFIX}{agent.agent_name}."
        for name in ("technical", "r_proact", "r_pers", "final"):
            value = getattr(agent, name)
            if value is not None:  # OTel attributes cannot be None
                attributes[prefix + name] = value
        attributes[prefix + "rank"] = agent.rank
        attributes[prefix + "technical_only"] = agent.technical_only
    return attributes


def _links(result: ConsensusResult) -> list[Link]:
    links = []
    for t in result.trajectories:
        if not t.trace_id or not t.span_id:
            continue  # written by another tool, not traced: nothing to link to
        try:
            ctx = SpanContext(int(t.trace_id, 16), int(t.span_id, 16), is_remote=True,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        except ValueError:
            continue
        links.append(Link(ctx, {c.AGENT_NAME: t.agent_name, c.LINK_TRAJECTORY_ID: t.trajectory_id}))
    return links


def emit_consensus_span(
    result: ConsensusResult,
    *,
    tracer_provider: TracerProvider | None = None,
    store: "Database | None" = None,
    conn: sqlite3.Connection | None = None,
) -> tuple[str, str]:
    """Emit the span; return its (trace id, span id) in hex and set them on ``result``.

    The provider is, first found: the argument, the one :func:`ppp_otel.register`
    set up, the global one. With a ``store`` (a store, a path, or ``conn``, a
    connection) and a stored run, the run's row remembers the span.
    """
    from ppp_otel import __version__

    provider = tracer_provider or instrument._provider or trace.get_tracer_provider()
    tracer = trace.get_tracer("ppp_otel.scoring.consensus", __version__, tracer_provider=provider)
    # An empty context: the consensus is its own trace, not a child of whatever is current.
    span = tracer.start_span(c.CONSENSUS_SPAN, context=otel_context.Context(),
                             attributes=consensus_attributes(result), links=_links(result))
    span.end()
    ctx = span.get_span_context()
    result.trace_id, result.span_id = format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)
    db = store if store is not None else conn
    if db is not None and result.consensus_id is not None:
        record_consensus_span(db, result.consensus_id, result.trace_id, result.span_id)
    return result.trace_id, result.span_id
