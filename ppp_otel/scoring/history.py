"""Consensus runs kept in the store (``consensus_runs``, ``consensus_agents``), and read back."""

from __future__ import annotations

from ppp_otel.scoring.results import AgentScore, ConsensusResult
from ppp_otel.scoring.rewards import Database
from ppp_otel.scoring.technical import Weights
from ppp_otel.storage import using_store


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
