"""The scoring query: each chosen trajectory with its question counts by effort
and its violation counts by severity, in one statement (rows as
:data:`ppp_otel.storage.base.SCORE_COLUMNS`). The formulas that turn counts
into rewards are :mod:`ppp_otel.scoring.rewards`'s.

SQLite-specific: ``MATERIALIZED`` and ``CROSS JOIN`` fix the plan (see
``tests/test_scoring_query_plan.py``); ``sum(boolean)`` counts.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# `judged` picks the trajectories; the two aggregates start from it, so SQLite
# walks trajectory_turns by its (trajectory_id, turn_number) index and the
# questions/violations by their covering (turn_id, effort|severity) indexes,
# touching only the judged trajectories' rows. CROSS JOIN fixes that join
# order: left free, the planner prefers to scan every turn so as to group by
# trajectory_id without sorting.
_SCORE_SQL = """
WITH judged AS MATERIALIZED (
    SELECT id, spec_id, agent_name, run_id, technical_score, trace_id, span_id
    FROM trajectories WHERE {where}
),
asked AS (
    SELECT j.id AS trajectory_id,
           sum(q.effort_level = 'low') AS low,
           sum(q.effort_level = 'medium') AS medium,
           sum(q.effort_level = 'high') AS high
    FROM judged j
    CROSS JOIN trajectory_turns tt ON tt.trajectory_id = j.id
    CROSS JOIN trajectory_questions q ON q.turn_id = tt.id
    GROUP BY j.id
),
violated AS (
    SELECT j.id AS trajectory_id,
           sum(v.severity = 'minor') AS minor,
           sum(v.severity = 'major') AS major,
           sum(v.severity = 'critical') AS critical
    FROM judged j
    CROSS JOIN trajectory_turns tt ON tt.trajectory_id = j.id
    CROSS JOIN trajectory_violations v ON v.turn_id = tt.id
    GROUP BY j.id
)
SELECT j.id, j.spec_id, j.agent_name, j.run_id, j.technical_score, j.trace_id, j.span_id,
       coalesce(a.low, 0), coalesce(a.medium, 0), coalesce(a.high, 0),
       coalesce(v.minor, 0), coalesce(v.major, 0), coalesce(v.critical, 0)
FROM judged j
LEFT JOIN asked a ON a.trajectory_id = j.id
LEFT JOIN violated v ON v.trajectory_id = j.id
ORDER BY j.id
"""

#: One statement per way of choosing trajectories; only the WHERE differs, so
#: each filter can use its own index ((spec_id, agent_name), or the primary key).
SQL_SCORE_TRAJECTORY = _SCORE_SQL.format(where="id = ?")
SQL_SCORE_SPEC = _SCORE_SQL.format(where="spec_id = ?")
SQL_SCORE_SPEC_AGENT = _SCORE_SQL.format(where="spec_id = ? AND agent_name = ?")
SQL_SCORE_ALL = _SCORE_SQL.format(where="1")


def score_query(
    *, trajectory_id: int | None = None, spec_id: str | None = None, agent_name: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters choosing trajectories by id, spec, spec+agent, or all."""
    if trajectory_id is not None:
        if spec_id is not None or agent_name is not None:
            raise ValueError("give a trajectory id or a spec (and agent), not both")
        return SQL_SCORE_TRAJECTORY, (trajectory_id,)
    if agent_name is not None:
        if spec_id is None:
            raise ValueError("an agent is scored on a spec: give spec_id with agent_name")
        return SQL_SCORE_SPEC_AGENT, (spec_id, agent_name)
    if spec_id is not None:
        return SQL_SCORE_SPEC, (spec_id,)
    return SQL_SCORE_ALL, ()




def score_counts(
    conn: sqlite3.Connection,
    *,
    trajectory_id: int | None = None,
    spec_id: str | None = None,
    agent_name: str | None = None,
) -> list[tuple]:
    sql, params = score_query(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name)
    return conn.execute(sql, params).fetchall()
