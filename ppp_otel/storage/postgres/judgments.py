"""Judgments in PostgreSQL: :mod:`ppp_otel.storage.sqlite.judgments`'s statements in
psycopg's dialect. Which rows a judged turn makes, how they are written and what a
re-judging reads are that module's; finding the turns to judge (one statement for
the batch) and deleting earlier findings are PostgreSQL's own."""

from __future__ import annotations

from typing import Any, Sequence

from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.postgres.reader import pg
from ppp_otel.storage.sqlite import judgments as sqlite_judgments
from ppp_otel.storage.sqlite.judgments import store_at_end, store_judgments

__all__ = ["as_reported", "replace_judgments", "store_judged", "to_rejudge"]

_TURNS_TO_JUDGE = """SELECT u.trace_id, u.span_id, t.id FROM unnest(%s::text[], %s::text[]) AS u(trace_id, span_id)
                     JOIN trajectory_turns t ON t.trace_id = u.trace_id AND t.span_id = u.span_id
                     WHERE t.judged_by IS NULL AND """ + sqlite_judgments.NO_FINDINGS_YET.format(turn="t.id")


def store_judged(conn: Any, turns: Sequence[TurnRecord], at_end: list, judge: str) -> int:
    """One transaction: the turns' judgments and whole-conversation violations; how many turns.
    A turn not stored or judged already is left alone."""
    with conn.transaction(), conn.cursor() as cur:
        store_at_end(cur, at_end, dialect=pg)
        found = {(t, s): turn_id for t, s, turn_id in cur.execute(
            _TURNS_TO_JUDGE, ([r.trace_id for r in turns], [r.span_id for r in turns])).fetchall()}
        judged, seen = [], set()
        for record in turns:
            key = (record.trace_id, record.span_id)
            if key in found and key not in seen:
                seen.add(key)
                judged.append((found[key], record))
        store_judgments(cur, judged, judge, dialect=pg)
    return len(judged)


def to_rejudge(conn: Any, *, spec_id: str | None, since: str | None, pending: bool) -> list[int]:
    return sqlite_judgments.to_rejudge(conn, spec_id=spec_id, since=since, pending=pending, dialect=pg)


def as_reported(conn: Any, tid: int) -> tuple[TrajectoryRecord, list[tuple[int, TurnRecord]], dict] | None:
    return sqlite_judgments.as_reported(conn, tid, dialect=pg)


def replace_judgments(conn: Any, turns: list[tuple[int, TurnRecord]], at_end: list, judge: str) -> int:
    """One transaction: a re-judged trajectory's earlier judge findings out, the new ones in;
    how many of its turns were still stored."""
    with conn.transaction(), conn.cursor() as cur:
        turns = sqlite_judgments.still_stored(cur, turns, lock=" FOR SHARE")
        if not turns:
            return 0
        turn_ids = [turn_id for turn_id, _ in turns]
        if turn_ids:
            cur.execute("DELETE FROM trajectory_questions WHERE source = 'extracted' "
                        "AND judge IS NOT NULL AND turn_id = ANY(%s)", (turn_ids,))
            cur.execute("DELETE FROM trajectory_violations WHERE judge IS NOT NULL AND turn_id = ANY(%s)",
                        (turn_ids,))
        store_at_end(cur, at_end, {record.turn_number: turn_id for turn_id, record in turns}, dialect=pg)
        store_judgments(cur, turns, judge, dialect=pg)
    return len(turns)
