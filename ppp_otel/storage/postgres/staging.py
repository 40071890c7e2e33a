"""Spans ingest acknowledged before their parent arrived, in PostgreSQL: SQLite's
``pending_spans`` (:mod:`ppp_otel.storage.sqlite.staging`, same rows, same record
types), shared by every ingest replica of the store.

Behind a load balancer a turn may reach replica 1 and its trajectory span
replica 2. So besides what SQLite's staging does (write the waiting span in the
request's transaction, delete it in the transaction that stores it as a turn),
any replica *claims* the waiting spans whose parent some replica has since
stored (:func:`claim_ready`): a lease (``claimed_until``) taken ``FOR UPDATE
SKIP LOCKED``, so two replicas never claim the same span at once, and one that
dies holding a claim only delays it until the lease runs out. The claimed row
is deleted in the transaction that stores its records (an ``Unstaged``), so a
span is written at least once and, every write being idempotent on (trace id,
span id), stored once.

Spans that are neither trajectories nor turns (a chain or tool span between a
trajectory and its model calls) are stored nowhere else, so their placement
goes to ``ingest_placements`` (``Placed`` records), where another replica finds
the parent of a span below them.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from ppp_otel.ingest.wire import OtlpSpan
from ppp_otel.storage.sqlite.staging import (
    DEFAULT_RETENTION_S,
    STAGING_RECORDS,
    Placed,
    StagedSpan,
    Unstaged,
    from_row,
    staged_records,
    staged_rows,
    stored_waiting_parents,
)

__all__ = ["DEFAULT_LEASE_S", "DEFAULT_RETENTION_S", "STAGING_RECORDS", "Placed", "StagedSpan", "Unstaged",
           "claim_ready", "load_children", "placement", "purge", "staged_records", "stored_waiting_parents",
           "summary", "waiting_parents", "write"]

#: How long a claim keeps other replicas off a span.
DEFAULT_LEASE_S = 60.0

SpanKey = tuple[str, str]

# A redelivered span waits once; staged again after a claim, it is free to claim again.
_INSERT = """
INSERT INTO pending_spans (trace_id, span_id, parent_span_id, is_turn, received_at, span)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (trace_id, span_id) DO UPDATE SET claimed_until = NULL
"""

_PLACE = """
INSERT INTO ingest_placements (trace_id, span_id, trajectory_trace_id, trajectory_span_id, in_turn, placed_at)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (trace_id, span_id) DO NOTHING
"""

_DELETE = ("DELETE FROM pending_spans WHERE (trace_id, span_id) IN "
           "(SELECT * FROM unnest(%s::text[], %s::text[]))")

_PARENT_STORED = """(
    EXISTS (SELECT 1 FROM trajectories t WHERE t.trace_id = p.trace_id AND t.span_id = p.parent_span_id)
    OR EXISTS (SELECT 1 FROM trajectory_turns u WHERE u.trace_id = p.trace_id AND u.span_id = p.parent_span_id)
    OR EXISTS (SELECT 1 FROM ingest_placements x WHERE x.trace_id = p.trace_id AND x.span_id = p.parent_span_id)
)"""

_CLAIM = f"""
WITH ready AS (
    SELECT p.trace_id, p.span_id FROM pending_spans p
    WHERE (p.claimed_until IS NULL OR p.claimed_until < %(now)s) AND {_PARENT_STORED}
    ORDER BY p.received_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE pending_spans p SET claimed_until = %(until)s
FROM ready WHERE p.trace_id = ready.trace_id AND p.span_id = ready.span_id
RETURNING p.trace_id, p.span_id, p.parent_span_id, p.span, p.received_at
"""

_PLACEMENT = """
SELECT 0, trace_id, span_id, false FROM trajectories WHERE trace_id = %(t)s AND span_id = %(s)s
UNION ALL
SELECT 1, t.trace_id, t.span_id, true FROM trajectory_turns u
  JOIN trajectories t ON t.id = u.trajectory_id WHERE u.trace_id = %(t)s AND u.span_id = %(s)s
UNION ALL
SELECT 2, trajectory_trace_id, trajectory_span_id, in_turn FROM ingest_placements
  WHERE trace_id = %(t)s AND span_id = %(s)s
LIMIT 1
"""


def write(conn: Any, staged: Sequence[StagedSpan], unstaged: Sequence[Unstaged],
          placed: Sequence[Placed] = ()) -> None:
    """Inside the writer's transaction: new waiting spans and placements in, released spans out."""
    with conn.cursor() as cur:
        rows = [(t, s, trajectory[0], trajectory[1], in_turn, time.time())
                for p in placed for t, s, trajectory, in_turn in p.rows]
        if rows:
            cur.executemany(_PLACE, rows)
        if staged:
            cur.executemany(_INSERT, staged_rows(staged))
        keys = [key for u in unstaged for key in u.keys]
        if keys:
            cur.execute(_DELETE, ([k[0] for k in keys], [k[1] for k in keys]))


def placement(conn: Any, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None:
    """A span any replica stored or placed: (its trajectory's key, whether inside a turn)."""
    row = conn.execute(_PLACEMENT, {"t": trace_id, "s": span_id}).fetchone()
    return None if row is None else ((row[1], row[2]), bool(row[3]))


def claim_ready(conn: Any, *, limit: int = 1000, lease_s: float = DEFAULT_LEASE_S) -> list[OtlpSpan]:
    """Lease waiting spans (of any replica) whose parent is now stored, oldest first."""
    now = time.time()
    rows = conn.execute(_CLAIM, {"now": now, "until": now + lease_s, "limit": limit}).fetchall()
    rows.sort(key=lambda row: row[4])
    return [from_row(trace_id, span_id, parent, payload) for trace_id, span_id, parent, payload, _ in rows]


def waiting_parents(conn: Any) -> list[SpanKey]:
    return [tuple(row) for row in conn.execute("SELECT DISTINCT trace_id, parent_span_id FROM pending_spans")]


def load_children(conn: Any, parent: SpanKey) -> list[OtlpSpan]:
    rows = conn.execute(
        "SELECT trace_id, span_id, parent_span_id, span FROM pending_spans "
        "WHERE trace_id = %s AND parent_span_id = %s ORDER BY received_at, span_id", parent,
    ).fetchall()
    return [from_row(*row) for row in rows]


def summary(conn: Any) -> dict:
    """What ``status`` shows: turns waiting for their trajectory, and the oldest one's age."""
    if not conn.execute("SELECT to_regclass('pending_spans') IS NOT NULL").fetchone()[0]:
        return {"pending_turns": 0, "pending_spans": 0, "oldest_pending_age_s": None}  # an older schema
    turns, spans, oldest = conn.execute(
        "SELECT coalesce(sum(is_turn), 0), count(*), min(received_at) FROM pending_spans").fetchone()
    age = None if oldest is None else round(max(0.0, time.time() - oldest), 1)
    return {"pending_turns": int(turns), "pending_spans": spans, "oldest_pending_age_s": age}


def purge(conn: Any, retention_s: float, *, now: float | None = None) -> int:
    """Delete staged spans (and placements) older than the retention; returns how many turns went."""
    cutoff = (time.time() if now is None else now) - retention_s
    with conn.transaction():
        turns = conn.execute(
            "SELECT coalesce(sum(is_turn), 0) FROM pending_spans WHERE received_at < %s", (cutoff,)
        ).fetchone()[0]
        conn.execute("DELETE FROM pending_spans WHERE received_at < %s", (cutoff,))
        conn.execute("DELETE FROM ingest_placements WHERE placed_at < %s", (cutoff,))
    return int(turns)
