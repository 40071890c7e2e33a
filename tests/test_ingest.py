"""``ppp-otel ingest``: an OTLP/HTTP receiver that fills the trajectory database.

Spans are made by the real OpenTelemetry SDK and, where it matters, sent by
the real ``OTLPSpanExporter``; other bodies are built from the same spans so
that ordering, encoding and damage can be chosen by the test.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel.ingest import wire as otlp
from ppp_otel.ingest.assembler import TrajectoryAssembler
from ppp_otel.ingest.server import IngestServer
from ppp_otel.ingest.wire import OtlpSpan
from backends import run_sql

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


# --- helpers ----------------------------------------------------------------

def record_conversation(*, turns=("Fix the test", "Use pytest"), spec="spec-1", agent="agent-a"):
    """The SDK's spans for one trajectory, in the order they end (turns first)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with ppp_otel.trajectory(spec, agent, tracer_provider=provider):
        for prompt in turns:
            with ppp_otel.turn(prompt, tracer_provider=provider) as t:
                t.respond(f"done: {prompt}", token_count=7)
    provider.shutdown()
    return list(memory.get_finished_spans())


def body_of(spans) -> bytes:
    return encode_spans(spans).SerializeToString()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers  # case-insensitive
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def stored_turns(db: Path) -> list[tuple]:
    return [tuple(row) for row in run_sql(
        str(db),
        """SELECT t.spec_id, t.agent_name, u.turn_number, u.prompt, u.response, u.token_count
           FROM trajectory_turns u JOIN trajectories t ON t.id = u.trajectory_id
           ORDER BY t.id, u.turn_number""",
    )]


def count(db: Path, table: str) -> int:
    return run_sql(str(db), f"SELECT count(*) FROM {table}")[0][0]


@pytest.fixture
def db_path(store_url):
    """Every receiver test runs on a SQLite file and on a PostgreSQL store."""
    return store_url


@pytest.fixture
def server(db_path):
    receiver = IngestServer(db_path, port=0).start()
    yield receiver
    receiver.stop()


def traces_url(server: IngestServer) -> str:
    return server.url + "/v1/traces"


TWO_TURNS = [
    ("spec-1", "agent-a", 1, "Fix the test", "done: Fix the test", 7),
    ("spec-1", "agent-a", 2, "Use pytest", "done: Use pytest", 7),
]


# --- what lands ---------------------------------------------------------------

def test_real_otlp_exporter_traffic_lands_as_a_trajectory_with_its_turns(db_path, server):
    exporter = OTLPSpanExporter(endpoint=traces_url(server))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
        for prompt in ("Fix the test", "Use pytest"):
            with ppp_otel.turn(prompt, tracer_provider=provider) as t:
                t.respond(f"done: {prompt}", token_count=7)
    provider.shutdown()
    server.stop()
    assert stored_turns(db_path) == TWO_TURNS


def test_json_bodies_with_hex_ids_land(db_path, server):
    status, _, headers = post(traces_url(server), otlp.request_to_json(encode_spans(record_conversation())), JSON)
    server.stop()
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert stored_turns(db_path) == TWO_TURNS


def test_gzip_bodies_land(db_path, server):
    body = gzip.compress(body_of(record_conversation()))
    status, _, _ = post(traces_url(server), body, {**PROTOBUF, "Content-Encoding": "gzip"})
    server.stop()
    assert status == 200
    assert stored_turns(db_path) == TWO_TURNS


def test_the_same_spans_delivered_twice_are_stored_once(db_path, server):
    body = body_of(record_conversation())
    assert post(traces_url(server), body, PROTOBUF)[0] == 200
    assert post(traces_url(server), body, PROTOBUF)[0] == 200
    server.stop()
    assert stored_turns(db_path) == TWO_TURNS
    assert count(db_path, "trajectories") == 1


def test_turns_sent_batches_before_their_trajectory_land_in_start_order(db_path, server):
    turn_1, turn_2, trajectory = record_conversation()
    # The later turn first, each in its own request, the trajectory last.
    for batch in ([turn_2], [turn_1], [trajectory]):
        assert post(traces_url(server), body_of(batch), PROTOBUF)[0] == 200
    server.stop()
    assert stored_turns(db_path) == TWO_TURNS


def test_a_turn_whose_trajectory_is_already_stored_lands_without_waiting(db_path):
    turn_1, turn_2, trajectory = record_conversation()
    with IngestServer(db_path, port=0) as first:
        post(traces_url(first), body_of([turn_1, trajectory]), PROTOBUF)
    with IngestServer(db_path, port=0) as second:  # a restart: nothing in memory
        post(traces_url(second), body_of([turn_2]), PROTOBUF)
        assert second.stats["pending_spans"] == 0
    assert stored_turns(db_path) == TWO_TURNS


def test_a_waiting_parent_is_named_as_stored_only_once_another_writer_has_stored_it(db_path, server):
    # What an ingest on SQLite looks for now and then: trajectories another process stored.
    from ppp_otel.records import format_span_id, format_trace_id, trajectory_record
    from ppp_otel.storage import open_store

    *turns, trajectory = record_conversation()
    assert post(traces_url(server), body_of(turns), PROTOBUF)[0] == 200
    server.stop()
    parent = (format_trace_id(trajectory.context.trace_id), format_span_id(trajectory.context.span_id))
    with open_store(str(db_path)) as store:
        assert store.waiting_parents() == [parent]
        assert store.stored_waiting_parents() == []
        store.write([trajectory_record(*parent, trajectory.attributes, start_ns=trajectory.start_time)])
        assert store.stored_waiting_parents() == [parent]


def test_status_counts_the_turns_waiting_for_their_trajectory(db_path, server, capsys):
    from ppp_otel.cli import main

    *turns, _trajectory = record_conversation()
    assert post(traces_url(server), body_of(turns), PROTOBUF)[0] == 200
    assert main(["status", "--db", str(db_path), "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)["pending"]
    assert (pending["pending_spans"], pending["pending_turns"]) == (2, 2)
    assert pending["oldest_pending_age_s"] >= 0


def test_an_llm_span_inside_a_turn_is_part_of_that_turn_not_another(db_path, server):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent")
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
        with ppp_otel.turn("Fix the test", tracer_provider=provider) as t:
            with tracer.start_as_current_span("ChatCompletion", attributes={"openinference.span.kind": "LLM"}):
                pass
            t.respond("done")
    post(traces_url(server), body_of(memory.get_finished_spans()), PROTOBUF)
    server.stop()
    assert [(n, p) for _, _, n, p, _, _ in stored_turns(db_path)] == [(1, "Fix the test")]


def test_spans_outside_any_trajectory_are_ignored(db_path, server):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("web").start_as_current_span("GET /"):
        with ppp_otel.turn("stray", tracer_provider=provider):
            pass
    status, _, _ = post(traces_url(server), body_of(memory.get_finished_spans()), PROTOBUF)
    server.stop()
    assert status == 200
    assert stored_turns(db_path) == [] and server.stats["pending_spans"] == 0


def test_a_span_with_a_bad_id_is_rejected_in_a_partial_success_and_the_rest_land(db_path, server):
    request = encode_spans(record_conversation())
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.name, bad.trace_id, bad.span_id = "broken", b"\x01" * 3, b"\x02" * 8
    status, body, _ = post(traces_url(server), request.SerializeToString(), PROTOBUF)
    server.stop()
    response = ExportTraceServiceResponse.FromString(body)
    assert status == 200
    assert response.partial_success.rejected_spans == 1
    assert "trace id" in response.partial_success.error_message
    assert stored_turns(db_path) == TWO_TURNS


def test_a_turn_with_a_malformed_attribute_is_rejected_and_its_siblings_land(db_path, server):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
        with ppp_otel.turn("fine", tracer_provider=provider) as t:
            t.respond("ok")
        with ppp_otel.turn("bad", tracer_provider=provider) as t:
            t.span.set_attribute("llm.token_count.total", "lots")
    status, body, _ = post(traces_url(server), body_of(memory.get_finished_spans()), PROTOBUF)
    server.stop()
    assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1
    assert [p for _, _, _, p, _, _ in stored_turns(db_path)] == ["fine"]


# --- what is refused -------------------------------------------------------------

def test_an_unparseable_protobuf_body_gets_400_with_the_reason(server):
    status, body, _ = post(traces_url(server), b"\xff\xff\xff not protobuf", PROTOBUF)
    from google.rpc.status_pb2 import Status

    assert status == 400
    assert "does not parse" in Status.FromString(body).message


def test_an_unparseable_json_body_gets_400_with_the_reason(server):
    status, body, _ = post(traces_url(server), b'{"resourceSpans": [', JSON)
    assert status == 400
    assert "JSON body does not parse" in json.loads(body)["message"]


def test_a_json_body_with_a_non_hex_id_gets_400_naming_the_field(server):
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}
    status, body, _ = post(traces_url(server), json.dumps(document).encode(), JSON)
    assert status == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in json.loads(body)["message"]


def test_a_broken_gzip_body_gets_400(server):
    status, _, _ = post(traces_url(server), b"\x1f\x8b not gzip", {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 400


def test_a_wrong_path_gets_404(server):
    status, _, _ = post(server.url + "/v1/metrics", body_of(record_conversation()), PROTOBUF)
    assert status == 404


def test_a_wrong_content_type_gets_415(server):
    status, body, _ = post(traces_url(server), b"hello", {"Content-Type": "text/plain"})
    assert status == 415
    assert "application/x-protobuf" in json.loads(body)["message"]


def test_a_body_over_the_limit_gets_413(db_path):
    with IngestServer(db_path, port=0, max_body_bytes=100) as small:
        status, _, _ = post(traces_url(small), body_of(record_conversation()), PROTOBUF)
    assert status == 413


def test_a_gzip_body_that_inflates_over_the_limit_gets_413(db_path):
    with IngestServer(db_path, port=0, max_body_bytes=10_000) as small:
        status, _, _ = post(traces_url(small), gzip.compress(b"\0" * 1_000_000), {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413


def test_without_the_bearer_token_a_request_gets_401(db_path):
    with IngestServer(db_path, port=0, token="s3cret") as guarded:
        missing = post(traces_url(guarded), body_of(record_conversation()), PROTOBUF)[0]
        wrong = post(traces_url(guarded), body_of(record_conversation()), {**PROTOBUF, "Authorization": "Bearer nope"})[0]
    assert (missing, wrong) == (401, 401)
    assert stored_turns(db_path) == []


def test_refused_requests_are_counted_in_the_servers_stats(db_path):
    with IngestServer(db_path, port=0, token="s3cret") as guarded:
        post(traces_url(guarded), body_of(record_conversation()), PROTOBUF)
        post(traces_url(guarded), b"\xff\xff", {**PROTOBUF, "Authorization": "Bearer s3cret"})
        assert guarded.stats["refused_requests"] == 2


def test_with_the_bearer_token_the_real_exporter_gets_in(db_path):
    with IngestServer(db_path, port=0, token="s3cret") as guarded:
        exporter = OTLPSpanExporter(endpoint=traces_url(guarded), headers={"Authorization": "Bearer s3cret"})
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
            with ppp_otel.turn("hello", tracer_provider=provider):
                pass
        provider.shutdown()
    assert [p for _, _, _, p, _, _ in stored_turns(db_path)] == ["hello"]


def test_the_receiver_listens_on_localhost_by_default(db_path):
    with IngestServer(db_path, port=0) as receiver:
        assert receiver.host == "127.0.0.1"


# --- held spans ------------------------------------------------------------------

def otlp_span(span_id: str, parent: str | None, name: str, **attributes) -> OtlpSpan:
    return OtlpSpan("ab" * 16, span_id, parent, name, attributes, [], 1, 2, {})


def test_turns_whose_trajectory_is_late_leave_memory_counted_after_the_ttl():
    now = [0.0]
    assembler = TrajectoryAssembler(pending_ttl_s=60, clock=lambda: now[0])
    assembler.add([otlp_span("01" * 8, "0f" * 8, "ppp.turn"), otlp_span("02" * 8, "0f" * 8, "helper")])
    assert assembler.pending == 2
    now[0] = 61.0
    assert assembler.expire() == 1
    assert (assembler.pending, assembler.orphans, assembler.expired) == (0, 1, 2)


def test_the_pending_buffer_moves_its_oldest_spans_out_of_memory_when_full():
    assembler = TrajectoryAssembler(max_pending_spans=2)
    assembler.add([otlp_span(f"{i:016x}", f"{100 + i:016x}", "ppp.turn") for i in range(1, 4)])
    assert (assembler.pending, assembler.orphans) == (2, 1)


def test_spans_that_left_memory_are_read_back_when_their_parent_arrives():
    staged = {}
    assembler = TrajectoryAssembler(max_pending_spans=1, load_staged=lambda parent: staged.pop(parent, []))
    trajectory = otlp_span("0a" * 8, None, "ppp.trajectory", **{"ppp.spec_id": "s"})
    first = otlp_span("01" * 8, "0a" * 8, "ppp.turn", **{"input.value": "first"})
    second = otlp_span("02" * 8, "0b" * 8, "ppp.turn", **{"input.value": "elsewhere"})
    held = assembler.add([first])
    assert [span for span, _ in held.staged] == [first]  # to be written to pending_spans
    staged[("ab" * 16, "0a" * 8)] = [first]
    assembler.add([second])  # pushes the first out of memory
    assert assembler.pending == 1
    released = assembler.add([trajectory])
    assert [getattr(r, "prompt", None) for r in released.records] == [None, "first"]
    assert released.released == [("ab" * 16, "01" * 8)]  # to be deleted from pending_spans


def test_a_redelivered_held_span_waits_once():
    assembler = TrajectoryAssembler()
    span = otlp_span("01" * 8, "0f" * 8, "ppp.turn")
    assembler.add([span])
    assembler.add([span])
    assert assembler.pending == 1


# --- the command -----------------------------------------------------------------

def test_sigterm_makes_ppp_otel_ingest_write_what_it_accepted_and_exit_0(db_path, tmp_path):
    command = [os.path.join(os.path.dirname(sys.executable), "ppp-otel"), "ingest", "--db", str(db_path), "--port", "0",
               "--grpc-port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "listening on" in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        assert post(url, body_of(record_conversation()), PROTOBUF)[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stored_turns(db_path) == TWO_TURNS


def test_a_turn_number_past_64_bits_is_dropped_from_its_turn_not_the_turn():
    assembler = TrajectoryAssembler()
    trajectory = otlp_span("0a" * 8, None, "ppp.trajectory", **{"ppp.spec_id": "s"})
    absurd = otlp_span("01" * 8, "0a" * 8, "ppp.turn", **{"ppp.turn.number": "0" * 100_000})
    fine = otlp_span("02" * 8, "0a" * 8, "ppp.turn", **{"input.value": "hi"})
    assembled = assembler.add([absurd, fine, trajectory])
    assert [type(r).__name__ for r in assembled.records] == ["TrajectoryRecord", "TurnRecord", "TurnRecord"]
    # The number that cannot be stored is dropped from its turn; the turn is kept.
    assert sorted(r.dropped_values for r in assembled.records[1:]) == [0, 1] and not assembled.rejected


def test_a_full_queue_refuses_the_whole_request_with_503_and_a_retry_loses_nothing(db_path):
    from ppp_otel.capture.processor import TrajectorySpanProcessor

    processor = TrajectorySpanProcessor(db_path, max_queue_size=3, buffer_size=1000, flush_interval_ms=60_000)
    receiver = IngestServer(db_path, port=0, processor=processor).start()
    try:
        turn_1, turn_2, trajectory = record_conversation()
        assert post(traces_url(receiver), body_of([turn_1, turn_2]), PROTOBUF)[0] == 200  # held
        processor.submit([object()] * 3)  # the queue is full of other work
        status, _, _ = post(traces_url(receiver), body_of([trajectory]), PROTOBUF)
        assert status == 503  # nothing was released and lost
        assert processor.force_flush(10_000)  # the other work is done
        assert post(traces_url(receiver), body_of([trajectory]), PROTOBUF)[0] == 200
    finally:
        receiver.stop()
    assert stored_turns(db_path) == TWO_TURNS


def test_a_commit_waiter_whose_event_loop_has_closed_is_woken_without_raising():
    import asyncio

    from ppp_otel.ingest.receiver import _Committed

    loop = asyncio.new_event_loop()
    waiter = _Committed(loop)
    loop.close()  # the server stopped while the request waited
    waiter.set()  # on the writer thread, which must not die of it
    assert waiter.event.is_set()


def test_a_model_call_without_content_that_waited_across_a_restart_is_counted_under_its_instrumentation(db_path):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
        with provider.get_tracer("some-instrumentation").start_as_current_span(
                "chat m", attributes={"gen_ai.operation.name": "chat"}):
            pass
    provider.shutdown()
    call, trajectory = memory.get_finished_spans()
    with IngestServer(db_path, port=0) as first:  # the call waits for its trajectory in pending_spans
        post(traces_url(first), body_of([call]), PROTOBUF)
    with IngestServer(db_path, port=0) as second:  # a restart: read back from the database
        post(traces_url(second), body_of([trajectory]), PROTOBUF)
        stats = second.stats
    assert stats["turns_without_content_by_instrumentation"] == {"some-instrumentation": 1}
