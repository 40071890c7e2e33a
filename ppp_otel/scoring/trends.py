"""How each agent's scores moved from run to run on a spec.

Per agent and per run, in the order the runs started: the rewards R_Proact
and R_Pers (means over the agent's trajectories of that run), the technical
score, the final score of the weighted consensus of that run (the same
formula, through :func:`ppp_otel.scoring.consensus.judge`), the questions by effort
and the violations by preference, each with its change against the agent's
previous run. ``stage`` limits everything to one stage of the spec; without
it a run's figures cover every stage the agent worked in that run. The
rewards are those of the reward profile (``spec`` or ``paper``), as in
:func:`ppp_otel.scoring.consensus.consensus`.

A run starts at its earliest trajectory; trajectories with no run id form
one run of their own (``run_id`` None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ppp_otel.config.settings import process_config
from ppp_otel.scoring.consensus import Weights, judge, resolve_weights, rewards_profile
from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.scoring.paper import check_profile, rewards_from_rows
from ppp_otel.scoring.rewards import Database, TrajectoryScore, agent_rewards, scores_from_rows, with_profile
from ppp_otel.storage import using_store

__all__ = ["AgentTrend", "RunTrend", "Trends", "trends"]

# Violations by preference name: the scoring statement counts them by severity.

_NUMBERS = ("technical", "r_proact", "r_pers", "final")


@dataclass
class RunTrend:
    """One agent's figures in one run, and how they changed since its previous run."""

    run_id: str | None
    started_at: str | None
    stages: list[str | None]
    trajectory_ids: list[int]
    technical: float | None
    r_proact: float
    r_pers: float
    final: float
    questions: dict[str, int]  # by effort: low, medium, high
    violations: dict[str, int]  # by preference name
    #: Against the previous run of the agent: each number's difference (None where either
    #: side has none), questions by effort, violations by preference. None for the first run.
    change: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "started_at": self.started_at, "stages": list(self.stages),
            "trajectory_ids": list(self.trajectory_ids),
            # technical_score, as every --json names it; "technical", its earlier name here, is kept.
            "technical_score": self.technical, "technical": self.technical,
            "r_proact": self.r_proact, "r_pers": self.r_pers, "final": self.final,
            "questions": dict(self.questions), "violations": dict(self.violations),
            "change": None if self.change is None else {"technical_score": self.change["technical"], **self.change},
        }


@dataclass
class AgentTrend:
    agent_name: str
    runs: list[RunTrend] = field(default_factory=list)  # in the order they started

    def to_dict(self) -> dict[str, Any]:
        return {"agent_name": self.agent_name, "runs": [r.to_dict() for r in self.runs]}


@dataclass
class Trends:
    spec_id: str
    stage: str | None
    agent_name: str | None
    weights: Weights
    agents: list[AgentTrend]  # by name
    rewards: str = "spec"  # the reward profile r_proact and r_pers were computed by

    def agent(self, name: str) -> AgentTrend:
        for trend in self.agents:
            if trend.agent_name == name:
                return trend
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec_id, "stage": self.stage, "agent_name": self.agent_name,
            "weights": self.weights.to_dict(), "rewards": self.rewards,
            "agents": [a.to_dict() for a in self.agents],
        }


def _difference(now: float | None, before: float | None) -> float | None:
    if now is None or before is None:
        return None
    return round(now - before, 12)  # no float noise: 0.05 - -0.5 is 0.55


def _change(now: RunTrend, before: RunTrend) -> dict[str, Any]:
    preferences = sorted(set(now.violations) | set(before.violations))
    change: dict[str, Any] = {name: _difference(getattr(now, name), getattr(before, name)) for name in _NUMBERS}
    change["questions"] = {e: now.questions.get(e, 0) - before.questions.get(e, 0) for e in EFFORT_LEVELS}
    change["violations"] = {p: now.violations.get(p, 0) - before.violations.get(p, 0) for p in preferences}
    change["since_run_id"] = before.run_id
    return change


def _started(scores: Sequence[TrajectoryScore]) -> str | None:
    stamps = [s.created_at for s in scores if s.created_at]
    return min(stamps) if stamps else None


def _ordered_stages(scores: Sequence[TrajectoryScore]) -> list[str | None]:
    # In the order the agent worked in them: a run's plan comes before its implement.
    seen: dict[str | None, str] = {}
    for s in sorted(scores, key=lambda s: (s.created_at or "", s.trajectory_id)):
        seen.setdefault(s.stage, "")
    return list(seen)


def trends(
    db: Database,
    spec_id: str,
    *,
    agent_name: str | None = None,
    stage: str | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    config: Any = None,
    rewards: str | None = None,
) -> Trends:
    """Each agent's figures per run of ``spec_id`` (one agent, one stage, when given).

    ``rewards`` is the reward profile; left out, it is ``[ppp.scoring] rewards`` of
    ``config`` (with no ``config``, of the process's configuration), else ``spec``.
    A spec (or agent, or stage) with no trajectories gives no agents, not an error:
    there is simply nothing to compare yet.
    """
    w = resolve_weights(weights, config=config)
    profile = check_profile(rewards or rewards_profile(config if config is not None else process_config()))
    filters = dict(spec_id=spec_id, agent_name=agent_name, stage=stage)
    with using_store(db) as store:
        scores = scores_from_rows(store.score_counts(**filters))
        if profile != "spec":
            scores = with_profile(scores, profile, rewards_from_rows(store.paper_turn_rows(**filters)))
        by_preference: dict[int, dict[str, int]] = {}
        for trajectory_id, preference, count in store.violations_by_preference(**filters):
            by_preference.setdefault(trajectory_id, {})[preference] = count

    runs: dict[str | None, list[TrajectoryScore]] = {}
    for score in scores:
        runs.setdefault(score.run_id, []).append(score)
    order = sorted(runs, key=lambda run: (_started(runs[run]) or "", run or ""))

    per_agent: dict[str, list[RunTrend]] = {}
    for run in order:
        rewards = agent_rewards(runs[run])
        # The consensus of this run (of the stage, when given), for each agent's final.
        judged = judge(spec_id, rewards, weights=w, stage=stage, run_id=run)
        for name, mine in rewards.items():
            violations: dict[str, int] = {}
            for t in mine.trajectories:
                for preference, count in by_preference.get(t.trajectory_id, {}).items():
                    violations[preference] = violations.get(preference, 0) + count
            score = judged.agent(name)
            per_agent.setdefault(name, []).append(RunTrend(
                run_id=run, started_at=_started(mine.trajectories),
                stages=_ordered_stages(mine.trajectories), trajectory_ids=mine.trajectory_ids,
                technical=score.technical, r_proact=mine.r_proact, r_pers=mine.r_pers,
                final=score.final, questions=dict(mine.questions),
                violations=dict(sorted(violations.items())),
            ))
    agents = []
    for name in sorted(per_agent):
        history = per_agent[name]
        for before, now in zip(history, history[1:]):
            now.change = _change(now, before)
        agents.append(AgentTrend(name, history))
    return Trends(spec_id, stage, agent_name, w, agents, rewards=profile)
