"""Consensus history in SQLite: the ``consensus_runs`` and ``consensus_agents`` tables.

What is judged and how is :mod:`ppp_otel.scoring.consensus`'s; this module
only stores a run (one transaction: history never holds half a run) and
reads runs back as rows (the columns of ``_HISTORY``, run then agent).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ppp_otel.storage.sqlite.transaction import transaction

_INSERT_RUN = """
INSERT INTO consensus_runs (spec_id, best_agent, confidence, w_technical, w_interaction,
                            stage, run_id, scope, rewards)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_AGENT = """
INSERT INTO consensus_agents (consensus_id, rank, agent_name, technical, technical_source,
                              r_proact, r_pers, final, technical_only, trajectory_ids)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_HISTORY = """
SELECT r.id, r.spec_id, r.best_agent, r.confidence, r.w_technical, r.w_interaction,
       r.created_at, r.trace_id, r.span_id, r.stage, r.run_id, r.scope, coalesce(r.rewards, 'spec'),
       a.agent_name, a.technical, a.r_proact, a.r_pers, a.final, a.trajectory_ids,
       a.technical_only, a.technical_source, a.rank
FROM (SELECT * FROM consensus_runs WHERE {where} ORDER BY id DESC LIMIT ?) r
JOIN consensus_agents a ON a.consensus_id = r.id
ORDER BY r.id DESC, a.rank
"""


def run_row(result: Any) -> tuple:
    """The ``consensus_runs`` row of a consensus result (both backends' ``_INSERT_RUN`` order)."""
    # What the judged trajectories covered: several runs or stages when averaged.
    scope = json.dumps({"stages": result.stages, "runs": result.runs})
    return (result.spec_id, result.best_agent, result.confidence, result.weights.technical,
            result.weights.interaction, result.stage, result.run_id, scope, result.rewards)


def agent_rows(run_id: int, result: Any) -> list[tuple]:
    """The ``consensus_agents`` rows of a consensus result, one an agent."""
    return [(run_id, a.rank, a.agent_name, a.technical, a.technical_source, a.r_proact, a.r_pers,
             a.final, int(a.technical_only), json.dumps(a.trajectory_ids))
            for a in result.agents]


def store_consensus(conn: sqlite3.Connection, result: Any) -> int:
    """Record a run; sets and returns ``result.consensus_id`` (and ``created_at``)."""
    # Inside the caller's transaction, join it.
    with transaction(conn):
        # One row at a time, so lastrowid says which it was.
        run_id = conn.execute(_INSERT_RUN, run_row(result)).lastrowid
        created_at = conn.execute(
            "SELECT created_at FROM consensus_runs WHERE id = ?", (run_id,)).fetchone()[0]
        conn.executemany(_INSERT_AGENT, agent_rows(run_id, result))
    result.consensus_id, result.created_at = run_id, created_at
    return run_id


def record_consensus_span(conn: sqlite3.Connection, consensus_id: int, trace_id: str, span_id: str) -> None:
    conn.execute("UPDATE consensus_runs SET trace_id = ?, span_id = ? WHERE id = ?",
                 (trace_id, span_id, consensus_id))


def history_rows(conn: sqlite3.Connection, spec_id: str, limit: int | None, *,
                 stage: str | None = None, run_id: str | None = None) -> list[tuple]:
    """Runs of a spec (that judged ``stage`` and ``run_id``, when given), newest first, each
    run's agents by rank; ``trajectory_ids`` decoded, ``scope`` as (stages, runs)."""
    clauses, params = ["spec_id = ?"], [spec_id]
    for column, value in (("stage", stage), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    params.append(-1 if limit is None else limit)
    rows = conn.execute(_HISTORY.format(where=" AND ".join(clauses)), params).fetchall()
    return [(*row[:11], _scope_lists(row[11]), *row[12:18], json.loads(row[18]), bool(row[19]), *row[20:])
            for row in rows]


def _scope_lists(text: str | None) -> tuple[list, list]:
    try:
        scope = json.loads(text) if text else {}
    except ValueError:
        scope = {}
    if not isinstance(scope, dict):
        scope = {}
    return list(scope.get("stages") or []), list(scope.get("runs") or [])
