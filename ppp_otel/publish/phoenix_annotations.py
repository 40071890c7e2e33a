"""Phoenix annotations: a consensus run written onto the trajectories it judged.

Each judged trajectory gets three annotations on its span through Phoenix's
REST API (``POST {base}/v1/span_annotations?sync=true``, as served by
arize-phoenix), and the same three on its session
(``POST {base}/v1/session_annotations?sync=true``; the session id is the one
``trajectory()`` and ``ppp-otel export`` give by default: agent and trace id), so
Phoenix's session list and session view show them:

- ``ppp.r_proact``: score = the trajectory's R_Proact
- ``ppp.r_pers``: score = the trajectory's R_Pers
- ``ppp.final``: score = its agent's final consensus score, label ``best`` or
  ``not_best``, and an explanation of the sum

all with ``annotator_kind = "CODE"`` and the identifier ``ppp-otel:<spec>``.
Phoenix upserts on (annotation name, span, identifier), so scoring the spec
again updates the annotations instead of adding more. A trajectory given a
session id of its own (``trajectory(session_id=...)``; the database does not
keep it) is annotated on its span only, and :class:`AnnotationSummary` says so
(``span_only``).

Phoenix only annotates spans it already has, and spans reach it through a
batching exporter: a span it does not have yet is retried until ``wait_s``
runs out, then reported as "span not in Phoenix" (:data:`NOT_IN_PHOENIX`). Nothing here raises:
every failure is a line in :class:`AnnotationSummary`, naming the trajectory,
the HTTP status and the start of Phoenix's answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ppp_otel import conventions as c
from ppp_otel.config.settings import PHOENIX_API_KEY_ENV, env_value
from ppp_otel.publish.phoenix_link import PhoenixError, base_url, post
from ppp_otel.scoring.consensus import ConsensusResult
from ppp_otel.scoring.rewards import TrajectoryScore

__all__ = ["AnnotationSummary", "annotate_consensus", "annotation_payload", "phoenix_base_url"]

ANNOTATOR_KIND = "CODE"
BEST, NOT_BEST = "best", "not_best"
_RETRY_INTERVAL_S = 0.25


@dataclass
class AnnotationSummary:
    annotated: list[int] = field(default_factory=list)  # trajectory ids
    failed: list[tuple[int, str]] = field(default_factory=list)  # (trajectory id, why)
    # Annotated on their span, but their session is not the default one: (trajectory id, why).
    span_only: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"annotated": list(self.annotated),
                "failed": [{"trajectory_id": t, "error": why} for t, why in self.failed],
                "span_only": [{"trajectory_id": t, "reason": why} for t, why in self.span_only]}


phoenix_base_url = base_url


def identifier(spec_id: str) -> str:
    return f"ppp-otel:{spec_id}"


def _over(count: int) -> str:
    return "of its one trajectory" if count == 1 else f"means over {count} trajectories"


def annotation_payload(result: ConsensusResult, trajectory: TrajectoryScore) -> dict[str, Any]:
    """The request body annotating one trajectory span (POST /v1/span_annotations)."""
    agent = result.agent(trajectory.agent_name)
    label = BEST if agent.agent_name == result.best_agent else NOT_BEST
    w = result.weights
    explanation = (
        f"{agent.agent_name}: final {agent.final:.4g} = {w.technical:g} * technical "
        f"{'-' if agent.technical is None else format(agent.technical, '.4g')} + {w.interaction:g} "
        f"* (r_proact {agent.r_proact:.4g} + r_pers {agent.r_pers:.4g}), "
        f"{_over(len(agent.trajectory_ids))}; rank {agent.rank} of {len(result.agents)}, "
        f"best agent {result.best_agent}; {result.rewards} rewards"
    )
    metadata = {"spec_id": result.spec_id, "agent_name": agent.agent_name, "rewards": result.rewards,
                "trajectory_id": trajectory.trajectory_id, "consensus_id": result.consensus_id}
    common = {"span_id": trajectory.span_id, "annotator_kind": ANNOTATOR_KIND,
              "identifier": identifier(result.spec_id), "metadata": metadata}
    return {"data": [
        {**common, "name": c.ANNOTATION_R_PROACT, "result": {"score": trajectory.r_proact}},
        {**common, "name": c.ANNOTATION_R_PERS, "result": {"score": trajectory.r_pers}},
        {**common, "name": c.ANNOTATION_FINAL,
         "result": {"score": agent.final, "label": label, "explanation": explanation}},
    ]}


def session_payload(result: ConsensusResult, trajectory: TrajectoryScore) -> dict[str, Any]:
    """The same three annotations on the trajectory's session (POST /v1/session_annotations)."""
    data = []
    for item in annotation_payload(result, trajectory)["data"]:
        item = {k: v for k, v in item.items() if k != "span_id"}
        data.append({"session_id": c.default_session_id(trajectory.agent_name, trajectory.trace_id), **item})
    return {"data": data}


#: What a failure for a span or session Phoenix never received starts with.
NOT_IN_PHOENIX = "not in Phoenix"
#: What a failure starts with when Phoenix did not answer at all (refused, reset, timed out).
NOT_REACHED = "cannot reach"


class _Failure(Exception):
    def __init__(self, message: str, *, retry: bool = False):
        super().__init__(message)
        self.retry = retry


def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float) -> None:
    try:
        post(url, json.dumps(body).encode(), headers, timeout_s)
    except PhoenixError as exc:
        # Phoenix answers 404 "Spans with IDs ... do not exist." for a span it has not
        # ingested yet ("Sessions with IDs ..." for a session).
        if exc.status == 404 and "do not exist" in exc.body:
            what = "session" if "session" in url else "span"
            raise _Failure(f"{what} {NOT_IN_PHOENIX} (HTTP 404)", retry=True) from None
        if exc.status is not None:
            raise _Failure(f"{exc} (from {url})") from None
        raise _Failure(f"{NOT_REACHED} {url}: {exc}") from None


def annotate_consensus(
    result: ConsensusResult,
    phoenix_url: str,
    *,
    api_key: str | None = None,
    wait_s: float = 10.0,
    timeout_s: float = 10.0,
) -> AnnotationSummary:
    """Annotate every judged trajectory span; never raises for a Phoenix problem.

    ``api_key``: sent as ``Authorization: Bearer``; default ``$PHOENIX_API_KEY``.
    ``wait_s``: how long to keep retrying spans Phoenix does not have yet.
    """
    base = phoenix_base_url(phoenix_url)
    urls = (base + "/v1/span_annotations?sync=true", base + "/v1/session_annotations?sync=true")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    api_key = api_key if api_key is not None else env_value(PHOENIX_API_KEY_ENV)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    summary = AnnotationSummary()
    deadline = time.monotonic() + wait_s
    unreachable: str | None = None
    for t in result.trajectories:
        where = f"trajectory {t.trajectory_id} ({t.agent_name})"
        if not t.span_id:
            summary.failed.append((t.trajectory_id, f"{where}: no span id recorded, nothing to annotate"))
            continue
        if unreachable is not None:
            # One refused connection is enough to know; do not wait out a timeout per span.
            summary.failed.append((t.trajectory_id, f"{where}, span {t.span_id}: {unreachable}"))
            continue
        failure = _post_until(urls[0], annotation_payload(result, t), headers, timeout_s, deadline)
        if failure is None and t.trace_id:
            # Phoenix has the span, so it has its session: one try, nothing to wait for.
            failure = _post_until(urls[1], session_payload(result, t), headers, timeout_s, time.monotonic())
            if failure is not None and NOT_IN_PHOENIX in failure:
                session = c.default_session_id(t.agent_name, t.trace_id)
                summary.span_only.append((t.trajectory_id, (
                    f"{where}: span annotated; its session is not {session} (a session id of its own, "
                    "given as trajectory(session_id=...), or none), which the database does not keep: "
                    "the session is not annotated")))
                failure = None
        if failure is None:
            summary.annotated.append(t.trajectory_id)
            continue
        if failure.startswith(NOT_REACHED):
            unreachable = failure
        summary.failed.append((t.trajectory_id, f"{where}, span {t.span_id}: {failure}"))
    return summary


def _post_until(url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float,
                deadline: float) -> str | None:
    """None once Phoenix took it, else why not (a span it lacks is retried until ``deadline``)."""
    while True:
        try:
            _post(url, body, headers, timeout_s)
            return None
        except _Failure as failure:
            if failure.retry and time.monotonic() < deadline:
                time.sleep(_RETRY_INTERVAL_S)
                continue
            return str(failure)
