"""Weighted consensus: which agent did best on a spec, and by how much.

    final = w_technical * technical + w_interaction * (r_proact + r_pers)

- Weights: the ``weights`` argument, else ``[ppp.weights]`` of the config
  (default 0.7 / 0.3). Negative, non-finite, or both zero is a ``ValueError``.
- Technical score of an agent, first found: the caller's mapping (API
  argument, ``--technical``, ``--technical-file``), else the mean of the
  ``technical_score`` its trajectories of the spec carry (the
  ``ppp.technical_score`` span attribute); else it has none
  (``technical_source == "none"``) and the technical term counts 0.
- An agent with technical score but no trajectory of the spec is scored on
  technical alone: ``final = w_technical * technical``, ``r_proact`` and
  ``r_pers`` are None and ``technical_only`` is True.
- Best agent: highest final. Ties (finals equal to 9 decimal places) go to the
  higher technical score (none counts lowest), then to the agent name first
  in code-point order. Confidence is the best agent's final score.
- ``agents=[...]`` restricts the judgment to those agents; a named agent with
  neither a trajectory of the spec nor a technical score is unknown, a
  ``ValueError``. With no agent at all to judge, a ``ValueError`` too.

Each run can be stored (tables ``consensus_runs`` and ``consensus_agents``)
and read back with :func:`consensus_history`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ppp_otel.storage import backends
from ppp_otel.scoring.rewards import AgentRewards, Database, TrajectoryScore, agent_rewards, open_database, score_spec

__all__ = [
    "AgentScore",
    "ConsensusResult",
    "Weights",
    "consensus",
    "consensus_history",
    "judge",
    "load_technical_file",
    "parse_technical",
    "parse_weights",
    "resolve_weights",
    "store_consensus",
]

# Where an agent's technical score came from.
GIVEN = "given"  # the caller: argument, --technical, --technical-file
ATTRIBUTE = "attribute"  # the trajectories' ppp.technical_score
NONE = "none"  # nowhere; the technical term counts 0


@dataclass(frozen=True)
class Weights:
    technical: float
    interaction: float

    def __post_init__(self) -> None:
        for name in ("technical", "interaction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"weight {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"weight {name} must be >= 0, got {value}")
        if self.technical == 0 and self.interaction == 0:
            raise ValueError("weights technical and interaction are both 0; at least one must be > 0")

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
            "agents": [a.to_dict() for a in self.agents],
            "consensus_id": self.consensus_id,
            "created_at": self.created_at,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }


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
        checked[agent] = float(value)
    return checked


def resolve_weights(
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None, *, config: Any = None
) -> Weights:
    """The weights given, else the config's ``[ppp.weights]`` (loaded when not passed)."""
    if isinstance(weights, Weights):
        return weights
    if isinstance(weights, Mapping):
        return Weights(weights["technical"], weights["interaction"])
    if weights is not None:
        technical, interaction = weights
        return Weights(technical, interaction)
    if config is None:
        from ppp_otel.config.settings import load_config

        config = load_config()
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
) -> ConsensusResult:
    """The consensus from per-agent rewards already read (see :func:`consensus`)."""
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
    return ConsensusResult(spec_id, best.agent_name, best.final, w, scores, trajectories=judged)


def consensus(
    db: Database,
    spec_id: str,
    *,
    technical: Mapping[str, float] | None = None,
    weights: Weights | Sequence[float] | Mapping[str, float] | None = None,
    agents: Iterable[str] | None = None,
    store: bool = True,
    config: Any = None,
) -> ConsensusResult:
    """Judge the agents of a spec from the database and (unless ``store=False``) record the run.

    With recording turned off (``[ppp] enabled = false`` in ``config``) and no
    database ever written, every agent is judged on its technical score alone,
    as the rollback plan of the spec asks.
    """
    if (
        config is not None and getattr(config, "enabled", True) is False
        and not isinstance(db, sqlite3.Connection) and not backends.is_postgres(db)
        and not backends.is_postgres_connection(db) and not os.path.exists(db)
    ):
        return judge(spec_id, {}, technical, weights, agents=agents, config=config)
    with open_database(db) as conn:
        result = judge(spec_id, agent_rewards(score_spec(conn, spec_id)), technical, weights,
                       agents=agents, config=config)
        if store:
            store_consensus(conn, result)
    return result


# --- history ------------------------------------------------------------------------

_INSERT_RUN = """
INSERT INTO consensus_runs (spec_id, best_agent, confidence, w_technical, w_interaction)
VALUES (?, ?, ?, ?, ?)
"""
_INSERT_AGENT = """
INSERT INTO consensus_agents (consensus_id, rank, agent_name, technical, technical_source,
                              r_proact, r_pers, final, technical_only, trajectory_ids)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_HISTORY = """
SELECT r.id, r.spec_id, r.best_agent, r.confidence, r.w_technical, r.w_interaction,
       r.created_at, r.trace_id, r.span_id,
       a.agent_name, a.technical, a.r_proact, a.r_pers, a.final, a.trajectory_ids,
       a.technical_only, a.technical_source, a.rank
FROM (SELECT * FROM consensus_runs WHERE spec_id = ? ORDER BY id DESC LIMIT ?) r
JOIN consensus_agents a ON a.consensus_id = r.id
ORDER BY r.id DESC, a.rank
"""


def _in_transaction(conn: sqlite3.Connection, work) -> Any:
    # Inside the caller's transaction, join it; otherwise make the run and its
    # agents one transaction, so history never holds half a run.
    if conn.in_transaction:
        return work()
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = work()
        conn.execute("COMMIT")
        return value
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def store_consensus(conn: Any, result: ConsensusResult) -> int:
    """Record a run; sets and returns ``result.consensus_id``."""
    if backends.is_postgres_connection(conn):
        from ppp_otel.storage.postgres.consensus import store_consensus as pg_store

        return pg_store(conn, result)

    def work() -> int:
        # One row at a time, so lastrowid says which it was.
        run_id = conn.execute(
            _INSERT_RUN, (result.spec_id, result.best_agent, result.confidence,
                          result.weights.technical, result.weights.interaction),
        ).lastrowid
        created_at = conn.execute(
            "SELECT created_at FROM consensus_runs WHERE id = ?", (run_id,)).fetchone()[0]
        conn.executemany(_INSERT_AGENT, [
            (run_id, a.rank, a.agent_name, a.technical, a.technical_source, a.r_proact, a.r_pers,
             a.final, int(a.technical_only), json.dumps(a.trajectory_ids))
            for a in result.agents
        ])
        result.consensus_id, result.created_at = run_id, created_at
        return run_id

    return _in_transaction(conn, work)


def record_consensus_span(conn: Any, consensus_id: int, trace_id: str, span_id: str) -> None:
    """Remember which ppp.consensus span reported a stored run."""
    if backends.is_postgres_connection(conn):
        from ppp_otel.storage.postgres.consensus import record_consensus_span as pg_record

        return pg_record(conn, consensus_id, trace_id, span_id)
    conn.execute("UPDATE consensus_runs SET trace_id = ?, span_id = ? WHERE id = ?",
                 (trace_id, span_id, consensus_id))


def consensus_history(db: Database, spec_id: str, *, limit: int | None = None) -> list[ConsensusResult]:
    """The stored runs for a spec, newest first."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    runs: dict[int, ConsensusResult] = {}
    with open_database(db) as conn:
        if backends.is_postgres_connection(conn):
            from ppp_otel.storage.postgres.consensus import history_rows

            rows = history_rows(conn, spec_id, limit)
        else:
            rows = conn.execute(_HISTORY, (spec_id, -1 if limit is None else limit)).fetchall()
    for (run_id, spec, best, confidence, w_t, w_i, created_at, trace_id, span_id,
         agent, tech, r_proact, r_pers, final, trajectory_ids, technical_only, source, rank) in rows:
        run = runs.get(run_id)
        if run is None:
            run = runs[run_id] = ConsensusResult(
                spec, best, confidence, Weights(w_t, w_i), [], consensus_id=run_id,
                created_at=created_at, trace_id=trace_id, span_id=span_id,
            )
        run.agents.append(AgentScore(agent, tech, r_proact, r_pers, final, json.loads(trajectory_ids),
                                     bool(technical_only), source, rank))
    return list(runs.values())
