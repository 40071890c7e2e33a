"""The scoring statement in PostgreSQL's dialect: the same rows as
:data:`ppp_otel.scoring.rewards.SQL_SCORE_SPEC` and its siblings, so the
same :func:`~ppp_otel.scoring.rewards.score_from_row` turns them into scores.

The shape is SQLite's: pick the judged trajectories, count their questions by
effort and violations by severity through the turn, question and violation
indexes, join the two counts back. ``count(*) FILTER`` gives integers where
``sum(boolean)`` would not exist; the planner needs no ``CROSS JOIN`` hint.
"""

from __future__ import annotations

from typing import Any

_SCORE_SQL = """
WITH judged AS MATERIALIZED (
    SELECT id, spec_id, agent_name, run_id, technical_score, trace_id, span_id
    FROM trajectories WHERE {where}
),
asked AS (
    SELECT tt.trajectory_id,
           count(*) FILTER (WHERE q.effort_level = 'low') AS low,
           count(*) FILTER (WHERE q.effort_level = 'medium') AS medium,
           count(*) FILTER (WHERE q.effort_level = 'high') AS high
    FROM judged j
    JOIN trajectory_turns tt ON tt.trajectory_id = j.id
    JOIN trajectory_questions q ON q.turn_id = tt.id
    GROUP BY tt.trajectory_id
),
violated AS (
    SELECT tt.trajectory_id,
           count(*) FILTER (WHERE v.severity = 'minor') AS minor,
           count(*) FILTER (WHERE v.severity = 'major') AS major,
           count(*) FILTER (WHERE v.severity = 'critical') AS critical
    FROM judged j
    JOIN trajectory_turns tt ON tt.trajectory_id = j.id
    JOIN trajectory_violations v ON v.turn_id = tt.id
    GROUP BY tt.trajectory_id
)
SELECT j.id, j.spec_id, j.agent_name, j.run_id, j.technical_score, j.trace_id, j.span_id,
       coalesce(a.low, 0), coalesce(a.medium, 0), coalesce(a.high, 0),
       coalesce(v.minor, 0), coalesce(v.major, 0), coalesce(v.critical, 0)
FROM judged j
LEFT JOIN asked a ON a.trajectory_id = j.id
LEFT JOIN violated v ON v.trajectory_id = j.id
ORDER BY j.id
"""

SQL_SCORE_TRAJECTORY = _SCORE_SQL.format(where="id = %s")
SQL_SCORE_SPEC = _SCORE_SQL.format(where="spec_id = %s")
SQL_SCORE_SPEC_AGENT = _SCORE_SQL.format(where="spec_id = %s AND agent_name = %s")
SQL_SCORE_ALL = _SCORE_SQL.format(where="TRUE")

_BY_SQLITE_STATEMENT: dict[str, str] = {}


def translate(sqlite_sql: str) -> str:
    """The PostgreSQL statement standing for one of scoring/rewards.py's SQLite statements."""
    if not _BY_SQLITE_STATEMENT:
        from ppp_otel.scoring import rewards

        _BY_SQLITE_STATEMENT.update({
            rewards.SQL_SCORE_TRAJECTORY: SQL_SCORE_TRAJECTORY,
            rewards.SQL_SCORE_SPEC: SQL_SCORE_SPEC,
            rewards.SQL_SCORE_SPEC_AGENT: SQL_SCORE_SPEC_AGENT,
            rewards.SQL_SCORE_ALL: SQL_SCORE_ALL,
        })
    return _BY_SQLITE_STATEMENT[sqlite_sql]


def score_rows(conn: Any, sqlite_sql: str, params: tuple[Any, ...]) -> list[tuple]:
    return conn.execute(translate(sqlite_sql), params).fetchall()
