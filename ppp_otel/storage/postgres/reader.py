"""Reading trajectories back from PostgreSQL: the methods and results of
:class:`ppp_otel.storage.sqlite.reader.TrajectoryStore`.

The statements are SQLite's own (imported, with ``?`` turned into psycopg's
``%s``) wherever the dialects agree, and the rows go through the same mappers,
so the two stores return the same dataclasses. What differs is said here:
listing without a limit (``LIMIT ALL``, not ``-1``), the schema version (a
table, not a pragma) and ``status`` (the database's size, no journal mode).
"""

from __future__ import annotations

import functools
from typing import Any

from ppp_otel.storage.base import can_be_row_id
from ppp_otel.storage.postgres import migrations as schema
from ppp_otel.storage.sqlite.reader import (
    SQL_GET_SUMMARY,
    SQL_QUESTIONS,
    SQL_TURNS,
    SQL_VIOLATIONS,
    TABLES,
    RecordedQuestion,
    RecordedViolation,
    Trajectory,
    TrajectoryReader,
    TrajectorySummary,
    Turn,
    count_sql,
    list_query as sqlite_list_query,
    parse_preferences,
    trajectory_from_rows,
)

__all__ = ["RecordedQuestion", "RecordedViolation", "Trajectory", "TrajectoryStore",
           "TrajectorySummary", "Turn", "pg", "list_query"]


@functools.lru_cache(maxsize=512)
def pg(sql: str) -> str:
    """A SQLite statement with ``?`` parameters as a psycopg one (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def list_query(**filters: Any) -> tuple[str, list[Any]]:
    """SQLite's listing statement; no limit is ``LIMIT ALL`` (NULL) rather than ``-1``."""
    sql, params = sqlite_list_query(**filters)
    if params[-2] == -1:
        params[-2] = None
    return pg(sql), params


_EXISTING_TABLES = "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relname = ANY(%s) " \
                   "AND relnamespace = current_schema()::regnamespace"


def status_dict(url: str, version: int, counts: dict[str, int | None], size: int) -> dict[str, Any]:
    """The keys of SQLite's status: ``file_size_bytes`` is the database's size on the
    server, ``journal_mode`` says what stands in for it (PostgreSQL's own write-ahead log)."""
    return {
        "path": schema.redact(url),
        "schema_version": version,
        "latest_version": schema.latest_version(),
        "row_counts": counts,
        "file_size_bytes": size,
        "journal_mode": "postgresql",
        "backend": "postgresql",
    }


class TrajectoryStore(TrajectoryReader):
    """Read access to a PostgreSQL trajectory store; same arguments as SQLite's."""

    dialect = staticmethod(pg)
    list_query = staticmethod(list_query)

    def __init__(self, url: str, *, must_exist: bool = True, migrate_schema: bool = True,
                 read_only: bool = False):
        self.path = url
        self.conn = schema.connect(url, must_exist=must_exist, migrate_schema=migrate_schema,
                                   read_only=read_only)

    def get_trajectory(self, trajectory_id: int) -> Trajectory | None:
        if not can_be_row_id(trajectory_id):
            return None
        # One repeatable-read snapshot: a writer cannot slip a turn in between
        # the turns and their questions.
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            summary = self.conn.execute(pg(SQL_GET_SUMMARY), (trajectory_id,)).fetchone()
            if summary is None:
                return None
            turns = self.conn.execute(pg(SQL_TURNS), (trajectory_id,)).fetchall()
            questions = self.conn.execute(pg(SQL_QUESTIONS), (trajectory_id,)).fetchall()
            violations = self.conn.execute(pg(SQL_VIOLATIONS), (trajectory_id,)).fetchall()
        return trajectory_from_rows(summary, turns, questions, violations)

    def status(self) -> dict[str, Any]:
        existing = {row[0] for row in self.conn.execute(_EXISTING_TABLES, (list(TABLES),))}
        counts = {
            table: self.conn.execute(count_sql(table)).fetchone()[0] if table in existing else None
            for table in TABLES
        }
        version = schema.schema_version(self.conn)
        size = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        report = status_dict(self.path, version, counts, size)
        return report

    def migrate(self) -> list[int]:
        return schema.migrate(self.conn, path=self.path)

    def recorders(self, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        if self.conn.execute("SELECT to_regclass('recorder_stats') IS NULL").fetchone()[0]:
            return []
        rows = self.conn.execute(
            f"SELECT {', '.join(columns)} FROM recorder_stats ORDER BY updated_at DESC").fetchall()
        return [dict(zip(columns, row)) for row in rows]


#: Each judged turn's number, prompt, response and questions (an array), for the judges'
#: history (:func:`ppp_otel.storage.sqlite.lookups.trajectory_history`).
SQL_HISTORY_TURNS = """SELECT t.turn_number, t.prompt, t.response,
                  ARRAY(SELECT question_text FROM trajectory_questions q WHERE q.turn_id = t.id ORDER BY q.id)
           FROM trajectory_turns t WHERE t.trajectory_id = ? AND t.judged_by IS NOT NULL
           ORDER BY t.turn_number"""
