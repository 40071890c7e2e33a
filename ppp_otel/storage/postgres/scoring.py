"""The scoring statements in PostgreSQL's dialect: the rows of
:mod:`ppp_otel.storage.sqlite.scoring` (``SCORE_COLUMNS``, ``PAPER_TURN_COLUMNS``,
violations by preference) for the same filters, so the formulas above the
seam turn them into the same rewards.

The shape is SQLite's: pick the judged trajectories, count their questions by
effort and violations by severity through the turn, question and violation
indexes, join the two counts back. ``count(*) FILTER`` gives integers where
``sum(boolean)`` would not exist; ``json_agg`` stands for ``json_group_array``;
the planner needs no ``CROSS JOIN`` hint.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from ppp_otel.storage.base import cursor_columns
from ppp_otel.storage.sqlite.scoring import score_filter

_SCORE_SQL = """
WITH judged AS MATERIALIZED (
    SELECT id, spec_id, agent_name, run_id, technical_score, trace_id, span_id, stage, created_at
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
       coalesce(v.minor, 0), coalesce(v.major, 0), coalesce(v.critical, 0),
       j.stage, j.created_at
FROM judged j
LEFT JOIN asked a ON a.trajectory_id = j.id
LEFT JOIN violated v ON v.trajectory_id = j.id
ORDER BY j.id
"""

_TURNS_SQL = """
WITH judged AS MATERIALIZED (SELECT id, preferences FROM trajectories WHERE {where})
SELECT j.id, j.preferences, tt.turn_number,
       (SELECT max(CASE q.effort_level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END)
          FROM trajectory_questions q WHERE q.turn_id = tt.id),
       (SELECT coalesce(json_agg(DISTINCT v.preference_name), '[]'::json)::text
          FROM trajectory_violations v WHERE v.turn_id = tt.id)
FROM judged j
LEFT JOIN trajectory_turns tt ON tt.trajectory_id = j.id
ORDER BY j.id, tt.turn_number NULLS FIRST
"""

_VIOLATIONS_BY_PREFERENCE = """
WITH judged AS MATERIALIZED (SELECT id FROM trajectories WHERE {where})
SELECT j.id, v.preference_name, count(*)
FROM judged j
JOIN trajectory_turns tt ON tt.trajectory_id = j.id
JOIN trajectory_violations v ON v.turn_id = tt.id
GROUP BY j.id, v.preference_name
"""


def pg_filter(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    """SQLite's :func:`~ppp_otel.storage.sqlite.scoring.score_filter` (same checks, same
    filters) with psycopg's parameters."""
    where, params = score_filter(**filters)
    return _pg_where(where), params


@functools.lru_cache(maxsize=64)
def _pg_where(where: str) -> str:
    # score_filter's "1" chooses every trajectory, its "0" none (an id no BIGINT holds).
    return {"1": "TRUE", "0": "FALSE"}.get(where) or where.replace("?", "%s")


# Each statement kept once per clause (as SQLite's): a statement formatted anew
# is a new string that psycopg hashes again to find its prepared statement.
@functools.lru_cache(maxsize=64)
def score_sql(where: str) -> str:
    return _SCORE_SQL.format(where=where)


@functools.lru_cache(maxsize=64)
def _turns_sql(where: str) -> str:
    return _TURNS_SQL.format(where=where)


@functools.lru_cache(maxsize=64)
def _violations_sql(where: str) -> str:
    return _VIOLATIONS_BY_PREFERENCE.format(where=where)


def score_counts(conn: Any, **filters: Any) -> list[tuple]:
    where, params = pg_filter(**filters)
    return conn.execute(score_sql(where), params).fetchall()


def score_count_columns(conn: Any, picked: Sequence[int], **filters: Any) -> list[list[Any]]:
    """The columns at the indexes ``picked`` of :func:`score_counts`'s rows."""
    where, params = pg_filter(**filters)
    return cursor_columns(conn.execute(score_sql(where), params), picked)


def paper_turn_rows(conn: Any, **filters: Any) -> list[tuple]:
    where, params = pg_filter(**filters)
    return conn.execute(_turns_sql(where), params).fetchall()


def violations_by_preference(conn: Any, **filters: Any) -> list[tuple]:
    where, params = pg_filter(**filters)
    return conn.execute(_violations_sql(where), params).fetchall()
