"""What travels from a span (or an OTLP body, or an ATIF file) to the writer.

Building a record validates it: a wrong type or a missing id raises
:class:`RecordError`, which the writer counts as one bad record without
touching the rest of its batch.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from ppp_otel import conventions as c
from ppp_otel.model import Question, Violation
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS, TurnCandidate, int_attribute, read_turn

#: Texts longer than this are cut (and counted) rather than bloating the database.
MAX_TEXT_CHARS = 1_000_000


class RecordError(ValueError):
    """One span or document could not be turned into a row; names what is wrong."""


# printf-style formatting: the same text as format(..., "032x"), in about half the time.
def format_trace_id(trace_id: int) -> str:
    return "%032x" % trace_id


def format_span_id(span_id: int) -> str:
    return "%016x" % span_id


def iso_from_ns(ns: int | None) -> str | None:
    """UTC ISO 8601 with milliseconds, as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ') writes it."""
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    # Spans come in bursts within the same second: its text is made once. One
    # tuple, read and replaced whole, so threads never pair a second with another's text.
    global _iso_cache
    cached_second, prefix = _iso_cache
    if seconds != cached_second:
        t = time.gmtime(seconds)
        prefix = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
                  f"{t.tm_sec:02d}.")
        _iso_cache = (seconds, prefix)
    return prefix + _MILLIS[rest // 1_000_000]


_iso_cache: tuple[int | None, str] = (None, "")
# "000Z" to "999Z": looked up, not formatted, for every span's time.
_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))


#: The one form the store keeps a time in (what :func:`iso_from_ns` and SQLite's
#: ``strftime('%Y-%m-%dT%H:%M:%fZ')`` write): compared and ordered as text, it is
#: in time order only when every row is spelled this way.
CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

_FRACTION = re.compile(r"[.,](\d+)")


def utc_iso(text: str) -> str:
    """An ISO 8601 date and time in the store's form: UTC, milliseconds, ``Z``.

    An offset is applied (``16:30:00+02:00`` is ``14:30:00.000Z``); a time
    without one is taken as UTC (ATIF names no zone for it; SQLite's
    ``datetime('now')`` writes UTC so); digits past the millisecond are
    dropped, as :func:`iso_from_ns` drops them. Raises ValueError for a text that is not one.
    """
    if CANONICAL_TIME.fullmatch(text):
        return text
    # fromisoformat before Python 3.11 takes no "Z", and only three or six decimals.
    normal = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    if normal[-1:] in ("Z", "z"):
        normal = normal[:-1] + "+00:00"
    moment = datetime.fromisoformat(normal)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{text!r} falls outside the years 1 to 9999 in UTC") from None
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def now_iso() -> str:
    return datetime.now(tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


TrajectoryKey = tuple[str, str]  # (trace_id hex, span_id hex)


@dataclass
class TrajectoryRecord:
    """A trajectory as known at its start (``ended_at`` None) or at its end."""

    trace_id: str
    span_id: str
    spec_id: str
    agent_name: str
    run_id: str | None = None
    preferences: tuple[str, ...] = ()
    stage: str | None = None
    technical_score: float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    parent: TrajectoryKey | None = None
    user_context: str | None = None  # what the user knows, for a judge

    @property
    def key(self) -> TrajectoryKey:
        return (self.trace_id, self.span_id)


@dataclass
class TurnRecord:
    trace_id: str
    span_id: str
    trajectory: TrajectoryKey
    turn_number: int | None
    prompt: str | None
    response: str | None
    token_count: int | None = None
    latency_ms: float | None = None
    timestamp: str | None = None
    questions: list[Question] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    # True when the agent code gave no questions: they are extracted from the response.
    extract_questions: bool = True
    extra: dict[str, Any] | None = None
    truncated: bool = False
    # Values that could not be stored (a token count past 64 bits, an effort or a severity
    # outside the schema's): dropped, the turn kept.
    dropped_values: int = 0
    # A number from the shared sequence (not chosen by agent code) that clashes
    # with a stored turn is replaced by the next free one rather than rejected.
    renumber_on_conflict: bool = False
    # The judge that judged the turn before it was written (the rules, judged in
    # the writer's batch); None leaves it to the judgment stage.
    judged_by: str | None = None
    # Set by the analyzer when a judge gave no answer on part of the turn (an effort the
    # rules graded instead, a preference left unjudged): what was found is stored and the
    # turn stays pending, for `ppp-otel judge --pending` once the judge answers.
    judgment_incomplete: bool = False


@dataclass(frozen=True)
class ConversationViolation:
    """A whole-conversation preference broken, found when the trajectory ended; stored on its
    last turn (``turn_number``) in the same transaction as the batch that ended it."""

    trajectory: TrajectoryKey
    turn_number: int
    violation: Violation


# --- attribute readers -----------------------------------------------------

def _text(attrs: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = attrs.get(key)
    if value is None:
        if required:
            raise RecordError(f"attribute {key} is missing")
        return None
    if isinstance(value, str):
        if required and not value.strip():
            raise RecordError(f"attribute {key} is empty")
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise RecordError(f"attribute {key} must be a string, got {type(value).__name__}")


class OutOfRange(RecordError):
    """A number SQLite cannot store (past 64 bits)."""


def _float(attrs: Mapping[str, Any], key: str) -> float | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"attribute {key} must be a number, got a bool")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"attribute {key} must be a number, got {value!r:.60}") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise RecordError(f"attribute {key} must be a finite number, got {value!r}")
    return result


def _string_list(attrs: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = attrs.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        # A JSON array or a comma-separated list, as other languages may send it.
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise RecordError(f"attribute {key} is not a valid JSON list") from None
            if not isinstance(parsed, list):
                raise RecordError(f"attribute {key} must be a list of strings")
            value = parsed
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"attribute {key} must be a list of strings")
    return tuple(value)


def _cut(text: str | None) -> tuple[str | None, bool]:
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS], True
    return text, False


def candidate_of(name: str | None, attrs: Mapping[str, Any], events: Sequence[tuple[str, Mapping[str, Any]]],
                 question_tools: Iterable[str] = DEFAULT_QUESTION_TOOLS) -> TurnCandidate | None:
    """What the span says as a turn (see :mod:`ppp_otel.dialects`); None when it is no model call."""
    try:
        return read_turn(name or c.TURN_SPAN, attrs, events, question_tools=question_tools)
    except ValueError as exc:  # SpanContentError: a token count that is not a number
        raise RecordError(str(exc)) from None


# --- events ----------------------------------------------------------------

def question_from_event(attrs: Mapping[str, Any]) -> tuple[Question, bool]:
    """The event's question, and whether its effort was dropped: an effort that is not
    low, medium or high costs the question its effort (the classifier grades it), not
    the turn its question, prompt and response."""
    text = _text(attrs, c.QUESTION_TEXT, required=True)
    effort = _text(attrs, c.QUESTION_EFFORT)
    if effort is not None and effort not in c.EFFORT_LEVELS:
        return Question(text), True
    return Question(text, effort), False


def violation_from_event(attrs: Mapping[str, Any]) -> Violation | None:
    """The event's violation; None when its severity is not minor, major or critical:
    no row can hold it without one, and the rest of its turn is kept."""
    severity = _text(attrs, c.VIOLATION_SEVERITY, required=True)
    if severity not in c.SEVERITIES:
        return None
    return Violation(
        _text(attrs, c.VIOLATION_PREFERENCE, required=True),
        _text(attrs, c.VIOLATION_EXPECTED) or "",
        _text(attrs, c.VIOLATION_ACTUAL) or "",
        severity,
    )


# --- from spans ------------------------------------------------------------

def trajectory_record(
    trace_id: str,
    span_id: str,
    attrs: Mapping[str, Any],
    *,
    start_ns: int | None,
    end_ns: int | None = None,
) -> TrajectoryRecord:
    return TrajectoryRecord(
        trace_id=trace_id,
        span_id=span_id,
        spec_id=_text(attrs, c.SPEC_ID, required=True),
        agent_name=_text(attrs, c.AGENT_NAME) or "unknown",
        run_id=_text(attrs, c.RUN_ID),
        stage=_text(attrs, c.STAGE) or None,
        preferences=_string_list(attrs, c.PREFERENCES),
        technical_score=_float(attrs, c.TECHNICAL_SCORE),
        started_at=iso_from_ns(start_ns),
        ended_at=iso_from_ns(end_ns),
        user_context=_cut(_text(attrs, c.USER_CONTEXT))[0],
    )


def turn_record(
    trace_id: str,
    span_id: str,
    trajectory: TrajectoryKey,
    attrs: Mapping[str, Any],
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    start_ns: int | None,
    end_ns: int | None,
    turn_number: int | None = None,
    candidate: TurnCandidate | None = None,
    renumber_on_conflict: bool = False,
) -> TurnRecord:
    """A turn from a span; ``candidate`` is its reading when the caller already made it."""
    if candidate is None:
        candidate = candidate_of(None, attrs, events) or TurnCandidate(None, None)
    prompt, response = candidate.prompt, candidate.response
    truncated = False
    # Asked before calling: nearly every text is far shorter, nearly every span has no number.
    if (prompt is not None and len(prompt) > MAX_TEXT_CHARS) or (
            response is not None and len(response) > MAX_TEXT_CHARS):
        prompt, cut_prompt = _cut(prompt)
        response, cut_response = _cut(response)
        truncated = cut_prompt or cut_response
    dropped = 0
    number = None
    if attrs.get(c.TURN_NUMBER) is not None:
        try:
            number = int_attribute(attrs, c.TURN_NUMBER, invalid=RecordError, out_of_range=OutOfRange)
        except OutOfRange:
            dropped += 1
    if number is None:
        number = turn_number
    if number is not None and number < 0:
        raise RecordError(f"attribute {c.TURN_NUMBER} must not be negative, got {number}")
    token_count = candidate.token_count
    dropped += candidate.dropped_values
    if token_count is not None and token_count < 0:
        raise RecordError(f"token count must not be negative, got {token_count}")
    questions, violations = [], []
    for name, event_attrs in events:
        if name == c.QUESTION_EVENT:
            question, effort_dropped = question_from_event(event_attrs)
            questions.append(question)
            dropped += effort_dropped
        elif name == c.VIOLATION_EVENT:
            violation = violation_from_event(event_attrs)
            if violation is None:
                dropped += 1
            else:
                violations.append(violation)
    latency = None
    if start_ns is not None and end_ns is not None:
        latency = (end_ns - start_ns) / 1e6
        if not latency > 0.0:  # max(0.0, latency), without the call
            latency = 0.0
    # By position, in field order: keyword arguments cost the dataclass's __init__
    # half a microsecond more, paid for every turn.
    return TurnRecord(
        trace_id, span_id, trajectory, number, prompt, response, token_count, latency,
        iso_from_ns(start_ns), questions, violations,
        not questions,  # extract_questions: none given, so they are found in the response
        None,  # extra
        truncated,
        dropped,  # dropped_values
        renumber_on_conflict,
    )


def exchange_tokens(own: int | None, folded: Iterable[int | None]) -> int | None:
    """A turn's token count with the counts of the tool-call-only calls folded into it;
    None when no call said."""
    known = [n for n in folded if n is not None]
    return sum(known) + (own or 0) if known else own


def fold_costs(record: TurnRecord, resolved: Any) -> TurnRecord:
    """A turn that tool-call-only steps led to costs what all its model calls cost: their
    tokens added to its own, its time from the first call's start to its own end."""
    folded = resolved.folded
    if not folded:
        return record  # most turns: one model call
    record.token_count = exchange_tokens(record.token_count, [s.record.token_count for s in folded])
    starts = [s.start_ns for s in folded if s.start_ns is not None]
    step = resolved.step
    if starts and step.start_ns is not None and step.end_ns is not None:
        first = min(min(starts), step.start_ns)
        record.latency_ms = max(0.0, (step.end_ns - first) / 1e6)
        record.timestamp = iso_from_ns(first)
    return record


def carry(record: TurnRecord, tool_calls: Sequence[Mapping[str, Any]], questions: Sequence[str]) -> TurnRecord:
    """Give a turn the tool calls that led to it and the questions asked through them."""
    if not tool_calls and not questions:
        return record  # most turns: nothing led to them through tools
    if tool_calls:
        record.extra = {**(record.extra or {}), "tool_calls": list(tool_calls)}
    known = {q.text for q in record.questions}
    for text in questions:
        if text not in known:
            known.add(text)
            # Asked through a tool: explicit, not found in the text (an ATIF round trip keeps it).
            record.questions.append(Question(text, source="explicit"))
    return record
