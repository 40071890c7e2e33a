"""``trajectory()`` and ``turn()``: plain OpenTelemetry spans that follow the conventions.

Any exporter sees them; the TrajectorySpanProcessor also writes them to SQLite.
Arguments are checked here, at the call, so that a mistake in agent code is a
``ValueError`` naming the argument rather than a silently dropped row later.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.trace import Span, TracerProvider

from ppp_otel import conventions as c
from ppp_otel.capture import numbering
from ppp_otel.logs import LogLimiter
from ppp_otel.model import check_effort, check_severity
from ppp_otel.records import format_span_id, format_trace_id

logger = logging.getLogger(__name__)

_TRACER_NAME = "ppp_otel"
_provider: TracerProvider | None = None
# The innermost open trajectory() of this thread or task, for numbering its turns.
_current: ContextVar["Trajectory | None"] = ContextVar("ppp_otel_trajectory", default=None)


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """The provider ``trajectory()`` and ``turn()`` use; ``register()`` sets it."""
    global _provider
    _provider = provider


def _tracer(provider: TracerProvider | None):
    from ppp_otel import __version__

    return trace.get_tracer(_TRACER_NAME, __version__, tracer_provider=provider or _provider)


# Recording nothing must not go unnoticed, nor fill the log.
_warned = LogLimiter.once(logger)


def _warn_once(what: str, message: str) -> None:
    _warned(message, key=what)


def _check_recordable(provider: TracerProvider | None) -> None:
    if provider is None and _provider is None and not isinstance(trace.get_tracer_provider(), SDKTracerProvider):
        _warn_once(
            "no provider",
            "ppp-otel: no TracerProvider is set up, so nothing is recorded; call ppp_otel.register() first",
        )


def _nonempty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


class Trajectory:
    """An open trajectory: one agent working on one spec."""

    def __init__(
        self,
        span: Span,
        spec_id: str,
        agent_name: str,
        run_id: str | None,
        session_id: str,
        tracer_provider: TracerProvider | None = None,
    ):
        self.span = span
        self.spec_id = spec_id
        self.agent_name = agent_name
        self.run_id = run_id
        self.session_id = session_id
        # Turns opened through this handle go to the provider the trajectory went to.
        self.tracer_provider = tracer_provider

    @property
    def trace_id(self) -> str:
        return format_trace_id(self.span.get_span_context().trace_id)

    @property
    def span_id(self) -> str:
        return format_span_id(self.span.get_span_context().span_id)

    def set_technical_score(self, score: float) -> None:
        """The task score from the agent's own checks (tests passed, ...), used by consensus."""
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"score must be a number, got {score!r}")
        self.span.set_attribute(c.TECHNICAL_SCORE, float(score))

    def turn(self, prompt: str, *, number: int | None = None):
        return turn(prompt, number=number, tracer_provider=self.tracer_provider)


class Turn:
    """One exchange: the user's prompt and the agent's response."""

    def __init__(self, span: Span):
        self.span = span

    def respond(self, text: str, token_count: int | None = None) -> None:
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        if token_count is not None and (isinstance(token_count, bool) or not isinstance(token_count, int) or token_count < 0):
            raise ValueError(f"token_count must be a non-negative integer, got {token_count!r}")
        self.span.set_attribute(c.OUTPUT_VALUE, text)
        if token_count is not None:
            self.span.set_attribute(c.TOKEN_COUNT_TOTAL, token_count)

    def question(self, text: str, effort: str | None = None) -> None:
        """A question put to the user; ``effort`` None leaves it to the classifier."""
        _nonempty("text", text)
        attributes = {c.QUESTION_TEXT: text}
        if effort is not None:
            attributes[c.QUESTION_EFFORT] = check_effort(effort)
        self.span.add_event(c.QUESTION_EVENT, attributes)

    def violation(self, preference: str, expected: str, actual: str, severity: str) -> None:
        """The agent went against one of the user's interaction preferences."""
        _nonempty("preference", preference)
        check_severity(severity)
        self.span.add_event(
            c.VIOLATION_EVENT,
            {
                c.VIOLATION_PREFERENCE: preference,
                c.VIOLATION_EXPECTED: str(expected),
                c.VIOLATION_ACTUAL: str(actual),
                c.VIOLATION_SEVERITY: severity,
            },
        )


@contextmanager
def trajectory(
    spec_id: str,
    agent_name: str,
    run_id: str | None = None,
    *,
    preferences: Sequence[str] | None = None,
    session_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Iterator[Trajectory]:
    """Open a trajectory span; turns started inside it belong to it."""
    _nonempty("spec_id", spec_id)
    _nonempty("agent_name", agent_name)
    _check_recordable(tracer_provider)
    if run_id is not None:
        _nonempty("run_id", run_id)
    attributes: dict[str, object] = {
        c.SPAN_KIND: c.KIND_AGENT,
        c.SPEC_ID: spec_id,
        c.AGENT_NAME: agent_name,
        c.SESSION_ID: session_id or uuid.uuid4().hex,
        c.INPUT_VALUE: spec_id,
    }
    if run_id is not None:
        attributes[c.RUN_ID] = run_id
    if preferences:
        if isinstance(preferences, str) or not all(isinstance(p, str) for p in preferences):
            raise ValueError(f"preferences must be a list of strings, got {preferences!r}")
        from ppp_otel.analysis.preferences import parse_preference

        for spec in preferences:
            try:
                parse_preference(spec)
            except ValueError as exc:
                raise ValueError(f"preferences: {exc}") from None
        attributes[c.PREFERENCES] = list(preferences)
    with _tracer(tracer_provider).start_as_current_span(c.TRAJECTORY_SPAN, attributes=attributes) as span:
        opened = Trajectory(
            span, spec_id, agent_name, run_id, str(attributes[c.SESSION_ID]), tracer_provider
        )
        span_id = span.get_span_context().span_id
        numbering.open_trajectory(span_id)
        token = _current.set(opened)
        try:
            yield opened
        finally:
            _current.reset(token)
            numbering.close_trajectory(span_id)


@contextmanager
def turn(
    prompt: str,
    *,
    number: int | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Iterator[Turn]:
    """Open a turn span in the current trajectory; numbered in start order unless given."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
        raise ValueError(f"number must be a positive integer, got {number!r}")
    attributes: dict[str, object] = {c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: prompt}
    current = _current.get()
    if number is None and current is not None:
        number = numbering.next_turn_number(current.span.get_span_context().span_id)
    if current is None and not trace.get_current_span().get_span_context().is_valid:
        _warn_once(
            "turn outside",
            "ppp-otel: turn() outside any trajectory is not recorded; open one with ppp_otel.trajectory()",
        )
    if number is not None:
        attributes[c.TURN_NUMBER] = number
    with _tracer(tracer_provider).start_as_current_span(c.TURN_SPAN, attributes=attributes) as span:
        yield Turn(span)

