"""Model calls recorded without message content: noticed, counted and said once per instrumentation.

Several instrumentations record no prompt or reply unless told to (e.g.
``opentelemetry-instrumentation-openai-v2`` without
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``): their turns are stored,
with token counts but empty. The in-process recorder and ``ppp-otel ingest``
use the same :class:`ContentlessCalls`, so both say it in the same words; over
OTLP the setting is to be changed in the process that sends the spans.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .. import conventions as c
from ..logs import LogLimiter

if TYPE_CHECKING:
    from . import TurnCandidate

#: What a span whose scope has no name is counted under.
UNNAMED = "an unnamed instrumentation"
#: Instrumentations counted by name; past this many (a sender inventing scope names), the rest share one.
MAX_NAMED = 100
OTHERS = "other instrumentations"

_GENAI = ("OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental and "
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY")
# The setting that turns content capture on, by the scope names instrumentations trace under
# (prefixes; the first that matches). opentelemetry-instrumentation-openai-v2 traces through
# opentelemetry-util-genai, under the latter's name.
_SETTINGS = (
    ("opentelemetry.util.genai", _GENAI),
    ("opentelemetry.instrumentation.openai_v2", _GENAI),
    ("opentelemetry.instrumentation.openai", "TRACELOOP_TRACE_CONTENT=true"),
    ("opentelemetry.instrumentation.anthropic", "TRACELOOP_TRACE_CONTENT=true"),
)
_ANY = "e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY for opentelemetry-instrumentation-openai-v2"


def content_setting(scope: str | None) -> str:
    """What to set for the instrumentation tracing under ``scope`` to record message content."""
    for prefix, setting in _SETTINGS:
        if scope and (scope == prefix or scope.startswith(prefix + ".")):
            return "set " + setting
    return _ANY


def has_content(candidate: TurnCandidate) -> bool:
    """Whether a model call says anything a turn can show: a prompt, a reply or a tool call."""
    return bool(candidate.prompt or candidate.response or candidate.tool_calls)


class ContentlessCalls:
    """Counts model calls without message content by instrumentation (scope name) and logs
    one line per instrumentation. ``source`` starts the line (``ppp-otel``, ``ppp-otel
    ingest``); ``remote`` says the spans come from another process. Thread-safe."""

    def __init__(self, logger: logging.Logger, source: str = "ppp-otel", *, remote: bool = False):
        self.source = source
        self.remote = remote
        self._once = LogLimiter.once(logger)
        self._lock = threading.Lock()
        self.by_instrumentation: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.by_instrumentation.values())

    def check(self, span_name: str | None, scope: str | None, candidate: TurnCandidate,
              service: str | None = None) -> bool:
        """Note one model call; True when it carried no content. A ``ppp.turn`` span is the
        application's own (``turn()``): what it leaves out is its choice, not a setting."""
        if span_name == c.TURN_SPAN or has_content(candidate):
            return False
        name = scope or UNNAMED
        with self._lock:
            if name not in self.by_instrumentation and len(self.by_instrumentation) >= MAX_NAMED:
                name = OTHERS
            self.by_instrumentation[name] = self.by_instrumentation.get(name, 0) + 1
        sender = f" (service {service})" if self.remote and service else ""
        where = " in the process that sends them" if self.remote else ""
        self._once(
            "%s: model calls traced by %s%s carry no message content, so their turns are stored without "
            "prompt or response; turn its content capture on%s (%s; README, \"Agents already instrumented\")",
            self.source, name, sender, where, content_setting(scope), key=name,
        )
        return True

    def stats(self) -> dict[str, object]:
        with self._lock:
            counts = dict(self.by_instrumentation)
        return {"turns_without_content": sum(counts.values()),
                "turns_without_content_by_instrumentation": counts}


__all__ = ["ContentlessCalls", "content_setting", "has_content"]
