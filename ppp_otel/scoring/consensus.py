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

import math
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence

from ppp_otel.config.settings import process_config
from ppp_otel.scoring.history import consensus_history, record_consensus_span, store_consensus
from ppp_otel.scoring.paper import check_profile
from ppp_otel.scoring.results import ATTRIBUTE, GIVEN, NONE, AgentScore, ConsensusResult
from ppp_otel.scoring.rewards import AgentRewards, Database, agent_rewards, score_spec
from ppp_otel.scoring.technical import (
    Weights,
    check_technical,
    load_technical_file,
    parse_technical,
    parse_weights,
    resolve_weights,
)
from ppp_otel.storage import is_postgres_url, using_store

__all__ = [
    "ATTRIBUTE",
    "GIVEN",
    "NONE",
    "AgentScore",
    "ConsensusResult",
    "MixedConsensusWarning",
    "NoAgentsToJudge",
    "Weights",
    "check_technical",
    "consensus",
    "consensus_history",
    "judge",
    "load_technical_file",
    "parse_technical",
    "parse_weights",
    "record_consensus_span",
    "resolve_weights",
    "rewards_profile",
    "run_spec_consensus_weighted",
    "store_consensus",
]


class MixedConsensusWarning(UserWarning):
    """A consensus averaged an agent's trajectories of several runs or stages of a spec."""


class NoAgentsToJudge(ValueError):
    """A consensus found neither a trajectory (of the stage and run asked for) nor a technical score."""


def _nothing_to_judge(spec_id: str, stage: str | None, run_id: str | None,
                      spec_has: Sequence[tuple[str | None, str | None]] | None = None) -> str:
    """Why there is no agent to judge, naming the stage and run filters that left none and,
    given the spec's own (stage, run) pairs, what it does have: a typo in --stage must not
    read as an empty spec."""
    wanted = " and ".join(f"{what} {value!r}" for what, value in (("stage", stage), ("run", run_id))
                          if value is not None)
    if not wanted:
        return f"no agents to judge for spec {spec_id}: it has no trajectories and no technical scores were given"
    if spec_has is None:
        found = f"it has no trajectories of {wanted}"
    elif not spec_has:
        found = "it has no trajectories at all"
    else:
        has = [_listed(what, {pair[i] for pair in spec_has})
               for i, (what, value) in enumerate((("stage", stage), ("run", run_id))) if value is not None]
        found = f"none of its trajectories is of {wanted} ({'; '.join(has)})"
    return f"no agents to judge for spec {spec_id}: {found}, and no technical scores were given"


def _listed(what: str, values: set[str | None]) -> str:
    named = sorted(v for v in values if v is not None)
    if not named:
        return f"its trajectories have no {what}"
    text = f"its {what}s: {', '.join(named)}"
    return text + (f"; some have no {what}" if None in values else "")


def _covered(values: Iterable[str | None]) -> list[str | None]:
    # Sorted with "no stage/run" first, so the same trajectories give the same list.
    found = set(values)
    return ([None] if None in found else []) + sorted(v for v in found if v is not None)


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
        raise NoAgentsToJudge(_nothing_to_judge(spec_id, stage, run_id))

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
    ``[ppp.scoring] rewards`` of ``config``, else ``spec``. With no ``config``,
    the profile and the weights both come from the process's configuration
    (the file ``PPP_OTEL_CONFIG`` names), as they do for the command line.

    With recording turned off (``[ppp] enabled = false`` in ``config``) and no
    database ever written, every agent is judged on its technical score alone,
    as the rollback plan of the spec asks.
    """
    if config is None:
        config = process_config()
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
        try:
            result = judge(spec_id, agent_rewards(scores), technical, weights,
                           agents=agents, config=config, stage=stage, run_id=run_id)
        except NoAgentsToJudge:
            if stage is None and run_id is None:
                raise
            spec_has = {(t.stage, t.run_id) for t in opened.list_trajectories(spec_id=spec_id)}
            raise NoAgentsToJudge(_nothing_to_judge(spec_id, stage, run_id, list(spec_has))) from None
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
