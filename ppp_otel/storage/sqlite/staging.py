"""Spans that arrived before their parent, kept durably in ``pending_spans`` until it comes.

Over OTLP a trajectory span arrives when the trajectory ends, after all its
turns. Ingest answers 200 for those turns at once, so they must survive a
restart, SIGTERM or kill -9 before their trajectory span arrives: each one
waits as a row of ``pending_spans`` (the whole span, as JSON), written in the
same transaction as the request's other records. When the parent arrives the
rows become turns and are deleted in the writer's next transaction. Rows whose
parent never comes stay queryable, are counted by ``ppp-otel status`` and are
deleted once older than the retention (``ppp-otel ingest --pending-retention``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from ppp_otel.ingest.wire import OtlpSpan

SpanKey = tuple[str, str]

#: Seven days: an agent run that lasts longer than that is unusual.
DEFAULT_RETENTION_S = 7 * 24 * 3600.0


@dataclass(slots=True)
class StagedSpan:
    """A span written to ``pending_spans`` to wait for its parent."""

    span: OtlpSpan
    is_turn: bool
    received_at: float


@dataclass(slots=True)
class Unstaged:
    """Staged spans whose parent came: deleted from ``pending_spans``."""

    keys: list[SpanKey]


@dataclass(slots=True)
class Placed:
    """Where spans that are neither trajectories nor turns sit (trace id, span id, trajectory
    key, inside a turn), for ingest replicas that receive their children. One SQLite ingest
    process holds these in memory: the SQLite writer ignores them."""

    rows: list[tuple[str, str, tuple[str, str], bool]]


STAGING_RECORDS = (StagedSpan, Unstaged, Placed)


def to_json(span: OtlpSpan) -> str:
    # ensure_ascii: a lone surrogate is kept as an escape, so the row is always storable.
    return json.dumps(
        [span.name, span.attributes, span.events, span.start_ns, span.end_ns, dict(span.resource), span.scope],
        separators=(",", ":"), default=str,
    )


def from_row(trace_id: str, span_id: str, parent_span_id: str | None, payload: str) -> OtlpSpan:
    # Imported here: the wire format loads protobuf, which a store that only
    # reads or scores has no use for.
    from ppp_otel.ingest.wire import OtlpSpan

    # Rows staged before the scope was kept have six items.
    name, attributes, events, start_ns, end_ns, resource, *scope = json.loads(payload)
    return OtlpSpan(trace_id, span_id, parent_span_id, name, attributes,
                    [(e[0], e[1]) for e in events], start_ns, end_ns, resource, scope[0] if scope else None)


_INSERT = """
INSERT INTO pending_spans (trace_id, span_id, parent_span_id, is_turn, received_at, span)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (trace_id, span_id) DO NOTHING
"""


def staged_rows(staged: Sequence[StagedSpan]) -> list[tuple]:
    """The ``pending_spans`` rows of waiting spans (both backends' ``_INSERT`` order)."""
    return [(s.span.trace_id, s.span.span_id, s.span.parent_span_id, int(s.is_turn), s.received_at,
             to_json(s.span))
            for s in staged]


def write(conn: sqlite3.Connection, staged: Sequence[StagedSpan], unstaged: Sequence[Unstaged]) -> None:
    """Inside the writer's transaction: new waiting spans in, released ones out."""
    if staged:
        conn.executemany(_INSERT, staged_rows(staged))
    keys = [key for u in unstaged for key in u.keys]
    if keys:
        conn.executemany("DELETE FROM pending_spans WHERE trace_id = ? AND span_id = ?", keys)


def waiting_parents(conn: sqlite3.Connection) -> list[SpanKey]:
    """Every parent some staged span waits for (read at startup)."""
    return [tuple(row) for row in conn.execute(
        "SELECT DISTINCT trace_id, parent_span_id FROM pending_spans")]


def stored_waiting_parents(conn: Any) -> list[SpanKey]:
    """The parents staged spans wait for that are stored now, as a trajectory or a turn
    (another process on the database wrote them). Plain SQL, for PostgreSQL too."""
    return [tuple(row) for row in conn.execute(
        """SELECT DISTINCT p.trace_id, p.parent_span_id FROM pending_spans p
           WHERE EXISTS (SELECT 1 FROM trajectories t
                         WHERE t.trace_id = p.trace_id AND t.span_id = p.parent_span_id)
              OR EXISTS (SELECT 1 FROM trajectory_turns u
                         WHERE u.trace_id = p.trace_id AND u.span_id = p.parent_span_id)""")]


def load_children(conn: sqlite3.Connection, parent: SpanKey) -> list[OtlpSpan]:
    rows = conn.execute(
        "SELECT trace_id, span_id, parent_span_id, span FROM pending_spans "
        "WHERE trace_id = ? AND parent_span_id = ? ORDER BY received_at, rowid", parent,
    ).fetchall()
    return [from_row(*row) for row in rows]


def summary(conn: sqlite3.Connection) -> dict:
    """What ``status`` shows: turns waiting for their trajectory, and the oldest one's age."""
    try:
        turns, spans, oldest = conn.execute(
            "SELECT coalesce(sum(is_turn), 0), count(*), min(received_at) FROM pending_spans"
        ).fetchone()
    except sqlite3.OperationalError:  # a database from before staging existed
        return {"pending_turns": 0, "pending_spans": 0, "oldest_pending_age_s": None}
    age = None if oldest is None else round(max(0.0, time.time() - oldest), 1)
    return {"pending_turns": turns, "pending_spans": spans, "oldest_pending_age_s": age}


def purge(conn: sqlite3.Connection, retention_s: float, *, now: float | None = None) -> int:
    """Delete staged spans older than the retention; returns how many turns went."""
    cutoff = (time.time() if now is None else now) - retention_s
    turns = conn.execute(
        "SELECT coalesce(sum(is_turn), 0) FROM pending_spans WHERE received_at < ?", (cutoff,)
    ).fetchone()[0]
    conn.execute("DELETE FROM pending_spans WHERE received_at < ?", (cutoff,))
    return turns


def staged_records(spans: Iterable[tuple[OtlpSpan, bool]]) -> list[StagedSpan]:
    now = time.time()
    return [StagedSpan(span, is_turn, now) for span, is_turn in spans]


__all__ = ["DEFAULT_RETENTION_S", "STAGING_RECORDS", "Placed", "StagedSpan", "Unstaged", "load_children", "purge",
           "staged_records", "stored_waiting_parents", "summary", "waiting_parents", "write"]
