"""The scoring statements reach turns, questions and violations through indexes, never a scan."""

from __future__ import annotations

import re

import pytest

from ppp_otel.storage.sqlite import migrations as schema

from ppp_otel.storage.sqlite import scoring
from scoring_data import add_trajectory

# The tables (and the aliases the statements give them) that grow with every turn.
PER_TURN = {"trajectory_turns", "trajectory_questions", "trajectory_violations", "tt", "q", "v"}

STATEMENTS = {
    "one trajectory": (scoring.SQL_SCORE_TRAJECTORY, (1,)),
    "one spec": (scoring.SQL_SCORE_SPEC, ("spec",)),
    "one agent on a spec": (scoring.SQL_SCORE_SPEC_AGENT, ("spec", "alpha")),
    "every trajectory": (scoring.SQL_SCORE_ALL, ()),
    "one stage of one run of a spec": scoring.score_query(spec_id="spec", stage="plan", run_id="r1"),
    "one stage of a spec": scoring.score_query(spec_id="spec", stage="plan"),
    "one run of a spec": scoring.score_query(spec_id="spec", run_id="r1"),
}


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    # Some rows and ANALYZE statistics, so the planner decides as it would on a real file.
    connection = schema.connect(tmp_path_factory.mktemp("plan") / "plan.db")
    for i in range(30):
        add_trajectory(connection, f"spec-{i % 3}", f"agent-{i % 5}", turns=5,
                       questions=["low", "medium", "high"], violations=["minor", "major"],
                       run_id=f"r{i % 4}", stage=("plan", "implement")[i % 2])
    connection.execute("ANALYZE")
    yield connection
    connection.close()


def plan(conn, sql, params):
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def scanned(steps):
    return {m.group(1) for step in steps if (m := re.match(r"SCAN (\w+)", step))}


@pytest.mark.parametrize("name", STATEMENTS)
def test_no_scoring_statement_scans_turns_questions_or_violations(conn, name):
    sql, params = STATEMENTS[name]
    steps = plan(conn, sql, params)
    assert not scanned(steps) & PER_TURN, steps


@pytest.mark.parametrize("name", STATEMENTS)
def test_every_scoring_statement_reaches_questions_and_violations_by_their_turn_index(conn, name):
    sql, params = STATEMENTS[name]
    steps = plan(conn, sql, params)
    assert any("idx_questions_turn" in step for step in steps), steps
    assert any("idx_violations_turn" in step for step in steps), steps
    assert any(step.startswith("SEARCH tt USING COVERING INDEX") for step in steps), steps


@pytest.mark.parametrize("name", ["one trajectory", "one spec", "one agent on a spec",
                                  "one stage of one run of a spec", "one stage of a spec",
                                  "one run of a spec"])
def test_a_filtered_scoring_statement_finds_its_trajectories_by_index(conn, name):
    sql, params = STATEMENTS[name]
    assert "trajectories" not in scanned(plan(conn, sql, params))


# --- PostgreSQL: the same statements in its dialect, planned on a store of some size ----------

@pytest.fixture(scope="module")
def pg_conn(postgres_server):
    import psycopg

    from ppp_otel.storage.postgres import migrations as pg_schema
    from ppp_otel.storage.postgres.writer import write_all
    from ppp_otel.model import Question
    from ppp_otel.records import TrajectoryRecord, TurnRecord

    connection = pg_schema.connect(postgres_server.new_schema_url())
    records = []
    for i in range(1, 3001):
        t = TrajectoryRecord(f"{i:032x}", f"{i:016x}", f"spec-{i % 300}", f"agent-{i % 10}")
        records.append(t)
        records += [TurnRecord(t.trace_id, f"{i:08x}{k:08x}", t.key, k, "p", "r", extract_questions=False,
                               questions=[Question("q?", "low")]) for k in (1, 2)]
    write_all(connection, records, batch_size=3000)
    connection.execute("ANALYZE")
    yield connection
    connection.close()


PG_FILTERS = {
    "one trajectory": {"trajectory_id": 1},
    "one spec": {"spec_id": "spec-1"},
    "one agent on a spec": {"spec_id": "spec-1", "agent_name": "agent-1"},
    "one stage of one run of a spec": {"spec_id": "spec-1", "stage": "plan", "run_id": "r1"},
}


@pytest.mark.parametrize("name", PG_FILTERS)
def test_postgresql_scoring_reaches_turns_and_questions_through_indexes(pg_conn, name):
    from ppp_otel.storage.postgres.scoring import pg_filter, score_sql

    where, params = pg_filter(**PG_FILTERS[name])
    text = "\n".join(r[0] for r in pg_conn.execute("EXPLAIN " + score_sql(where), params))
    for table in ("trajectory_turns", "trajectory_questions", "trajectories"):
        assert f"Seq Scan on {table}" not in text, text
