"""Trajectories with chosen questions and violations, written the way the recorder writes them."""

from __future__ import annotations

import itertools
import sqlite3

from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
from backends import is_postgres_connection, write_all

_ids = itertools.count(1)


def add_trajectory(
    conn: sqlite3.Connection,  # or a psycopg connection
    spec_id: str,
    agent_name: str,
    *,
    questions: tuple[str, ...] | list[str] = (),
    violations: tuple | list = (),
    turns: int = 1,
    technical_score: float | None = None,
    run_id: str | None = None,
    stage: str | None = None,
    started_at: str | None = None,
) -> int:
    """Write one trajectory; questions (by effort) and violations (by severity, or
    (preference, severity) pairs) go round-robin over its turns. Returns its id."""
    n = next(_ids)
    trace_id, span_id = format(n, "032x"), format(n, "016x")
    records: list = [
        TrajectoryRecord(trace_id, span_id, spec_id, agent_name, run_id=run_id,
                         technical_score=technical_score, stage=stage, started_at=started_at)
    ]
    turn_records = [
        TurnRecord(trace_id, format(10**9 + n * 1000 + i, "016x"), (trace_id, span_id), i + 1,
                   f"prompt {i + 1}", f"response {i + 1}", extract_questions=False)
        for i in range(turns)
    ]
    for i, effort in enumerate(questions):
        turn_records[i % turns].questions.append(Question(f"question {i}?", effort))
    for i, violation in enumerate(violations):
        preference, severity = violation if isinstance(violation, tuple) else (f"preference {i}", violation)
        turn_records[i % turns].violations.append(
            Violation(preference, "expected", "actual", severity))
    records += turn_records
    outcome = write_all(conn, records)
    assert not outcome.rejected, outcome.rejected
    mark = "%s" if is_postgres_connection(conn) else "?"
    return conn.execute(
        f"SELECT id FROM trajectories WHERE trace_id = {mark} AND span_id = {mark}", (trace_id, span_id)
    ).fetchone()[0]


def two_agents_of_one_spec(path) -> str:
    """A SQLite file holding spec-a's careful-agent (technical 0.8) and hasty-agent (0.5):
    the smallest database a CLI command has something to say about."""
    from ppp_otel.storage.sqlite import migrations as schema

    conn = schema.connect(path)
    add_trajectory(conn, "spec-a", "careful-agent", technical_score=0.8)
    add_trajectory(conn, "spec-a", "hasty-agent", technical_score=0.5)
    conn.close()
    return str(path)
