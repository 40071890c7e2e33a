"""Spans to Phoenix over OTLP/HTTP, quiet when Phoenix is down and quick to shut down.

The stock OTLP exporter retries for up to its 10 s timeout and logs every
retry with urllib3's wording, never naming Phoenix: a short script then takes
seconds to exit and prints a screenful. This one sends the same protobuf
body, retries a failed batch a few times while the process runs, logs one
line naming Phoenix and its URL when Phoenix is unreachable (and one when it
answers again, with the number of spans it missed), and once shutdown begins gives the last batches
``shutdown_timeout_s`` (1 s by default) in all.
"""

from __future__ import annotations

import threading
import time
from typing import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ppp_otel.logs import LogLimiter
from ppp_otel.publish.phoenix_link import PhoenixError, logger, post, reachability

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 1.0
_RETRY_DELAYS_S = (0.5, 1.0, 2.0)


class PhoenixSpanExporter(SpanExporter):
    """OTLP/HTTP protobuf to ``endpoint`` (``.../v1/traces``); counts what it could not send."""

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str] | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    ):
        self.endpoint = endpoint
        self._headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        self.timeout_s = timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self._closing = threading.Event()
        self._deadline = float("inf")
        self.reachability = reachability(endpoint)
        self._log_refused = LogLimiter(logger)
        self.exported_spans = 0
        self.failed_spans = 0

    def begin_shutdown(self) -> None:
        """From now on, the batches left share ``shutdown_timeout_s`` and are not retried."""
        if not self._closing.is_set():
            self._deadline = time.monotonic() + self.shutdown_timeout_s
            self._closing.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            body = encode_spans(spans).SerializeToString()
        except Exception as exc:  # a span the encoder cannot take: this batch only
            self.failed_spans += len(spans)
            self._log_refused("ppp-otel: a batch of %d spans for Phoenix could not be encoded: %r", len(spans), exc)
            return SpanExportResult.FAILURE
        for attempt in range(len(_RETRY_DELAYS_S) + 1):
            timeout = self.timeout_s
            if self._closing.is_set():
                timeout = min(timeout, self._deadline - time.monotonic())
                if timeout <= 0:
                    break
            known_down = self.reachability.is_down
            try:
                post(self.endpoint, body, self._headers, timeout)
            except PhoenixError as exc:
                self.reachability.failed(exc)
                # Retries are for a passing fault; a Phoenix known to be down is not waited for.
                if (not exc.retryable or known_down or attempt == len(_RETRY_DELAYS_S)
                        or self._closing.is_set()):
                    if exc.unreachable:  # timed out included
                        self.reachability.dropped(len(spans))
                    else:
                        self._log_refused("ppp-otel: Phoenix at %s refused %d spans: %s",
                                          self.endpoint, len(spans), exc)
                    break
                self._closing.wait(_RETRY_DELAYS_S[attempt])  # woken at once when shutdown begins
                continue
            self.reachability.up()
            self.exported_spans += len(spans)
            return SpanExportResult.SUCCESS
        self.failed_spans += len(spans)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.begin_shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class PhoenixForwarder(BatchSpanProcessor):
    """A batch processor whose shutdown tells its exporter first, so exit waits ~1 s at most."""

    def __init__(self, exporter: PhoenixSpanExporter, **kwargs):
        super().__init__(exporter, **kwargs)
        self.phoenix_exporter = exporter

    def shutdown(self) -> None:
        self.phoenix_exporter.begin_shutdown()
        super().shutdown()
