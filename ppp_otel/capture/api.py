"""``trajectory()`` and ``turn()``: plain OpenTelemetry spans that follow the conventions.

Any exporter sees them; the TrajectorySpanProcessor also writes them to SQLite.
Arguments are checked here, at the call, so that a mistake in agent code is a
``ValueError`` naming the argument rather than a silently dropped row later.
"""

from __future__ import annotations

import json
import logging
import time
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
# Open trajectory() spans by span id: the recorder tells them of the LLM spans
# other instrumentations make inside them (see note_model_turn).
_open: dict[int, "Trajectory"] = {}


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


def _records(provider: object) -> bool:
    """Whether spans made through this provider reach span processors: an SDK provider,
    or a proxy around one (logfire's ``ProxyTracerProvider`` keeps it in ``.provider``)."""
    for _ in range(4):
        if isinstance(provider, SDKTracerProvider):
            return True
        inner = getattr(provider, "provider", None)
        if inner is None or inner is provider:
            return False
        provider = inner
    return False


def _check_recordable(provider: TracerProvider | None) -> None:
    if provider is None and _provider is None and not _records(trace.get_tracer_provider()):
        _warn_once(
            "no provider",
            "ppp-otel: no TracerProvider is set up, so nothing is recorded; call ppp_otel.register() first, "
            "or, with a provider of your own, make it the global one (opentelemetry.trace.set_tracer_provider) "
            "or pass it as trajectory(..., tracer_provider=)",
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
        stage: str | None = None,
    ):
        self.span = span
        self.spec_id = spec_id
        self.agent_name = agent_name
        self.run_id = run_id
        self.session_id = session_id
        self.stage = stage
        # Turns opened through this handle go to the provider the trajectory went to.
        self.tracer_provider = tracer_provider
        # What Phoenix's session list shows as the conversation: the first
        # prompt and the last response, set on the span once, as it ends.
        self.first_prompt: str | None = None
        self.last_response: str | None = None
        self._responded_ns = 0
        self._started_ns = 1 << 63  # when the first turn() began
        # The first and last LLM span of another instrumentation inside this
        # trajectory (ended, read-only); read only when the trajectory ends.
        self._first_model_turn = None
        self._last_model_turn = None

    def _conversation(self) -> dict[str, str]:
        first_prompt, last_response = self.first_prompt, self.last_response
        if self._first_model_turn is not None:
            first_model = _said(self._first_model_turn)[0]
            last_model = _said(self._last_model_turn)[1]
            if first_prompt is None or (self._first_model_turn.start_time or 0) < self._started_ns:
                first_prompt = first_model if first_model is not None else first_prompt
            if last_model is not None and (last_response is None
                                           or (self._last_model_turn.end_time or 0) > self._responded_ns):
                last_response = last_model
        shown = {}
        if first_prompt is not None:
            shown[c.INPUT_VALUE] = first_prompt
        if last_response is not None:
            shown[c.OUTPUT_VALUE] = last_response
        return shown

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
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be between 0 and 1, got {score!r}")
        self.span.set_attribute(c.TECHNICAL_SCORE, float(score))

    def turn(self, prompt: str, *, number: int | None = None):
        return turn(prompt, number=number, tracer_provider=self.tracer_provider)


class Turn:
    """One exchange: the user's prompt and the agent's response."""

    def __init__(self, span: Span, trajectory: Trajectory | None = None):
        self.span = span
        self._trajectory = trajectory

    def respond(
        self,
        text: str,
        token_count: int | None = None,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        """The agent's reply; token counts are optional.

        Phoenix counts a session's tokens as prompt + completion of its LLM
        spans and ignores a bare total, so a ``token_count`` given without the
        split is also recorded as completion tokens: the reply's own.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        for name, value in (("token_count", token_count), ("prompt_tokens", prompt_tokens),
                            ("completion_tokens", completion_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        attributes: dict[str, object] = {c.OUTPUT_VALUE: text, **c.turn_message(response=text)}
        if prompt_tokens is None and completion_tokens is None:
            if token_count is not None:
                attributes[c.TOKEN_COUNT_TOTAL] = token_count
                attributes[c.TOKEN_COUNT_COMPLETION] = token_count
        else:
            if prompt_tokens is not None:
                attributes[c.TOKEN_COUNT_PROMPT] = prompt_tokens
            if completion_tokens is not None:
                attributes[c.TOKEN_COUNT_COMPLETION] = completion_tokens
            attributes[c.TOKEN_COUNT_TOTAL] = (
                token_count if token_count is not None else (prompt_tokens or 0) + (completion_tokens or 0)
            )
        self.span.set_attributes(attributes)
        if self._trajectory is not None:
            self._trajectory.last_response = text
            self._trajectory._responded_ns = time.time_ns()

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
    stage: str | None = None,
    user_context: str | None = None,
    session_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Iterator[Trajectory]:
    """Open a trajectory span; turns started inside it belong to it.

    ``stage`` names the spec's stage this trajectory works on (plan, tasks,
    implement, ...), so that consensus can judge the agents of one stage.
    ``user_context`` is what the user knows (the full request, e.g. the issue
    text): the LLM judge grades a question low when this answers it, as the
    PPP paper's user simulator does.
    """
    _nonempty("spec_id", spec_id)
    _nonempty("agent_name", agent_name)
    _check_recordable(tracer_provider)
    if run_id is not None:
        _nonempty("run_id", run_id)
    if stage is not None:
        _nonempty("stage", stage)
    if session_id is not None:
        _nonempty("session_id", session_id)
    attributes: dict[str, object] = {
        c.SPAN_KIND: c.KIND_AGENT,
        c.SPEC_ID: spec_id,
        c.AGENT_NAME: agent_name,
        # Until a turn gives the first prompt.
        c.INPUT_VALUE: spec_id,
        # Phoenix's trace list shows metadata and tags, not ppp.* attributes.
        c.METADATA: json.dumps(c.trajectory_metadata(spec_id, agent_name, run_id, stage)),
        c.TAGS: [agent_name],
    }
    if session_id is not None:
        attributes[c.SESSION_ID] = session_id
    if run_id is not None:
        attributes[c.RUN_ID] = run_id
    if stage is not None:
        attributes[c.STAGE] = stage
    if user_context is not None:
        if not isinstance(user_context, str):
            raise ValueError(f"user_context must be a string, got {type(user_context).__name__}")
        attributes[c.USER_CONTEXT] = user_context
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
    name = c.trajectory_span_name(agent_name, stage)
    with _tracer(tracer_provider).start_as_current_span(name, attributes=attributes) as span:
        context = span.get_span_context()
        if session_id is None:
            # Agent and trace id: what `ppp-otel export` and the session annotations
            # use too, so a session is found again from the database alone.
            session_id = c.default_session_id(agent_name, format_trace_id(context.trace_id))
            span.set_attribute(c.SESSION_ID, session_id)
        opened = Trajectory(span, spec_id, agent_name, run_id, session_id,
                            tracer_provider=tracer_provider, stage=stage)
        span_id = context.span_id
        numbering.open_trajectory(span_id)
        token = _current.set(opened)
        _open[span_id] = opened
        try:
            yield opened
        finally:
            try:
                _current.reset(token)
            except ValueError:
                # Ended in another context than the one it began in: an async generator
                # closed by another task or by the loop's finalizer. This context never
                # had it as current; OpenTelemetry logs its own detach the same way.
                pass
            _open.pop(span_id, None)
            numbering.close_trajectory(span_id)
            conversation = opened._conversation()
            if conversation:
                span.set_attributes(conversation)


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
    attributes: dict[str, object] = {c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: prompt, **c.turn_message(prompt)}
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
    if current is not None and current.first_prompt is None:
        current.first_prompt = prompt
        current._started_ns = time.time_ns()
    with _tracer(tracer_provider).start_as_current_span(c.TURN_SPAN, attributes=attributes) as span:
        yield Turn(span, current)


def _said(span) -> tuple[str | None, str | None]:
    """(prompt, response) of a model call's span, in whatever dialect it speaks."""
    from ppp_otel.dialects import read_turn

    try:
        candidate = read_turn(span.name, dict(span.attributes or {}),
                              [(e.name, e.attributes or {}) for e in span.events])
    except ValueError:  # a span the dialects cannot read: it shows nothing
        return None, None
    return (candidate.prompt, candidate.response) if candidate is not None else (None, None)


def note_model_turn(trajectory_span_id: int, span) -> None:
    """An LLM span another instrumentation made inside an open ``trajectory()`` ended.

    Called by the recorder on the app thread, so it only keeps the span: the
    prompt and response are read from the first and the last one when the
    trajectory ends, for its ``input.value`` / ``output.value``.
    """
    opened = _open.get(trajectory_span_id)
    if opened is not None:
        if opened._first_model_turn is None:
            opened._first_model_turn = span
        opened._last_model_turn = span


