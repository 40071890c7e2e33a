"""Peers side by side: ppp-otel against MLflow Tracing on a SQLite store.

    python benchmarks/bench_peers.py [--quick] [--json]

MLflow runs in a virtualenv of its own (its dependencies cannot share one
with Phoenix's), made on first use under ``~/.cache/ppp-otel-bench`` with
MLflow pinned; ``$PPP_OTEL_BENCH_MLFLOW_PYTHON`` names another interpreter
that has it, and ``PPP_OTEL_BENCH_NO_INSTALL=1`` forbids the install (the rows
are then skipped with the reason). Rounds alternate between the two, each in
its own process, the same shape each time: a trajectory span with N turn
spans (distinct texts), then a trajectory of 10 turns whose visibility is
timed.

- per-span cost on the app thread, and whole-process CPU per span until each
  has written everything (``force_flush`` / ``flush_trace_async_logging``);
- time until queryable: from the end of a 10-turn trajectory until another
  connection sees its 10 turns in ppp-otel's SQLite file, against until
  ``mlflow.get_trace`` returns its 11 spans from MLflow's SQLite store, with
  MLflow's async batch interval at 50 ms (its 5 s default would measure the
  wait, not MLflow).

Phoenix, the other peer, is beside ppp-otel's ingest in bench_ingest.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from _rows import Progress, row, say  # noqa: E402
import ppp_otel  # noqa: E402
from ppp_otel.capture.processor import TrajectorySpanProcessor  # noqa: E402

QUICK_ENV = "PPP_OTEL_BENCH_QUICK"
MLFLOW = "mlflow==3.17.2"
VENV = Path.home() / ".cache" / "ppp-otel-bench" / "mlflow-venv"
MLFLOW_INTERVAL_MS = 50
PROMPT = "The integration test for the payment webhook fails on CI but passes locally; fix it."


def _has_mlflow(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import mlflow"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def mlflow_python(progress: Progress) -> tuple[str | None, str]:
    """An interpreter with MLflow, or None and why not."""
    named = os.environ.get("PPP_OTEL_BENCH_MLFLOW_PYTHON")
    if named:
        return (named, "") if _has_mlflow(named) else (None, f"{named} cannot import mlflow")
    python = VENV / "bin" / "python"
    if python.exists() and _has_mlflow(str(python)):
        return str(python), ""
    if os.environ.get("PPP_OTEL_BENCH_NO_INSTALL", "").strip() in ("1", "true", "yes"):
        return None, f"MLflow is not installed in {VENV} and PPP_OTEL_BENCH_NO_INSTALL forbids installing it"
    say(progress, f"installing {MLFLOW} into {VENV} (once; a few minutes)")
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", MLFLOW],
                              capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not install {MLFLOW}: {exc}"
    if done.returncode != 0:
        return None, f"pip install {MLFLOW} failed: {done.stderr.strip()[-300:]}"
    return str(python), ""


class _MlflowPeer:
    def __init__(self, python: str, db: Path):
        self.process = subprocess.Popen(
            [python, str(HERE / "_mlflow_peer.py"), str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
            # Its async trace logging waits up to 5 s between batches by default: timed as
            # it is, that would measure the wait, not MLflow (as Phoenix's exporter delay would).
            env={**os.environ, "MLFLOW_TRACKING_URI": "",
                 "MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS": str(MLFLOW_INTERVAL_MS)},
        )
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the MLflow peer exited (code {self.process.wait()})")
        return json.loads(line)

    def round(self, k: int, n: int) -> dict:
        self.process.stdin.write(f"{k} {n}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _turns(db: Path, trace_id: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM trajectory_turns WHERE trace_id = ?", (trace_id,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _ppp_round(provider, processor, db: Path, k: int, n: int) -> dict:
    pc, tt, pt = time.perf_counter, time.thread_time, time.process_time
    p0, w0, c0 = pt(), pc(), tt()
    with ppp_otel.trajectory("bench-spec", "agent", tracer_provider=provider):
        for i in range(n):
            with ppp_otel.turn(f"{PROMPT} (request {k}.{i})", tracer_provider=provider) as t:
                t.respond(f"Done, change {k}.{i} is in.", token_count=120 + (i & 63))
    wall, cpu = pc() - w0, tt() - c0
    processor.force_flush(120_000)
    process = pt() - p0

    with ppp_otel.trajectory("bench-spec", "visible", tracer_provider=provider) as traj:
        for i in range(10):
            with ppp_otel.turn(f"visible {k}.{i}", tracer_provider=provider) as t:
                t.respond("ok")
    ended = pc()
    visible = None
    while pc() - ended < 30:
        if _turns(db, traj.trace_id) == 10:
            visible = pc() - ended
            break
        time.sleep(0.001)
    spans = n + 1
    return {"wall_per_span": wall / spans, "cpu_per_span": cpu / spans, "process_per_span": process / spans,
            "visible_s": visible}


NAMES = ("per-span cost on the app thread, against MLflow Tracing",
         "whole-process CPU per span until written, against MLflow Tracing",
         "time until queryable, against MLflow Tracing")


def run(progress: Progress = None, quick: bool | None = None) -> list[dict]:
    if quick is None:
        quick = os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes")
    python, why = mlflow_python(progress)
    if python is None:
        return [row(name, None, "-", target="-", ok=None, detail=f"skipped: {why}") for name in NAMES]
    n = 50
    rounds = 5 if quick else 15
    workdir = Path(tempfile.mkdtemp(prefix="ppp-bench-peers-"))
    db = workdir / "ppp.db"
    processor = TrajectorySpanProcessor(db)  # defaults
    provider = TracerProvider()
    provider.add_span_processor(processor)
    peer = _MlflowPeer(python, workdir / "mlflow.db")
    samples: dict[str, list[dict]] = {"ppp": [], "mlflow": []}
    try:
        for r in range(-2, rounds):  # two warm-up rounds: MLflow creates its tables on the first
            got = {}
            for name in (("ppp", "mlflow") if r % 2 == 0 else ("mlflow", "ppp")):
                k = 1000 + r
                got[name] = _ppp_round(provider, processor, db, k, n) if name == "ppp" else peer.round(k, n)
            if r >= 0:
                for name in got:
                    samples[name].append(got[name])
                say(progress, f"round {r + 1}/{rounds}: per span {got['ppp']['wall_per_span'] * 1e6:.0f} us "
                               f"against MLflow {got['mlflow']['wall_per_span'] * 1e6:.0f} us")
    finally:
        peer.close()
        provider.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    def med(name: str, key: str, scale: float) -> tuple[float, float]:
        values = [s[key] * scale if s[key] is not None else float("inf") for s in samples[name]]
        return statistics.median(values), min(values)

    how = (f"MLflow {peer.hello.get('version')} (sqlite:/// store, async trace logging, its batch interval "
           f"cut from 5,000 to {MLFLOW_INTERVAL_MS} ms) in its own "
           f"process; {rounds} interleaved rounds of a trajectory with {n} turn spans, distinct texts")
    rows = []
    for name, key, unit, scale in ((NAMES[0], "wall_per_span", "us/span", 1e6),
                                   (NAMES[1], "process_per_span", "us/span", 1e6),
                                   (NAMES[2], "visible_s", "ms", 1e3)):
        (v, v_min), (b, b_min) = med("ppp", key, scale), med("mlflow", key, scale)
        rows.append(row(name, round(v, 2), unit, baseline_name="MLflow Tracing, SQLite store",
                        baseline_value=round(b, 2), ratio=round(v / b, 4) if b else None,
                        target="below MLflow", ok=v < b,
                        detail=f"{how}; median (min: ppp-otel {v_min:.3g}, MLflow {b_min:.3g})"
                               + ("; ppp-otel: a trajectory is written as soon as it ends"
                                  if key == "visible_s" else "")))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = run(lambda m: print(f"[bench_peers] {m}", file=sys.stderr, flush=True), quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']}: {r['value']} {r['unit']} (baseline {r['baseline_name']}: {r['baseline_value']}; "
                  f"ratio {r['ratio']}; target {r['target']}; ok {r['ok']}) {r.get('detail', '')}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
