"""Weighted consensus: which agent did best on a spec, and by how much.

    final = w_technical * technical + w_interaction * (r_proact + r_pers)

- Weights: the ``weights`` argument, else ``[ppp.weights]`` of the config
  (default 0.7 / 0.3). Negative, non-finite, or both zero is a ``ValueError``.
- Technical score of an agent, first found: the caller's mapping (API
  argument, ``--technical``, ``--technical-file``), else the mean of the
  ``technical_score`` its trajectories of the spec carry (the
  ``ppp.technical_score`` span attribute); else it has none
  (``technical_source == "none"``) and the technical term counts 0.
- Technical scores are between 0 and 1. One for an agent with no trajectory
  of the spec is an error naming the spec's agents (a typo must not become a
  new agent), unless that agent is named in ``agents=`` or the spec has no
  trajectories at all: then it is scored on technical alone,
  ``final = w_technical * technical``, ``r_proact`` and ``r_pers`` are None
  and ``technical_only`` is True.
- Best agent: highest final. Ties (finals equal to 9 decimal places) go to the
  higher technical score (none counts lowest), then to the agent name first
  in code-point order. Confidence is the best agent's final score.
- ``agents=[...]`` restricts the judgment to those agents; a named agent with
  neither a trajectory of the spec nor a technical score is unknown, a
  ``ValueError``. With no agent at all to judge, a ``ValueError`` too.

- ``stage`` and ``run_id`` limit the judgment to the trajectories of one stage
  of the spec and one run, as the seed's ``run_spec_consensus_weighted(spec_id,
  stage, ...)`` does; the result says what it judged (``stage``, ``run_id``)
  and which stages and runs its trajectories covered (``stages``, ``runs``).
  Without them every trajectory of the spec is averaged, as before, and when
  those cover more than one run or stage the result's ``warning`` says so
  (and :func:`consensus` issues a :class:`MixedConsensusWarning`).

Each run can be stored (tables ``consensus_runs`` and ``consensus_agents``)
and read back with :func:`consensus_history`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ppp_otel.config.settings import check_weights, process_config
from ppp_otel.scoring.paper import check_profile
from ppp_otel.scoring.rewards import AgentRewards, Database, TrajectoryScore, agent_rewards, score_spec
from ppp_otel.storage import is_postgres_url, using_store

__all__ = [
    "AgentScore",
    "ConsensusResult",
    "MixedConsensusWarning",
    "Weights",
    "consensus",
    "consensus_history",
    "judge",
    "load_technical_file",
    "parse_technical",
    "parse_weights",
    "resolve_weights",
    "run_spec_consensus_weighted",
    "store_consensus",
]

# Where an agent's technical score came from.
GIVEN = "given"  # the caller: argument, --technical, --technical-file
ATTRIBUTE = "attribute"  # the trajectories' ppp.technical_score
NONE = "none"  # nowhere; the technical term counts 0


class MixedConsensusWarning(UserWarning):
    """A consensus averaged an agent's trajectories of several runs or stages of a spec."""


def _scope_label(values: Sequence[str | None], *, shown: int = 5) -> str:
    names = ["(none)" if v is None else v for v in values]
    if len(names) > shown:  # a spec run nightly for a year must not print 365 names
        return f"{', '.join(names[:shown])} and {len(names) - shown} more"
    return ", ".join(names)


@dataclass(frozen=True)
class Weights:
    technical: float
    interaction: float

    def __post_init__(self) -> None:
        check_weights(self.technical, self.interaction)  # the config's rules; ConfigError is a ValueError

    def to_dict(self) -> dict[str, float]:
        return {"technical": float(self.technical), "interaction": float(self.interaction)}


@dataclass
class AgentScore:
    agent_name: str
    technical: float | None
    r_proact: float | None  # None: no trajectory of the spec (technical_only)
    r_pers: float | None
    final: float
    trajectory_ids: list[int] = field(default_factory=list)
    technical_only: bool = False
    technical_source: str = NONE
    rank: int = 0  # 1 is the best agent

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_name": self.agent_name,
            "technical": self.technical,
            "r_proact": self.r_proact,
            "r_pers": self.r_pers,
            "final": self.final,
            "trajectory_ids": list(self.trajectory_ids),
            "technical_only": self.technical_only,
            "technical_source": self.technical_source,
            "rank": self.rank,
        }


@dataclass
class ConsensusResult:
    spec_id: str
    best_agent: str
    confidence: float
    weights: Weights
    agents: list[AgentScore]  # best first
    #: The judged trajectories (for span links and annotations); empty when read from history.
    trajectories: list[TrajectoryScore] = field(default_factory=list, repr=False)
    consensus_id: int | None = None  # its row in consensus_runs, once stored
    created_at: str | None = None
    trace_id: str | None = None  # of the ppp.consensus span, once emitted
    span_id: str | None = None
    #: The stage and run asked for (None: not limited to one).
    stage: str | None = None
    run_id: str | None = None
    #: The stages and runs the judged trajectories covered (None: a trajectory without one).
    stages: list[str | None] = field(default_factory=list)
    runs: list[str | None] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        """True when agents were averaged over more than one run or stage."""
        return len(self.runs) > 1 or len(self.stages) > 1

    @property
    def scope(self) -> str:
        """What was judged, in words: ``spec S, stage plan, run r1``."""
        parts = [f"spec {self.spec_id}"]
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        elif len(self.stages) == 1 and self.stages[0] is not None:
            parts.append(f"stage {self.stages[0]}")
        elif len(self.stages) > 1:
            parts.append(f"{len(self.stages)} stages")
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        elif len(self.runs) == 1 and self.runs[0] is not None:
            parts.append(f"run {self.runs[0]}")
        elif len(self.runs) > 1:
            parts.append(f"{len(self.runs)} runs")
        return ", ".join(parts)

    @property
    def warning(self) -> str | None:
        """Says what was averaged when several runs or stages were; None otherwise."""
        mixed = []
        if len(self.runs) > 1:
            mixed.append(f"{len(self.runs)} runs ({_scope_label(self.runs)})")
        if len(self.stages) > 1:
            mixed.append(f"{len(self.stages)} stages ({_scope_label(self.stages)})")
        if not mixed:
            return None
        give = " and ".join(
            word for word, many in (("a run", len(self.runs) > 1), ("a stage", len(self.stages) > 1)) if many
        )
        return (f"consensus on spec {self.spec_id} averaged each agent over {' and '.join(mixed)}; "
                f"give {give} to judge one")
    rewards: str = "spec"  # the reward profile r_proact and r_pers come from

    def agent(self, name: str) -> AgentScore:
        for score in self.agents:
            if score.agent_name == name:
                return score
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec_id,
            "best_agent": self.best_agent,
            "confidence": self.confidence,
            "weights": self.weights.to_dict(),
            "rewards": self.rewards,
            "agents": [a.to_dict() for a in self.agents],
            "consensus_id": self.consensus_id,
            "created_at": self.created_at,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "stage": self.stage,
            "run_id": self.run_id,
            "judged": {"scope": self.scope, "stages": list(self.stages), "runs": list(self.runs),
                       "mixed": self.mixed},
            "warnings": [self.warning] if self.warning else [],
        }


def _covered(values: Iterable[str | None]) -> list[str | None]:
    # Sorted with "no stage/run" first, so the same trajectories give the same list.
    found = set(values)
    return ([None] if None in found else []) + sorted(v for v in found if v is not None)


# --- inputs ---------------------------------------------------------------------

def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {text!r}")
    return value


def parse_weights(text: str) -> Weights:
    """``"T,I"``, e.g. ``"0.7,0.3"``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"weights must be TECHNICAL,INTERACTION (e.g. 0.7,0.3), got {text!r}")
    return Weights(_number(parts[0].strip(), "technical weight"),
                   _number(parts[1].strip(), "interaction weight"))


def parse_technical(items: Iterable[str]) -> dict[str, float]:
    """``["agent=score", ...]``; a later item for the same agent wins."""
    scores: dict[str, float] = {}
    for item in items:
        agent, sep, value = item.rpartition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise ValueError(f"technical score must be AGENT=SCORE (e.g. alpha=0.9), got {item!r}")
        scores[agent] = _number(value.strip(), f"technical score of {agent}")
    return scores


def load_technical_file(path: str | os.PathLike) -> dict[str, float]:
    """A JSON object ``{"agent": score, ...}``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"{os.fspath(path)}: cannot read technical scores: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{os.fspath(path)}: technical scores must be a JSON object of agent: score")
    return check_technical(data, source=os.fspath(path))


def check_technical(scores: Mapping[str, Any], *, source: str = "technical") -> dict[str, float]:
    checked = {}
    for agent, value in scores.items():
        if not isinstance(agent, str) or not agent.strip():
            raise ValueError(f"{source}: agent names must be non-empty strings, got {agent!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{source}: technical score of {agent} must be a finite number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{source}: technical score of {agent} must be between 0 and 1, got {value!r}")
        checked[agent] = float(value)
    return checked


def resolve_weights(
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None, *, config: Any = None
) -> Weights:
    """The weights given, else ``config``'s ``[ppp.weights]``; with neither, the process's
    configuration (:func:`ppp_otel.config.settings.process_config`)."""
    if isinstance(weights, Weights):
        return weights
    if isinstance(weights, Mapping):
        return Weights(weights["technical"], weights["interaction"])
    if weights is not None:
        technical, interaction = weights
        return Weights(technical, interaction)
    if config is None:
        config = process_config()
    return Weights(config.weights.technical, config.weights.interaction)


# --- judging ----------------------------------------------------------------------

def _clean(value: float) -> float:
    # Drop float noise (0.7 * 0.9 = 0.63 + 1e-17) so tables and history show what was meant.
    return round(value, 12)


def _rank_key(score: AgentScore) -> tuple:
    technical = score.technical if score.technical is not None else -math.inf
    return (-round(score.final, 9), -technical, score.agent_name)


def judge(
    spec_id: str,
    rewards: Mapping[str, AgentRewards],
    technical: Mapping[str, float] | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    *,
    agents: Iterable[str] | None = None,
    config: Any = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> ConsensusResult:
    """The consensus from per-agent rewards already read (see :func:`consensus`).

    ``stage`` and ``run_id`` only label the result: the rewards given are
    expected to be of that stage and run already.
    """
    w = resolve_weights(weights, config=config)
    given = check_technical(technical or {})
    if agents is not None:
        wanted = list(dict.fromkeys(agents))
        unknown = [a for a in wanted if a not in rewards and a not in given]
        if unknown:
            raise ValueError(
                f"unknown agent(s) for spec {spec_id}: {', '.join(unknown)} "
                "(no trajectory of the spec and no technical score)"
            )
    else:
        strangers = sorted(set(given) - set(rewards))
        if strangers and rewards:
            # A typo in an agent's name must not become a new agent that wins.
            scope = f"spec {spec_id}" + (f", stage {stage}" if stage else "") + (f", run {run_id}" if run_id else "")
            raise ValueError(
                f"technical score for {', '.join(strangers)}, which {'is' if len(strangers) == 1 else 'are'} "
                f"not an agent of {scope} (its agents: {', '.join(sorted(rewards))}); "
                "to score an agent with no trajectory on technical alone, name it in agents= (--agent)"
            )
        wanted = sorted(set(rewards) | set(given))
    if not wanted:
        raise ValueError(
            f"no agents to judge for spec {spec_id}: it has no trajectories and no technical "
            "scores were given"
        )

    scores = []
    for name in wanted:
        mine = rewards.get(name)
        if name in given:
            tech, source = given[name], GIVEN
        elif mine is not None and mine.technical_score is not None:
            tech, source = mine.technical_score, ATTRIBUTE
        else:
            tech, source = None, NONE
        technical_term = w.technical * (tech or 0.0)
        if mine is None:
            scores.append(AgentScore(name, tech, None, None, _clean(technical_term),
                                     technical_only=True, technical_source=source))
        else:
            final = technical_term + w.interaction * (mine.r_proact + mine.r_pers)
            scores.append(AgentScore(name, tech, mine.r_proact, mine.r_pers, _clean(final),
                                     trajectory_ids=mine.trajectory_ids, technical_source=source))
    scores.sort(key=_rank_key)
    for rank, score in enumerate(scores, 1):
        score.rank = rank
    judged = [t for name in wanted if name in rewards for t in rewards[name].trajectories]
    best = scores[0]
    profile = next((r.rewards for r in rewards.values()), "spec")
    return ConsensusResult(
        spec_id, best.agent_name, best.final, w, scores, trajectories=judged,
        stage=stage, run_id=run_id,
        stages=_covered(t.stage for t in judged), runs=_covered(t.run_id for t in judged),
        rewards=profile,
    )


def consensus(
    db: Database,
    spec_id: str,
    *,
    technical: Mapping[str, float] | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    agents: Iterable[str] | None = None,
    store: bool = True,
    config: Any = None,
    stage: str | None = None,
    run_id: str | None = None,
    rewards: str | None = None,
) -> ConsensusResult:
    """Judge the agents of a spec (of one stage and run, when given) from the database
    and (unless ``store=False``) record the run.

    Judging trajectories of several runs or stages issues a
    :class:`MixedConsensusWarning` (the result's ``warning`` has its text).

    ``rewards`` is the reward profile (``spec`` or ``paper``); left out, it is
    ``[ppp.scoring] rewards`` of ``config``, else ``spec``.

    With recording turned off (``[ppp] enabled = false`` in ``config``) and no
    database ever written, every agent is judged on its technical score alone,
    as the rollback plan of the spec asks.
    """
    profile = check_profile(rewards or rewards_profile(config))
    if (
        config is not None and getattr(config, "enabled", True) is False
        and isinstance(db, (str, os.PathLike)) and not is_postgres_url(db) and not os.path.exists(db)
    ):
        result = judge(spec_id, {}, technical, weights, agents=agents, config=config,
                       stage=stage, run_id=run_id)
        result.rewards = profile
        return result
    with using_store(db) as opened:
        scores = score_spec(opened, spec_id, stage=stage, run_id=run_id, rewards=profile)
        result = judge(spec_id, agent_rewards(scores), technical, weights,
                       agents=agents, config=config, stage=stage, run_id=run_id)
        result.rewards = profile
        if store:
            opened.store_consensus(result)
    if result.warning:
        warnings.warn(result.warning, MixedConsensusWarning, stacklevel=2)
    return result


def run_spec_consensus_weighted(
    spec_id: str,
    stage: str | None = None,
    artifacts: Mapping[str, float] | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    *,
    run_id: str | None = None,
    db: Database | None = None,
    store: bool = True,
    config: Any = None,
) -> ConsensusResult:
    """The seed's entry point: the best agent for one stage of a spec (and of one run).

    ``artifacts`` are the agents' technical scores (``{"agent": score}``); the
    database is ``db``, else ``$PPP_OTEL_DB``, else the config's ``db_path``.
    """
    if db is None:
        from ppp_otel.cli import default_db_path

        db = default_db_path()
    return consensus(db, spec_id, technical=artifacts, weights=weights, store=store,
                     config=config, stage=stage, run_id=run_id)
def rewards_profile(config: Any = None) -> str:
    """The reward profile ``config`` names (``[ppp.scoring] rewards``), else ``spec``."""
    scoring = getattr(config, "scoring", None)
    return getattr(scoring, "rewards", None) or "spec"


# --- history ------------------------------------------------------------------------

def store_consensus(db: Database, result: ConsensusResult) -> int:
    """Record a run (one transaction); sets and returns ``result.consensus_id``."""
    with using_store(db) as store:
        return store.store_consensus(result)


def record_consensus_span(db: Database, consensus_id: int, trace_id: str, span_id: str) -> None:
    """Remember which ppp.consensus span reported a stored run."""
    with using_store(db) as store:
        store.record_consensus_span(consensus_id, trace_id, span_id)


def consensus_history(
    db: Database,
    spec_id: str,
    *,
    limit: int | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> list[ConsensusResult]:
    """The stored runs for a spec, newest first; with ``stage`` or ``run_id``, only the
    runs that judged that stage or run."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    runs: dict[int, ConsensusResult] = {}
    with using_store(db) as store:
        rows = store.consensus_history_rows(spec_id, limit, stage=stage, run_id=run_id)
    for (consensus_id, spec, best, confidence, w_t, w_i, created_at, trace_id, span_id,
         judged_stage, judged_run, (stages, run_ids), profile, agent, tech, r_proact, r_pers, final,
         trajectory_ids, technical_only, source, rank) in rows:
        run = runs.get(consensus_id)
        if run is None:
            run = runs[consensus_id] = ConsensusResult(
                spec, best, confidence, Weights(w_t, w_i), [], consensus_id=consensus_id,
                created_at=created_at, trace_id=trace_id, span_id=span_id,
                stage=judged_stage, run_id=judged_run, stages=stages, runs=run_ids, rewards=profile,
            )
        run.agents.append(AgentScore(agent, tech, r_proact, r_pers, final, trajectory_ids,
                                     technical_only, source, rank))
    return list(runs.values())
