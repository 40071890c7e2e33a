"""OTLP over gRPC into the same ingest as OTLP/HTTP.

The Collector's ``loadbalancing`` exporter, which routes each trace id to one
of several ``ppp-otel ingest`` replicas, speaks only OTLP/gRPC; so do many
SDKs by default. An ``Export`` call goes through the same
:class:`~ppp_otel.ingest.server.SpanIngest` as a POST to ``/v1/traces``, with
the same answers: partial success for rejected spans, ``UNAVAILABLE`` (which
OTLP clients retry) when the queue is full, ``UNAUTHENTICATED`` without the
bearer token.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

logger = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 4317


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, ingest: Any, token: str | None):
        self._ingest = ingest
        self._expected = f"Bearer {token}".encode() if token is not None else None

    def Export(self, request, context):  # noqa: N802: the gRPC method's name
        if self._expected is not None:
            given = dict(context.invocation_metadata()).get("authorization", "")
            if not hmac.compare_digest(given.strip().encode(), self._expected):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        outcome = self._ingest.ingest(request)
        if outcome.not_queued:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"queue full; {outcome.not_queued} records not taken")
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.first_error or ""
        return response


class GrpcReceiver:
    """A gRPC server on ``host:port`` (0 picks a free port, see ``.port``)."""

    def __init__(self, ingest: Any, host: str, port: int, token: str | None, *, max_message_bytes: int,
                 workers: int = 4):
        options = [("grpc.max_receive_message_length", max_message_bytes)]
        self._server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ppp-otel-grpc"),
                                   options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(ingest, token), self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        self.host = host

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float = 10) -> None:
        """Refuse new calls, let those in flight finish."""
        self._server.stop(grace_s).wait()
