"""Writes batches of records to SQLite, one transaction a batch.

The common batch goes through ``executemany``. When anything in it is wrong
(a duplicate turn number, an orphan turn, a redelivered span) the batch is
rolled back to a savepoint and written again record by record, so that the one
bad record is counted and the good ones around it are kept.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace, dataclass, field
from itertools import chain, count
from typing import Any, Iterable, Sequence

from ppp_otel.records import ConversationViolation, TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite import staging
from ppp_otel.storage.base import TurnNumberClash, WriteOutcome
from ppp_otel.storage.sqlite.errors import is_unique_violation
from ppp_otel.storage.sqlite.judgments import store_at_end
from ppp_otel.storage.sqlite.transaction import transaction

logger = logging.getLogger(__name__)

Record = TrajectoryRecord | TurnRecord | ConversationViolation | staging.StagedSpan | staging.Unstaged

__all__ = ["TrajectoryWriter", "WriteOutcome", "write_all"]


_UPSERT_TRAJECTORY = """
INSERT INTO trajectories (spec_id, agent_name, run_id, created_at, trace_id, span_id,
                          preferences, technical_score, ended_at, parent_trajectory_id, stage, user_context)
VALUES (?, ?, ?, COALESCE(?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), ?, ?, ?, ?, ?,
        (SELECT id FROM trajectories WHERE trace_id = ? AND span_id = ?), ?, ?)
ON CONFLICT (trace_id, span_id) DO UPDATE SET
    ended_at = COALESCE(excluded.ended_at, ended_at),
    user_context = COALESCE(excluded.user_context, user_context),
    technical_score = COALESCE(excluded.technical_score, technical_score),
    preferences = COALESCE(excluded.preferences, preferences),
    run_id = COALESCE(excluded.run_id, run_id),
    stage = COALESCE(excluded.stage, stage),
    parent_trajectory_id = COALESCE(parent_trajectory_id, excluded.parent_trajectory_id)
"""

_TRAJECTORY_ID = "(SELECT id FROM trajectories WHERE trace_id = ? AND span_id = ?)"

_INSERT_TURN = f"""
INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, token_count,
                              latency_ms, timestamp, trace_id, span_id, extra, judged_by)
VALUES ({_TRAJECTORY_ID},
        COALESCE(?, (SELECT COALESCE(MAX(turn_number), 0) + 1 FROM trajectory_turns
                     WHERE trajectory_id = {_TRAJECTORY_ID})),
        ?, ?, ?, ?, COALESCE(?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), ?, ?, ?, ?)
ON CONFLICT (trace_id, span_id) DO NOTHING
"""

# The same insert for a turn whose number, trajectory id and own id are known. Without
# the MAX() over trajectory_turns, a multi-row VALUES is not copied to a temporary table
# first (SQLite does that when a statement reads the table it inserts into). The id is
# the one SQLite would choose (below), given so that the turn's questions and
# violations name it without a lookup.
_NUMBERED_TURN_SQL = """
INSERT INTO trajectory_turns (id, trajectory_id, turn_number, prompt, response, token_count,
                              latency_ms, timestamp, trace_id, span_id, extra, judged_by)
VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE(?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), ?, ?, {extra}, ?)
ON CONFLICT (trace_id, span_id) DO NOTHING
"""
_INSERT_NUMBERED_TURN = _NUMBERED_TURN_SQL.format(extra="?")
# The same with extra NULL in its text, for a batch of turns none of which has one (nearly
# every batch): CPython's sqlite3 binds None through its adapter lookup, some 3,000
# instructions a value, where a literal costs nothing.
_INSERT_NUMBERED_TURN_WITHOUT_EXTRA = _NUMBERED_TURN_SQL.format(extra="NULL")

# The id SQLite would give the next turn: one larger than the largest (and, in a table
# made elsewhere with AUTOINCREMENT, than the largest it ever gave); and, in the same
# statement, the id of the first turn's trajectory (None when it was never recorded).
_NEXT_TURN_ID = f"SELECT COALESCE(MAX(id), 0) + 1, {_TRAJECTORY_ID} FROM trajectory_turns"
_NEXT_AUTOINCREMENT_TURN_ID = f"""
SELECT MAX(COALESCE((SELECT MAX(id) FROM trajectory_turns), 0),
           COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'trajectory_turns'), 0)) + 1,
       {_TRAJECTORY_ID}
"""

#: Past the largest rowid SQLite picks ids at random: such a batch goes the careful way.
_MAX_ROWID = 2**63 - 1

_QUESTION_SQL = """
INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
VALUES (?, ?, ?, ?, {judge})
"""
_INSERT_QUESTION = _QUESTION_SQL.format(judge="?")
# As with a turn's extra: a batch whose questions no judge graded (the agent code gave
# their efforts) names judge NULL rather than binding None for each.
_INSERT_QUESTION_WITHOUT_JUDGE = _QUESTION_SQL.format(judge="NULL")

_INSERT_VIOLATION = """
INSERT INTO trajectory_violations (turn_id, preference_name, expected, actual, severity, source, judge)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


# Rows per multi-row INSERT: one statement (so one sqlite3_step, and one
# release of the GIL) per chunk instead of per row. A chunk is any size up to
# _ANY_CHUNK (a batch of the default buffer_size is one statement a table), then
# powers of two up to _MAX_CHUNK: a connection prepares at most 19 texts a table.
_ANY_CHUNK = 16
_MAX_CHUNK = 128


def _values_sql(sql: str, n: int) -> str:
    """``sql`` (one VALUES row, then an optional ON CONFLICT clause) with ``n`` rows."""
    head, rest = sql.split("VALUES", 1)
    depth, end = 0, None
    for i, ch in enumerate(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                end = i + 1
                break
    one, tail = rest[:end].strip(), rest[end:]
    return f"{head}VALUES {', '.join([one] * n)}{tail}"


class _Statements:
    """Multi-row forms of one INSERT, built once per chunk size."""

    def __init__(self, sql: str):
        self.sql = sql
        self._by_size: dict[int, str] = {}

    def run(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        if len(rows) < 2:
            if rows:
                conn.execute(self.sql, rows[0])
            return
        start, left = 0, len(rows)
        while left:
            n = left if left <= _ANY_CHUNK else min(_MAX_CHUNK, 1 << (left.bit_length() - 1))
            sql = self._by_size.get(n)
            if sql is None:
                sql = self._by_size[n] = _values_sql(self.sql, n)
            conn.execute(sql, list(chain.from_iterable(rows[start:start + n])))
            start += n
            left -= n


# json.dumps(extra, ensure_ascii=False) builds an encoder each call; this one is built once.
_extra_json = json.JSONEncoder(ensure_ascii=False).encode


def _trajectory_row(r: TrajectoryRecord) -> tuple:
    parent = r.parent or (None, None)
    preferences = json.dumps(list(r.preferences)) if r.preferences else None
    return (r.spec_id, r.agent_name, r.run_id, r.started_at, r.trace_id, r.span_id,
            preferences, r.technical_score, r.ended_at, parent[0], parent[1], r.stage, r.user_context)


def _turn_row(r: TurnRecord) -> tuple:
    trace, span = r.trajectory
    extra = _extra_json(r.extra) if r.extra else None
    return (trace, span, r.turn_number, trace, span, r.prompt, r.response, r.token_count,
            r.latency_ms, r.timestamp, r.trace_id, r.span_id, extra, r.judged_by)


def _numbered_turn_rows(turns: list[TurnRecord], first: int, ids: dict, numbers: list[int]) -> tuple[list, bool]:
    """The rows of turns given ids from ``first``, and whether they have the extra column:
    not when no turn has an extra (:data:`_INSERT_NUMBERED_TURN_WITHOUT_EXTRA`)."""
    if any(r.extra for r in turns):
        return [(turn_id, ids[r.trajectory], number, r.prompt, r.response, r.token_count, r.latency_ms,
                 r.timestamp, r.trace_id, r.span_id, _extra_json(r.extra) if r.extra else None, r.judged_by)
                for turn_id, r, number in zip(count(first), turns, numbers)], True
    return [(turn_id, ids[r.trajectory], number, r.prompt, r.response, r.token_count, r.latency_ms,
             r.timestamp, r.trace_id, r.span_id, r.judged_by)
            for turn_id, r, number in zip(count(first), turns, numbers)], False


# A question or violation row starts with its turn: its id in SQLite, or (in
# PostgreSQL's writer, which looks the id up) the turn's (trace_id, span_id).

def _question_rows(r: TurnRecord, turn_id: int | None = None) -> list[tuple]:
    source = "extracted" if r.extract_questions else "explicit"
    if turn_id is None:
        return [(r.trace_id, r.span_id, q.text, q.effort, q.source or source, q.judge) for q in r.questions]
    return [(turn_id, q.text, q.effort, q.source or source, q.judge) for q in r.questions]


def _violation_rows(r: TurnRecord, turn_id: int | None = None) -> list[tuple]:
    if turn_id is None:
        return [(r.trace_id, r.span_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge)
                for v in r.violations]
    return [(turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge) for v in r.violations]


def _check_turn(r: TurnRecord) -> None:
    for q in r.questions:
        if q.effort is None:
            raise ValueError(f"question {q.text!r:.60} has no effort level")


# What one record can cause: a constraint it breaks, a value SQLite cannot bind
# (ProgrammingError: a list where a number goes). The writer counts the record
# and writes the rest; any other sqlite3.Error is about the file, and retried.
_BAD_VALUE = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, ValueError, OverflowError,
              TurnNumberClash)


def by_kind(records: Sequence[Any], kinds: tuple[type, ...]) -> list[list]:
    """The records sorted by kind in one pass: a list for each of ``kinds``, in order
    (a record of none of them is left out)."""
    lists: list[list] = [[] for _ in kinds]
    slot = {kind: kept.append for kind, kept in zip(kinds, lists)}
    for r in records:
        keep = slot.get(type(r))
        if keep is None:
            keep = next((slot[k] for k in kinds if isinstance(r, k)), None)
            if keep is None:
                continue
        keep(r)
    return lists


class TrajectoryWriter:
    """Owns one connection; callers serialize access (the recorder's writer thread)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._turns = _Statements(_INSERT_NUMBERED_TURN)
        self._turns_without_extra = _Statements(_INSERT_NUMBERED_TURN_WITHOUT_EXTRA)
        self._questions = _Statements(_INSERT_QUESTION)
        self._questions_without_judge = _Statements(_INSERT_QUESTION_WITHOUT_JUDGE)
        self._violations = _Statements(_INSERT_VIOLATION)
        autoincrement = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trajectory_turns' "
            "AND sql LIKE '%AUTOINCREMENT%'").fetchone()
        self._next_turn_id = _NEXT_AUTOINCREMENT_TURN_ID if autoincrement else _NEXT_TURN_ID

    def write(self, records: Sequence[Record]) -> WriteOutcome:
        trajectories, turns, staged, unstaged, at_end = by_kind(
            records, (TrajectoryRecord, TurnRecord, staging.StagedSpan, staging.Unstaged, ConversationViolation))
        try:
            with transaction(self.conn, join=False):
                outcome = self._write_fast(trajectories, turns)
                # After the turns: a span released in this batch is a turn before it stops waiting.
                staging.write(self.conn, staged, unstaged)
                store_at_end(self.conn, [(r.trajectory, r.turn_number, r.violation) for r in at_end])
                return outcome
        except _Slow:
            pass
        # Rolled back: start over, record by record; the common batch pays for no savepoint.
        with transaction(self.conn, join=False):
            outcome = self._write_one_by_one(trajectories, turns)
            staging.write(self.conn, staged, unstaged)
            store_at_end(self.conn, [(r.trajectory, r.turn_number, r.violation) for r in at_end])
            return outcome

    def _write_fast(self, trajectories, turns) -> WriteOutcome:
        conn = self.conn
        try:
            if trajectories:
                conn.executemany(_UPSERT_TRAJECTORY, [_trajectory_row(r) for r in trajectories])
            if turns:
                self._insert_turns(turns)
        except _BAD_VALUE as exc:
            raise _Slow() from exc
        return WriteOutcome(trajectories=len(trajectories), turns=len(turns))

    def _insert_turns(self, turns: list[TurnRecord]) -> None:
        conn = self.conn
        # The ids SQLite would give these turns, in order: the rows carry them, so that
        # their questions and violations need no lookup of their turn.
        ids: dict = {}
        first, ids[turns[0].trajectory] = conn.execute(self._next_turn_id, turns[0].trajectory).fetchone()
        if first + len(turns) - 1 > _MAX_ROWID:
            raise _Slow()
        numbers = [r.turn_number for r in turns]
        if None in numbers:
            numbers = self._number(turns, ids)
        # Each trajectory's id looked up once a batch, not once a turn; an
        # unknown one (None) fails NOT NULL and the careful path names the turn.
        for key in {r.trajectory for r in turns}.difference(ids):
            self._trajectory_id(key, ids)
        rows, with_extra = _numbered_turn_rows(turns, first, ids, numbers)
        questions: list[tuple] = []
        violations: list[tuple] = []
        for turn_id, r in enumerate(turns, first):
            if r.questions:
                _check_turn(r)
                questions += _question_rows(r, turn_id)
            if r.violations:
                violations += _violation_rows(r, turn_id)
        before = conn.total_changes
        (self._turns if with_extra else self._turns_without_extra).run(conn, rows)
        if conn.total_changes - before != len(turns):
            # A redelivered span (its children must not be inserted twice), and the
            # turns after it would not have the ids their children name.
            raise _Slow()
        if questions:
            if any(row[4] is not None for row in questions):  # (turn id, text, effort, source, judge)
                self._questions.run(conn, questions)
            else:
                self._questions_without_judge.run(conn, [row[:4] for row in questions])
        if violations:
            self._violations.run(conn, violations)

    def _number(self, turns: list[TurnRecord], ids: dict) -> list[int]:
        """The turns' numbers, those without one given the number SQL gives them one by one
        (:data:`_INSERT_TURN`): one more than the largest of their trajectory's turns, the
        ones before them in this batch included. Every turn is then inserted in one
        multi-row statement, which could not see the rows before it."""
        largest: dict = {}
        numbers = []
        for r in turns:
            key, number = r.trajectory, r.turn_number
            if number is not None and type(number) is not int:
                raise _Slow()  # SQLite would compare it as it stores it (a text, a float): one by one
            if key not in largest:
                trajectory_id = ids[key] if key in ids else self._trajectory_id(key, ids)
                largest[key] = self.conn.execute(_LARGEST_NUMBER, (trajectory_id,)).fetchone()[0]
            top = largest[key]
            if number is None:
                number = (0 if top is None else top) + 1
            largest[key] = number if top is None else max(top, number)
            numbers.append(number)
        return numbers

    def _trajectory_id(self, key: tuple[str, str], ids: dict) -> int | None:
        found = self.conn.execute(_TRAJECTORY_ID[1:-1], key).fetchone()
        ids[key] = found = found[0] if found else None
        return found

    def _write_one_by_one(self, trajectories, turns) -> WriteOutcome:
        conn = self.conn
        outcome = WriteOutcome()
        for r in trajectories:
            try:
                conn.execute(_UPSERT_TRAJECTORY, _trajectory_row(r))
                outcome.trajectories += 1
            except _BAD_VALUE as exc:
                outcome.rejected.append((r, f"trajectory {r.spec_id}/{r.agent_name}: {exc}"))
        for r in turns:
            conn.execute("SAVEPOINT turn")
            try:
                _check_turn(r)
                if conn.execute(_TRAJECTORY_ID[1:-1], r.trajectory).fetchone() is None:
                    raise ValueError("its trajectory was never recorded")
                before = conn.total_changes
                turn_id = self._insert_turn(r)
                if conn.total_changes == before:
                    outcome.duplicates += 1
                else:
                    if r.questions:
                        conn.executemany(_INSERT_QUESTION, _question_rows(r, turn_id))
                    if r.violations:
                        conn.executemany(_INSERT_VIOLATION, _violation_rows(r, turn_id))
                    outcome.turns += 1
                conn.execute("RELEASE turn")
            except _BAD_VALUE as exc:
                conn.execute("ROLLBACK TO turn")
                conn.execute("RELEASE turn")
                outcome.rejected.append((r, f"turn {r.span_id}: {exc}"))
        return outcome

    def _insert_turn(self, r: TurnRecord) -> int:
        """The turn in, with the id SQLite gives it; the id is meaningless when a redelivered
        span inserted nothing."""
        try:
            return self.conn.execute(_INSERT_TURN, _turn_row(r)).lastrowid
        except sqlite3.IntegrityError as exc:
            # Of the table's unique constraints only (trajectory_id, turn_number)
            # can fail here ((trace_id, span_id) conflicts do nothing): see whether it holds the number.
            if not (is_unique_violation(exc) and self._number_taken(r)):
                raise
            if not r.renumber_on_conflict:
                raise TurnNumberClash(r.turn_number) from exc
            return self.conn.execute(_INSERT_TURN, _turn_row(replace(r, turn_number=None))).lastrowid

    def _number_taken(self, r: TurnRecord) -> bool:
        return r.turn_number is not None and self.conn.execute(_NUMBER_TAKEN, (*r.trajectory, r.turn_number)).fetchone() is not None


_LARGEST_NUMBER = "SELECT MAX(turn_number) FROM trajectory_turns WHERE trajectory_id = ?"
_NUMBER_TAKEN = f"SELECT 1 FROM trajectory_turns WHERE trajectory_id = {_TRAJECTORY_ID} AND turn_number = ?"


class _Slow(Exception):
    """The fast path cannot write this batch exactly; take the careful one."""


def write_all(conn: sqlite3.Connection, records: Iterable[Record], *, batch_size: int = 500) -> WriteOutcome:
    """Write records synchronously in batches, with no analysis: records must be complete
    (question efforts set). For bulk loads such as the load benchmark and tests;
    importers go through the recorder, which judges questions and preferences."""
    return write_in_batches(TrajectoryWriter(conn), records, batch_size=batch_size)


def write_in_batches(writer: Any, records: Iterable[Record], *, batch_size: int = 500) -> WriteOutcome:
    """``records`` through ``writer`` (either backend's) ``batch_size`` at a time; all the outcomes."""
    total = WriteOutcome()
    batch: list[Record] = []

    def flush() -> None:
        total.add(writer.write(batch))
        batch.clear()

    for r in records:
        batch.append(r)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return total
