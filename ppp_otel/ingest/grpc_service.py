"""The gRPC side of ``ppp-otel ingest``: ``TraceService/Export`` on grpcio's server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ppp_otel.ingest import wire as otlp
from ppp_otel.ingest.http import authorized

if TYPE_CHECKING:
    from ppp_otel.ingest.server import IngestServer

logger = logging.getLogger(__name__)


_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class _GrpcService:
    """``TraceService/Export`` with the same token, limits and answers as HTTP, as gRPC status codes."""

    def __init__(self, receiver: IngestServer):
        self.receiver = receiver

    def handler(self) -> Any:
        import grpc

        return grpc.method_handlers_generic_handler(_TRACE_SERVICE, {
            # Raw bytes in: a body that does not parse gets INVALID_ARGUMENT with the reason,
            # not grpcio's generic "exception deserializing request".
            "Export": grpc.unary_unary_rpc_method_handler(
                self.export, request_deserializer=None,
                response_serializer=lambda m: m.SerializeToString(),
            ),
        })

    def _refuse(self, context: Any, code: Any, message: str) -> None:
        """Abort the call, counted and logged as the HTTP receiver does its refusals."""
        self.receiver.ingest.refusals.add()
        logger.info("ppp-otel ingest: gRPC %s: %s", code.name, message)
        context.abort(code, message)

    def export(self, body: bytes, context: Any) -> Any:
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        r = self.receiver
        metadata = dict(context.invocation_metadata() or ())
        if not authorized(metadata.get("authorization"), r.token):
            self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            request = otlp.parse_request(body, otlp.PROTOBUF)
        except otlp.BodyError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            outcome = r.ingest.ingest(request, r.commit_timeout_s)
        except Exception as exc:
            logger.exception("ppp-otel ingest: gRPC export failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        if not outcome.committed:
            # UNAVAILABLE is what OTLP exporters retry with backoff.
            context.abort(grpc.StatusCode.UNAVAILABLE, outcome.why_not_committed())
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.first_error or ""
        return response
