"""The scoring query: each chosen trajectory with its question counts by effort
and its violation counts by severity, in one statement (rows as
:data:`ppp_otel.storage.base.SCORE_COLUMNS`). The formulas that turn counts
into rewards are :mod:`ppp_otel.scoring.rewards`'s.

SQLite-specific: ``MATERIALIZED`` and ``CROSS JOIN`` fix the plan (see
``tests/test_scoring_query_plan.py``); ``sum(boolean)`` counts.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, Sequence

from ppp_otel.storage.base import can_be_row_id, cursor_columns

# `judged` picks the trajectories; the two aggregates start from it, so SQLite
# walks trajectory_turns by its (trajectory_id, turn_number) index and the
# questions/violations by their covering (turn_id, effort|severity) indexes,
# touching only the judged trajectories' rows. CROSS JOIN fixes that join
# order: left free, the planner prefers to scan every turn so as to group by
# trajectory_id without sorting.
_SCORE_SQL = """
WITH judged AS MATERIALIZED (
    SELECT id, spec_id, agent_name, run_id, technical_score, trace_id, span_id, stage, created_at
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
       coalesce(v.minor, 0), coalesce(v.major, 0), coalesce(v.critical, 0),
       j.stage, j.created_at
FROM judged j
LEFT JOIN asked a ON a.trajectory_id = j.id
LEFT JOIN violated v ON v.trajectory_id = j.id
ORDER BY j.id
"""

#: One statement per way of choosing trajectories; only the WHERE differs, so
#: each filter can use its own index ((spec_id, agent_name), (spec_id, run_id,
#: stage), or the primary key).
SQL_SCORE_TRAJECTORY = _SCORE_SQL.format(where="id = ?")
SQL_SCORE_SPEC = _SCORE_SQL.format(where="spec_id = ?")
SQL_SCORE_SPEC_AGENT = _SCORE_SQL.format(where="spec_id = ? AND agent_name = ?")
SQL_SCORE_ALL = _SCORE_SQL.format(where="1")

#: The trajectory columns a score can be filtered on, in WHERE order.
_FILTER_COLUMNS = ("spec_id", "agent_name", "run_id", "stage")

# One row per turn of the chosen trajectories, for the paper's reward profile: its
# costliest question (1..3, NULL when it asks nothing) and the preferences its
# violations name (SQLite-specific: json_group_array).
_TURNS_SQL = """
WITH judged AS MATERIALIZED (SELECT id, preferences FROM trajectories WHERE {where})
SELECT j.id, j.preferences, tt.turn_number,
       (SELECT max(CASE q.effort_level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END)
          FROM trajectory_questions q WHERE q.turn_id = tt.id),
       (SELECT json_group_array(DISTINCT v.preference_name)
          FROM trajectory_violations v WHERE v.turn_id = tt.id)
FROM judged j
LEFT JOIN trajectory_turns tt ON tt.trajectory_id = j.id
ORDER BY j.id, tt.turn_number
"""

# Violations of each chosen trajectory by preference, for trends.
_VIOLATIONS_BY_PREFERENCE = """
WITH judged AS MATERIALIZED (SELECT id FROM trajectories WHERE {where})
SELECT j.id, v.preference_name, count(*)
FROM judged j
CROSS JOIN trajectory_turns tt ON tt.trajectory_id = j.id
CROSS JOIN trajectory_violations v ON v.turn_id = tt.id
GROUP BY j.id, v.preference_name
"""


def score_filter(
    *,
    trajectory_id: int | None = None,
    spec_id: str | None = None,
    agent_name: str | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause and parameters choosing trajectories by id, or by spec, agent, run
    and stage (any of them; all trajectories when none is given)."""
    if trajectory_id is not None:
        if spec_id is not None or agent_name is not None or run_id is not None or stage is not None:
            raise ValueError("give a trajectory id or a spec (and agent, run, stage), not both")
        # An id no integer column can hold names no trajectory (the driver would raise).
        return ("id = ?", (trajectory_id,)) if can_be_row_id(trajectory_id) else ("0", ())
    if agent_name is not None and spec_id is None:
        raise ValueError("an agent is scored on a spec: give spec_id with agent_name")
    # Only the filters given go into the WHERE clause, so each can use an index.
    given = (spec_id is not None, agent_name is not None, run_id is not None, stage is not None)
    return _where(given), tuple([value for value in (spec_id, agent_name, run_id, stage) if value is not None])


@functools.lru_cache(maxsize=None)
def _where(given: tuple[bool, ...]) -> str:
    # One clause per combination of filters given (16 at most), built once.
    return " AND ".join(f"{column} = ?" for column, on in zip(_FILTER_COLUMNS, given) if on) or "1"


@functools.lru_cache(maxsize=64)
def score_sql(where: str) -> str:
    """The scoring statement for a WHERE clause of :func:`score_filter`.

    Kept once per clause: a statement formatted anew is a new string, hashed
    again by the driver's statement cache on every call."""
    return _SCORE_SQL.format(where=where)


def score_query(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    """The scoring statement and its parameters for :func:`score_filter`'s filters."""
    where, params = score_filter(**filters)
    return score_sql(where), params


@functools.lru_cache(maxsize=64)
def turns_query(where: str) -> str:
    """The paper profile's per-turn statement for a WHERE clause of :func:`score_filter`."""
    return _TURNS_SQL.format(where=where)


def score_counts(conn: sqlite3.Connection, **filters: Any) -> list[tuple]:
    where, params = score_filter(**filters)
    return conn.execute(score_sql(where), params).fetchall()


def score_count_columns(conn: sqlite3.Connection, picked: Sequence[int], **filters: Any) -> list[list[Any]]:
    """The columns at the indexes ``picked`` of :func:`score_counts`'s rows."""
    where, params = score_filter(**filters)
    return cursor_columns(conn.execute(score_sql(where), params), picked)


def paper_turn_rows(conn: sqlite3.Connection, **filters: Any) -> list[tuple]:
    where, params = score_filter(**filters)
    return conn.execute(turns_query(where), params).fetchall()


def violations_by_preference(conn: sqlite3.Connection, **filters: Any) -> list[tuple]:
    """(trajectory id, preference, violations) of the chosen trajectories."""
    where, params = score_filter(**filters)
    return conn.execute(_violations_sql(where), params).fetchall()


@functools.lru_cache(maxsize=64)
def _violations_sql(where: str) -> str:
    return _VIOLATIONS_BY_PREFERENCE.format(where=where)
