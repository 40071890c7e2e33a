"""The interaction rewards of a trajectory: R_Proact and R_Pers (DESIGN.md, "Scoring").

- R_Proact: no questions, or only low-effort ones -> +0.05; otherwise
  -0.1 per medium and -0.5 per high question (low ones then count 0).
- R_Pers: no violations -> +0.05; otherwise -0.01 per minor, -0.03 per major,
  -0.05 per critical violation.

SQLite counts a trajectory's questions by effort and its violations by
severity (one statement, through the turn and question/violation indexes, no
row per question reaches Python); the formulas above turn the counts into
rewards. The statements live here once and :mod:`ppp_otel.scoring.arewards` runs the
same ones over aiosqlite, so sync and async cannot disagree.

Per agent (:func:`score_agents`): an agent's reward on a spec is the mean over
its trajectories of that spec, its question and violation counts are summed,
and its technical score is the mean of the ``technical_score`` values its
trajectories carry (``None`` when none does).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from ppp_otel.storage import backends
from ppp_otel.conventions import EFFORT_LEVELS, SEVERITIES

__all__ = [
    "AgentRewards",
    "TrajectoryScore",
    "agent_rewards",
    "personalization_reward",
    "proactivity_reward",
    "score_agents",
    "score_spec",
    "score_trajectories",
    "score_trajectory",
]

# Rewards are computed in thousandths, as integers, and divided once at the
# end: -0.1 * 3 in floats is -0.30000000000000004, and tests, tables and
# history should show -0.3.
_SCALE = 1000
_BONUS = 50  # +0.05: nothing to hold against the agent
_QUESTION_COST = {"low": 0, "medium": -100, "high": -500}
_VIOLATION_COST = {"minor": -10, "major": -30, "critical": -50}


def proactivity_reward(questions: Mapping[str, int]) -> float:
    """R_Proact from question counts by effort (missing levels count 0)."""
    if not any(questions.get(level, 0) for level in ("medium", "high")):
        return _BONUS / _SCALE
    return sum(_QUESTION_COST[level] * questions.get(level, 0) for level in EFFORT_LEVELS) / _SCALE


def personalization_reward(violations: Mapping[str, int]) -> float:
    """R_Pers from violation counts by severity (missing severities count 0)."""
    if not any(violations.get(severity, 0) for severity in SEVERITIES):
        return _BONUS / _SCALE
    return sum(_VIOLATION_COST[s] * violations.get(s, 0) for s in SEVERITIES) / _SCALE


@dataclass(frozen=True)
class TrajectoryScore:
    trajectory_id: int
    spec_id: str
    agent_name: str
    run_id: str | None
    r_proact: float
    r_pers: float
    questions: dict[str, int]  # {'low': n, 'medium': n, 'high': n}
    violations: dict[str, int]  # {'minor': n, 'major': n, 'critical': n}
    technical_score: float | None = None
    trace_id: str | None = None  # hex, of the trajectory span: for links and annotations
    span_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentRewards:
    """One agent's rewards on one spec: means over its trajectories of the spec."""

    agent_name: str
    spec_id: str
    r_proact: float
    r_pers: float
    technical_score: float | None  # mean of the trajectories' technical scores, if any
    questions: dict[str, int]
    violations: dict[str, int]
    trajectories: list[TrajectoryScore] = field(default_factory=list)

    @property
    def trajectory_ids(self) -> list[int]:
        return [t.trajectory_id for t in self.trajectories]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trajectory_ids"] = self.trajectory_ids
        del data["trajectories"]
        return data


# --- SQL, shared with ascoring ------------------------------------------------

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


def score_from_row(row: Sequence[Any]) -> TrajectoryScore:
    (tid, spec_id, agent, run_id, technical, trace_id, span_id,
     low, medium, high, minor, major, critical) = row
    questions = {"low": low, "medium": medium, "high": high}
    violations = {"minor": minor, "major": major, "critical": critical}
    return TrajectoryScore(
        trajectory_id=tid, spec_id=spec_id, agent_name=agent, run_id=run_id,
        r_proact=proactivity_reward(questions), r_pers=personalization_reward(violations),
        questions=questions, violations=violations, technical_score=technical,
        trace_id=trace_id, span_id=span_id,
    )


def _mean(values: Sequence[float]) -> float:
    # Rounded so that summing floats leaves no noise: the mean of 0.05 and -0.5 is -0.225.
    return round(sum(values) / len(values), 12)


def agent_rewards(scores: Sequence[TrajectoryScore]) -> dict[str, AgentRewards]:
    """Group trajectory scores by agent (name order); the mapping :func:`score_agents` returns."""
    grouped: dict[str, list[TrajectoryScore]] = {}
    for score in scores:
        grouped.setdefault(score.agent_name, []).append(score)
    result = {}
    for agent in sorted(grouped):
        mine = grouped[agent]
        technical = [s.technical_score for s in mine if s.technical_score is not None]
        result[agent] = AgentRewards(
            agent_name=agent,
            spec_id=mine[0].spec_id,
            r_proact=_mean([s.r_proact for s in mine]),
            r_pers=_mean([s.r_pers for s in mine]),
            technical_score=_mean(technical) if technical else None,
            questions={k: sum(s.questions[k] for s in mine) for k in EFFORT_LEVELS},
            violations={k: sum(s.violations[k] for s in mine) for k in SEVERITIES},
            trajectories=mine,
        )
    return result


# --- the sync API --------------------------------------------------------------

#: A SQLite connection or path, a psycopg connection or a ``postgresql://`` URL.
Database = Any


@contextmanager
def open_database(db: Database) -> Iterator[Any]:
    """Use a connection as given, or open (and afterwards close) a database that must exist."""
    if isinstance(db, sqlite3.Connection) or backends.is_postgres_connection(db):
        yield db
        return
    conn = backends.connect(db, must_exist=True)
    try:
        yield conn
    finally:
        conn.close()


def score_trajectories(
    db: Database,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    trajectory_id: int | None = None,
) -> list[TrajectoryScore]:
    """Scores of the chosen trajectories (all of them when no filter is given), by id."""
    sql, params = score_query(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name)
    with open_database(db) as conn:
        if backends.is_postgres_connection(conn):
            from ppp_otel.storage.postgres.rewards import score_rows

            return [score_from_row(row) for row in score_rows(conn, sql, params)]
        return [score_from_row(row) for row in conn.execute(sql, params)]


def score_trajectory(db: Database, trajectory_id: int) -> TrajectoryScore | None:
    """One trajectory's score; None when there is no trajectory with that id."""
    found = score_trajectories(db, trajectory_id=trajectory_id)
    return found[0] if found else None


def score_spec(db: Database, spec_id: str) -> list[TrajectoryScore]:
    """Every trajectory of a spec, by id."""
    return score_trajectories(db, spec_id=spec_id)


def score_agents(db: Database, spec_id: str) -> dict[str, AgentRewards]:
    """Each agent that has trajectories of the spec, by name: mean rewards over them."""
    return agent_rewards(score_spec(db, spec_id))
