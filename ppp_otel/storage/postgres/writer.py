"""Writes batches of records to PostgreSQL, one transaction a batch.

Records in, rows out, exactly as :mod:`ppp_otel.storage.sqlite.writer`: the
same statements (in PostgreSQL's dialect), the same :class:`WriteOutcome`, the
same idempotence on (trace id, span id). Idempotence rests on constraints, so
it holds for any number of writers on any number of hosts: a trajectory is an
``INSERT ... ON CONFLICT DO UPDATE`` on its unique span ids, a redelivered turn
is ``ON CONFLICT DO NOTHING``, and a turn number two writers both chose is a
unique violation that the careful path renumbers or rejects.

The common batch is sent with ``executemany`` (psycopg pipelines it: one round
trip per statement kind, not per row). When anything in it is wrong the
transaction is rolled back and the batch written again record by record, each
turn under a savepoint, so the one bad record is counted and the rest kept.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Iterable, Sequence

import psycopg
from psycopg import errors

from ppp_otel.records import ConversationViolation, TrajectoryRecord, TurnRecord
from ppp_otel.storage.base import WriteOutcome
from ppp_otel.storage.postgres import staging
from ppp_otel.storage.postgres.migrations import NOW
from ppp_otel.storage.postgres.reader import pg
from ppp_otel.storage.sqlite.judgments import store_at_end
from ppp_otel.storage.sqlite.writer import (
    Record,
    _check_turn,
    _question_rows,
    _trajectory_row,
    _turn_row,
    _violation_rows,
    by_kind,
    write_in_batches,
)

logger = logging.getLogger(__name__)

__all__ = ["TrajectoryWriter", "WriteOutcome", "write_all", "STORAGE_ERRORS"]

# The update runs first and the insert only when it found nothing: an INSERT
# ... ON CONFLICT takes an id from the sequence even when it conflicts, and a
# trajectory is written twice (at its start and its end), so ids would come
# in twos where SQLite counts one by one. Two writers inserting the same new
# trajectory at once still meet at the unique index, and ON CONFLICT settles it.
UPSERT_TRAJECTORY = f"""
WITH updated AS (
    UPDATE trajectories SET
        ended_at = COALESCE(%(ended_at)s, ended_at),
        technical_score = COALESCE(%(technical_score)s::float8, technical_score),
        preferences = COALESCE(%(preferences)s, preferences),
        run_id = COALESCE(%(run_id)s, run_id),
        stage = COALESCE(%(stage)s, stage),
        user_context = COALESCE(%(user_context)s, user_context),
        parent_trajectory_id = COALESCE(parent_trajectory_id,
            (SELECT id FROM trajectories WHERE trace_id = %(parent_trace_id)s AND span_id = %(parent_span_id)s))
    WHERE trace_id = %(trace_id)s AND span_id = %(span_id)s
    RETURNING id
)
INSERT INTO trajectories (spec_id, agent_name, run_id, created_at, trace_id, span_id,
                          preferences, technical_score, ended_at, parent_trajectory_id, stage, user_context)
SELECT %(spec_id)s, %(agent_name)s, %(run_id)s, COALESCE(%(created_at)s, {NOW}), %(trace_id)s,
       %(span_id)s, %(preferences)s, %(technical_score)s::float8, %(ended_at)s,
       (SELECT id FROM trajectories WHERE trace_id = %(parent_trace_id)s AND span_id = %(parent_span_id)s),
       %(stage)s, %(user_context)s
WHERE NOT EXISTS (SELECT 1 FROM updated)
ON CONFLICT (trace_id, span_id) DO UPDATE SET
    ended_at = COALESCE(excluded.ended_at, trajectories.ended_at),
    technical_score = COALESCE(excluded.technical_score, trajectories.technical_score),
    preferences = COALESCE(excluded.preferences, trajectories.preferences),
    run_id = COALESCE(excluded.run_id, trajectories.run_id),
    stage = COALESCE(excluded.stage, trajectories.stage),
    user_context = COALESCE(excluded.user_context, trajectories.user_context),
    parent_trajectory_id = COALESCE(trajectories.parent_trajectory_id, excluded.parent_trajectory_id)
"""

_TRAJECTORY_FIELDS = ("spec_id", "agent_name", "run_id", "created_at", "trace_id", "span_id",
                      "preferences", "technical_score", "ended_at", "parent_trace_id", "parent_span_id",
                      "stage", "user_context")


def trajectory_params(r: TrajectoryRecord) -> dict[str, Any]:
    return dict(zip(_TRAJECTORY_FIELDS, _trajectory_row(r)))


TRAJECTORY_ID = "SELECT id FROM trajectories WHERE trace_id = %s AND span_id = %s"

INSERT_TURN = f"""
INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, token_count,
                              latency_ms, timestamp, trace_id, span_id, extra, judged_by)
VALUES (({TRAJECTORY_ID}),
        COALESCE(%s::bigint, (SELECT COALESCE(MAX(turn_number), 0) + 1 FROM trajectory_turns
                              WHERE trajectory_id = ({TRAJECTORY_ID}))),
        %s, %s, %s, %s, COALESCE(%s, {NOW}), %s, %s, %s, %s)
ON CONFLICT (trace_id, span_id) DO NOTHING
"""

_TURN_ID = "(SELECT id FROM trajectory_turns WHERE trace_id = %s AND span_id = %s)"

INSERT_QUESTION = f"""
INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
VALUES ({_TURN_ID}, %s, %s, %s, %s)
"""

INSERT_VIOLATION = f"""
INSERT INTO trajectory_violations (turn_id, preference_name, expected, actual, severity, source, judge)
VALUES ({_TURN_ID}, %s, %s, %s, %s, %s, %s)
"""

# What one record can cause: a constraint it breaks (IntegrityError), a value
# PostgreSQL refuses (DataError: a NUL in a text, a number out of range), a
# value psycopg cannot adapt. Anything else is about the server or the
# connection, and the recorder retries it.
_BAD_VALUE = (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError, ValueError,
              OverflowError, TypeError)
_NUMBER_TAKEN = "ux_turns_number"
_RENUMBER_ATTEMPTS = 20

#: What the recorder retries: the server is down, restarting, or a transaction lost a race.
# Two writers updating the same trajectories in different orders can deadlock;
# PostgreSQL then aborts one, which is retried like a lost connection.
STORAGE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.InternalError,
                  errors.SerializationFailure, errors.DeadlockDetected)


class _Slow(Exception):
    """The fast path cannot write this batch exactly; take the careful one."""


class TrajectoryWriter:
    """Owns one connection (autocommit, as :func:`connect` makes it); callers serialize access."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def write(self, records: Sequence[Record]) -> WriteOutcome:
        trajectories, turns, staged, unstaged, placed, ended = by_kind(
            records, (TrajectoryRecord, TurnRecord, staging.StagedSpan, staging.Unstaged, staging.Placed,
                      ConversationViolation))
        at_end = [(r.trajectory, r.turn_number, r.violation) for r in ended]
        try:
            with self.conn.transaction():
                outcome = self._write_fast(trajectories, turns)
                # After the turns: a span released in this batch is a turn before it stops waiting.
                staging.write(self.conn, staged, unstaged, placed)
                self._write_at_end(at_end)
                return outcome
        except _Slow:
            pass
        with self.conn.transaction():
            outcome = self._write_one_by_one(trajectories, turns)
            staging.write(self.conn, staged, unstaged, placed)
            self._write_at_end(at_end)
            return outcome

    def _write_at_end(self, at_end: list) -> None:
        if at_end:
            with self.conn.cursor() as cur:
                store_at_end(cur, at_end, dialect=pg)

    def _write_fast(self, trajectories, turns) -> WriteOutcome:
        try:
            for r in turns:
                _check_turn(r)
            with self.conn.cursor() as cur:
                if trajectories:
                    cur.executemany(UPSERT_TRAJECTORY, [trajectory_params(r) for r in trajectories])
                if turns:
                    if all(r.turn_number is not None for r in turns):
                        _insert_turns_at_once(cur, turns)
                    else:  # numbers from MAX + 1, turn after turn, as SQLite gives them
                        cur.executemany(INSERT_TURN, [_turn_row(r) for r in turns])
                    if cur.rowcount != len(turns):
                        raise _Slow()  # a redelivered span, an orphan: take the careful path
                    _insert_children_at_once(cur, turns)
        except _BAD_VALUE as exc:
            raise _Slow() from exc
        return WriteOutcome(trajectories=len(trajectories), turns=len(turns))

    def _write_one_by_one(self, trajectories, turns) -> WriteOutcome:
        outcome = WriteOutcome()
        with self.conn.cursor() as cur:
            for r in trajectories:
                try:
                    with self.conn.transaction():  # a savepoint
                        cur.execute(UPSERT_TRAJECTORY, trajectory_params(r))
                    outcome.trajectories += 1
                except _BAD_VALUE as exc:
                    outcome.rejected.append((r, f"trajectory {r.spec_id}/{r.agent_name}: {_message(exc)}"))
            for r in turns:
                try:
                    with self.conn.transaction():
                        _check_turn(r)
                        if cur.execute(TRAJECTORY_ID, r.trajectory).fetchone() is None:
                            raise ValueError("its trajectory was never recorded")
                        if not self._insert_turn(cur, r):
                            outcome.duplicates += 1
                            continue
                        if r.questions:
                            cur.executemany(INSERT_QUESTION, _question_rows(r))
                        if r.violations:
                            cur.executemany(INSERT_VIOLATION, _violation_rows(r))
                        outcome.turns += 1
                except _BAD_VALUE as exc:
                    reason = _message(exc)
                    if _NUMBER_TAKEN in reason:
                        reason = f"turn number {r.turn_number} is already taken by another turn"
                    outcome.rejected.append((r, f"turn {r.span_id}: {reason}"))
        return outcome

    def _insert_turn(self, cur: psycopg.Cursor, r: TurnRecord) -> bool:
        """True when the turn is new, False for a redelivery."""
        try:
            with self.conn.transaction():
                cur.execute(INSERT_TURN, _turn_row(r))
                return cur.rowcount == 1
        except errors.UniqueViolation as exc:
            if not ((r.renumber_on_conflict or r.turn_number is None) and _NUMBER_TAKEN in str(exc)):
                raise
        # The next free number; another writer (another host) may take it between
        # our reading MAX and inserting, and then the next one is tried.
        unnumbered = replace(r, turn_number=None)
        for attempt in range(_RENUMBER_ATTEMPTS):
            try:
                with self.conn.transaction():
                    cur.execute(INSERT_TURN, _turn_row(unnumbered))
                    return cur.rowcount == 1
            except errors.UniqueViolation as exc:
                if _NUMBER_TAKEN not in str(exc) or attempt == _RENUMBER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")


# The common batch, every turn numbered, goes in as one statement per table:
# the rows travel as arrays and are joined to their trajectory (and questions
# and violations to their turn) by span ids on the server. WITH ORDINALITY
# and ORDER BY keep ids in the order the records came, as executemany would.
INSERT_TURNS_AT_ONCE = f"""
INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, token_count,
                              latency_ms, timestamp, trace_id, span_id, extra, judged_by)
SELECT t.id, u.turn_number, u.prompt, u.response, u.token_count, u.latency_ms,
       COALESCE(u.ts, {NOW}), u.trace_id, u.span_id, u.extra, u.judged_by
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::bigint[],
            %s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
     WITH ORDINALITY AS u(of_trace, of_span, turn_number, prompt, response, token_count,
                          latency_ms, ts, trace_id, span_id, extra, judged_by, ord)
JOIN trajectories t ON t.trace_id = u.of_trace AND t.span_id = u.of_span
ORDER BY u.ord
ON CONFLICT (trace_id, span_id) DO NOTHING
"""

INSERT_QUESTIONS_AT_ONCE = """
INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
SELECT tt.id, q.question_text, q.effort_level, q.source, q.judge
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
     WITH ORDINALITY AS q(trace_id, span_id, question_text, effort_level, source, judge, ord)
JOIN trajectory_turns tt ON tt.trace_id = q.trace_id AND tt.span_id = q.span_id
ORDER BY q.ord
"""

INSERT_VIOLATIONS_AT_ONCE = """
INSERT INTO trajectory_violations (turn_id, preference_name, expected, actual, severity, source, judge)
SELECT tt.id, v.preference_name, v.expected, v.actual, v.severity, v.source, v.judge
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
     WITH ORDINALITY AS v(trace_id, span_id, preference_name, expected, actual, severity, source, judge, ord)
JOIN trajectory_turns tt ON tt.trace_id = v.trace_id AND tt.span_id = v.span_id
ORDER BY v.ord
"""


def _number(value: Any, kind: type) -> Any:
    # Arrays hold one type: an int latency or a float token count is made so,
    # and a value that is no number at all fails here, sending the batch the careful way.
    return None if value is None else kind(value)


def _insert_turns_at_once(cur: psycopg.Cursor, turns: list[TurnRecord]) -> None:
    rows = [_turn_row(r) for r in turns]
    # _turn_row: (trace, span, number, trace, span, prompt, response, tokens, latency, ts, trace_id, span_id,
    # extra, judged_by)
    columns = list(zip(*rows))
    cur.execute(INSERT_TURNS_AT_ONCE, (
        list(columns[0]), list(columns[1]), [_number(v, int) for v in columns[2]], list(columns[5]),
        list(columns[6]), [_number(v, int) for v in columns[7]], [_number(v, float) for v in columns[8]],
        list(columns[9]), list(columns[10]), list(columns[11]), list(columns[12]), list(columns[13]),
    ))


def _insert_children_at_once(cur: psycopg.Cursor, turns: list[TurnRecord]) -> None:
    questions = [row for r in turns for row in _question_rows(r)]
    if questions:
        cur.execute(INSERT_QUESTIONS_AT_ONCE, [list(c) for c in zip(*questions)])
        if cur.rowcount != len(questions):
            raise _Slow()
    violations = [row for r in turns for row in _violation_rows(r)]
    if violations:
        cur.execute(INSERT_VIOLATIONS_AT_ONCE, [list(c) for c in zip(*violations)])
        if cur.rowcount != len(violations):
            raise _Slow()


def _message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    constraint = getattr(diag, "constraint_name", None) if diag is not None else None
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{text} ({constraint})" if constraint and constraint not in text else text


def write_all(conn: psycopg.Connection, records: Iterable[Record], *, batch_size: int = 500) -> WriteOutcome:
    """As :func:`ppp_otel.storage.sqlite.writer.write_all`: complete records, synchronously, in batches."""
    return write_in_batches(TrajectoryWriter(conn), records, batch_size=batch_size)


def save_recorder_stats(conn: Any, row: tuple) -> None:
    """Upsert one recording process's counters (the row SQLite's recorder writes)."""
    conn.execute(
        """INSERT INTO recorder_stats (recorder_id, pid, started_at, updated_at, enqueued,
               written_turns, duplicates, dropped, rejected, write_errors, last_error)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (recorder_id) DO UPDATE SET updated_at = excluded.updated_at,
               enqueued = excluded.enqueued, written_turns = excluded.written_turns,
               duplicates = excluded.duplicates, dropped = excluded.dropped,
               rejected = excluded.rejected, write_errors = excluded.write_errors,
               last_error = excluded.last_error""",
        row,
    )
