"""Consensus history in PostgreSQL: the rows :mod:`ppp_otel.scoring.consensus` stores in SQLite."""

from __future__ import annotations

import json
from typing import Any

_INSERT_RUN = """
INSERT INTO consensus_runs (spec_id, best_agent, confidence, w_technical, w_interaction)
VALUES (%s, %s, %s, %s, %s) RETURNING id, created_at
"""
_INSERT_AGENT = """
INSERT INTO consensus_agents (consensus_id, rank, agent_name, technical, technical_source,
                              r_proact, r_pers, final, technical_only, trajectory_ids)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
#: Columns in the order of scoring/consensus.py's SQLite statement, so its row reader serves both.
HISTORY = """
SELECT r.id, r.spec_id, r.best_agent, r.confidence, r.w_technical, r.w_interaction,
       r.created_at, r.trace_id, r.span_id,
       a.agent_name, a.technical, a.r_proact, a.r_pers, a.final, a.trajectory_ids,
       a.technical_only, a.technical_source, a.rank
FROM (SELECT * FROM consensus_runs WHERE spec_id = %s ORDER BY id DESC LIMIT %s) r
JOIN consensus_agents a ON a.consensus_id = r.id
ORDER BY r.id DESC, a.rank
"""


def store_consensus(conn: Any, result: Any) -> int:
    """Record a run and its agents in one transaction (a savepoint inside the caller's)."""
    with conn.transaction():
        run_id, created_at = conn.execute(
            _INSERT_RUN, (result.spec_id, result.best_agent, result.confidence,
                          result.weights.technical, result.weights.interaction),
        ).fetchone()
        with conn.cursor() as cur:
            cur.executemany(_INSERT_AGENT, [
                (run_id, a.rank, a.agent_name, a.technical, a.technical_source, a.r_proact, a.r_pers,
                 a.final, int(a.technical_only), json.dumps(a.trajectory_ids))
                for a in result.agents
            ])
    result.consensus_id, result.created_at = run_id, created_at
    return run_id


def record_consensus_span(conn: Any, consensus_id: int, trace_id: str, span_id: str) -> None:
    conn.execute("UPDATE consensus_runs SET trace_id = %s, span_id = %s WHERE id = %s",
                 (trace_id, span_id, consensus_id))


def history_rows(conn: Any, spec_id: str, limit: int | None) -> list[tuple]:
    return conn.execute(HISTORY, (spec_id, limit)).fetchall()
