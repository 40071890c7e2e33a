"""Consensus history in PostgreSQL: the rows :mod:`ppp_otel.scoring.consensus` stores in SQLite."""

from __future__ import annotations

import json
from typing import Any

from ppp_otel.storage.sqlite.consensus import _scope_lists, agent_rows, run_row

_INSERT_RUN = """
INSERT INTO consensus_runs (spec_id, best_agent, confidence, w_technical, w_interaction,
                            stage, run_id, scope, rewards)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id, created_at
"""
_INSERT_AGENT = """
INSERT INTO consensus_agents (consensus_id, rank, agent_name, technical, technical_source,
                              r_proact, r_pers, final, technical_only, trajectory_ids)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
#: Columns in the order of the SQLite statement (storage/sqlite/consensus.py), decoded the same way.
HISTORY = """
SELECT r.id, r.spec_id, r.best_agent, r.confidence, r.w_technical, r.w_interaction,
       r.created_at, r.trace_id, r.span_id, r.stage, r.run_id, r.scope, coalesce(r.rewards, 'spec'),
       a.agent_name, a.technical, a.r_proact, a.r_pers, a.final, a.trajectory_ids,
       a.technical_only, a.technical_source, a.rank
FROM (SELECT * FROM consensus_runs WHERE {where} ORDER BY id DESC LIMIT %s) r
JOIN consensus_agents a ON a.consensus_id = r.id
ORDER BY r.id DESC, a.rank
"""


def store_consensus(conn: Any, result: Any) -> int:
    """Record a run and its agents in one transaction (a savepoint inside the caller's)."""
    with conn.transaction():
        run_id, created_at = conn.execute(_INSERT_RUN, run_row(result)).fetchone()
        with conn.cursor() as cur:
            cur.executemany(_INSERT_AGENT, agent_rows(run_id, result))
    result.consensus_id, result.created_at = run_id, created_at
    return run_id


def record_consensus_span(conn: Any, consensus_id: int, trace_id: str, span_id: str) -> None:
    conn.execute("UPDATE consensus_runs SET trace_id = %s, span_id = %s WHERE id = %s",
                 (trace_id, span_id, consensus_id))


def history_rows(conn: Any, spec_id: str, limit: int | None, *, stage: str | None = None,
                 run_id: str | None = None) -> list[tuple]:
    """As SQLite's :func:`~ppp_otel.storage.sqlite.consensus.history_rows`: the same rows."""
    clauses, params = ["spec_id = %s"], [spec_id]
    for column, value in (("stage", stage), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    params.append(limit)  # NULL: LIMIT ALL
    rows = conn.execute(HISTORY.format(where=" AND ".join(clauses)), params).fetchall()
    return [(*row[:11], _scope_lists(row[11]), *row[12:18], json.loads(row[18]), bool(row[19]), *row[20:])
            for row in rows]
