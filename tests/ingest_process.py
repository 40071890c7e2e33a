"""``ppp-otel ingest`` as a real process, and OTLP bodies built fast, for the fault tests."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ppp_otel.ingest import wire as otlp

PPP_OTEL = os.path.join(os.path.dirname(sys.executable), "ppp-otel")


class IngestProcess:
    def __init__(self, db: Path, *extra: str, capture_output: bool = False):
        self.db = db
        self.extra = extra
        self.capture_output = capture_output
        self.process: subprocess.Popen | None = None

    def start(self) -> IngestProcess:
        self.log = open(Path(self.db).with_suffix(".log"), "a")
        self.process = subprocess.Popen(
            [PPP_OTEL, "ingest", "--db", str(self.db), "--port", "0", "--grpc-port", "0", *self.extra],
            stderr=subprocess.PIPE, stdout=subprocess.PIPE if self.capture_output else subprocess.DEVNULL, text=True,
        )
        seen = []
        while True:  # log lines (pending spans found at startup) may come first
            line = self.process.stderr.readline()
            seen.append(line)
            match = re.search(r"listening on (http://[^/\s]+)/v1/traces and gRPC (\S+),", line)
            if match or not line:
                break
        assert match, "".join(seen)
        self.url, self.grpc = match.group(1), match.group(2)
        self.host, self.port = self.url[len("http://"):].rsplit(":", 1)
        self.port = int(self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stderr.close()
            self.log.close()

    def finish(self, timeout_s: float = 30) -> tuple[int, str, str]:
        """SIGTERM, then its exit status, its stdout (with ``capture_output``) and the rest of its stderr."""
        self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()
        return self.process.returncode, out or "", err or ""

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def trajectory_request(trace: int, turns: int, *, with_turns: bool = True, with_trajectory: bool = True,
                       spec: str = "load") -> ExportTraceServiceRequest:
    """One trajectory of ``turns`` turns as OTLP, built directly (no SDK): fast enough for 100,000 turns."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace_id = trace.to_bytes(16, "big")
    root = (trace * 1000 + 1).to_bytes(8, "big")
    if with_turns:
        for n in range(1, turns + 1):
            span = scope.spans.add(trace_id=trace_id, span_id=(trace * 1000 + 1 + n).to_bytes(8, "big"),
                                   parent_span_id=root, name="ppp.turn",
                                   start_time_unix_nano=1_700_000_000_000_000_000 + n,
                                   end_time_unix_nano=1_700_000_000_000_000_000 + n + 1000)
            span.attributes.extend(otlp.to_key_values({
                "openinference.span.kind": "LLM", "ppp.turn.number": n,
                "input.value": f"prompt {n} of {trace}", "output.value": "done.",
            }))
    if with_trajectory:
        span = scope.spans.add(trace_id=trace_id, span_id=root, name="ppp.trajectory",
                               start_time_unix_nano=1_700_000_000_000_000_000,
                               end_time_unix_nano=1_700_000_000_000_000_000 + 10 ** 9)
        span.attributes.extend(otlp.to_key_values({
            "openinference.span.kind": "AGENT", "ppp.spec_id": spec, "ppp.agent_name": f"agent-{trace}",
        }))
    return request


def merged(requests) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    for r in requests:
        out.MergeFrom(r)
    return out


def turns_by_trace(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return dict(conn.execute(
            "SELECT j.trace_id, count(t.id) FROM trajectories j LEFT JOIN trajectory_turns t "
            "ON t.trajectory_id = j.id GROUP BY j.id").fetchall())


def trace_hex(trace: int) -> str:
    return trace.to_bytes(16, "big").hex()
