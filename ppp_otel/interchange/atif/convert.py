"""An ATIF document as trajectory and turn records, ready for the writer.

The mapping (docs/atif.md has the table):

- a trajectory per document, and one per embedded ``subagent_trajectories``
  entry, linked to its parent;
- an ``agent`` step is one model call, and which calls are turns is decided
  as for spans, by :class:`~ppp_otel.dialects.resolve.TurnResolver`: a step
  whose output is only tool calls (an empty message) is no turn of its own;
  its tool calls, and the questions asked through a question tool
  (``ask_user``, ``AskUserQuestion``, ... :mod:`ppp_otel.dialects.questions`),
  go with the turn it leads to, as explicit questions of that turn; a
  trajectory that ends on such steps keeps the last of them as a turn only
  when it asked the user something;
- a turn's prompt is the latest ``user`` message since the previous turn (as
  for spans: the user's latest message; a system prompt is not the user's
  words), its response the agent's message, its token count
  ``prompt_tokens + completion_tokens`` of its own step; ``user``/``system``
  steps after the last turn become a last turn with no response, because a
  user message the agent never answered is still part of the conversation;
- what has no column (tool calls, observations, reasoning, metrics, the
  steps behind a prompt and the tool-call steps folded into the turn, the
  document's own fields) is kept in the turn's ``extra`` as
  ``{"atif": {...}}``, which export reads back; the turn's tool calls are in
  ``extra["tool_calls"]`` too, as live recording keeps them.

Ids are derived, not random: a document's fingerprint (its canonical JSON)
names its trace, so importing the same document twice writes the same ids and
the writer stores it once. A document exported by ppp-otel carries its ids in
``extra.ppp`` and keeps them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from ppp_otel.conventions import EFFORT_LEVELS, SEVERITIES
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS, ToolCall, TurnCandidate
from ppp_otel.dialects.messages import arguments_text
from ppp_otel.dialects.questions import questions_from_tool_calls
from ppp_otel.dialects.resolve import Resolved, Step, TurnResolver
from ppp_otel.model import Question, Violation
from ppp_otel.records import MAX_TEXT_CHARS, TrajectoryKey, TrajectoryRecord, TurnRecord, carry, exchange_tokens
from ppp_otel.interchange.atif.document import AtifError, check_time, message_text

#: The key under ATIF ``extra`` objects where ppp-otel keeps its own data.
PPP = "ppp"
#: The key under a turn's ``extra`` column where the ATIF steps are kept.
ATIF = "atif"

Record = TrajectoryRecord | TurnRecord


@dataclass
class Converted:
    records: list[Record] = field(default_factory=list)
    trajectories: int = 0
    turns: int = 0
    # Agent steps that only called tools: no turns of their own.
    tool_steps: int = 0


def convert(
    data: dict[str, Any],
    origin: str,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    fallback_spec: str = "atif",
    stage: str | None = None,
    question_tools: Iterable[str] = DEFAULT_QUESTION_TOOLS,
) -> Converted:
    """Records for a validated document (see :func:`ppp_otel.interchange.atif.document.validate`).

    ``spec_id`` and ``agent_name`` override the document's for its top
    trajectory; subagents keep their own agent names and share its spec.
    ``stage`` is the stage of the trajectories that carry none: a trajectory's
    own ``extra.ppp.stage`` wins, an embedded subagent without the key works in
    its parent's stage, and one whose stage is ``null`` (a document without a
    stage, or a trajectory exported without one) takes ``stage``.
    ``question_tools`` names the tools through which the agent asks its user
    (``[ppp.trajectory] question_tools``).
    """
    # surrogatepass: a lone surrogate (kept, later stored as U+FFFD) must not stop the import.
    identity = "atif:" + hashlib.sha256(_canonical(data).encode("utf-8", "surrogatepass")).hexdigest()
    out = Converted()
    _convert_trajectory(
        data, origin, out, identity=identity, parent=None, parent_spec=None, parent_run=None,
        parent_stage=stage, default_stage=stage,
        spec_override=spec_id, agent_override=agent_name, fallback_spec=fallback_spec,
        question_tools=tuple(question_tools),
    )
    return out


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(*parts: str, length: int) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def take_ppp(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of an ATIF object without ``extra.ppp``, and that ``ppp`` object.

    Fields the exporter had to move into ``extra.ppp.unknown_fields`` (to stay
    valid ATIF) are put back where they were.
    """
    obj = copy.deepcopy(obj)
    extra = obj.get("extra")
    ppp: dict[str, Any] = {}
    if isinstance(extra, dict) and isinstance(extra.get(PPP), dict):
        ppp = extra.pop(PPP)
        if not extra:
            del obj["extra"]
        unknown = ppp.get("unknown_fields")
        if isinstance(unknown, dict):
            for key, value in unknown.items():
                obj.setdefault(key, value)
    return obj, ppp


def _convert_trajectory(
    data: dict[str, Any],
    origin: str,
    out: Converted,
    *,
    identity: str,
    parent: TrajectoryKey | None,
    parent_spec: str | None,
    parent_run: str | None,
    parent_stage: str | None,
    spec_override: str | None,
    default_stage: str | None = None,
    agent_override: str | None,
    fallback_spec: str,
    question_tools: tuple[str, ...] = DEFAULT_QUESTION_TOOLS,
) -> None:
    doc, ppp = take_ppp(data)
    steps = doc.pop("steps")
    subagents = doc.pop("subagent_trajectories", None) or []
    if "source_schema_version" in ppp:
        doc["schema_version"] = ppp["source_schema_version"]
    agent = doc.get("agent") if isinstance(doc.get("agent"), dict) else {}

    trace_id = _id(ppp, "trace_id", 32) or (parent[0] if parent else _hash(identity, length=32))
    span_id = _id(ppp, "span_id", 16) or _hash(identity, "trajectory", length=16)
    key = (trace_id, span_id)
    spec = (
        spec_override or _str(ppp, "spec_id") or parent_spec or _str(doc, "session_id")
        or _str(doc, "trajectory_id") or fallback_spec
    )
    name = agent_override or _str(ppp, "agent_name") or _str(agent, "name") or "unknown"
    run_id = ppp["run_id"] if "run_id" in ppp else (_str(doc, "session_id") or parent_run)
    # Its own stage, else (no key) the stage its parent works in, else (null: recorded
    # without one) the stage asked for.
    stage = ppp.get("stage")
    if stage is None:
        stage = default_stage if "stage" in ppp else parent_stage
    if stage is not None and (not isinstance(stage, str) or not stage.strip()):
        raise AtifError(f"{origin}: extra.ppp.stage must be a non-empty string")
    # Every time in the store's one form, so that text order is time order.
    bounds = {bound: check_time(ppp.get(bound), f"{origin}: extra.ppp.{bound}")
              for bound in ("created_at", "ended_at")}
    stamps = [check_time(s["timestamp"], f"{origin}: step {s.get('step_id')}: timestamp")
              for s in steps if isinstance(s.get("timestamp"), str)]
    started = bounds["created_at"] if "created_at" in ppp else (stamps[0] if stamps else None)
    ended = bounds["ended_at"] if "ended_at" in ppp else (stamps[-1] if stamps else started)
    preferences = ppp.get("preferences") or ()
    if not isinstance(preferences, (list, tuple)) or not all(isinstance(p, str) for p in preferences):
        raise AtifError(f"{origin}: extra.ppp.preferences must be a list of strings")
    technical = ppp.get("technical_score")
    if technical is not None and (isinstance(technical, bool) or not isinstance(technical, (int, float))):
        raise AtifError(f"{origin}: extra.ppp.technical_score must be a number")

    def trajectory(ended_at: str | None) -> TrajectoryRecord:
        return TrajectoryRecord(
            trace_id=trace_id, span_id=span_id, spec_id=spec, agent_name=name, run_id=run_id,
            stage=stage, preferences=tuple(preferences), technical_score=technical,
            started_at=started, ended_at=ended_at, parent=parent,
        )

    # Start first (so the analyzer knows the preferences before the turns) and
    # end last, as a live recording would.
    out.records.append(trajectory(None))
    out.trajectories += 1
    turns = _turns(steps, origin, key, question_tools, out)
    if turns:
        turns[0].extra[ATIF]["document"] = doc
    out.records.extend(turns)
    out.turns += len(turns)

    for index, sub in enumerate(subagents):
        sub_id = sub.get("trajectory_id") if isinstance(sub.get("trajectory_id"), str) else f"#{index}"
        _convert_trajectory(
            sub, f"{origin}: subagent_trajectories[{index}]", out,
            identity=f"{identity}/{sub_id}", parent=key, parent_spec=spec, parent_run=run_id,
            parent_stage=stage, default_stage=default_stage,
            spec_override=spec_override, agent_override=None, fallback_spec=fallback_spec,
            question_tools=question_tools,
        )
    out.records.append(trajectory(ended))


def _turns(
    steps: list[dict[str, Any]], origin: str, key: TrajectoryKey, question_tools: tuple[str, ...],
    out: Converted,
) -> list[TurnRecord]:
    """The turns of a trajectory's steps: each agent step goes through the resolver live
    recording uses, so the same conversation gives the same turns by either path."""
    resolver = TurnResolver()
    turns: list[TurnRecord] = []
    # The steps since the last turn, with their extra.ppp: user and system messages,
    # and agent steps that only called tools (the resolver holds them).
    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def turn(context: list, agent_step: dict[str, Any] | None, ppp: dict[str, Any],
             resolved: Resolved | None) -> None:
        record = _turn([s for s, _ in context], agent_step, ppp, origin, key, len(turns) + 1)
        if resolved is not None:
            carry(record, resolved.tool_calls, resolved.questions)
            if resolved.folded and "token_count" not in ppp:  # an export gives the exchange's own
                # As for spans: the turn's tokens are those of every model call of the exchange.
                record.token_count = exchange_tokens(
                    record.token_count, [_tokens(context[s.record][0]) for s in resolved.folded])
        turns.append(record)

    for raw in steps:
        step, ppp = take_ppp(raw)
        if ppp.get("placeholder"):
            continue  # stands in for "no turns" in an export (ATIF needs a step)
        if step["source"] == "agent":
            # The step's place among the pending ones: where it sits if it becomes a turn later.
            resolved = resolver.add(Step(key, None, None, _candidate(step, question_tools), len(pending)))
            if resolved is not None:
                turn(pending, step, ppp, resolved)
                pending = []
                continue
        pending.append((step, ppp))
    resolved = resolver.close(key)
    if resolved is not None:
        # It ended on tool calls that asked the user something: the last of them is a turn.
        at = resolved.step.record
        turn(pending[:at], *pending[at], resolved)
        pending = pending[at + 1:]
    if pending:
        rest = [s for s, _ in pending]
        if turns and all(s["source"] == "agent" for s in rest):
            # Tool calls after the agent's last reply that asked nothing: no turn (as for
            # spans), kept with the last turn so that export writes them back.
            turns[-1].extra[ATIF]["after_steps"] = rest
        else:
            # A turn with no agent step keeps its ppp data on its last step.
            turn(pending, None, pending[-1][1], None)
    out.tool_steps += resolver.folded + resolver.unanswered
    return turns


def _candidate(step: dict[str, Any], question_tools: tuple[str, ...]) -> TurnCandidate:
    """What an agent step says as a model call: its reply, its tool calls, and the
    questions asked through them (read from their arguments, as for spans)."""
    calls = _tool_calls(step)
    return TurnCandidate(
        prompt=None, response=_reply(step, calls), tool_calls=calls,
        questions=questions_from_tool_calls(calls, question_tools), dialect="atif",
    )


def _tool_calls(step: dict[str, Any]) -> list[ToolCall]:
    return [
        ToolCall(call.get("function_name") or "", arguments_text(call.get("arguments")),
                 None if call.get("tool_call_id") is None else str(call["tool_call_id"]))
        for call in step.get("tool_calls") or []
    ]


def _reply(step: dict[str, Any], calls: list[ToolCall]) -> str:
    """The agent step's message; empty for the message Harbor's Claude Code converter
    (ATIF-v1.2 era) wrote on a step that only called a tool: "Executed <tool> <call id>"."""
    text = message_text(step.get("message", ""))
    if len(calls) == 1 and text == f"Executed {calls[0].name} {calls[0].id}":
        return ""
    return text


def _turn(
    context: list[dict[str, Any]],
    agent_step: dict[str, Any] | None,
    ppp: dict[str, Any],
    origin: str,
    key: TrajectoryKey,
    position: int,
) -> TurnRecord:
    last = agent_step if agent_step is not None else context[-1]
    where = f"{origin}: step {last['step_id']}"
    # The user's latest message, as for a turn recorded from spans: a system prompt is not
    # the user's words, and the steps before it stay in extra.atif.context_steps.
    said = [s for s in context if s["source"] == "user"]
    prompt = message_text(said[-1].get("message")) if said else None
    response = None
    kept_agent_step = None
    if agent_step is not None:
        reply = _reply(agent_step, _tool_calls(agent_step))
        kept_agent_step = dict(agent_step)
        if agent_step.get("message", "") == reply:
            kept_agent_step.pop("message", None)  # it is the response column
        # An empty message is no response, as an empty reply in a span is none; a step
        # with extra.ppp (an export) says so itself, with response_missing.
        if not ppp.get("response_missing") and (reply or ppp):
            response = reply
    prompt, cut_prompt = _cut(prompt)
    response, cut_response = _cut(response)

    questions, explicit = _questions(ppp, where)
    timestamp = check_time(
        ppp["timestamp"] if "timestamp" in ppp else _str(last, "timestamp"),
        f"{where}: extra.ppp.timestamp" if "timestamp" in ppp else f"{where}: timestamp",
    )
    number = ppp.get("turn_number", position)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise AtifError(f"{where}: extra.ppp.turn_number must be a non-negative integer")
    return TurnRecord(
        trace_id=_id(ppp, "trace_id", 32) or key[0],
        span_id=_id(ppp, "span_id", 16) or _hash(*key, "step", str(last["step_id"]), length=16),
        trajectory=key,
        turn_number=number,
        prompt=prompt,
        response=response,
        token_count=ppp["token_count"] if "token_count" in ppp else _tokens(agent_step),
        latency_ms=ppp.get("latency_ms"),
        timestamp=timestamp,
        questions=questions,
        violations=_violations(ppp, where),
        extract_questions=not explicit,
        extra={ATIF: {"context_steps": context, "agent_step": kept_agent_step}},
        truncated=cut_prompt or cut_response,
    )


def _questions(ppp: dict[str, Any], where: str) -> tuple[list[Question], bool]:
    """Questions given by an earlier export; extracted ones are extracted again.

    Only questions the agent code gave explicitly are carried over as such:
    extracted ones come back from the same response by the same extractor,
    so their source stays 'extracted'.
    """
    given = ppp.get("questions") or []
    if not isinstance(given, list) or not all(isinstance(q, dict) for q in given):
        raise AtifError(f"{where}: extra.ppp.questions must be a list of objects")
    if not any(q.get("source", "explicit") == "explicit" for q in given):
        return [], False
    questions = []
    for q in given:
        text, effort = q.get("text"), q.get("effort")
        if not isinstance(text, str) or not text:
            raise AtifError(f"{where}: a question in extra.ppp.questions has no text")
        if effort is not None and effort not in EFFORT_LEVELS:
            raise AtifError(f"{where}: question effort must be one of {', '.join(EFFORT_LEVELS)}, got {effort!r}")
        source = q.get("source") if q.get("source") in ("explicit", "extracted") else None
        questions.append(Question(text, effort, source))
    return questions, True


def _violations(ppp: dict[str, Any], where: str) -> list[Violation]:
    given = ppp.get("violations") or []
    if not isinstance(given, list) or not all(isinstance(v, dict) for v in given):
        raise AtifError(f"{where}: extra.ppp.violations must be a list of objects")
    violations = []
    for v in given:
        severity = v.get("severity")
        if severity not in SEVERITIES:
            raise AtifError(f"{where}: violation severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        if not isinstance(v.get("preference"), str):
            raise AtifError(f"{where}: a violation in extra.ppp.violations has no preference")
        violations.append(Violation(
            v["preference"], v.get("expected") or "", v.get("actual") or "", severity,
            source=v.get("source") or "explicit",
        ))
    return violations


def _tokens(step: dict[str, Any] | None) -> int | None:
    metrics = step.get("metrics") if step else None
    if not isinstance(metrics, dict):
        return None
    counts = [metrics.get(k) for k in ("prompt_tokens", "completion_tokens")]
    counts = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
    return sum(counts) if counts else None


def _cut(text: str | None) -> tuple[str | None, bool]:
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS], True
    return text, False


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _id(ppp: dict[str, Any], key: str, length: int) -> str | None:
    value = ppp.get(key)
    if isinstance(value, str) and len(value) == length:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            pass
    return None


__all__ = ["ATIF", "PPP", "Converted", "convert", "take_ppp"]
