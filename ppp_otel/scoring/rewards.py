"""The interaction rewards of a trajectory: R_Proact and R_Pers (DESIGN.md, "Scoring").

- R_Proact: no questions, or only low-effort ones -> +0.05; otherwise
  -0.1 per medium and -0.5 per high question (low ones then count 0).
- R_Pers: no violations -> +0.05; otherwise -0.01 per minor, -0.03 per major,
  -0.05 per critical violation.

The store counts a trajectory's questions by effort and its violations by
severity (one statement, :mod:`ppp_otel.storage.sqlite.scoring`: no row per
question reaches Python); the formulas above turn the counts into rewards.
:mod:`ppp_otel.scoring.arewards` is this module run on the async store's thread.

Per agent (:func:`score_agents`): an agent's reward on a spec is the mean over
its trajectories of that spec, its question and violation counts are summed,
and its technical score is the mean of the ``technical_score`` values its
trajectories carry (``None`` when none does).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from operator import itemgetter
from typing import Any, Iterator, Mapping, Sequence

from ppp_otel.conventions import EFFORT_LEVELS, SEVERITIES
from ppp_otel.scoring.paper import check_profile, rewards_from_rows
from ppp_otel.storage import using_store
from ppp_otel.storage.base import SCORE_COLUMNS as _SCORE_COLUMNS, TrajectoryBackend

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
    stage: str | None = None
    created_at: str | None = None
    rewards: str = "spec"  # the reward profile r_proact and r_pers were computed by

    def to_dict(self) -> dict[str, Any]:
        # asdict()'s result, written out: asdict deep-copies field by field, which
        # costs more than the SQL when `ppp-otel score --json` prints 100,000 scores.
        return {
            "trajectory_id": self.trajectory_id, "spec_id": self.spec_id, "agent_name": self.agent_name,
            "run_id": self.run_id, "r_proact": self.r_proact, "r_pers": self.r_pers,
            "questions": dict(self.questions), "violations": dict(self.violations),
            "technical_score": self.technical_score, "trace_id": self.trace_id, "span_id": self.span_id,
            "stage": self.stage, "created_at": self.created_at, "rewards": self.rewards,
        }


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
    rewards: str = "spec"

    @property
    def trajectory_ids(self) -> list[int]:
        return [t.trajectory_id for t in self.trajectories]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trajectory_ids"] = self.trajectory_ids
        del data["trajectories"]
        return data


def with_profile(scores: list[TrajectoryScore], rewards: str, paper: Mapping[int, tuple[float, float]] | None):
    """The scores under a reward profile: the counts stay, the rewards are the profile's."""
    if rewards == "spec":
        return scores
    return [
        replace(s, r_proact=paper[s.trajectory_id][0], r_pers=paper[s.trajectory_id][1], rewards=rewards)
        for s in scores
    ]


@functools.lru_cache(maxsize=4096)
def _rewards(low: int, medium: int, high: int, minor: int, major: int, critical: int) -> tuple[float, float]:
    # Scoring every trajectory of a large file meets the same few count
    # combinations again and again; the rewards are pure functions of them.
    return (proactivity_reward({"low": low, "medium": medium, "high": high}),
            personalization_reward({"minor": minor, "major": major, "critical": critical}))


def score_from_row(row: Sequence[Any]) -> TrajectoryScore:
    return scores_from_rows((row,))[0]


def scores_from_rows(rows: Sequence[Sequence[Any]]) -> list[TrajectoryScore]:
    """The score of each row of ``score_counts`` (:data:`~ppp_otel.storage.base.SCORE_COLUMNS`)."""
    scores = []
    append = scores.append
    rewards = _rewards
    new = _new
    for (tid, spec_id, agent, run_id, technical, trace_id, span_id,
         low, medium, high, minor, major, critical, stage, created_at) in rows:
        # Filled in directly, in one loop: a frozen dataclass's __init__ sets each
        # field through object.__setattr__, and a call per row costs as much as
        # the statement itself when a spec has a few trajectories. Same fields
        # in the same order, the same object; ``rewards`` keeps its class default.
        score = new(TrajectoryScore)
        d = score.__dict__
        d["trajectory_id"] = tid
        d["spec_id"] = spec_id
        d["agent_name"] = agent
        d["run_id"] = run_id
        d["r_proact"], d["r_pers"] = rewards(low, medium, high, minor, major, critical)
        d["questions"] = {"low": low, "medium": medium, "high": high}
        d["violations"] = {"minor": minor, "major": major, "critical": critical}
        d["technical_score"] = technical
        d["trace_id"] = trace_id
        d["span_id"] = span_id
        d["stage"] = stage
        d["created_at"] = created_at
        append(score)
    return scores


_new = object.__new__


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
            rewards=mine[0].rewards,
        )
    return result


# --- the API --------------------------------------------------------------------

# A store, a path (opened, and closed afterwards), or an open sqlite3 connection.
Database = TrajectoryBackend | sqlite3.Connection | str | os.PathLike


def score_trajectories(
    db: Database,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    trajectory_id: int | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    rewards: str = "spec",
) -> list[TrajectoryScore]:
    """Scores of the chosen trajectories (all of them when no filter is given), by id.

    ``rewards`` is the reward profile: ``spec`` (the default) or ``paper``
    (:mod:`ppp_otel.scoring.paper`).
    """
    check_profile(rewards)
    filters = dict(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name, stage=stage,
                   run_id=run_id)
    with using_store(db) as store:
        scores = scores_from_rows(store.score_counts(**filters))
        paper = rewards_from_rows(store.paper_turn_rows(**filters)) if rewards == "paper" else None
    return with_profile(scores, rewards, paper)


_SCORED = [_SCORE_COLUMNS.index(name) for name in (
    "id", "spec_id", "agent_name", "run_id", "technical_score", "low", "medium", "high", "minor", "major",
    "critical", "stage")]
#: The columns of :func:`score_columns`, in this order.
SCORE_ROW_COLUMNS = ("trajectory_id", "spec_id", "agent_name", "run_id", "r_proact", "r_pers", "questions",
                     "violations", "technical_score", "stage")


def score_columns(
    db: Database,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    trajectory_id: int | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    rewards: str = "spec",
) -> dict[str, list]:
    """What :func:`score_trajectories` scores, by column, for a caller printing a hundred
    thousand of them that has no use for objects: :data:`SCORE_ROW_COLUMNS`, each a list in
    trajectory order (``questions`` as (low, medium, high) counts, ``violations`` as (minor,
    major, critical)), under the reward profile ``rewards``. Under ``spec`` the store gives
    the columns a batch of rows at a time and each reward is computed once per distinct
    count triple, so a hundred thousand trajectories cost no Python call per row."""
    check_profile(rewards)
    filters = dict(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name, stage=stage,
                   run_id=run_id)
    if rewards != "spec":
        scores = score_trajectories(db, rewards=rewards, **filters)
        return {
            "trajectory_id": [s.trajectory_id for s in scores], "spec_id": [s.spec_id for s in scores],
            "agent_name": [s.agent_name for s in scores], "run_id": [s.run_id for s in scores],
            "r_proact": [s.r_proact for s in scores], "r_pers": [s.r_pers for s in scores],
            "questions": [tuple(s.questions.values()) for s in scores],
            "violations": [tuple(s.violations.values()) for s in scores],
            "technical_score": [s.technical_score for s in scores], "stage": [s.stage for s in scores],
        }
    with using_store(db) as store:
        by_column = getattr(store, "score_count_columns", None)
        if by_column is not None:
            found = by_column(_SCORED, **filters)
        else:  # a backend of its own that only gives rows
            rows = store.score_counts(**filters)
            found = [list(map(itemgetter(i), rows)) for i in _SCORED]
    (tid, spec, agent, run, technical, low, medium, high, minor, major, critical, stage_) = found
    questions = list(zip(low, medium, high))
    violations = list(zip(minor, major, critical))
    # R_Proact depends on the question counts alone and R_Pers on the violation counts
    # alone: each is computed once per distinct triple, and looked up for every row.
    proact = {q: proactivity_reward(dict(zip(_EFFORTS, q))) for q in set(questions)}
    pers = {v: personalization_reward(dict(zip(_SEVERITIES, v))) for v in set(violations)}
    return dict(zip(SCORE_ROW_COLUMNS, (
        tid, spec, agent, run, list(map(proact.__getitem__, questions)), list(map(pers.__getitem__, violations)),
        questions, violations, technical, stage_)))


_EFFORTS = ("low", "medium", "high")
_SEVERITIES = ("minor", "major", "critical")


def score_trajectory(db: Database, trajectory_id: int, *, rewards: str = "spec") -> TrajectoryScore | None:
    """One trajectory's score; None when there is no trajectory with that id."""
    found = score_trajectories(db, trajectory_id=trajectory_id, rewards=rewards)
    return found[0] if found else None


def score_spec(
    db: Database, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> list[TrajectoryScore]:
    """Every trajectory of a spec (of one stage and run, when given), by id."""
    return score_trajectories(db, spec_id=spec_id, stage=stage, run_id=run_id, rewards=rewards)


def score_agents(
    db: Database, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> dict[str, AgentRewards]:
    """Each agent that has trajectories of the spec (of the stage and run, when given), by
    name: mean rewards over them."""
    return agent_rewards(score_spec(db, spec_id, stage=stage, run_id=run_id, rewards=rewards))
