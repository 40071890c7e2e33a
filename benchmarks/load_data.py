"""A large trajectory database for the load test and the load benchmark.

10,000 trajectories (100 specs x 10 agents x 10 runs) of 20 turns each, every
turn with a low-effort question, a medium and a high one on turns 5 and 10,
a minor and a major violation on turns 3 and 7.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Iterator

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite.writer import WriteOutcome, write_all

SPECS, AGENTS, RUNS, TURNS = 100, 10, 10, 20


def conversation() -> Iterator[TrajectoryRecord | TurnRecord]:
    n = 0
    for spec in range(SPECS):
        for agent in range(AGENTS):
            for run in range(RUNS):
                n += 1
                traj = TrajectoryRecord(f"{n:032x}", f"{n:016x}", f"spec-{spec}", f"agent-{agent}",
                                        run_id=f"run-{run}", technical_score=agent / 10)
                yield traj
                for number in range(1, TURNS + 1):
                    questions = [Question("Which file?", "low")]
                    if number == 5:
                        questions.append(Question("How should I structure it?", "medium"))
                    if number == 10:
                        questions.append(Question("Investigate the failures first?", "high"))
                    violations = []
                    if number == 3:
                        violations.append(Violation("brevity", "short", "long", "minor"))
                    if number == 7:
                        violations.append(Violation("no_lists", "prose", "a list", "major"))
                    yield TurnRecord(
                        f"{n:032x}", f"{n:08x}{number:08x}", traj.key, number,
                        f"prompt {number}", "Which file?", token_count=50, latency_ms=120.0,
                        questions=questions, violations=violations, extract_questions=False,
                    )


def build(path: Path) -> WriteOutcome:
    with closing(schema.connect(path)) as conn:
        return write_all(conn, conversation(), batch_size=2000)
