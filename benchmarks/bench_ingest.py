"""Ingest benchmarks: OTLP/HTTP into SQLite, and how soon a batch is queryable where.

    python benchmarks/bench_ingest.py            # full run
    python benchmarks/bench_ingest.py --quick    # a short run
    python benchmarks/bench_ingest.py --json     # the report rows as JSON

Each figure has its baseline measured in the same run, rounds interleaved,
medians reported:

- throughput: spans/s from the first POST to ``/v1/traces`` of a running
  ``IngestServer`` until every row is committed (bodies of 1,000 spans,
  protobuf, pre-encoded, one keep-alive client), against the same
  trajectories recorded in process by a ``TrajectorySpanProcessor`` with the
  same batch settings, from the first span to ``force_flush``. The in-process
  figure includes making the spans; the ingest one includes decoding them.
- ingest_visible: from the POST answer until another connection sees all the
  turns of a trajectory, against the same trajectory recorded in process
  (span end until visible). Target: ingest's flush interval (100 ms) + 50 ms.
- phoenix (needs arize-phoenix; the rows say so when it is missing): the
  same OTLP bodies POSTed to Phoenix's own ``/v1/traces`` until its GraphQL
  counts every span, against ppp-otel's ingest; and a trajectory of 10 turns
  recorded with ``register(db, phoenix=url)``, from its end until SQLite
  shows its turns, against until Phoenix's REST API lists its spans, with the
  Phoenix exporter's schedule delay at 50 ms (the OTel default of 5 s would
  measure the exporter's wait, not Phoenix).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from _rows import Progress, row, say  # noqa: E402
import ppp_otel  # noqa: E402
from ppp_otel.ingest.server import IngestServer  # noqa: E402
from ppp_otel.capture.processor import TrajectorySpanProcessor  # noqa: E402

QUICK_ENV = "PPP_OTEL_BENCH_QUICK"
TURNS = 9  # per trajectory: 10 spans with the trajectory span
SPANS_PER_BODY = 1000
INGEST_FLUSH_MS = 100  # IngestServer's writer settings, reused for the in-process baseline
INGEST_BUFFER = 1000




def _agent(provider: TracerProvider, trajectories: int, spec: str = "bench") -> None:
    for i in range(trajectories):
        with ppp_otel.trajectory(spec, f"agent-{i % 4}", tracer_provider=provider):
            for n in range(TURNS):
                with ppp_otel.turn(f"prompt {n} of trajectory {i}", tracer_provider=provider) as t:
                    t.respond(f"response {n}: done, nothing to ask.", token_count=42)


def _recorded(trajectories: int) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _agent(provider, trajectories)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _turn_count(db: Path, trace_id: str | None = None) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            if trace_id is None:
                return conn.execute("SELECT count(*) FROM trajectory_turns").fetchone()[0]
            return conn.execute("SELECT count(*) FROM trajectory_turns WHERE trace_id = ?", (trace_id,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _wait(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.002) -> float | None:
    """Seconds until ``predicate()`` held, None on timeout."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if predicate():
            return time.perf_counter() - start
        time.sleep(every_s)
    return None


# --- throughput -------------------------------------------------------------------

def _ingest_run(workdir: Path, bodies: list[bytes], spans: int) -> float:
    db = workdir / f"ingest-{uuid.uuid4().hex}.db"
    server = IngestServer(db, port=0).start()
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        headers = {"Content-Type": "application/x-protobuf"}
        start = time.perf_counter()
        for body in bodies:
            for attempt in range(200):
                conn.request("POST", "/v1/traces", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 503:
                    break
                time.sleep(0.01 * (attempt + 1))  # a full queue is retryable, as an OTLP exporter does
            if response.status != 200:
                raise RuntimeError(f"ingest answered {response.status}")
        server.ingest.processor.force_flush(120_000)
        elapsed = time.perf_counter() - start
        conn.close()
    finally:
        server.stop()
    if server.stats["written_turns"] != spans * TURNS // (TURNS + 1):
        raise RuntimeError(f"ingest wrote {server.stats['written_turns']} turns, expected {spans * TURNS // (TURNS + 1)}")
    return spans / elapsed


def _in_process_run(workdir: Path, trajectories: int) -> float:
    db = workdir / f"inproc-{uuid.uuid4().hex}.db"
    processor = TrajectorySpanProcessor(db, buffer_size=INGEST_BUFFER, flush_interval_ms=INGEST_FLUSH_MS,
                                        max_queue_size=10_000_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    start = time.perf_counter()
    _agent(provider, trajectories)
    processor.force_flush(120_000)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return trajectories * (TURNS + 1) / elapsed


def bench_throughput(progress: Progress, quick: bool, workdir: Path) -> list[dict]:
    trajectories = 1000 if quick else 5000
    rounds = 2 if quick else 3
    spans = _recorded(trajectories)
    bodies = [encode_spans(spans[i:i + SPANS_PER_BODY]).SerializeToString()
              for i in range(0, len(spans), SPANS_PER_BODY)]
    ingest, in_process = [], []
    for r in range(rounds):
        ingest.append(_ingest_run(workdir, bodies, len(spans)))
        in_process.append(_in_process_run(workdir, trajectories))
        say(progress, f"throughput round {r + 1}/{rounds}: ingest {ingest[-1]:,.0f} spans/s, "
                       f"in process {in_process[-1]:,.0f} spans/s")
    value, base = statistics.median(ingest), statistics.median(in_process)
    return [row("ingest_throughput", round(value), "spans/s",
                baseline_name="same spans, TrajectorySpanProcessor in process", baseline_value=round(base),
                ratio=round(value / base, 3), target=">= 10,000 spans/s", ok=value >= 10_000,
                spans=len(spans), rounds=rounds)]


# --- time until queryable -------------------------------------------------------------

def bench_ingest_visible(progress: Progress, quick: bool, workdir: Path) -> list[dict]:
    rounds = 5 if quick else 15
    db_ingest, db_local = workdir / "visible-ingest.db", workdir / "visible-local.db"
    server = IngestServer(db_ingest, port=0).start()
    local = ppp_otel.register(db_local, phoenix=False, set_global=False, env={})
    ingest_ms, local_ms = [], []
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        for r in range(rounds):
            spans = _recorded(1)
            trace_id = format(spans[0].context.trace_id, "032x")
            conn.request("POST", "/v1/traces", body=encode_spans(spans).SerializeToString(),
                         headers={"Content-Type": "application/x-protobuf"})
            conn.getresponse().read()
            waited = _wait(lambda: _turn_count(db_ingest, trace_id) == TURNS, 10)
            ingest_ms.append(waited * 1000 if waited is not None else float("inf"))

            with ppp_otel.trajectory("bench", "local", tracer_provider=local) as traj:
                for n in range(TURNS):
                    with ppp_otel.turn(f"prompt {n}", tracer_provider=local) as t:
                        t.respond("ok")
            waited = _wait(lambda: _turn_count(db_local, traj.trace_id) == TURNS, 10)
            local_ms.append(waited * 1000 if waited is not None else float("inf"))
            time.sleep(0.05)  # a quiet agent: each trajectory starts a fresh flush interval
        conn.close()
    finally:
        server.stop()
        local.shutdown()
    say(progress, f"ingest visible after {statistics.median(ingest_ms):.0f} ms, in process {statistics.median(local_ms):.0f} ms")
    value, base = statistics.median(ingest_ms), statistics.median(local_ms)
    limit = INGEST_FLUSH_MS + 50
    return [row("ingest_visible", round(value, 1), "ms",
                baseline_name="same trajectory recorded in process (written as soon as it ends)", baseline_value=round(base, 1),
                ratio=round(value / base, 3) if base else None, target=f"<= {limit} ms", ok=value <= limit,
                rounds=rounds)]


PHOENIX_SCHEDULE_DELAY_MS = 50  # the Phoenix exporter's batch delay here; the OTel default is 5,000


def _phoenix_span_count(url: str, project: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/v1/projects/{project}/spans?limit=100", timeout=5) as r:
            return len(json.load(r)["data"])
    except urllib.error.HTTPError:
        return 0  # the project appears with its first span


def _phoenix_record_count(url: str, project: str) -> int:
    """Spans Phoenix holds in a project (its GraphQL recordCount), 0 before the project exists."""
    query = json.dumps({"query": "{ projects { edges { node { name recordCount } } } }"}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=query, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            edges = json.load(r)["data"]["projects"]["edges"]
    except (urllib.error.URLError, KeyError, TypeError):
        return 0
    return next((e["node"]["recordCount"] for e in edges if e["node"]["name"] == project), 0)


def _start_phoenix(workdir: Path):
    from conftest import PhoenixServer

    server = PhoenixServer(workdir / "phoenix")
    server.workdir.mkdir()
    server.start()
    return server


def _phoenix_ingest_run(url: str, bodies: list[bytes], spans: int, project: str) -> float:
    """Spans/s from the first POST to Phoenix's own /v1/traces until it counts them all."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    before = _phoenix_record_count(url, project)
    start = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"Phoenix answered {response.status}")
    conn.close()
    if _wait(lambda: _phoenix_record_count(url, project) >= before + spans, 600, every_s=0.2) is None:
        raise RuntimeError("Phoenix did not hold every span within 600 s")
    return spans / (time.perf_counter() - start)


def bench_phoenix(progress: Progress, quick: bool, workdir: Path) -> list[dict]:
    """Phoenix beside ppp-otel, one Phoenix for both rows."""
    names = ("ingest throughput against Phoenix's own OTLP ingest", "sqlite_visible_vs_phoenix")
    try:
        server = _start_phoenix(workdir)
    except BaseException as exc:  # pytest.skip raises a BaseException when phoenix is missing
        if isinstance(exc, KeyboardInterrupt):
            raise
        reason = f"skipped: no Phoenix server ({type(exc).__name__}: {exc})"
        return [row(name, None, "-", target="-", ok=None, detail=reason) for name in names]
    try:
        return _phoenix_ingest(progress, quick, workdir, server) + _phoenix_visible(progress, quick, workdir, server)
    finally:
        server.stop()


def _phoenix_ingest(progress: Progress, quick: bool, workdir: Path, server) -> list[dict]:
    trajectories = 100 if quick else 500
    rounds = 2 if quick else 3
    ours, phoenix = [], []
    for r in range(rounds):
        # New spans every round: Phoenix keeps a span id once, so a repeat would never be counted.
        spans = _recorded(trajectories)
        bodies = [encode_spans(spans[i:i + SPANS_PER_BODY]).SerializeToString()
                  for i in range(0, len(spans), SPANS_PER_BODY)]
        # Phoenix files spans without a project name under "default".
        phoenix.append(_phoenix_ingest_run(server.url, bodies, len(spans), "default"))
        ours.append(_ingest_run(workdir, bodies, len(spans)))
        say(progress, f"phoenix ingest round {r + 1}/{rounds}: ppp-otel ingest {ours[-1]:,.0f} spans/s, "
                       f"Phoenix {phoenix[-1]:,.0f} spans/s")
    value, base = statistics.median(ours), statistics.median(phoenix)
    return [row("ingest throughput against Phoenix's own OTLP ingest", round(value), "spans/s",
                baseline_name="the same OTLP bodies POSTed to Phoenix's /v1/traces, until its GraphQL counts them",
                baseline_value=round(base), ratio=round(value / base, 3), target="ratio >= 1", ok=value >= base,
                detail=f"{len(spans):,} spans in bodies of {SPANS_PER_BODY}, {rounds} interleaved rounds, median; "
                       f"ppp-otel min {min(ours):,.0f}, Phoenix max {max(phoenix):,.0f} spans/s")]


def _phoenix_visible(progress: Progress, quick: bool, workdir: Path, server) -> list[dict]:
    name = "sqlite_visible_vs_phoenix"
    rounds = 3 if quick else 7
    sqlite_ms, phoenix_ms = [], []
    # The Phoenix exporter's BatchSpanProcessor reads its delay from the environment.
    saved = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = str(PHOENIX_SCHEDULE_DELAY_MS)
    try:
        for r in range(rounds):
            project = f"bench-{uuid.uuid4().hex[:8]}"
            db = workdir / f"phoenix-{r}.db"
            provider = ppp_otel.register(db, phoenix=server.url, project_name=project, set_global=False, env={})
            with ppp_otel.trajectory("bench", "agent", tracer_provider=provider) as traj:
                for n in range(10):
                    with ppp_otel.turn(f"prompt {n}", tracer_provider=provider) as t:
                        t.respond("ok", token_count=3)
            start = time.perf_counter()
            seen_sqlite = seen_phoenix = None
            while time.perf_counter() - start < 30 and seen_phoenix is None:
                if seen_sqlite is None and _turn_count(db, traj.trace_id) == 10:
                    seen_sqlite = time.perf_counter() - start
                if _phoenix_span_count(server.url, project) >= 11:
                    seen_phoenix = time.perf_counter() - start
                time.sleep(0.002)
            provider.shutdown()
            sqlite_ms.append(seen_sqlite * 1000 if seen_sqlite is not None else float("inf"))
            phoenix_ms.append(seen_phoenix * 1000 if seen_phoenix is not None else float("inf"))
            say(progress, f"round {r + 1}/{rounds}: SQLite {sqlite_ms[-1]:.0f} ms, Phoenix {phoenix_ms[-1]:.0f} ms")
    finally:
        if saved is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = saved
    value, base = statistics.median(sqlite_ms), statistics.median(phoenix_ms)
    return [row(name, round(value, 1), "ms",
                baseline_name=f"until Phoenix's REST API lists the spans (exporter delay {PHOENIX_SCHEDULE_DELAY_MS} ms)",
                baseline_value=round(base, 1), ratio=round(value / base, 3) if base else None,
                target="<= 550 ms (flush 500 ms + 50 ms), before Phoenix", ok=value <= 550 and value < base,
                detail=f"a trajectory of 10 turns recorded with register(db, phoenix=url); from its end until "
                       f"each shows it; {rounds} rounds, median; SQLite min {min(sqlite_ms):.1f} ms, Phoenix "
                       f"min {min(phoenix_ms):.1f} ms. OTEL_BSP_SCHEDULE_DELAY={PHOENIX_SCHEDULE_DELAY_MS} so the "
                       "figure is Phoenix's, not the exporter's 5 s default wait")]


BENCHES = {
    "throughput": bench_throughput,
    "ingest_visible": bench_ingest_visible,
    "phoenix": bench_phoenix,
}


def run(progress: Progress = None, quick: bool | None = None) -> list[dict]:
    """The report rows. ``quick`` defaults to ``$PPP_OTEL_BENCH_QUICK``."""
    if quick is None:
        quick = os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes")
    workdir = Path(tempfile.mkdtemp(prefix="ppp-bench-ingest-"))
    rows: list[dict] = []
    try:
        for name, bench in BENCHES.items():
            say(progress, f"{name}: starting")
            rows.extend(bench(progress, quick, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report rows as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args(argv)
    rows = run(lambda message: print(f"[bench_ingest] {message}", file=sys.stderr, flush=True), quick=args.quick)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            print(f"{r['name']}: {r['value']} {r['unit']} (baseline {r['baseline_name']}: {r['baseline_value']}; "
                  f"ratio {r['ratio']}; target {r['target']}; ok {r['ok']}){'  ' + r['note'] if r.get('note') else ''}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
