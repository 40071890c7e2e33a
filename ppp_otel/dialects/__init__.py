"""Which spans are turns, and what they say, whatever instrumentation made them.

One pure function, :func:`read_turn`, maps a finished span (its name,
attributes and events, as an SDK ``ReadableSpan`` or a decoded OTLP span has
them) to a :class:`TurnCandidate` or to None ("not a turn"). The in-process
recorder, ``ppp-otel ingest`` and imports all call it, so the same spans give
the same rows by every path. Dialects read:

- OpenInference (``openinference.span.kind = LLM``; ppp's own ``ppp.turn``),
- OpenTelemetry GenAI semantic conventions, current and older
  (``gen_ai.operation.name``, ``gen_ai.input.messages``, ``gen_ai.prompt.N.*``,
  ``gen_ai.*.message`` events), which OpenLLMetry/Traceloop, pydantic-ai,
  logfire and the official OpenTelemetry instrumentations speak.

Embeddings, tools, retrievers, chains and agents are never turns.
:class:`~ppp_otel.dialects.resolve.TurnResolver` then makes one turn of one
model call traced twice, and folds tool-call-only steps into the turn they
lead to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .. import conventions as c
from . import genai, openinference
from .messages import SpanContentError, ToolCall, loads
from .questions import DEFAULT_QUESTION_TOOLS, questions_from_tool_calls

__all__ = [
    "DEFAULT_QUESTION_TOOLS", "SpanContentError", "ToolCall", "TurnCandidate",
    "int_attribute", "might_be_turn", "read_turn", "token_count",
]

_OPENINFERENCE_TOTAL = c.TOKEN_COUNT_TOTAL
_OPENINFERENCE_TOKENS = (_OPENINFERENCE_TOTAL,), (c.TOKEN_COUNT_PROMPT,), (c.TOKEN_COUNT_COMPLETION,)
#: (total, input, output) keys of each dialect, in the order they are asked.
_TOKEN_KEYS = (_OPENINFERENCE_TOKENS, genai.token_keys())


@dataclass(slots=True)
class TurnCandidate:
    """What one model call said: the user's latest words and the reply to them."""

    prompt: str | None
    response: str | None
    token_count: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Questions the model put to the user through a tool (ask_user, ...).
    questions: list[str] = field(default_factory=list)
    dialect: str = ""
    # Numbers left out because SQLite cannot store them (past 64 bits).
    dropped_values: int = 0

    @property
    def tool_calls_only(self) -> bool:
        """A step that only calls tools: the reply comes in a later call."""
        return bool(self.tool_calls) and not (self.response or "").strip()


def might_be_turn(name: str, attributes: Mapping[str, Any] | None) -> bool:
    """A few lookups, cheap enough for the app thread: could this span be a model call?

    False is final (an embedding, a tool, a chain); True still leaves the
    reading to :func:`read_turn`.
    """
    if name == c.TURN_SPAN:
        return True
    if not attributes:
        return False
    kind = attributes.get(c.SPAN_KIND)
    if kind is not None:
        return kind == c.KIND_LLM
    operation = attributes.get(genai.OPERATION)
    if operation is not None:
        return operation in genai.CHAT_OPERATIONS
    request_type = attributes.get("llm.request.type")  # OpenLLMetry before gen_ai.operation.name
    if request_type is not None:
        return request_type in ("chat", "completion")
    if "traceloop.span.kind" in attributes:  # workflow, task, agent, tool
        return False
    return "gen_ai.system" in attributes or "gen_ai.provider.name" in attributes


def read_turn(
    name: str,
    attributes: Mapping[str, Any] | None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    *,
    question_tools: Iterable[str] = DEFAULT_QUESTION_TOOLS,
) -> TurnCandidate | None:
    """The turn a finished span is, or None when it is not a model call.

    Raises :class:`SpanContentError` (a ValueError) naming the attribute when a
    token count is not a number.
    """
    turn_span = name == c.TURN_SPAN  # might_be_turn's first answer, asked once for the branches below
    if not (turn_span or might_be_turn(name, attributes)):
        return None
    attrs = attributes or {}
    prompt, response = attrs.get(c.INPUT_VALUE), attrs.get(c.OUTPUT_VALUE)
    # What turn() writes: two texts no reader takes for a JSON body (each starts with
    # neither bracket nor space), read as the general path reads them, without its JSON
    # probes. Spelled out, not a call: nearly every span the SDK tracer records is one.
    if (turn_span and isinstance(prompt, str) and prompt[:1] not in _NOT_PLAIN
            and isinstance(response, str) and response[:1] not in _NOT_PLAIN):
        calls, dialect = [], "ppp"
    elif turn_span or attrs.get(c.SPAN_KIND) == c.KIND_LLM:
        # ppp.turn spans carry plain input.value/output.value; skip the scan for messages.
        prompt, response, calls = openinference.read(attrs, scan_messages=not turn_span)
        dialect = "ppp" if turn_span else "openinference"
        if prompt is None and response is None and not calls:
            prompt, response, calls = genai.read(attrs, events)  # an LLM span speaking GenAI too
    else:
        prompt, response, calls = genai.read(attrs, events)
        dialect = "genai"
    try:
        tokens, dropped = token_count(attrs), 0
    except OutOfRangeNumber:
        # A count no column can hold costs the turn its count, not the turn.
        tokens, dropped = None, 1
    return TurnCandidate(prompt, response, tokens, calls,
                         questions_from_tool_calls(calls, question_tools) if calls else [], dialect, dropped)


#: The first characters of a text a reader may take for a JSON body (see read_turn).
_NOT_PLAIN = "{[ \t\r\n"


class OutOfRangeNumber(SpanContentError):
    """A number past 64 bits: dropped from its turn, the turn kept."""


def int_attribute(
    attrs: Mapping[str, Any],
    key: str,
    *,
    invalid: type[ValueError] = SpanContentError,
    out_of_range: type[ValueError] = OutOfRangeNumber,
) -> int | None:
    """The integer attribute ``key`` (an int, a whole float or a string of digits), or None
    when absent; ``invalid`` for another value, ``out_of_range`` past 64 bits."""
    value = attrs.get(key)
    if value is None:
        return None
    return _int_value(key, value, invalid, out_of_range)


_INT64_MIN, _INT64_END = -(2**63), 2**63


def _int_value(key: str, value: Any, invalid: type[ValueError] = SpanContentError,
               out_of_range: type[ValueError] = OutOfRangeNumber) -> int:
    if type(value) is int and _INT64_MIN <= value < _INT64_END:
        return value  # the usual count or number: none of the conversions below apply
    if isinstance(value, bool):
        raise invalid(f"attribute {key} must be an integer, got a bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        if len(value.strip()) > 20:  # past int64 anyway; int() of huge strings is slow
            raise out_of_range(f"attribute {key} is out of range: {value.strip()[:20]}...")
        result = int(value)
    else:
        raise invalid(f"attribute {key} must be an integer, got {value!r:.60}")
    if not _INT64_MIN <= result < _INT64_END:
        raise out_of_range(f"attribute {key} is out of range: {result}")
    return result


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:  # most keys asked for are absent: no call for them
            if type(value) is int and _INT64_MIN <= value < _INT64_END:
                return value  # _int_value's first answer, without the call
            return _int_value(key, value)
    return None


def token_count(attrs: Mapping[str, Any]) -> int | None:
    """Total tokens of the call: the total when given, else input plus output."""
    # The usual count, OpenInference's total as an int: the loop's first answer, without its calls.
    total = attrs.get(_OPENINFERENCE_TOTAL)
    if type(total) is int and _INT64_MIN <= total < _INT64_END:
        return total
    for total_keys, in_keys, out_keys in _TOKEN_KEYS:
        total = _first(attrs, total_keys)
        if total is not None:
            return total
        prompt, completion = _first(attrs, in_keys), _first(attrs, out_keys)
        if prompt is not None or completion is not None:
            total = (prompt or 0) + (completion or 0)
            if total >= 2**63:
                raise OutOfRangeNumber(f"token count is out of range: {total}")
            return total
    return None
