"""Load: listing, fetching and scoring on a database of 10,000 trajectories of 20 turns.

    python benchmarks/bench_load.py [--json]

Each operation is timed on an open store or connection (opening the file is
not part of it), median of repeated calls, beside a raw sqlite3 query that
reads the same rows. Target: under 20 ms each.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _rows import Progress, row, say  # noqa: E402
from load_data import build  # noqa: E402
from ppp_otel.scoring import rewards as scoring
from ppp_otel.scoring.consensus import consensus  # noqa: E402
from ppp_otel.storage.sqlite.reader import TrajectoryStore  # noqa: E402

TARGET_MS = 20.0
REPEATS = 200


def _median_ms(work, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def run(progress: Progress = None, quick: bool | None = None) -> list[dict]:
    repeats = 50 if quick else REPEATS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.db"
        say(progress, "writing 10,000 trajectories of 20 turns")
        outcome = build(path)
        say(progress, f"wrote {outcome.turns:,} turns; timing")
        rows = []
        with TrajectoryStore(path) as store, closing(sqlite3.connect(path)) as raw:
            target = store.list_trajectories(spec_id="spec-77", agent_name="agent-3", run_id="run-4")[0]
            cases = [
                ("list a spec's trajectories (limit 50)",
                 lambda: store.list_trajectories(spec_id="spec-42", limit=50),
                 "sqlite3: the spec's trajectory rows",
                 lambda: raw.execute("SELECT * FROM trajectories WHERE spec_id = 'spec-42' LIMIT 50").fetchall()),
                ("fetch one trajectory with turns, questions, violations",
                 lambda: store.get_trajectory(target.id),
                 "sqlite3: its turn rows",
                 lambda: raw.execute("SELECT * FROM trajectory_turns WHERE trajectory_id = ?", (target.id,)).fetchall()),
                ("score one trajectory (R_Proact + R_Pers)",
                 lambda: scoring.score_trajectory(store.conn, target.id),
                 "sqlite3: count its turns",
                 lambda: raw.execute("SELECT count(*) FROM trajectory_turns WHERE trajectory_id = ?", (target.id,)).fetchone()),
                ("consensus over 10 agents x 10 runs of a spec",
                 lambda: consensus(store.conn, "spec-9", weights=(0.7, 0.3), store=False),
                 "sqlite3: the spec's trajectory rows",
                 lambda: raw.execute("SELECT * FROM trajectories WHERE spec_id = 'spec-9'").fetchall()),
            ]
            for name, work, baseline_name, baseline in cases:
                value, base = [], []
                for _ in range(3):  # interleaved, so a busy moment hits both
                    value.append(_median_ms(work, repeats))
                    base.append(_median_ms(baseline, repeats))
                v, b = statistics.median(value), statistics.median(base)
                say(progress, f"{name}: {v:.3f} ms (raw {b:.3f} ms)")
                rows.append(row(name, round(v, 3), "ms", baseline_name=baseline_name,
                                baseline_value=round(b, 4), ratio=round(v / b, 1) if b else None,
                                target=f"< {TARGET_MS:g} ms", ok=v < TARGET_MS,
                                detail=f"10,000 trajectories x 20 turns; median of {repeats} calls, 3 rounds"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = run(lambda m: print(f"[bench_load] {m}", file=sys.stderr), quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']}: {r['value']} ms (baseline {r['baseline_name']}: {r['baseline_value']} ms; "
                  f"target {r['target']}; ok {r['ok']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
