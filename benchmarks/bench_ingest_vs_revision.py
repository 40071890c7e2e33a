"""Ingest throughput of this tree against an earlier revision, rounds interleaved in one run.

    python benchmarks/bench_ingest_vs_revision.py --base REV            # full run
    python benchmarks/bench_ingest_vs_revision.py --base REV --quick

Runs ``bench_ingest.bench_throughput`` (OTLP/HTTP bodies of 1,000 spans on one
keep-alive client, until every row is committed) from the revision's own tree
(``git archive REV``) and from this one, alternately, each in its own process,
and prints both medians and their ratio. Used to hold ingest with durable
acknowledgement (answered once committed) to at least 0.8x of the receiver that
answered once queued.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_ONE_ROUND = """
import json, sys, tempfile
from pathlib import Path
root = sys.argv[1]
sys.path[:0] = [root, root + "/benchmarks", root + "/tests"]
import bench_ingest
with tempfile.TemporaryDirectory() as d:
    rows = bench_ingest.bench_throughput(lambda m: None, sys.argv[2] == "quick", Path(d))
print(json.dumps(rows[0]["value"]))
"""


def _round(tree: Path, quick: bool) -> float:
    done = subprocess.run([sys.executable, "-c", _ONE_ROUND, str(tree), "quick" if quick else "full"],
                          capture_output=True, text=True, cwd=tree, env={"PYTHONPATH": str(tree), "PATH": ""},
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"round in {tree} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=ROOT, capture_output=True, check=True).stdout
        archive_path = Path(tmp) / "base.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(base)
        before, after = [], []
        for r in range(args.rounds):
            before.append(_round(base, args.quick))
            after.append(_round(ROOT, args.quick))
            print(f"[bench_ingest_vs_revision] round {r + 1}/{args.rounds}: {args.base} {before[-1]:,.0f} "
                  f"spans/s, this tree {after[-1]:,.0f} spans/s", file=sys.stderr, flush=True)
    result = {
        "name": "ingest_throughput_vs_revision", "unit": "spans/s", "base": args.base,
        "base_value": round(statistics.median(before)), "value": round(statistics.median(after)),
        "ratio": round(statistics.median(after) / statistics.median(before), 3), "target": ">= 0.8",
        "rounds": args.rounds,
    }
    result["ok"] = result["ratio"] >= 0.8
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"ingest throughput: {result['value']:,} spans/s against {result['base_value']:,} at {args.base}; "
              f"ratio {result['ratio']} (target {result['target']}; ok {result['ok']})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
