"""Judgments in SQLite: what the judgment stage and ``ppp-otel judge`` read and write.

Which questions and violations a judge finds is :mod:`ppp_otel.analysis`'s;
this module stores them (marking each turn judged) and reads back what a
re-judging needs: the trajectories to judge and what the agent code reported.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ppp_otel.storage.sqlite.reader import parse_preferences
from ppp_otel.storage.sqlite.transaction import transaction

if TYPE_CHECKING:
    from ppp_otel.records import TrajectoryRecord, TurnRecord

_INSERT_QUESTION = """INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
                      VALUES (?, ?, ?, ?, ?)"""
_REGRADE_QUESTION = """UPDATE trajectory_questions SET effort_level = ?, judge = ?
                       WHERE turn_id = ? AND question_text = ? AND source = 'explicit' AND judge IS NOT NULL"""
_INSERT_VIOLATION = """INSERT INTO trajectory_violations
                           (turn_id, preference_name, expected, actual, severity, source, judge)
                       VALUES (?, ?, ?, ?, ?, ?, ?)"""
# A trajectory's end delivered twice (an OTLP retry) must not count its violation twice,
# and a violation of the preference reported on that turn (judge NULL) wins, as on any turn.
_INSERT_CONVERSATION_VIOLATION = """INSERT INTO trajectory_violations
                                        (turn_id, preference_name, expected, actual, severity, source, judge)
                                    SELECT ?, ?, ?, ?, ?, ?, ?
                                    WHERE NOT EXISTS (SELECT 1 FROM trajectory_violations
                                                      WHERE turn_id = ? AND preference_name = ?
                                                        AND (judge = ? OR judge IS NULL))"""
# A pending turn that already has a judge's findings was judged in part (a judge gave no
# answer on the rest): a redelivery of it leaves it to `ppp-otel judge --pending`, which
# replaces them, rather than adding its findings a second time.
NO_FINDINGS_YET = """NOT EXISTS (SELECT 1 FROM trajectory_questions q WHERE q.turn_id = {turn}
                                    AND q.source = 'extracted' AND q.judge IS NOT NULL)
                      AND NOT EXISTS (SELECT 1 FROM trajectory_violations v WHERE v.turn_id = {turn}
                                      AND v.judge IS NOT NULL)"""
_TURN_TO_JUDGE = ("SELECT id FROM trajectory_turns WHERE trace_id = ? AND span_id = ? AND judged_by IS NULL AND "
                  + NO_FINDINGS_YET.format(turn="trajectory_turns.id"))
_LAST_TURN = """SELECT t.id FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id
                 WHERE j.trace_id = ? AND j.span_id = ? AND t.turn_number = ?"""
_MARK_JUDGED = "UPDATE trajectory_turns SET judged_by = ? WHERE id = ?"

#: A statement as the connection's driver takes it: SQLite's own text here;
#: :mod:`ppp_otel.storage.postgres.judgments` passes its ``?``-to-``%s`` rewrite.
Dialect = Callable[[str], str]


def _sqlite(sql: str) -> str:
    return sql


def _judgment_rows(turn_id: int, record: TurnRecord, judge: str) -> tuple[list, list, list]:
    """(new questions, regraded explicit questions, new violations) rows of one judged turn."""
    # Written with the turn: the agent code's questions, and those asked through a tool
    # (explicit even on a turn whose text is searched for more); the rest a judge found.
    written = [q for q in record.questions if not record.extract_questions or q.source == "explicit"]
    found = [q for q in record.questions if record.extract_questions and q.source != "explicit"]
    questions = [(turn_id, q.text, q.effort, "extracted", q.judge or judge) for q in found]
    regraded = [(q.effort, q.judge, turn_id, q.text) for q in written if q.judge is not None]
    # Only what a judge found now: reported violations (by the agent code, or
    # detected by another tool and imported) were written with the turn.
    violations = [(turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge)
                  for v in record.violations if v.judge is not None]
    return questions, regraded, violations


def store_judgments(conn: Any, judged: list[tuple[int, TurnRecord]], judge: str,
                    dialect: Dialect = _sqlite) -> None:
    """The judged turns' questions, regraded efforts and violations in, each turn marked judged
    (or left pending when its judgment is incomplete)."""
    questions, regraded, violations = [], [], []
    for turn_id, record in judged:
        q, r, v = _judgment_rows(turn_id, record, judge)
        questions += q
        regraded += r
        violations += v
    for sql, rows in ((_INSERT_QUESTION, questions), (_REGRADE_QUESTION, regraded),
                      (_INSERT_VIOLATION, violations),
                      # A turn a judge gave no answer on in part stays pending (NULL).
                      (_MARK_JUDGED, [(None if record.judgment_incomplete else judge, turn_id)
                                      for turn_id, record in judged])):
        if rows:
            conn.executemany(dialect(sql), rows)


def store_at_end(conn: Any, at_end: list, turn_ids: dict | None = None, dialect: Dialect = _sqlite) -> None:
    """Whole-conversation violations, on the trajectory's last turn."""
    for key, number, v in at_end:
        turn_id = turn_ids.get(number) if turn_ids is not None else None
        if turn_id is None:
            row = conn.execute(dialect(_LAST_TURN), (*key, number)).fetchone()
            if row is None:
                continue
            turn_id = row[0]
        conn.execute(dialect(_INSERT_CONVERSATION_VIOLATION),
                     (turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge,
                      turn_id, v.preference, v.judge))


def store_judged(conn: sqlite3.Connection, turns: Sequence[TurnRecord], at_end: list, judge: str) -> int:
    """One transaction: the turns' judgments and whole-conversation violations; how many turns.

    A turn not stored (refused by the writer) or judged already (a redelivered
    span, judged once) is left alone.
    """
    with transaction(conn, join=False):
        store_at_end(conn, at_end)
        judged, seen = [], set()
        for record in turns:
            key = (record.trace_id, record.span_id)
            row = conn.execute(_TURN_TO_JUDGE, key).fetchone()  # the (trace_id, span_id) index
            if row is not None and key not in seen:
                seen.add(key)
                judged.append((row[0], record))
        store_judgments(conn, judged, judge)
    return len(judged)


def to_rejudge(conn: Any, *, spec_id: str | None, since: str | None, pending: bool,
               dialect: Dialect = _sqlite) -> list[int]:
    """Ids of the trajectories to judge again (all, a spec's, created since, with unjudged turns)."""
    where, params = ["1 = 1"], []
    if spec_id is not None:
        where.append("spec_id = ?")
        params.append(spec_id)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if pending:
        where.append("EXISTS (SELECT 1 FROM trajectory_turns t WHERE t.trajectory_id = trajectories.id "
                     "AND t.judged_by IS NULL)")
    sql = f"SELECT id FROM trajectories WHERE {' AND '.join(where)} ORDER BY id"
    return [r[0] for r in conn.execute(dialect(sql), params).fetchall()]


def as_reported(conn: Any, tid: int,
                dialect: Dialect = _sqlite) -> tuple[TrajectoryRecord, list[tuple[int, TurnRecord]], dict] | None:
    """A stored trajectory as records holding only what the agent code reported, and the
    efforts judges gave before (by "turn id:question"); None when it is not stored (any more)."""
    # Imported here: every store loads this module, and only judging again needs records.
    from ppp_otel.model import Question, Violation
    from ppp_otel.records import TrajectoryRecord, TurnRecord

    found = conn.execute(dialect(
        "SELECT spec_id, agent_name, trace_id, span_id, preferences, user_context, ended_at "
        "FROM trajectories WHERE id = ?"), (tid,),
    ).fetchone()
    if found is None:
        return None
    spec_id, agent, trace_id, span_id, preferences, context, ended_at = found
    key = (trace_id or f"row-{tid}", span_id or f"row-{tid}")
    trajectory = TrajectoryRecord(key[0], key[1], spec_id, agent, preferences=tuple(parse_preferences(preferences)),
                                  user_context=context, ended_at=ended_at)
    turns = []
    for turn_id, number, prompt, response in conn.execute(dialect(
        "SELECT id, turn_number, prompt, response FROM trajectory_turns WHERE trajectory_id = ? ORDER BY turn_number"),
        (tid,),
    ).fetchall():
        # Reported: what the agent code gave (or another tool's judgment, imported);
        # a judge's own findings (judge set) are found again.
        explicit = conn.execute(dialect(
            "SELECT question_text, effort_level, judge, source FROM trajectory_questions "
            "WHERE turn_id = ? AND (source = 'explicit' OR judge IS NULL) ORDER BY id"), (turn_id,),
        ).fetchall()
        reported = conn.execute(dialect(
            "SELECT preference_name, expected, actual, severity, source FROM trajectory_violations "
            "WHERE turn_id = ? AND judge IS NULL ORDER BY id"), (turn_id,),
        ).fetchall()
        record = TurnRecord(
            key[0], f"turn-{turn_id}", key, number, prompt, response,
            # An effort a judge gave is graded again; the agent's own stays. The source says
            # which were asked through a tool, messages of their own for the preferences.
            questions=[Question(text, None if judge else effort, source)
                       for text, effort, judge, source in explicit],
            violations=[Violation(p, e or "", a or "", s, source) for p, e, a, s, source in reported],
            extract_questions=not explicit,
        )
        turns.append((turn_id, record))
    before = dict(conn.execute(dialect(
        """SELECT CAST(q.turn_id AS TEXT) || ':' || q.question_text, q.effort_level FROM trajectory_questions q
           JOIN trajectory_turns t ON t.id = q.turn_id
           WHERE t.trajectory_id = ? AND (q.source = 'extracted' OR q.judge IS NOT NULL)"""), (tid,),
    ).fetchall())
    return trajectory, turns, before


def still_stored(cursor: Any, turns: list[tuple[int, TurnRecord]], lock: str = "") -> list[tuple[int, TurnRecord]]:
    """Of the judged turns, those still stored: a cleanup may have deleted some, or their whole
    trajectory, since they were read. ``lock`` keeps them there until the transaction ends."""
    if not turns:
        return turns
    ids = ", ".join(str(int(turn_id)) for turn_id, _ in turns)  # integers read from the store
    there = {row[0] for row in cursor.execute(f"SELECT id FROM trajectory_turns WHERE id IN ({ids}){lock}")}
    return [(turn_id, record) for turn_id, record in turns if turn_id in there]


def replace_judgments(conn: sqlite3.Connection, turns: list[tuple[int, TurnRecord]], at_end: list,
                      judge: str) -> int:
    """One transaction: a re-judged trajectory's earlier judge findings out, the new ones in;
    how many of its turns were still stored."""
    with transaction(conn, join=False):
        turns = still_stored(conn, turns)
        if not turns:
            return 0
        turn_ids = [turn_id for turn_id, _ in turns]
        marks = ",".join("?" * len(turn_ids))
        if turn_ids:
            conn.execute(f"DELETE FROM trajectory_questions WHERE source = 'extracted' "
                         f"AND judge IS NOT NULL AND turn_id IN ({marks})", turn_ids)
            conn.execute(f"DELETE FROM trajectory_violations WHERE judge IS NOT NULL "
                         f"AND turn_id IN ({marks})", turn_ids)
        store_at_end(conn, at_end, {record.turn_number: turn_id for turn_id, record in turns})
        store_judgments(conn, turns, judge)
    return len(turns)


__all__: Any = ["as_reported", "replace_judgments", "store_judged", "to_rejudge"]
