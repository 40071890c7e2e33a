"""Replay trajectories from SQLite as OTLP spans (``ppp-otel export``).

For runs recorded offline, or before Phoenix was running: each trajectory
becomes the spans it would have produced live, with the same conventions,
and with its original trace and span ids and timestamps, so replaying twice
(or replaying what was already sent live) leaves one copy in Phoenix, which
ignores span ids it already has. Rows written by other tools, without ids,
get ids derived from their content, so their replays are idempotent too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from ppp_otel import conventions as c
from ppp_otel.records import format_trace_id
from ppp_otel.storage import Trajectory, Turn, open_store
from ppp_otel.storage.base import TrajectoryBackend

DEFAULT_BATCH_SIZE = 512
SERVICE_NAME = "ppp-otel-export"


def _ns(iso: str | None) -> int | None:
    """Nanoseconds from the ISO text the writer stores (or SQLite's ``YYYY-MM-DD HH:MM:SS``)."""
    if not iso:
        return None
    text = iso.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # the schema's defaults are UTC
    return int(moment.timestamp() * 1_000_000) * 1000


def _derived_id(nbytes: int, *parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:nbytes], "big") or 1


def _hex_id(text: str | None, nbytes: int) -> int | None:
    if not text:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if 0 < value < (1 << (8 * nbytes)) else None


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def trajectory_spans(trajectory: Trajectory, resource: Resource) -> list[ReadableSpan]:
    """The trajectory span and one span per turn, as live recording would have made them."""
    t = trajectory
    trace_id = _hex_id(t.trace_id, 16) or _derived_id(16, "trace", t.id, t.spec_id, t.agent_name, t.created_at)
    span_id = _hex_id(t.span_id, 8) or _derived_id(8, "span", t.id, t.spec_id, t.agent_name, t.created_at)
    parent = _context(trace_id, span_id)

    turn_spans = [_turn_span(turn, parent, resource) for turn in t.turns]
    start = _ns(t.created_at) or min((s.start_time for s in turn_spans), default=None)
    end = _ns(t.ended_at) or max((s.end_time for s in turn_spans), default=start)
    attributes: dict[str, object] = {
        c.SPAN_KIND: c.KIND_AGENT,
        c.SPEC_ID: t.spec_id,
        c.AGENT_NAME: t.agent_name,
        # As trajectory() makes it by default (a session id given live is not stored).
        c.SESSION_ID: c.default_session_id(t.agent_name, format_trace_id(trace_id)),
        c.INPUT_VALUE: t.spec_id,
        c.METADATA: json.dumps(c.trajectory_metadata(t.spec_id, t.agent_name, t.run_id, t.stage)),
        c.TAGS: [t.agent_name],
    }
    # The conversation, as live recording shows it.
    prompts = [turn.prompt for turn in t.turns if turn.prompt is not None]
    responses = [turn.response for turn in t.turns if turn.response is not None]
    if prompts:
        attributes[c.INPUT_VALUE] = prompts[0]
    if responses:
        attributes[c.OUTPUT_VALUE] = responses[-1]
    if t.run_id is not None:
        attributes[c.RUN_ID] = t.run_id
    if t.stage is not None:
        attributes[c.STAGE] = t.stage
    if t.preferences:
        attributes[c.PREFERENCES] = list(t.preferences)
    if t.technical_score is not None:
        attributes[c.TECHNICAL_SCORE] = float(t.technical_score)
    root = ReadableSpan(
        name=c.trajectory_span_name(t.agent_name, t.stage), context=parent, parent=None, resource=resource,
        attributes=attributes, kind=SpanKind.INTERNAL, start_time=start, end_time=end,
    )
    return turn_spans + [root]  # children first, as a live exporter sends them


def _turn_span(turn: Turn, parent: SpanContext, resource: Resource) -> ReadableSpan:
    span_id = _hex_id(turn.span_id, 8) or _derived_id(8, "turn", parent.trace_id, parent.span_id, turn.number)
    start = _ns(turn.timestamp)
    end = start + int((turn.latency_ms or 0) * 1e6) if start is not None else None
    attributes: dict[str, object] = {c.SPAN_KIND: c.KIND_LLM, c.TURN_NUMBER: turn.number}
    if turn.prompt is not None:
        attributes[c.INPUT_VALUE] = turn.prompt
    if turn.response is not None:
        attributes[c.OUTPUT_VALUE] = turn.response
    attributes.update(c.turn_message(turn.prompt, turn.response))
    if turn.token_count is not None:
        attributes[c.TOKEN_COUNT_TOTAL] = turn.token_count
        # Phoenix sums prompt + completion and ignores a bare total; the split is not stored.
        attributes[c.TOKEN_COUNT_COMPLETION] = turn.token_count
    events = [
        Event(c.QUESTION_EVENT, {c.QUESTION_TEXT: q.text, c.QUESTION_EFFORT: q.effort_level}, timestamp=end or start)
        for q in turn.questions
    ] + [
        Event(c.VIOLATION_EVENT, {
            c.VIOLATION_PREFERENCE: v.preference_name, c.VIOLATION_EXPECTED: v.expected or "",
            c.VIOLATION_ACTUAL: v.actual or "", c.VIOLATION_SEVERITY: v.severity,
        }, timestamp=end or start)
        for v in turn.violations
    ]
    return ReadableSpan(
        name=c.TURN_SPAN, context=_context(parent.trace_id, span_id), parent=parent, resource=resource,
        attributes=attributes, events=events, kind=SpanKind.INTERNAL, start_time=start, end_time=end,
    )


@dataclass
class ExportSummary:
    endpoint: str
    project: str
    trajectories: int = 0
    spans: int = 0
    failed_spans: int = 0
    failed_trajectory_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed_spans == 0

    def to_dict(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "project": self.project, "trajectories": self.trajectories,
                "spans": self.spans, "failed_spans": self.failed_spans,
                "failed_trajectory_ids": self.failed_trajectory_ids, "ok": self.ok}


def selected_ids(
    store: TrajectoryBackend,
    *,
    spec_id: str | None = None,
    trajectory_ids: Sequence[int] | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> list[int]:
    if trajectory_ids:
        return list(trajectory_ids)
    return [t.id for t in store.list_trajectories(spec_id=spec_id, stage=stage, run_id=run_id)]


def export_trajectories(
    db_path: str | os.PathLike,
    exporter: SpanExporter,
    *,
    endpoint: str = "",
    project_name: str = "default",
    spec_id: str | None = None,
    trajectory_ids: Sequence[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> ExportSummary:
    """Send the chosen trajectories through ``exporter``; ``progress(done, total)`` after each batch.

    An unknown trajectory id raises ValueError before anything is sent.
    """
    resource = Resource.create({c.PROJECT_NAME: project_name, "service.name": SERVICE_NAME})
    summary = ExportSummary(endpoint, project_name)
    with open_store(db_path, read_only=True) as store:
        ids = selected_ids(store, spec_id=spec_id, trajectory_ids=trajectory_ids, stage=stage,
                           run_id=run_id)
        missing = store.missing_ids(ids)
        if missing:
            raise ValueError(
                f"no trajectory with id {', '.join(map(str, missing))} in {os.fspath(db_path)}"
            )
        batch: list[ReadableSpan] = []
        in_batch: list[int] = []

        def send() -> None:
            if batch and exporter.export(batch) is not SpanExportResult.SUCCESS:
                summary.failed_spans += len(batch)
                summary.failed_trajectory_ids.extend(in_batch)
            summary.spans += len(batch)
            batch.clear()
            in_batch.clear()

        for number, trajectory_id in enumerate(ids, 1):
            trajectory = store.get_trajectory(trajectory_id)
            if trajectory is None:  # deleted since the check (a cleanup meanwhile): skip it
                continue
            # A trajectory is never split across batches, so a receiver gets it whole.
            spans = trajectory_spans(trajectory, resource)
            if batch and len(batch) + len(spans) > batch_size:
                send()
            batch.extend(spans)
            in_batch.append(trajectory_id)
            summary.trajectories += 1
            if len(batch) >= batch_size:
                send()
            if progress is not None:
                progress(number, len(ids))
        send()
    return summary


def otlp_exporter(url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> SpanExporter:
    """The SDK's OTLP/HTTP exporter for ``url`` (a base URL gets ``/v1/traces``)."""
    from ppp_otel.capture.register import _otlp_exporter

    url = url.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return _otlp_exporter("http/protobuf", url, dict(headers or {}), timeout_s=timeout_s)


__all__ = ["ExportSummary", "export_trajectories", "otlp_exporter", "trajectory_spans"]

