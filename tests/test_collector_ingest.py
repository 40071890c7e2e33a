"""A real OTLP collector between an agent and ``ppp-otel ingest``, all as local processes.

The collector is rotel (the ``rotel`` package ships its ``rotel-agent``
binary), run in the foreground on free loopback ports, receiving OTLP over
gRPC and HTTP and exporting OTLP/HTTP to the ingest service. rotel takes one
trace exporter per process, so the fan-out of collector/otel-collector.yaml
is played by two rotel processes: one to ingest, one to Phoenix.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import free_port, wait_for

rotel = pytest.importorskip("rotel")

import ppp_otel  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

from support import stop_process
from ppp_otel.ingest.server import IngestServer  # noqa: E402


class RotelCollector:
    """``rotel-agent start`` in the foreground: OTLP in on two free ports, OTLP/HTTP out to ``export_to``."""

    def __init__(self, workdir: Path, export_to: str, *, protocol: str = "http", headers: str | None = None):
        self.workdir = workdir
        self.grpc_port, self.http_port = free_port(), free_port()
        self.export_to = export_to
        self.protocol, self.headers = protocol, headers
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"rotel-{self.http_port}.log"

    @property
    def http_traces_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 20) -> RotelCollector:
        binary = Path(rotel.__file__).parent / "rotel-agent"
        command = [
            str(binary), "start",
            "--otlp-grpc-endpoint", self.grpc_endpoint,
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", self.export_to,
            "--otlp-exporter-protocol", self.protocol,
            *(["--otlp-exporter-custom-headers", self.headers] if self.headers else []),
            "--batch-timeout", "100ms",
            "--pid-file", str(self.workdir / f"rotel-{self.http_port}.pid"),
            "--log-file", str(self.log_path),
        ]
        # A clean environment: no ROTEL_* or OTEL_* of the developer's leaks in.
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={"PATH": os.environ.get("PATH", "")})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rotel exited early:\n{self.log_path.read_text()[-2000:]}")
            if all(_accepts(port) for port in (self.grpc_port, self.http_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("rotel did not open its ports")

    def stop(self) -> None:
        stop_process(self.process)  # rotel flushes its batch on SIGTERM
        if getattr(self, "_log", None):
            self._log.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stored_turns(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(
                """SELECT t.spec_id, t.agent_name, u.turn_number, u.prompt, u.response
                   FROM trajectory_turns u JOIN trajectories t ON t.id = u.trajectory_id
                   ORDER BY t.spec_id, u.turn_number"""
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []




def run_agent(provider: TracerProvider, spec: str = "spec-1") -> None:
    with ppp_otel.trajectory(spec, "polyglot-agent", tracer_provider=provider):
        for prompt in ("Fix the failing test", "Use pytest"):
            with ppp_otel.turn(prompt, tracer_provider=provider) as t:
                t.respond(f"done: {prompt}")
    provider.shutdown()


def expected(spec: str = "spec-1") -> list[tuple]:
    return [
        (spec, "polyglot-agent", 1, "Fix the failing test", "done: Fix the failing test"),
        (spec, "polyglot-agent", 2, "Use pytest", "done: Use pytest"),
    ]


@pytest.fixture
def ingest(db_path):
    server = IngestServer(db_path, port=0).start()
    yield server
    server.stop()


@pytest.fixture
def collector(tmp_path, ingest):
    rotel_process = RotelCollector(tmp_path, ingest.url).start()
    yield rotel_process
    rotel_process.stop()


def test_spans_sent_over_otlp_http_through_the_collector_land_as_turns(db_path, collector):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.http_traces_url)))
    run_agent(provider)
    assert wait_for(lambda: stored_turns(db_path) == expected()), stored_turns(db_path)


def test_spans_sent_over_otlp_grpc_through_the_collector_land_as_turns(db_path, collector):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)))
    run_agent(provider)
    assert wait_for(lambda: stored_turns(db_path) == expected()), stored_turns(db_path)


def test_the_same_spans_through_the_collector_twice_are_stored_once(db_path, tmp_path, ingest):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    memory = InMemorySpanExporter()
    recorder = TracerProvider()
    recorder.add_span_processor(SimpleSpanProcessor(memory))
    run_agent(recorder)
    # The same spans through two collector processes, as after a replay.
    for _ in range(2):
        rotel_process = RotelCollector(tmp_path, ingest.url).start()
        try:
            OTLPSpanExporter(endpoint=rotel_process.http_traces_url).export(memory.get_finished_spans())
        finally:
            rotel_process.stop()
    assert wait_for(lambda: stored_turns(db_path) == expected()), stored_turns(db_path)
    assert ingest.stats["received_spans"] == 6


@pytest.mark.needs_phoenix
@pytest.mark.slow
def test_one_agent_reaches_phoenix_and_the_ppp_otel_ingest_command_through_collectors(db_path, tmp_path, phoenix):
    """The compose topology as local processes: Phoenix, `ppp-otel ingest`, and collectors between."""
    import json
    import urllib.request
    import uuid

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource

    command = [os.path.join(os.path.dirname(sys.executable), "ppp-otel"), "ingest", "--db", str(db_path), "--port", "0",
               "--grpc-port", "0"]
    ingest_process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    collectors = []
    try:
        line = ingest_process.stderr.readline()
        ingest_url = line.split("listening on ", 1)[1].split("/v1/traces", 1)[0]
        collectors = [RotelCollector(tmp_path, ingest_url).start(), RotelCollector(tmp_path, phoenix.url).start()]
        project = f"collector-{uuid.uuid4().hex[:8]}"
        provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
        for c in collectors:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=c.http_traces_url)))
        run_agent(provider)
        assert wait_for(lambda: stored_turns(db_path) == expected()), stored_turns(db_path)

        def phoenix_kinds():
            try:
                with urllib.request.urlopen(f"{phoenix.url}/v1/projects/{project}/spans", timeout=5) as r:
                    return sorted(s["span_kind"] for s in json.load(r)["data"]) or None
            except OSError:
                return None

        assert wait_for(phoenix_kinds, timeout_s=30) == ["AGENT", "LLM", "LLM"]
    finally:
        for c in collectors:
            c.stop()
        ingest_process.send_signal(signal.SIGTERM)
        assert ingest_process.wait(30) == 0


def test_a_postgresql_replica_takes_what_the_replicas_collector_sends_it_grpc_gzip_and_the_token(
        postgres_url, tmp_path):
    """As collector/otel-collector-replicas.yaml's per-replica exporter: OTLP/gRPC, gzip, the
    token in lower-case ``authorization`` metadata, to a replica started with that token."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from backends import run_sql

    replica = IngestServer(postgres_url, port=0, grpc_port=0, token="replica-token").start()
    balancer = RotelCollector(tmp_path, f"http://{replica.grpc_endpoint}", protocol="grpc",
                              headers="authorization=Bearer replica-token").start()
    try:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=balancer.http_traces_url)))
        run_agent(provider)
        query = """SELECT t.spec_id, t.agent_name, u.turn_number, u.prompt, u.response
                   FROM trajectory_turns u JOIN trajectories t ON t.id = u.trajectory_id ORDER BY u.turn_number"""
        assert wait_for(lambda: [tuple(r) for r in run_sql(postgres_url, query)] == expected()), \
            balancer.log_path.read_text()[-2000:]
    finally:
        balancer.stop()
        replica.stop()
