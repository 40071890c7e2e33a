"""Writing trajectories as ATIF-v1.7 documents, with PPP's judgments as rewards.

A document per top-level trajectory; its subagent trajectories are embedded in
``subagent_trajectories`` (the v1.7 single-file form), so a run stays one file.
What ppp-otel knows and ATIF has no field for goes under ``extra.ppp``
(docs/atif.md lists every key): at the top the rewards R_Proact and R_Pers and
the trajectory's columns, on each agent step the turn's questions with their
effort and its violations. Steps kept from an imported document are written
back as they came, so export then import gives back the same rows; a turn
recorded live is one agent step carrying its tool calls as ATIF ``tool_calls``.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ppp_otel.scoring.paper import asks_of, check_profile, paper_personalization, paper_proactivity
from ppp_otel.storage import Trajectory, Turn, open_store
from ppp_otel.storage.base import TrajectoryBackend
from ppp_otel.interchange.atif.convert import ATIF, PPP
from ppp_otel.interchange.atif.document import EXPORT_VERSION, ROOT_FIELDS, STEP_FIELDS

#: Bumped when the meaning of a key under ``extra.ppp`` changes.
PPP_EXTRA_VERSION = 1


class NoSuchTrajectory(ValueError):
    """The trajectory asked for is not stored (never was, or was deleted meanwhile)."""


def export_atif(
    db_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    spec_id: str | None = None,
    trajectory_id: int | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    rewards: str = "spec",
) -> list[Path]:
    """Write ``<spec>__<agent>__<span id>.trajectory.json`` files; the paths written.

    ``rewards`` is the reward profile of the ``r_proact``/``r_pers`` written
    under ``extra.ppp`` (``spec`` or ``paper``).

    ``trajectory_id`` exports that one trajectory (with its subagents);
    otherwise every top-level trajectory, or those of ``spec_id``, ``stage``
    and ``run_id`` (each when given).
    """
    check_profile(rewards)
    out = Path(out_dir)
    with open_store(db_path) as store:
        parents = store.trajectory_parents()
        if trajectory_id is not None:
            if trajectory_id not in parents:
                raise ValueError(f"no trajectory with id {trajectory_id} in {db_path}")
            chosen = [trajectory_id]
        else:
            selected = {t.id for t in store.list_trajectories(spec_id=spec_id, stage=stage, run_id=run_id)}
            # A subagent travels inside its parent's document, unless its parent was left out.
            chosen = [i for i in sorted(selected) if parents.get(i) not in selected]
        if chosen:  # nothing chosen, nothing made: no empty directory is left behind
            try:
                out.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", os.fspath(out)) from None
        written = []
        for tid in chosen:
            try:
                document = trajectory_document(store, tid, rewards=rewards)
            except NoSuchTrajectory:
                continue  # deleted since it was listed: a cleanup ran meanwhile
            ppp = document["extra"][PPP]
            # Named by the span id, not the row id, so a file keeps its name across databases.
            # Every part made safe: a span id written by another tool ("../../x") must not leave --out.
            name = f"{_safe(ppp['spec_id'])}__{_safe(ppp['agent_name'])}__{_safe(str(ppp['span_id'] or tid))}"
            path = out / f"{name}.trajectory.json"
            _write_atomically(path, document)
            written.append(path)
    return written


def trajectory_document(
    store: TrajectoryBackend, trajectory_id: int, *, rewards: str = "spec", _seen: frozenset = frozenset()
) -> dict[str, Any]:
    """The ATIF-v1.7 document of one stored trajectory, its subagents embedded."""
    trajectory = store.get_trajectory(trajectory_id)
    if trajectory is None:
        raise NoSuchTrajectory(f"no trajectory with id {trajectory_id}")
    extras = store.turn_extras(trajectory_id)
    atif_of = {number: (extra.get(ATIF) or {}) for number, extra in extras.items()}
    first = atif_of.get(trajectory.turns[0].number, {}) if trajectory.turns else {}
    meta = dict(first.get("document") or {})

    ppp = _trajectory_ppp(trajectory, rewards)
    # Only a version other than the one written says something: a document this
    # exporter wrote, imported and exported again, comes out byte for byte the same.
    if meta.get("schema_version") not in (None, EXPORT_VERSION):
        ppp["source_schema_version"] = meta["schema_version"]
    doc: dict[str, Any] = {"schema_version": EXPORT_VERSION}
    session_id = meta.get("session_id", trajectory.run_id)
    if session_id is not None:
        doc["session_id"] = session_id
    if meta.get("trajectory_id") is not None:
        doc["trajectory_id"] = meta["trajectory_id"]
    agent = meta.get("agent") if isinstance(meta.get("agent"), dict) else {}
    doc["agent"] = {"name": trajectory.agent_name, "version": "unknown", **agent}
    # ATIF needs a step; a trajectory with no turns gets one that import drops again.
    doc["steps"] = _steps(trajectory, atif_of) or [
        {"step_id": 1, "source": "system", "message": "", "extra": {PPP: {"placeholder": True}}}
    ]
    for key in ("notes", "final_metrics", "continued_trajectory_ref"):
        if key in meta:
            doc[key] = meta[key]
    if "final_metrics" not in doc:
        doc["final_metrics"] = _final_metrics(doc["steps"])
    unknown = {k: v for k, v in meta.items() if k not in ROOT_FIELDS}
    if unknown:
        ppp["unknown_fields"] = unknown
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    doc["extra"] = {**extra, PPP: ppp}

    children = [
        child for child in store.children_of(trajectory_id)
        if child not in _seen and child != trajectory_id
    ]
    if children:
        embedded, ids = [], set()
        for child in children:
            sub = trajectory_document(store, child, rewards=rewards, _seen=_seen | {trajectory_id})
            # v1.7: an embedded subagent needs a trajectory_id unique among its siblings.
            sub_id = sub.get("trajectory_id") or f"ppp-{sub['extra'][PPP]['span_id'] or child}"
            while sub_id in ids:
                sub_id = f"{sub_id}-{child}"
            ids.add(sub_id)
            embedded.append(_with_trajectory_id(sub, sub_id))
        doc["subagent_trajectories"] = embedded
    return doc


def _with_trajectory_id(doc: dict[str, Any], trajectory_id: str) -> dict[str, Any]:
    head = {k: doc[k] for k in ("schema_version", "session_id") if k in doc}
    return {**head, "trajectory_id": trajectory_id, **{k: v for k, v in doc.items() if k not in head}}


def _rewards(trajectory: Trajectory, profile: str = "spec") -> tuple[float, float]:
    from ppp_otel.scoring.rewards import personalization_reward, proactivity_reward

    if profile == "paper":
        asks, first = asks_of(trajectory.turns)
        return (paper_proactivity(asks),
                paper_personalization(trajectory.preferences, asks, first_turn=first))

    efforts = Counter(q.effort_level for t in trajectory.turns for q in t.questions)
    severities = Counter(v.severity for t in trajectory.turns for v in t.violations)
    return proactivity_reward(efforts), personalization_reward(severities)


def _trajectory_ppp(trajectory: Trajectory, profile: str = "spec") -> dict[str, Any]:
    r_proact, r_pers = _rewards(trajectory, profile)
    return {
        "version": PPP_EXTRA_VERSION,
        "r_proact": r_proact,
        "r_pers": r_pers,
        "rewards": profile,
        "spec_id": trajectory.spec_id,
        "agent_name": trajectory.agent_name,
        "run_id": trajectory.run_id,
        "stage": trajectory.stage,
        "technical_score": trajectory.technical_score,
        "preferences": list(trajectory.preferences),
        "question_count": trajectory.question_count,
        "violation_count": trajectory.violation_count,
        "created_at": trajectory.created_at,
        "ended_at": trajectory.ended_at,
        "trace_id": trajectory.trace_id,
        "span_id": trajectory.span_id,
    }


def _turn_ppp(turn: Turn) -> dict[str, Any]:
    return {
        "turn_number": turn.number,
        "trace_id": turn.trace_id,
        "span_id": turn.span_id,
        "timestamp": turn.timestamp,
        "token_count": turn.token_count,
        "latency_ms": turn.latency_ms,
        "questions": [{"text": q.text, "effort": q.effort_level, "source": q.source} for q in turn.questions],
        "violations": [
            {"preference": v.preference_name, "expected": v.expected, "actual": v.actual,
             "severity": v.severity, "source": v.source}
            for v in turn.violations
        ],
    }


def _steps(trajectory: Trajectory, atif_of: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for turn in trajectory.turns:
        atif = atif_of.get(turn.number, {})
        context = atif.get("context_steps")
        if context is None:
            context = [] if turn.prompt is None else [
                {"source": "user", "message": turn.prompt, **_timestamp(turn)}
            ]
        ppp = _turn_ppp(turn)
        if "agent_step" in atif and atif["agent_step"] is None and context:
            # A user message the agent never answered (see convert.py).
            block = [dict(s) for s in context]
            _attach(block[-1], ppp)
        else:
            agent = dict(atif.get("agent_step") or {"source": "agent", **_timestamp(turn)})
            if "agent_step" not in atif and turn.tool_calls:
                # Recorded live: the calls folded into the turn go on its one agent step (an
                # imported step keeps its own, and the folded steps come back as they were).
                agent["tool_calls"] = _atif_tool_calls(turn)
            if "message" not in agent:
                agent["message"] = turn.response if turn.response is not None else ""
            if turn.response is None:
                ppp["response_missing"] = True
            _attach(agent, ppp)
            # Tool calls after the agent's last reply that asked nothing follow it (see convert.py).
            block = [dict(s) for s in context] + [agent] + [dict(s) for s in atif.get("after_steps") or ()]
        for step in block:
            steps.append(_valid_step(step, len(steps) + 1))
    return steps


def _atif_tool_calls(turn: Turn) -> list[dict[str, Any]]:
    """A turn's stored tool calls as ATIF ``ToolCall`` objects. ATIF's ``arguments`` is an
    object: JSON text is parsed, and text that is no JSON object is kept as ``{"text": ...}``;
    a call the model gave no id gets one made from the turn number and its place."""
    calls = []
    for place, call in enumerate(turn.tool_calls, 1):
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                parsed = None
            arguments = parsed if isinstance(parsed, dict) else {"text": arguments}
        elif not isinstance(arguments, dict):
            arguments = {} if arguments is None else {"value": arguments}
        calls.append({"tool_call_id": str(call.get("id") or f"call_{turn.number}_{place}"),
                      "function_name": str(call.get("name") or ""), "arguments": arguments})
    return calls


def _timestamp(turn: Turn) -> dict[str, str]:
    return {"timestamp": turn.timestamp} if turn.timestamp else {}


def _attach(step: dict[str, Any], ppp: dict[str, Any]) -> None:
    extra = step.get("extra") if isinstance(step.get("extra"), dict) else {}
    step["extra"] = {**extra, PPP: ppp}


def _valid_step(step: dict[str, Any], step_id: int) -> dict[str, Any]:
    """The step renumbered, its fields in schema order, unknown ones moved into extra.ppp."""
    out: dict[str, Any] = {"step_id": step_id}
    for key in STEP_FIELDS[1:]:
        if key in step:
            out[key] = step[key]
    out.setdefault("message", "")
    unknown = {k: v for k, v in step.items() if k not in STEP_FIELDS}
    if unknown:
        extra = dict(out.get("extra") or {})
        extra[PPP] = {**extra.get(PPP, {}), "unknown_fields": unknown}
        out["extra"] = extra
    return out


def _final_metrics(steps: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for field, total in (("prompt_tokens", "total_prompt_tokens"),
                         ("completion_tokens", "total_completion_tokens"),
                         ("cached_tokens", "total_cached_tokens"),
                         ("cost_usd", "total_cost_usd")):
        values = [s["metrics"][field] for s in steps
                  if isinstance(s.get("metrics"), dict) and isinstance(s["metrics"].get(field), (int, float))]
        if values:
            totals[total] = sum(values)
    totals["total_steps"] = len(steps)
    return totals


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
