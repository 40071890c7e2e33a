"""Judgments in PostgreSQL: :mod:`ppp_otel.storage.sqlite.judgments`'s statements and
results in psycopg's dialect (which rows a judged turn makes is that module's
``_judgment_rows``, shared)."""

from __future__ import annotations

from typing import Any, Sequence

from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite.judgments import _judgment_rows
from ppp_otel.storage.sqlite.reader import parse_preferences

__all__ = ["as_reported", "replace_judgments", "store_judged", "to_rejudge"]

_INSERT_QUESTION = """INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
                      VALUES (%s, %s, %s, %s, %s)"""
_REGRADE_QUESTION = """UPDATE trajectory_questions SET effort_level = %s, judge = %s
                       WHERE turn_id = %s AND question_text = %s AND source = 'explicit' AND judge IS NOT NULL"""
_INSERT_VIOLATION = """INSERT INTO trajectory_violations
                           (turn_id, preference_name, expected, actual, severity, source, judge)
                       VALUES (%s, %s, %s, %s, %s, %s, %s)"""
_TURNS_TO_JUDGE = """SELECT u.trace_id, u.span_id, t.id FROM unnest(%s::text[], %s::text[]) AS u(trace_id, span_id)
                     JOIN trajectory_turns t ON t.trace_id = u.trace_id AND t.span_id = u.span_id
                     WHERE t.judged_by IS NULL"""
_LAST_TURN = """SELECT t.id FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id
                WHERE j.trace_id = %s AND j.span_id = %s AND t.turn_number = %s"""
_MARK_JUDGED = "UPDATE trajectory_turns SET judged_by = %s WHERE id = %s"


def _store_judgments(cur: Any, judged: list[tuple[int, TurnRecord]], judge: str) -> None:
    questions, regraded, violations = [], [], []
    for turn_id, record in judged:
        q, r, v = _judgment_rows(turn_id, record, judge)
        questions += q
        regraded += r
        violations += v
    for sql, rows in ((_INSERT_QUESTION, questions), (_REGRADE_QUESTION, regraded),
                      (_INSERT_VIOLATION, violations),
                      (_MARK_JUDGED, [(judge, turn_id) for turn_id, _ in judged])):
        if rows:
            cur.executemany(sql, rows)


def _store_at_end(cur: Any, at_end: list, turn_ids: dict | None = None) -> None:
    """Whole-conversation violations, on the trajectory's last turn."""
    for key, number, v in at_end:
        turn_id = turn_ids.get(number) if turn_ids is not None else None
        if turn_id is None:
            row = cur.execute(_LAST_TURN, (*key, number)).fetchone()
            if row is None:
                continue
            turn_id = row[0]
        cur.execute(_INSERT_VIOLATION, (turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge))


def store_judged(conn: Any, turns: Sequence[TurnRecord], at_end: list, judge: str) -> int:
    """One transaction: the turns' judgments and whole-conversation violations; how many turns.
    A turn not stored or judged already is left alone."""
    with conn.transaction(), conn.cursor() as cur:
        _store_at_end(cur, at_end)
        found = {(t, s): turn_id for t, s, turn_id in cur.execute(
            _TURNS_TO_JUDGE, ([r.trace_id for r in turns], [r.span_id for r in turns])).fetchall()}
        judged, seen = [], set()
        for record in turns:
            key = (record.trace_id, record.span_id)
            if key in found and key not in seen:
                seen.add(key)
                judged.append((found[key], record))
        _store_judgments(cur, judged, judge)
    return len(judged)


def to_rejudge(conn: Any, *, spec_id: str | None, since: str | None, pending: bool) -> list[int]:
    where, params = ["TRUE"], []
    if spec_id is not None:
        where.append("spec_id = %s")
        params.append(spec_id)
    if since is not None:
        where.append("created_at >= %s")
        params.append(since)
    if pending:
        where.append("EXISTS (SELECT 1 FROM trajectory_turns t WHERE t.trajectory_id = trajectories.id "
                     "AND t.judged_by IS NULL)")
    return [r[0] for r in conn.execute(f"SELECT id FROM trajectories WHERE {' AND '.join(where)} ORDER BY id",
                                       params).fetchall()]


def as_reported(conn: Any, tid: int) -> tuple[TrajectoryRecord, list[tuple[int, TurnRecord]], dict]:
    """As SQLite's: the trajectory as records holding only what the agent code reported,
    and the efforts judges gave before (by "turn id:question")."""
    spec_id, agent, trace_id, span_id, preferences, context, ended_at = conn.execute(
        "SELECT spec_id, agent_name, trace_id, span_id, preferences, user_context, ended_at "
        "FROM trajectories WHERE id = %s", (tid,),
    ).fetchone()
    key = (trace_id or f"row-{tid}", span_id or f"row-{tid}")
    trajectory = TrajectoryRecord(key[0], key[1], spec_id, agent, preferences=tuple(parse_preferences(preferences)),
                                  user_context=context, ended_at=ended_at)
    turns = []
    for turn_id, number, prompt, response in conn.execute(
        "SELECT id, turn_number, prompt, response FROM trajectory_turns WHERE trajectory_id = %s "
        "ORDER BY turn_number", (tid,),
    ).fetchall():
        explicit = conn.execute(
            "SELECT question_text, effort_level, judge FROM trajectory_questions "
            "WHERE turn_id = %s AND (source = 'explicit' OR judge IS NULL) ORDER BY id", (turn_id,),
        ).fetchall()
        reported = conn.execute(
            "SELECT preference_name, expected, actual, severity, source FROM trajectory_violations "
            "WHERE turn_id = %s AND judge IS NULL ORDER BY id", (turn_id,),
        ).fetchall()
        record = TurnRecord(
            key[0], f"turn-{turn_id}", key, number, prompt, response,
            questions=[Question(text, None if judge else effort) for text, effort, judge in explicit],
            violations=[Violation(p, e or "", a or "", s, source) for p, e, a, s, source in reported],
            extract_questions=not explicit,
        )
        turns.append((turn_id, record))
    before = dict(conn.execute(
        """SELECT q.turn_id::text || ':' || q.question_text, q.effort_level FROM trajectory_questions q
           JOIN trajectory_turns t ON t.id = q.turn_id
           WHERE t.trajectory_id = %s AND (q.source = 'extracted' OR q.judge IS NOT NULL)""", (tid,),
    ).fetchall())
    return trajectory, turns, before


def replace_judgments(conn: Any, turns: list[tuple[int, TurnRecord]], at_end: list, judge: str) -> None:
    """One transaction: a re-judged trajectory's earlier judge findings out, the new ones in."""
    with conn.transaction(), conn.cursor() as cur:
        turn_ids = [turn_id for turn_id, _ in turns]
        if turn_ids:
            cur.execute("DELETE FROM trajectory_questions WHERE source = 'extracted' "
                        "AND judge IS NOT NULL AND turn_id = ANY(%s)", (turn_ids,))
            cur.execute("DELETE FROM trajectory_violations WHERE judge IS NOT NULL AND turn_id = ANY(%s)",
                        (turn_ids,))
        _store_at_end(cur, at_end, {record.turn_number: turn_id for turn_id, record in turns})
        _store_judgments(cur, turns, judge)
