"""What ingest replicas share through PostgreSQL, so any replica may receive any span.

Over OTLP a turn usually arrives before its trajectory span, and behind a load
balancer the two may arrive at different ``ppp-otel ingest`` processes. So a
span whose parent is not known yet is not held in one process's memory: it is
written to ``ingest_pending`` before the request is answered (it is accepted,
so it must survive the replica), and every replica's claimer takes the pending
spans whose parent has since been stored, by whichever replica, and writes
them. Claims are leases (``claimed_until``), taken ``FOR UPDATE SKIP LOCKED``:
two replicas never claim the same span at once, and a replica that dies
holding a claim only delays it until the lease runs out. The claimed row is
deleted after the records made from it are committed, so a span is written at
least once and, since every write is idempotent on (trace id, span id),
stored exactly once.

Spans that are neither trajectories nor turns (a chain or tool span between a
trajectory and its LLM spans) are stored nowhere else, so their placement (in
which trajectory, inside a turn or not) goes to ``ingest_placements``, where
another replica finds the parent of a span that hangs below them.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Sequence

from psycopg_pool import ConnectionPool

from ppp_otel.ingest.assembler import Placement
from ppp_otel.ingest.wire import OtlpSpan
from ppp_otel.storage.postgres.migrations import redact

logger = logging.getLogger(__name__)

__all__ = ["SharedPending"]

DEFAULT_LEASE_S = 60.0

_STAGE = """
INSERT INTO ingest_pending (trace_id, span_id, parent_span_id, span) VALUES (%s, %s, %s, %s)
ON CONFLICT (trace_id, span_id) DO UPDATE SET span = excluded.span, claimed_until = NULL
"""

_PLACE = """
INSERT INTO ingest_placements (trace_id, span_id, trajectory_trace_id, trajectory_span_id, in_turn)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT (trace_id, span_id) DO NOTHING
"""

_PARENT_STORED = """(
    EXISTS (SELECT 1 FROM trajectories t WHERE t.trace_id = p.trace_id AND t.span_id = p.parent_span_id)
    OR EXISTS (SELECT 1 FROM trajectory_turns u WHERE u.trace_id = p.trace_id AND u.span_id = p.parent_span_id)
    OR EXISTS (SELECT 1 FROM ingest_placements x WHERE x.trace_id = p.trace_id AND x.span_id = p.parent_span_id)
)"""

_CLAIM = f"""
WITH ready AS (
    SELECT p.trace_id, p.span_id FROM ingest_pending p
    WHERE (p.claimed_until IS NULL OR p.claimed_until < now()) AND {_PARENT_STORED}
    ORDER BY p.received_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE ingest_pending p SET claimed_until = now() + make_interval(secs => %(lease)s)
FROM ready WHERE p.trace_id = ready.trace_id AND p.span_id = ready.span_id
RETURNING p.trace_id, p.span_id, p.span
"""

_EXPIRE = """
WITH old AS (
    SELECT trace_id, span_id FROM ingest_pending
    WHERE received_at < %(before)s AND (claimed_until IS NULL OR claimed_until < now())
    LIMIT 10000 FOR UPDATE SKIP LOCKED
)
DELETE FROM ingest_pending p USING old
WHERE p.trace_id = old.trace_id AND p.span_id = old.span_id
RETURNING p.trace_id, p.span_id, p.parent_span_id, p.span
"""

_FORGET_PLACEMENTS = "DELETE FROM ingest_placements WHERE placed_at < %s"


def encode_span(span: OtlpSpan) -> str:
    return json.dumps({
        "trace_id": span.trace_id, "span_id": span.span_id, "parent_span_id": span.parent_span_id,
        "name": span.name, "attributes": span.attributes, "events": span.events,
        "start_ns": span.start_ns, "end_ns": span.end_ns, "resource": dict(span.resource),
    }, ensure_ascii=False, default=str)


def decode_span(text: str) -> OtlpSpan:
    d = json.loads(text)
    return OtlpSpan(d["trace_id"], d["span_id"], d["parent_span_id"], d["name"], d["attributes"],
                    [(name, attrs) for name, attrs in d["events"]], d["start_ns"], d["end_ns"],
                    d["resource"])


class SharedPending:
    """The pending spans and placements of one PostgreSQL store; thread-safe (a small pool)."""

    def __init__(self, url: str, *, lease_s: float = DEFAULT_LEASE_S, max_connections: int = 4):
        self.url = url
        self.lease_s = lease_s
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections,
                                    kwargs={"autocommit": True}, open=True, name="ppp-otel-ingest")
        self.staged = 0
        self.claimed = 0

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"SharedPending({redact(self.url)!r})"

    def placement(self, trace_id: str, span_id: str) -> Placement | None:
        """A parent stored by any replica: a trajectory, a turn, or a placed span."""
        with self._pool.connection() as conn:
            row = conn.execute(
                """SELECT 0, trace_id, span_id, false FROM trajectories WHERE trace_id = %(t)s AND span_id = %(s)s
                   UNION ALL
                   SELECT 1, t.trace_id, t.span_id, true FROM trajectory_turns u
                     JOIN trajectories t ON t.id = u.trajectory_id WHERE u.trace_id = %(t)s AND u.span_id = %(s)s
                   UNION ALL
                   SELECT 2, trajectory_trace_id, trajectory_span_id, in_turn FROM ingest_placements
                     WHERE trace_id = %(t)s AND span_id = %(s)s
                   LIMIT 1""",
                {"t": trace_id, "s": span_id},
            ).fetchone()
        if row is None:
            return None
        return Placement((row[1], row[2]), in_turn=row[3])

    def stage(self, spans: Sequence[OtlpSpan], placements: Iterable[tuple[str, str, Placement]] = ()) -> None:
        """Make held spans and shared placements durable, in one transaction; raises when it cannot."""
        placed = [(t, s, p.trajectory[0], p.trajectory[1], p.in_turn) for t, s, p in placements
                  if p.trajectory is not None]
        if not spans and not placed:
            return
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if placed:
                cur.executemany(_PLACE, placed)
            if spans:
                cur.executemany(_STAGE, [(s.trace_id, s.span_id, s.parent_span_id, encode_span(s)) for s in spans])
        self.staged += len(spans)

    def claim(self, limit: int = 1000) -> list[OtlpSpan]:
        """Lease pending spans whose parent is now stored."""
        with self._pool.connection() as conn:
            rows = conn.execute(_CLAIM, {"limit": limit, "lease": self.lease_s}).fetchall()
        spans = []
        for trace_id, span_id, text in rows:
            try:
                spans.append(decode_span(text))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("ppp-otel ingest: pending span %s of trace %s cannot be read back: %s",
                               span_id, trace_id, exc)
                self.done([(trace_id, span_id)])
        self.claimed += len(spans)
        return spans

    def done(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete claimed spans whose records are committed."""
        if not keys:
            return
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM ingest_pending WHERE (trace_id, span_id) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )

    def expire(self, before_iso: str) -> list[tuple[str, OtlpSpan | None]]:
        """Give up pending spans received before ``before_iso``: (parent span id, span) each."""
        with self._pool.connection() as conn:
            rows = conn.execute(_EXPIRE, {"before": before_iso}).fetchall()
            conn.execute(_FORGET_PLACEMENTS, (before_iso,))
        gone = []
        for _trace_id, _span_id, parent, text in rows:
            try:
                gone.append((parent, decode_span(text)))
            except (ValueError, KeyError, TypeError):
                gone.append((parent, None))
        return gone
