"""The trajectory database: opening it and migrating its schema.

Migrations are numbered, forward-only and tracked by ``PRAGMA user_version``.
Each runs in one ``BEGIN IMMEDIATE`` transaction, so two processes opening the
same new file at once cannot both apply it, and a failed migration leaves the
file exactly as it was.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
from typing import Callable

# The storage errors, under the names this module has always given them.
from ppp_otel.storage.base import DatabaseError, DatabaseNewerError as SchemaTooNewError  # noqa: F401
from ppp_otel.storage.base import TIME_COLUMNS, NoSuchDatabase, NotADatabaseError, directory_named, redact_url, utc_rewrites
from ppp_otel.storage.sqlite.errors import SQLITE_NOTADB, primary_code
from ppp_otel.storage.sqlite.transaction import transaction

DEFAULT_DB_PATH = "ppp_trajectories.db"
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _add_column(conn: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    # Tables written by other tools may already have some of our columns.
    if column not in _columns(conn, table):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


# DESIGN.md's effort and severity rules, allowing the same values, spelled as comparisons:
# SQLite evaluates a CHECK's IN of three or more values through a temporary table it fills
# for every row inserted (about 9,000 instructions a question in the writer's multi-row
# INSERT); three comparisons cost a few hundred. Databases made before version 9 spelled
# them as IN lists, which migration 9 rewrites.
_EFFORT_CHECK = "effort_level = 'low' OR effort_level = 'medium' OR effort_level = 'high'"
_SEVERITY_CHECK = "severity = 'minor' OR severity = 'major' OR severity = 'critical'"
_CHECKS_AS_COMPARISONS = {
    "trajectory_questions": ("effort_level IN ('low', 'medium', 'high')", _EFFORT_CHECK),
    "trajectory_violations": ("severity IN ('minor', 'major', 'critical')", _SEVERITY_CHECK),
}


def _v1_trajectories_and_turns(conn: sqlite3.Connection) -> None:
    """The spec's version 1: trajectories and their turns."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS trajectories (
            id INTEGER PRIMARY KEY,
            spec_id TEXT NOT NULL,
            agent_name TEXT NOT NULL,
            run_id TEXT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_trajectories_spec_agent ON trajectories(spec_id, agent_name)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_trajectories_run ON trajectories(run_id)")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS trajectory_turns (
            id INTEGER PRIMARY KEY,
            trajectory_id INTEGER NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
            turn_number INTEGER NOT NULL,
            prompt TEXT,
            response TEXT,
            token_count INTEGER,
            latency_ms REAL,
            timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            UNIQUE (trajectory_id, turn_number)
        )"""
    )


def _v2_questions_violations_and_span_ids(conn: sqlite3.Connection) -> None:
    """Questions, violations, and the OTel ids that make redelivery idempotent."""
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS trajectory_questions (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER NOT NULL REFERENCES trajectory_turns(id) ON DELETE CASCADE,
            question_text TEXT NOT NULL,
            effort_level TEXT NOT NULL CHECK ({_EFFORT_CHECK})
        )"""
    )
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS trajectory_violations (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER NOT NULL REFERENCES trajectory_turns(id) ON DELETE CASCADE,
            preference_name TEXT NOT NULL,
            expected TEXT,
            actual TEXT,
            severity TEXT NOT NULL CHECK ({_SEVERITY_CHECK})
        )"""
    )
    _add_column(conn, "trajectory_questions", "source", "TEXT NOT NULL DEFAULT 'explicit'")
    _add_column(conn, "trajectory_violations", "source", "TEXT NOT NULL DEFAULT 'explicit'")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_questions_turn ON trajectory_questions(turn_id, effort_level)")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_violations_turn ON trajectory_violations(turn_id, severity)")

    for column, decl in (
        ("trace_id", "TEXT"),
        ("span_id", "TEXT"),
        ("preferences", "TEXT"),  # JSON list of preference specs
        ("technical_score", "REAL"),
        ("ended_at", "TEXT"),
        ("parent_trajectory_id", "INTEGER REFERENCES trajectories(id) ON DELETE SET NULL"),
    ):
        _add_column(conn, "trajectories", column, decl)
    for column, decl in (
        ("trace_id", "TEXT"),
        ("span_id", "TEXT"),
        ("extra", "TEXT"),  # JSON: what a turn carries beyond the spec's columns
    ):
        _add_column(conn, "trajectory_turns", column, decl)
    # NULL ids (rows written by other tools) never conflict with each other.
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_trajectories_span ON trajectories(trace_id, span_id)"
    )
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_turns_span ON trajectory_turns(trace_id, span_id)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_trajectories_created ON trajectories(created_at)")


def _v3_recorder_stats(conn: sqlite3.Connection) -> None:
    """Each recording process's counters, so ``ppp-otel status`` can show drops and errors."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS recorder_stats (
            recorder_id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            enqueued INTEGER NOT NULL DEFAULT 0,
            written_turns INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            write_errors INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        )"""
    )


def _v4_consensus_history(conn: sqlite3.Connection) -> None:
    """Every consensus run and each agent's scores in it, so results can be compared over time."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS consensus_runs (
            id INTEGER PRIMARY KEY,
            spec_id TEXT NOT NULL,
            best_agent TEXT NOT NULL,
            confidence REAL NOT NULL,
            w_technical REAL NOT NULL,
            w_interaction REAL NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            trace_id TEXT,
            span_id TEXT
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_consensus_runs_spec ON consensus_runs(spec_id, created_at)"
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS consensus_agents (
            id INTEGER PRIMARY KEY,
            consensus_id INTEGER NOT NULL REFERENCES consensus_runs(id) ON DELETE CASCADE,
            rank INTEGER NOT NULL,
            agent_name TEXT NOT NULL,
            technical REAL,
            technical_source TEXT NOT NULL,
            r_proact REAL,
            r_pers REAL,
            final REAL NOT NULL,
            technical_only INTEGER NOT NULL DEFAULT 0,
            trajectory_ids TEXT NOT NULL DEFAULT '[]',
            UNIQUE (consensus_id, agent_name)
        )"""
    )


def _v5_stages(conn: sqlite3.Connection) -> None:
    """A trajectory's stage of its spec, and the stage and run a consensus judged."""
    _add_column(conn, "trajectories", "stage", "TEXT")
    # Consensus judges one (spec, stage, run): spec first, as every filter has it.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_trajectories_spec_run_stage ON trajectories(spec_id, run_id, stage)"
    )
    _add_column(conn, "consensus_runs", "stage", "TEXT")
    _add_column(conn, "consensus_runs", "run_id", "TEXT")
    # JSON {"stages": [...], "runs": [...]}: what the judged trajectories covered.
    _add_column(conn, "consensus_runs", "scope", "TEXT")
def _v6_judgment(conn: sqlite3.Connection) -> None:
    """Which judge made each question and violation, which turns are judged, what the user
    knows (for a judge), and which reward profile a consensus run used."""
    _add_column(conn, "trajectories", "user_context", "TEXT")
    # NULL: not judged yet (recorded before judgment ran, or it has not caught up).
    _add_column(conn, "trajectory_turns", "judged_by", "TEXT")
    # NULL: reported by the agent code with its effort; else "rules/<version>" or "llm/<model>".
    _add_column(conn, "trajectory_questions", "judge", "TEXT")
    _add_column(conn, "trajectory_violations", "judge", "TEXT")
    _add_column(conn, "consensus_runs", "rewards", "TEXT")
    # Turns recorded before judgment was its own stage were judged when written.
    conn.execute("UPDATE trajectory_turns SET judged_by = 'rules/1' WHERE judged_by IS NULL")
    conn.execute(
        "UPDATE trajectory_questions SET judge = 'rules/1' WHERE judge IS NULL AND source = 'extracted'"
    )
    conn.execute(
        "UPDATE trajectory_violations SET judge = 'rules/1' WHERE judge IS NULL AND source = 'detected'"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_turns_unjudged ON trajectory_turns(judged_by) WHERE judged_by IS NULL")
def _v7_pending_spans(conn: sqlite3.Connection) -> None:
    """Spans ingest acknowledged before their parent arrived, kept until it does (see staging)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS pending_spans (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            parent_span_id TEXT,
            is_turn INTEGER NOT NULL DEFAULT 0,
            received_at REAL NOT NULL,
            span TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_pending_parent ON pending_spans(trace_id, parent_span_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_pending_received ON pending_spans(received_at)")



# What CANONICAL_TIME matches, as a GLOB ("." is itself there).
_CANONICAL_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"


def _v8_utc_times(conn: sqlite3.Connection) -> None:
    """Times imported as their documents spelled them (an offset, nanoseconds, a space,
    no "Z") rewritten in the store's one form, so text order is time order again.
    Times already in that form are not touched; a text that is no time is kept."""
    for table, column in TIME_COLUMNS:
        rows = conn.execute(
            f"SELECT rowid, {column} FROM {table} WHERE {column} NOT GLOB ?", (_CANONICAL_GLOB,)
        ).fetchall()
        conn.executemany(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", utc_rewrites(rows))



def _v9_checks_as_comparisons(conn: sqlite3.Connection) -> None:
    """The question and violation tables rebuilt with their CHECKs as comparisons (SQLite
    cannot alter a constraint in place): the same rows, ids and indexes. A table whose CHECK
    is spelled otherwise (made by another tool) is left as it is."""
    for table, (spelled, as_comparisons) in _CHECKS_AS_COMPARISONS.items():
        found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if found is None or spelled not in found[0]:
            continue
        indexes = [sql for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
        rebuilt = f"{table}_rebuilt"
        # sqlite_master keeps the statement as "CREATE TABLE <name> (...)".
        create = re.sub(r'^CREATE TABLE\s+(?:"?)' + table + r'(?:"?)', f"CREATE TABLE {rebuilt}", found[0], count=1)
        conn.execute(create.replace(spelled, as_comparisons))
        conn.execute(f"INSERT INTO {rebuilt} SELECT * FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {rebuilt} RENAME TO {table}")
        for sql in indexes:
            conn.execute(sql)


Migration = Callable[[sqlite3.Connection], None]

#: Position i holds the migration that takes a database to version i + 1.
MIGRATIONS: list[Migration] = [
    _v1_trajectories_and_turns,
    _v2_questions_violations_and_span_ids,
    _v3_recorder_stats,
    _v4_consensus_history,
    _v5_stages,
    _v6_judgment,
    _v7_pending_spans,
    _v8_utc_times,
    _v9_checks_as_comparisons,
]


def latest_version() -> int:
    return len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def refuse_if_newer(conn: sqlite3.Connection, *, path: str = "database") -> int:
    """The file's schema version, or SchemaTooNewError if this code is older than it."""
    current, target = schema_version(conn), latest_version()
    if current > target:
        raise SchemaTooNewError(
            f"{path}: schema version {current} is newer than this ppp-otel supports "
            f"(version {target}); upgrade ppp-otel to open it"
        )
    return current


def migrate(conn: sqlite3.Connection, *, path: str = "database") -> list[int]:
    """Apply pending migrations; return the versions applied.

    The connection must be in autocommit mode (``isolation_level=None``).
    """
    target = latest_version()
    current = refuse_if_newer(conn, path=path)
    applied = []
    while current < target:
        with transaction(conn, join=False):
            # Another process may have migrated while we waited for the lock.
            current = schema_version(conn)
            if current >= target:
                break
            MIGRATIONS[current](conn)
            conn.execute(f"PRAGMA user_version = {current + 1}")
        current += 1
        applied.append(current)
    return applied


def connect(
    path: str | os.PathLike,
    *,
    wal: bool = True,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    migrate_schema: bool = True,
    must_exist: bool = False,
    read_only: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open the trajectory database with foreign keys on, migrated to the latest schema.

    Raises :class:`DatabaseError` (one line, naming the file) for a missing file
    when ``must_exist``, a file that is not SQLite, or a schema newer than the code.
    """
    path = os.fspath(path)
    if "://" in path:  # a server's URL: this opens files; say what opens the URL
        raise DatabaseError(f"{redact_url(path)}: a URL, not a SQLite file; open_store() opens any store "
                            f"(PostgreSQL too), as AsyncTrajectoryStore does")
    directory = directory_named(path)
    if directory:
        # Before SQLite: it says "disk I/O error" for a directory opened read-only, and
        # takes "name/" for the file "name".
        raise DatabaseError(f"{path}: cannot open database ({directory})")
    if must_exist and path != ":memory:" and not os.path.exists(path):
        raise NoSuchDatabase(f"{path}: no such database file")
    if must_exist and path != ":memory:" and os.path.isfile(path) and os.path.getsize(path) == 0:
        # A command that reads must not turn an empty file (a typo, a failed copy) into a database.
        raise DatabaseError(f"{path}: empty file, not a trajectory database; "
                            f"`ppp-otel migrate --create --db {shlex.quote(path)}` makes it one")
    try:
        if read_only:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None,
                check_same_thread=check_same_thread,
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open database: {exc}{_why_unopenable(path, str(exc))}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Reading the schema is the first access that fails on a non-SQLite file.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA foreign_keys = ON")
        current = refuse_if_newer(conn, path=path)  # before anything is written to the file
        if must_exist and current == 0 and _has_tables_but_no_trajectories(conn):
            # Another application's database (a wrong --db): reading must not add our tables
            # to it, as PostgreSQL's store refuses a database without the schema.
            raise DatabaseError(
                f"{path}: a SQLite database with no trajectory store in it (no trajectories table); "
                f"`ppp-otel migrate --create --db {path}` adds one"
            )
        if not read_only:
            if migrate_schema and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                # Only an empty file can take this (before WAL writes its header);
                # it lets cleanup give space back without a full VACUUM.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            if wal:
                conn.execute("PRAGMA journal_mode = WAL")
                # WAL makes NORMAL durable against application crashes.
                conn.execute("PRAGMA synchronous = NORMAL")
            if migrate_schema:
                migrate(conn, path=path)
    except (SchemaTooNewError, DatabaseError):
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        if primary_code(exc) == SQLITE_NOTADB:
            raise NotADatabaseError(f"{path}: not a SQLite database") from exc
        message = str(exc)
        raise DatabaseError(f"{path}: {message}{_why_unopenable(path, message)}") from exc
    return conn


def _has_tables_but_no_trajectories(conn: sqlite3.Connection) -> bool:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return bool(names) and "trajectories" not in names


def _why_unopenable(path: str, message: str) -> str:
    """The likely reason behind SQLite's bare "unable to open database file" / "readonly database"."""
    if "unable to open" not in message and "readonly" not in message:
        return ""
    if directory_named(path):
        return f" ({directory_named(path)})"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f" (the directory {directory} does not exist)"
    if not os.access(directory, os.W_OK):
        return (f" (the directory {directory} is not writable: SQLite keeps its WAL and shared-memory "
                "files beside the database; make it writable or work on a copy)")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return " (the file is read-only)"
    return ""


def journal_mode(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA journal_mode").fetchone()[0]
