"""Ingest replicas: several ``ppp-otel ingest`` processes writing one PostgreSQL store.

The spans of one trajectory may arrive at any replica (a load balancer that
rebalanced, a replica that restarted): every trajectory and turn is still
assembled and stored exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel.ingest.server import IngestServer
from backends import run_sql
from support import stop_process, wait_for
from test_ingest import PROTOBUF, body_of, post, record_conversation


def conversations(n: int, turns: int = 3) -> list[list]:
    return [record_conversation(turns=tuple(f"prompt {i}.{k}" for k in range(turns)), spec=f"spec-{i % 4}",
                                agent=f"agent-{i}") for i in range(n)]


def stored(db: str) -> tuple[int, int, list]:
    trajectories = run_sql(db, "SELECT count(*), count(DISTINCT span_id) FROM trajectories")[0]
    turns = run_sql(db, "SELECT count(*), count(DISTINCT span_id) FROM trajectory_turns")[0]
    assert trajectories[0] == trajectories[1] and turns[0] == turns[1]  # nothing twice
    per_trajectory = run_sql(db, """SELECT t.agent_name, count(u.id), min(u.turn_number), max(u.turn_number)
                                    FROM trajectories t LEFT JOIN trajectory_turns u ON u.trajectory_id = t.id
                                    GROUP BY t.agent_name ORDER BY t.agent_name""")
    return trajectories[0], turns[0], [tuple(r) for r in per_trajectory]


def pending(db: str) -> int:
    return run_sql(db, "SELECT count(*) FROM pending_spans")[0][0]


@pytest.fixture
def replicas(postgres_url):
    servers = [IngestServer(postgres_url, port=0).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def test_turns_at_one_replica_and_their_trajectory_at_another_are_stored_once(postgres_url, replicas):
    first, second = replicas
    everything = conversations(12)
    for i, spans in enumerate(everything):
        *turns, trajectory = spans  # turns end (and are exported) before their trajectory
        turn_at, trajectory_at = (first, second) if i % 2 == 0 else (second, first)
        assert post(turn_at.url + "/v1/traces", body_of(turns), PROTOBUF)[0] == 200
        assert post(trajectory_at.url + "/v1/traces", body_of([trajectory]), PROTOBUF)[0] == 200
    expected = [(f"agent-{i}", 3, 1, 3) for i in range(12)]
    assert wait_for(lambda: stored(postgres_url)[2] == sorted(expected), timeout_s=30)
    for server in replicas:
        server.stop()
    assert stored(postgres_url) == (12, 36, sorted(expected))
    assert pending(postgres_url) == 0


def test_the_same_spans_delivered_to_both_replicas_are_stored_once(postgres_url, replicas):
    everything = conversations(6)
    for spans in everything:
        for server in replicas:
            assert post(server.url + "/v1/traces", body_of(spans[:-1]), PROTOBUF)[0] == 200
        for server in reversed(replicas):
            assert post(server.url + "/v1/traces", body_of(spans[-1:]), PROTOBUF)[0] == 200
    for server in replicas:
        server.stop()
    assert stored(postgres_url)[:2] == (6, 18)
    assert pending(postgres_url) == 0


def test_a_span_below_a_chain_span_another_replica_received_finds_its_trajectory(postgres_url, replicas):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent")
    with ppp_otel.trajectory("spec", "chained", tracer_provider=provider):
        with tracer.start_as_current_span("plan", attributes={"openinference.span.kind": "CHAIN"}):
            with tracer.start_as_current_span("llm", attributes={
                    "openinference.span.kind": "LLM", "input.value": "Fix it", "output.value": "Fixed."}):
                pass
    provider.shutdown()
    llm, chain, trajectory = memory.get_finished_spans()
    first, second = replicas
    assert post(second.url + "/v1/traces", body_of([llm]), PROTOBUF)[0] == 200
    assert post(first.url + "/v1/traces", body_of([trajectory]), PROTOBUF)[0] == 200
    assert post(first.url + "/v1/traces", body_of([chain]), PROTOBUF)[0] == 200
    assert wait_for(lambda: stored(postgres_url)[1] == 1, timeout_s=30)
    for server in replicas:
        server.stop()
    assert run_sql(postgres_url, "SELECT prompt, response FROM trajectory_turns") == [("Fix it", "Fixed.")]


def test_turns_accepted_by_a_replica_that_stopped_are_written_by_another(postgres_url):
    *turns, trajectory = record_conversation()
    with IngestServer(postgres_url, port=0) as gone:
        assert post(gone.url + "/v1/traces", body_of(turns), PROTOBUF)[0] == 200
    assert pending(postgres_url) == 2  # accepted, durable, written by nobody yet
    with IngestServer(postgres_url, port=0) as other:
        assert post(other.url + "/v1/traces", body_of([trajectory]), PROTOBUF)[0] == 200
    assert stored(postgres_url)[:2] == (1, 2) and pending(postgres_url) == 0


def start_replicas(postgres_url: str, processes: list, n: int = 2) -> list[str]:
    """``n`` real ``ppp-otel ingest`` processes on one store (appended to ``processes``, for
    the caller to stop); their OTLP/HTTP URLs."""
    command = [os.path.join(os.path.dirname(sys.executable), "ppp-otel"), "ingest", "--db", postgres_url,
               "--port", "0", "--grpc-port", "off"]
    urls = []
    for _ in range(n):
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        line = process.stderr.readline()
        assert "listening on" in line, line
        urls.append(line.split("listening on ", 1)[1].split(",", 1)[0])
    return urls


def test_two_ppp_otel_ingest_processes_fed_trajectories_split_across_them_store_each_once(postgres_url):
    processes: list = []
    try:
        urls = start_replicas(postgres_url, processes)
        everything = conversations(20, turns=2)
        for i, spans in enumerate(everything):
            # Each span to a replica of its own: turn 1, turn 2 and the trajectory alternate.
            for k, span in enumerate(spans):
                assert post(urls[(i + k) % 2], body_of([span]), PROTOBUF)[0] == 200
        expected = sorted((f"agent-{i}", 2, 1, 2) for i in range(20))
        assert wait_for(lambda: stored(postgres_url)[2] == expected, timeout_s=30)
    finally:
        for process in processes:
            stop_process(process)
    assert all(process.returncode == 0 for process in processes)
    assert stored(postgres_url) == (20, 40, expected)
    assert pending(postgres_url) == 0


def test_a_replica_takes_otlp_over_grpc_as_the_loadbalancing_exporter_sends_it(postgres_url):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from support import free_port

    with IngestServer(postgres_url, port=0, grpc_port=free_port(), token="s3cret") as replica:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{replica.grpc_port}", insecure=True,
                                    headers=(("authorization", "Bearer s3cret"),))
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with ppp_otel.trajectory("spec", "over-grpc", tracer_provider=provider):
            with ppp_otel.turn("Fix it", tracer_provider=provider) as t:
                t.respond("Fixed.")
        provider.shutdown()
    assert stored(postgres_url) == (1, 1, [("over-grpc", 1, 1, 1)])


def test_grpc_without_the_token_is_unauthenticated(db_path):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    from support import free_port

    with IngestServer(db_path, port=0, grpc_port=free_port(), token="s3cret") as replica:
        with grpc.insecure_channel(f"127.0.0.1:{replica.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(encode_spans(record_conversation()), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_status_counts_the_spans_waiting_for_their_parent(postgres_url, capsys):
    from ppp_otel.cli import main

    *turns, _trajectory = record_conversation()
    with IngestServer(postgres_url, port=0) as replica:
        assert post(replica.url + "/v1/traces", body_of(turns), PROTOBUF)[0] == 200
    assert main(["status", "--db", postgres_url]) == 0
    import re

    out = capsys.readouterr().out
    assert re.search(r"^pending turns\s+2 \(2 spans in pending_spans", out, re.M), out


def _waiting_turn_of_a_stored_trajectory(postgres_url):
    from ppp_otel.ingest.wire import OtlpSpan
    from ppp_otel.records import TrajectoryRecord
    from ppp_otel.storage import open_store
    from ppp_otel.storage.sqlite.staging import staged_records

    trajectory = TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")
    turn = OtlpSpan("a" * 32, "c" * 16, "b" * 16, "llm", {}, [], 1, 2, {})
    with open_store(postgres_url, must_exist=False) as store:
        store.write([trajectory, *staged_records([(turn, True)])])
    return turn


def test_a_waiting_span_is_claimed_by_one_replica_at_a_time(postgres_url):
    from ppp_otel.storage import open_store

    turn = _waiting_turn_of_a_stored_trajectory(postgres_url)
    with open_store(postgres_url) as one, open_store(postgres_url) as other:
        assert [s.span_id for s in one.claim_pending()] == [turn.span_id]
        assert other.claim_pending() == []  # leased to the first
    assert pending(postgres_url) == 1  # claimed is not written: the row stays until its turn is stored


def test_a_claim_whose_replica_died_is_claimed_again_once_its_lease_ends(postgres_url):
    from ppp_otel.storage import open_store

    turn = _waiting_turn_of_a_stored_trajectory(postgres_url)
    with open_store(postgres_url) as one, open_store(postgres_url) as other:
        assert len(one.claim_pending(lease_s=0.0)) == 1
        assert [s.span_id for s in other.claim_pending()] == [turn.span_id]


def test_turns_a_replica_answered_200_for_before_kill_9_are_stored_by_the_other(postgres_url):
    import signal

    processes: list = []
    try:
        killed, survivor = start_replicas(postgres_url, processes)
        everything = conversations(10, turns=3)
        for spans in everything:
            *turns, _ = spans
            assert post(killed, body_of(turns), PROTOBUF)[0] == 200
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(10)
        for spans in everything:
            assert post(survivor, body_of([spans[-1]]), PROTOBUF)[0] == 200
        expected = sorted((f"agent-{i}", 3, 1, 3) for i in range(10))
        assert wait_for(lambda: stored(postgres_url)[2] == expected, timeout_s=30)
    finally:
        for process in processes:
            stop_process(process)
    assert stored(postgres_url) == (10, 30, expected)
    assert pending(postgres_url) == 0
