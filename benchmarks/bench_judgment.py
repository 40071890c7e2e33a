"""Judgment faithful to the PPP paper: the preference detectors and the ``paper`` reward profile.

    python benchmarks/bench_judgment.py          # prints the rows

Two figures, each beside its baseline:

- detector agreement with labelled preference cases (tests/data/preference_cases*.jsonl,
  each labelled by the paper's reward criterion), against the earlier stopword and
  punctuation detectors (see preference_agreement.py);
- the ``paper`` profile against the paper's own reward code (tests/paper_oracle.py,
  REWARD_FUNCTIONS transcribed as they stand), case by case on generated
  trajectories written to SQLite; the baseline is the ``spec`` profile on the same cases.

The effort figures come from effort_accuracy.py (report.py adds them).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

CASES = 2000


def _agreement_rows(progress) -> list[dict]:
    import preference_agreement as pa

    cases = pa.load_cases()
    progress(f"{len(cases)} labelled preference cases")
    before = pa.evaluate(cases, *pa.baseline_version())
    now = pa.evaluate(cases, *pa.current_version())
    return [{
        "name": "preference detectors' agreement with labelled cases (paper criteria)",
        "value": round(now["agreement"], 3),
        "unit": "fraction",
        "baseline_name": f"the earlier stopword/punctuation detectors ({pa.BASELINE})",
        "baseline_value": round(before["agreement"], 3),
        "ratio": round(now["agreement"] / before["agreement"], 3),
        "target": ">= 0.90",
        "ok": now["agreement"] >= 0.90,
        "detail": f"n={now['n']} cases; `python benchmarks/preference_agreement.py --errors` lists the "
                  f"disagreements; per preference now {now['by_preference']}; "
                  f"before {before['by_preference']}",
    }]


def _random_case(rng: random.Random, names: list[str]):
    messages = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.4:
            messages.append(None)
        else:
            messages.append((rng.choice([1, 1, 2, 3]), frozenset(n for n in names if rng.random() < 0.3)))
    preferences = rng.sample(names, rng.randint(0, 3))
    return messages, preferences


def _paper_rows(progress) -> list[dict]:
    import paper_oracle
    from ppp_otel.storage.sqlite import migrations as schema
    from ppp_otel.scoring import rewards as scoring
    from ppp_otel.model import Question, Violation
    from ppp_otel.scoring.paper import PAPER_NAMES
    from ppp_otel.records import TrajectoryRecord, TurnRecord
    from ppp_otel.storage.sqlite.writer import write_all

    ours = {paper: mine for mine, paper in PAPER_NAMES.items()}
    names = sorted(ours)
    effort = {1: "low", 2: "medium", 3: "high"}
    rng = random.Random(2511_02208)
    cases = [_random_case(rng, names) for _ in range(CASES)]
    with tempfile.TemporaryDirectory() as tmp:
        conn = schema.connect(os.path.join(tmp, "cases.db"))
        records = []
        for n, (messages, preferences) in enumerate(cases, 1):
            trace, span = format(n, "032x"), format(n, "016x")
            records.append(TrajectoryRecord(trace, span, "spec", f"agent{n % 7}",
                                            preferences=tuple(ours[p] for p in preferences)))
            for i, ask in enumerate(messages):
                turn = TurnRecord(trace, format(n * 100 + i, "016x"), (trace, span), i + 1, "p", "r",
                                  extract_questions=False)
                if ask is not None:
                    turn.questions.append(Question(f"q{i}?", effort[ask[0]]))
                    turn.violations.extend(Violation(ours[name], "e", "a", "major") for name in sorted(ask[1]))
                records.append(turn)
        write_all(conn, records)
        paper = scoring.score_trajectories(conn, rewards="paper")
        spec = scoring.score_trajectories(conn, rewards="spec")
        conn.close()
    progress(f"{CASES} generated trajectories scored both ways")

    def matches(scores) -> int:
        hits = 0
        for score, (messages, preferences) in zip(scores, cases):
            expected = (paper_oracle.r_proact(messages), paper_oracle.r_pers(messages, preferences))
            hits += abs(score.r_proact - expected[0]) < 1e-9 and abs(score.r_pers - expected[1]) < 1e-9
        return hits

    got, baseline = matches(paper), matches(spec)
    return [{
        "name": "paper reward profile matches the paper's reward code, case by case",
        "value": round(got / CASES, 4),
        "unit": "fraction",
        "baseline_name": "the spec profile on the same cases",
        "baseline_value": round(baseline / CASES, 4),
        "ratio": round(got / baseline, 3) if baseline else None,
        "target": "1.0 (every case)",
        "ok": got == CASES,
        "detail": f"{CASES} generated trajectories (seeded), R_Proact and R_Pers both equal to "
                  "tests/paper_oracle.py (`python benchmarks/bench_judgment.py`); also "
                  "`pytest tests/test_paper_rewards.py` (17 named cases and 300 hypothesis cases)",
    }]


def run(progress=print) -> list[dict]:
    return _agreement_rows(progress) + _paper_rows(progress)


if __name__ == "__main__":
    for row in run(lambda *a: print(*a, file=sys.stderr)):
        print(f"{row['name']}: {row['value']} (baseline {row['baseline_name']}: {row['baseline_value']})")
