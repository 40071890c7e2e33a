"""User-space instructions per turn, counted by valgrind: the whole-process row without the noise.

    python benchmarks/instructions_per_turn.py                 # SDK tracer, questions extracted, turn(), GenAI
    python benchmarks/instructions_per_turn.py --quick         # the SDK tracer only, fewer turns
    python benchmarks/instructions_per_turn.py --via sdk,api --turns 4000 --json

The whole-process CPU rows of ``bench_recording.py`` (``app_thread``) move by
tens of per cent with this machine's neighbours. Instructions do not: each
pipeline of those rows (the TrajectorySpanProcessor, the bare
BatchSpanProcessor with a no-op exporter and, for the SDK tracer, the floor
exporter that only inserts the turns) runs the same turns in a process of its
own under ``valgrind --tool=callgrind``, the writer's drain included, and the
count of a short run is taken from that of a long one, so that start-up,
imports and warm-up cancel out. What this leaves out is kernel time (SQLite's
writes to its WAL file) and what the machine does to the process (cache
misses, GIL hand-offs between cores), which the CPU-time rows include: read
the two together.

Needs valgrind on PATH (Debian: ``apt-get install valgrind``); without it the
report says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TURNS_PER_ROUND = 200  # as bench_recording's app_thread rounds
WARM_ROUNDS = 2
VIAS = ("sdk", "extracted", "api", "instrumented")
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _child(pipeline: str, rounds: int, via: str) -> None:
    """Run ``rounds`` rounds of ``via`` turns through one pipeline, drained, then shut down."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    import logging

    import bench_recording as bench

    logging.getLogger("ppp_otel").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="ppp-instructions-"))
    try:
        pipelines = bench._pipelines(workdir, 100_000)
        provider, tracer, processor = pipelines[pipeline]
        for k in range(rounds):
            bench._app_round(provider, tracer, processor, via, TURNS_PER_ROUND, k + 1)
        for other, _, _ in pipelines.values():
            other.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def instructions(pipeline: str, rounds: int, via: str) -> int:
    """Instructions the whole process executed (every thread), as callgrind counts them."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--child", pipeline, str(rounds), via]
    done = subprocess.run(command, capture_output=True, text=True)
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        tail = done.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"{pipeline}/{via} under valgrind failed (exit {done.returncode}): " + " | ".join(tail))
    return int(found[-1])


def per_turn(pipeline: str, via: str, turns: int, progress) -> float:
    rounds = max(1, turns // TURNS_PER_ROUND)
    short = instructions(pipeline, WARM_ROUNDS, via)
    long = instructions(pipeline, WARM_ROUNDS + rounds, via)
    value = (long - short) / (rounds * TURNS_PER_ROUND)
    progress(f"{via}/{pipeline}: {value / 1000:.1f}k instructions a turn")
    return value


def measure(vias: list[str], turns: int, progress) -> list[dict]:
    rows = []
    for via in vias:
        pipelines = ("bsp", "ppp", "floor") if via == "sdk" else ("bsp", "ppp")
        counts = {name: per_turn(name, via, turns, progress) for name in pipelines}
        for name in pipelines[1:]:
            ratio = counts[name] / counts["bsp"]
            rows.append({
                "via": via, "pipeline": "ppp-otel" if name == "ppp" else "floor (a minimal SQLite exporter)",
                "instructions_per_turn": round(counts[name]), "baseline_per_turn": round(counts["bsp"]),
                "ratio": round(ratio, 3), "turns": max(1, turns // TURNS_PER_ROUND) * TURNS_PER_ROUND,
            })
    return rows


def render(rows: list[dict]) -> str:
    lines = ["| turns made by | pipeline | instructions a turn | bare BatchSpanProcessor | ratio |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['via']} | {r['pipeline']} | {r['instructions_per_turn']:,} | "
                     f"{r['baseline_per_turn']:,} | {r['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--via", help=f"comma-separated: {', '.join(VIAS)} (default: all)")
    parser.add_argument("--turns", type=int, help="turns counted per pipeline (default 4000; --quick 2000)")
    parser.add_argument("--quick", action="store_true", help="the SDK tracer only, 2,000 turns")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--child", nargs=3, metavar=("PIPELINE", "ROUNDS", "VIA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    vias = [v.strip() for v in args.via.split(",") if v.strip()] if args.via else (
        ["sdk"] if args.quick else list(VIAS))
    unknown = [v for v in vias if v not in VIAS]
    if unknown:
        parser.error(f"unknown --via {', '.join(unknown)}; choose from {', '.join(VIAS)}")
    turns = args.turns if args.turns is not None else (2000 if args.quick else 4000)
    if turns < TURNS_PER_ROUND:
        parser.error(f"--turns must be at least {TURNS_PER_ROUND}")
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (Debian: apt-get install valgrind); nothing measured", file=sys.stderr)
        return 2
    rows = measure(vias, turns, lambda message: print(f"[instructions] {message}", file=sys.stderr, flush=True))
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
