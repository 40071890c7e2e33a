"""Reading trajectories back: the sync read API over the trajectory database.

The SQL and the row-to-dataclass mappers live here, once, and
:mod:`ppp_otel.storage.aio` imports them, so the sync and async stores cannot drift
apart: they run the same statements and build the same objects.

A trajectory is read with four statements whatever its length: its summary,
its turns, all its questions and all its violations (no query per turn).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ppp_otel.storage.base import can_be_row_id, check_row_count, cursor_columns
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.sqlite.transaction import transaction

__all__ = [
    "RecordedQuestion",
    "RecordedViolation",
    "Trajectory",
    "TrajectoryStore",
    "TrajectorySummary",
    "Turn",
]

#: The tables ``status()`` counts, in the order the schema builds them.
TABLES = ("trajectories", "trajectory_turns", "trajectory_questions", "trajectory_violations")


# --- what the store returns -------------------------------------------------

@dataclass(frozen=True)
class RecordedQuestion:
    text: str
    effort_level: str
    source: str  # 'explicit' (given by the agent code) or 'extracted' (found in the response)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordedViolation:
    preference_name: str
    expected: str | None
    actual: str | None
    severity: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Turn:
    number: int
    prompt: str | None
    response: str | None
    token_count: int | None
    latency_ms: float | None
    timestamp: str | None
    trace_id: str | None
    span_id: str | None
    questions: list[RecordedQuestion] = field(default_factory=list)
    violations: list[RecordedViolation] = field(default_factory=list)
    # The tool calls of the tool-only model calls folded into this turn, as stored:
    # each a dict with "name", "arguments" and, when the model gave one, "id".
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrajectorySummary:
    id: int
    spec_id: str
    agent_name: str
    run_id: str | None
    created_at: str | None
    ended_at: str | None
    turn_count: int
    question_count: int
    violation_count: int
    technical_score: float | None
    preferences: list[str]
    # The trajectory span's ids, for pointing Phoenix annotations at it.
    trace_id: str | None
    span_id: str | None
    stage: str | None = None  # the spec's stage (plan, implement, ...), when recorded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trajectory(TrajectorySummary):
    turns: list[Turn] = field(default_factory=list)


# --- SQL, shared with astore -------------------------------------------------

# Counts are correlated subqueries so each is answered from an index
# (UNIQUE(trajectory_id, turn_number), idx_questions_turn, idx_violations_turn)
# instead of a join that multiplies rows before grouping.
_SUMMARY_SELECT = """
SELECT t.id, t.spec_id, t.agent_name, t.run_id, t.created_at, t.ended_at,
       (SELECT count(*) FROM trajectory_turns tt WHERE tt.trajectory_id = t.id),
       (SELECT count(*) FROM trajectory_questions q
          JOIN trajectory_turns tt ON q.turn_id = tt.id WHERE tt.trajectory_id = t.id),
       (SELECT count(*) FROM trajectory_violations v
          JOIN trajectory_turns tt ON v.turn_id = tt.id WHERE tt.trajectory_id = t.id),
       t.technical_score, t.preferences, t.trace_id, t.span_id, t.stage
FROM trajectories t
"""

SQL_GET_SUMMARY = _SUMMARY_SELECT + "WHERE t.id = ?"

#: The columns of a listing row, as :class:`TrajectorySummary` names them.
SUMMARY_COLUMNS = ("id", "spec_id", "agent_name", "run_id", "created_at", "ended_at", "turn_count",
                   "question_count", "violation_count", "technical_score", "preferences", "trace_id",
                   "span_id", "stage")

SQL_TURNS = """
SELECT id, turn_number, prompt, response, token_count, latency_ms, timestamp, trace_id, span_id, extra
FROM trajectory_turns WHERE trajectory_id = ? ORDER BY turn_number
"""

SQL_QUESTIONS = """
SELECT q.turn_id, q.question_text, q.effort_level, q.source
FROM trajectory_questions q JOIN trajectory_turns tt ON q.turn_id = tt.id
WHERE tt.trajectory_id = ? ORDER BY q.turn_id, q.id
"""

SQL_VIOLATIONS = """
SELECT v.turn_id, v.preference_name, v.expected, v.actual, v.severity, v.source
FROM trajectory_violations v JOIN trajectory_turns tt ON v.turn_id = tt.id
WHERE tt.trajectory_id = ? ORDER BY v.turn_id, v.id
"""

SQL_EXISTS = "SELECT 1 FROM trajectories WHERE id = ?"
SQL_SPECS = "SELECT DISTINCT spec_id FROM trajectories ORDER BY spec_id"
SQL_AGENTS = "SELECT DISTINCT agent_name FROM trajectories ORDER BY agent_name"
SQL_AGENTS_OF_SPEC = (
    "SELECT DISTINCT agent_name FROM trajectories WHERE spec_id = ? ORDER BY agent_name"
)
SQL_SCHEMA_VERSION = "PRAGMA user_version"
SQL_JOURNAL_MODE = "PRAGMA journal_mode"
SQL_EXISTING_TABLES = (
    f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(TABLES))})"
)


def list_query(
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    run_id: str | None = None,
    stage: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[str, list[Any]]:
    """The listing statement and its parameters.

    Only the filters given go into the WHERE clause: ``(? IS NULL OR col = ?)``
    would keep SQLite from using the (spec_id, agent_name) and run_id indexes.
    """
    clauses, params = [], []
    for column, value in (("spec_id", spec_id), ("agent_name", agent_name), ("run_id", run_id),
                          ("stage", stage)):
        if value is not None:
            clauses.append(f"t.{column} = ?")
            params.append(value)
    check_row_count("limit", limit)
    check_row_count("offset", offset)
    sql = _SUMMARY_SELECT
    if clauses:
        sql += "WHERE " + " AND ".join(clauses) + "\n"
    sql += "ORDER BY t.created_at, t.id LIMIT ? OFFSET ?"
    params += [-1 if limit is None else limit, offset]
    return sql, params


def count_sql(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"not a trajectory table: {table}")
    return f"SELECT count(*) FROM {table}"


# --- rows to dataclasses, shared with astore ---------------------------------

def parse_preferences(text: str | None) -> list[str]:
    """The stored preference specs: a JSON list, or a comma list from other tools."""
    if not text:
        return []
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return [stripped]
        if isinstance(parsed, list):
            return [item if isinstance(item, str) else json.dumps(item) for item in parsed]
    return [part.strip() for part in stripped.split(",") if part.strip()]


def summary_from_row(row: Sequence[Any]) -> TrajectorySummary:
    return TrajectorySummary(
        id=row[0], spec_id=row[1], agent_name=row[2], run_id=row[3], created_at=row[4],
        ended_at=row[5], turn_count=row[6], question_count=row[7], violation_count=row[8],
        technical_score=row[9], preferences=parse_preferences(row[10]),
        trace_id=row[11], span_id=row[12], stage=row[13],
    )


def summary_dict_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """``summary_from_row(row).to_dict()`` without the object: what ``--json`` prints."""
    d = dict(zip(SUMMARY_COLUMNS, row))
    d["preferences"] = parse_preferences(d["preferences"])
    return d


def extra_object(text: str | None) -> dict[str, Any] | None:
    """A turn's ``extra`` column as the JSON object it holds; None when it holds none (or
    something another tool wrote there: the turn still reads)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def tool_calls_from_extra(text: str | None) -> list[dict[str, Any]]:
    """The ``tool_calls`` list of a turn's ``extra`` JSON; empty when there is none."""
    calls = (extra_object(text) or {}).get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [call for call in calls if isinstance(call, dict)]


def trajectory_from_rows(
    summary_row: Sequence[Any],
    turn_rows: Sequence[Sequence[Any]],
    question_rows: Sequence[Sequence[Any]],
    violation_rows: Sequence[Sequence[Any]],
) -> Trajectory:
    """Assemble a trajectory from the rows of SQL_GET_SUMMARY, SQL_TURNS,
    SQL_QUESTIONS and SQL_VIOLATIONS; questions and violations go to their turn
    by turn id."""
    summary = summary_from_row(summary_row)
    turns: list[Turn] = []
    by_id: dict[int, Turn] = {}
    for turn_id, number, prompt, response, tokens, latency, timestamp, trace_id, span_id, extra in turn_rows:
        turn = Turn(number, prompt, response, tokens, latency, timestamp, trace_id, span_id,
                    tool_calls=tool_calls_from_extra(extra))
        turns.append(turn)
        by_id[turn_id] = turn
    for turn_id, text, effort, source in question_rows:
        by_id[turn_id].questions.append(RecordedQuestion(text, effort, source))
    for turn_id, name, expected, actual, severity, source in violation_rows:
        by_id[turn_id].violations.append(RecordedViolation(name, expected, actual, severity, source))
    return Trajectory(**{**vars(summary), "turns": turns})


def file_size(path: str) -> int:
    """Bytes on disk: the database plus its write-ahead log, which can be larger."""
    total = 0
    for name in (path, path + "-wal"):
        try:
            total += os.path.getsize(name)
        except OSError:
            pass
    return total


def status_dict(
    path: str, version: int, counts: dict[str, int | None], mode: str
) -> dict[str, Any]:
    return {
        "path": path,
        "schema_version": version,
        "latest_version": schema.latest_version(),
        "row_counts": counts,
        "file_size_bytes": file_size(path),
        "journal_mode": mode,
    }


# --- the sync store ----------------------------------------------------------

class TrajectoryReader:
    """What reading a trajectory store does the same on each backend: listing and
    the spec and agent names, by SQLite's statements in the backend's ``dialect``."""

    conn: Any
    path: str

    @staticmethod
    def dialect(sql: str) -> str:
        """A statement as this backend's driver takes it (SQLite's own here)."""
        return sql

    @staticmethod
    def list_query(**filters: Any) -> tuple[str, list[Any]]:
        return list_query(**filters)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def list_trajectories(
        self,
        *,
        spec_id: str | None = None,
        agent_name: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TrajectorySummary]:
        rows = self.list_trajectory_rows(
            spec_id=spec_id, agent_name=agent_name, run_id=run_id, stage=stage, limit=limit, offset=offset
        )
        return [summary_from_row(row) for row in rows]

    def list_trajectory_rows(
        self,
        *,
        spec_id: str | None = None,
        agent_name: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[tuple]:
        """What :meth:`list_trajectories` lists, as the rows the database returns them, in
        :data:`SUMMARY_COLUMNS` order (``preferences`` still JSON text): for a
        caller printing a hundred thousand of them, which has no use for objects."""
        sql, params = self.list_query(
            spec_id=spec_id, agent_name=agent_name, run_id=run_id, stage=stage, limit=limit, offset=offset
        )
        return self.conn.execute(sql, params).fetchall()

    def list_trajectory_columns(self, picked: Sequence[int], **filters: Any) -> list[list[Any]]:
        """The columns at the indexes ``picked`` (of :data:`SUMMARY_COLUMNS`) of
        :meth:`list_trajectory_rows`'s rows for the same filters, each a list in the
        listing's order."""
        sql, params = self.list_query(**filters)
        return cursor_columns(self.conn.execute(sql, params), picked)

    def specs(self) -> list[str]:
        return [row[0] for row in self.conn.execute(SQL_SPECS)]

    def agents(self, spec_id: str | None = None) -> list[str]:
        if spec_id is None:
            return [row[0] for row in self.conn.execute(SQL_AGENTS)]
        return [row[0] for row in self.conn.execute(self.dialect(SQL_AGENTS_OF_SPEC), (spec_id,))]


class TrajectoryStore(TrajectoryReader):
    """Read access to a trajectory database.

    Opening migrates the schema unless ``migrate_schema=False``;
    ``read_only=True`` opens without writing anything to the file (a newer
    schema is still refused). ``must_exist`` (the default) refuses to create a
    missing file, because a typo in a path should not leave an empty database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        must_exist: bool = True,
        migrate_schema: bool = True,
        read_only: bool = False,
        **connect_options: Any,
    ):
        self.path = os.fspath(path)
        self.conn: sqlite3.Connection = schema.connect(
            self.path, must_exist=must_exist, migrate_schema=migrate_schema, read_only=read_only,
            **connect_options,
        )

    def get_trajectory(self, trajectory_id: int) -> Trajectory | None:
        if not can_be_row_id(trajectory_id):
            return None
        # One read transaction, so a writer cannot slip a turn in between the
        # turns and their questions.
        with transaction(self.conn, mode=""):
            summary = self.conn.execute(SQL_GET_SUMMARY, (trajectory_id,)).fetchone()
            if summary is None:
                return None
            turns = self.conn.execute(SQL_TURNS, (trajectory_id,)).fetchall()
            questions = self.conn.execute(SQL_QUESTIONS, (trajectory_id,)).fetchall()
            violations = self.conn.execute(SQL_VIOLATIONS, (trajectory_id,)).fetchall()
        return trajectory_from_rows(summary, turns, questions, violations)

    def status(self) -> dict[str, Any]:
        existing = {row[0] for row in self.conn.execute(SQL_EXISTING_TABLES, TABLES)}
        # A table an older schema lacks is None, not 0: it is not there to count.
        counts = {
            table: self.conn.execute(count_sql(table)).fetchone()[0] if table in existing else None
            for table in TABLES
        }
        version = self.conn.execute(SQL_SCHEMA_VERSION).fetchone()[0]
        mode = self.conn.execute(SQL_JOURNAL_MODE).fetchone()[0]
        return status_dict(self.path, version, counts, mode)

    def migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied (empty when up to date)."""
        return schema.migrate(self.conn, path=self.path)

    def missing_ids(self, trajectory_ids: Sequence[int]) -> list[int]:
        """Those of ``trajectory_ids`` that name no trajectory, in the order given."""
        missing = []
        for trajectory_id in dict.fromkeys(trajectory_ids):
            if not can_be_row_id(trajectory_id) or self.conn.execute(SQL_EXISTS, (trajectory_id,)).fetchone() is None:
                missing.append(trajectory_id)
        return missing
