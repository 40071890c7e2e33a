"""``ppp-otel ingest`` over OTLP/gRPC: the real gRPC exporter in, the same rows as over HTTP out."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from ppp_otel.ingest.server import IngestServer
from test_ingest import TWO_TURNS, record_conversation, stored_turns

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def call(server: IngestServer, body: bytes, metadata=()) -> grpc.StatusCode:
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        try:
            export(body, metadata=metadata, timeout=20)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


@pytest.fixture
def server(db_path):
    with IngestServer(db_path, port=0, grpc_port=0, token=None, max_body_bytes=100_000) as receiver:
        yield receiver


def test_the_real_grpc_exporter_lands_a_trajectory_with_its_turns(db_path, server):
    exporter = OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True)
    assert exporter.export(record_conversation()) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert stored_turns(db_path) == TWO_TURNS  # answered only once committed


def test_a_body_that_does_not_parse_gets_invalid_argument(server):
    assert call(server, b"\xff\xff\xff") == grpc.StatusCode.INVALID_ARGUMENT


def test_a_message_over_the_limit_gets_resource_exhausted(server):
    assert call(server, b"\x0a" + b"\x80" * 200_000) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_token_is_required_over_grpc_too(db_path):
    with IngestServer(db_path, port=0, grpc_port=0, token="s3cret") as guarded:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        body = encode_spans(record_conversation()).SerializeToString()
        assert call(guarded, body) == grpc.StatusCode.UNAUTHENTICATED
        assert call(guarded, body, [("authorization", "Bearer wrong")]) == grpc.StatusCode.UNAUTHENTICATED
        exporter = OTLPSpanExporter(endpoint=guarded.grpc_endpoint, insecure=True,
                                    headers={"authorization": "Bearer s3cret"})
        assert exporter.export(record_conversation()) == SpanExportResult.SUCCESS
        exporter.shutdown()
    assert len(stored_turns(db_path)) == 2


def test_a_full_writer_queue_gets_unavailable_which_exporters_retry(db_path):
    from ppp_otel.capture.processor import TrajectorySpanProcessor

    processor = TrajectorySpanProcessor(db_path, max_queue_size=3, buffer_size=1000, flush_interval_ms=60_000)
    with IngestServer(db_path, port=0, grpc_port=0, processor=processor) as receiver:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        processor.submit([object()] * 3)  # the queue is full of other work
        assert call(receiver, encode_spans(record_conversation()).SerializeToString()) == grpc.StatusCode.UNAVAILABLE


def test_an_export_that_cannot_be_made_durable_gets_unavailable_saying_why(tmp_path):
    import shutil

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    store = tmp_path / "store"
    store.mkdir()
    with IngestServer(store / "runs.db", port=0, grpc_port=0) as receiver:
        shutil.rmtree(store)  # the database's directory goes while the receiver runs
        body = encode_spans(record_conversation()).SerializeToString()
        with grpc.insecure_channel(receiver.grpc_endpoint) as channel:
            export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            for _ in range(2):  # the one queued when the writes began to fail, and one after
                with pytest.raises(grpc.RpcError) as raised:
                    export(body, timeout=25)  # under the receiver's own 30 s deadline
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "the database cannot be written now" in raised.value.details()


def test_a_grpc_port_in_use_is_a_clear_error_naming_the_way_out(db_path):
    import socket
    import subprocess

    from ingest_process import PPP_OTEL

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([PPP_OTEL, "ingest", "--db", str(db_path), "--port", "0", "--grpc-port", str(port)],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in done.stderr and "--grpc-port off" in done.stderr


def _ingest_with_a_port_taken(db_path, which: str):
    import socket
    import subprocess

    from ingest_process import PPP_OTEL

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = ["--port", str(port), "--grpc-port", "off"] if which == "http" else \
            ["--port", "0", "--grpc-port", str(port)]
        done = subprocess.run([PPP_OTEL, "ingest", "--db", str(db_path), *ports],
                              capture_output=True, text=True, timeout=30)
    return done, port


@pytest.mark.parametrize("taken, protocol", [("grpc", "gRPC"), ("http", "OTLP/HTTP")])
def test_a_port_in_use_is_one_line_naming_the_address_with_the_systems_reason_and_nothing_from_grpcio(
        db_path, taken, protocol):
    done, port = _ingest_with_a_port_taken(db_path, taken)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ppp-otel: error: cannot listen for {protocol} on 127.0.0.1:{port}: Address already in use "
        "(other ports: --port P, --grpc-port P, or --grpc-port off for HTTP only)"]


def test_an_address_that_cannot_be_listened_on_gets_no_hint_about_ports(db_path):
    import subprocess

    from ingest_process import PPP_OTEL

    # TEST-NET-1 (RFC 5737): never an address of this machine.
    done = subprocess.run([PPP_OTEL, "ingest", "--db", str(db_path), "--host", "192.0.2.1", "--port", "0",
                           "--grpc-port", "off"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("ppp-otel: error: cannot listen for OTLP/HTTP on 192.0.2.1:0: ")
    assert "other ports" not in done.stderr


def test_a_refused_grpc_call_is_logged_and_counted_as_http_refusals_are(db_path, caplog):
    import logging

    with IngestServer(db_path, port=0, grpc_port=0, token="s3cret") as guarded:
        with caplog.at_level(logging.INFO, logger="ppp_otel"):
            assert call(guarded, b"") == grpc.StatusCode.UNAUTHENTICATED
            assert call(guarded, b"\xff\xff\xff", [("authorization", "Bearer s3cret")]) == grpc.StatusCode.INVALID_ARGUMENT
        assert guarded.stats["refused_requests"] == 2
    assert "gRPC UNAUTHENTICATED: missing or wrong bearer token" in caplog.text
