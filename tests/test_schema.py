"""The trajectory database: the spec's tables, migrations, refusals."""

import sqlite3

import pytest

from ppp_otel.storage.sqlite import migrations as schema

SPEC_V1 = """
CREATE TABLE trajectories (
    id INTEGER PRIMARY KEY, spec_id TEXT NOT NULL, agent_name TEXT NOT NULL,
    run_id TEXT, created_at TEXT NOT NULL
);
CREATE INDEX idx_trajectories_spec_agent ON trajectories(spec_id, agent_name);
CREATE INDEX idx_trajectories_run ON trajectories(run_id);
CREATE TABLE trajectory_turns (
    id INTEGER PRIMARY KEY,
    trajectory_id INTEGER NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    turn_number INTEGER NOT NULL, prompt TEXT, response TEXT, token_count INTEGER,
    latency_ms REAL, timestamp TEXT NOT NULL, UNIQUE (trajectory_id, turn_number)
);
INSERT INTO trajectories VALUES (1, 'spec-a', 'agent-a', 'run-1', '2025-01-01T00:00:00Z');
INSERT INTO trajectory_turns VALUES (1, 1, 1, 'hi', 'hello?', 5, 12.5, '2025-01-01T00:00:01Z');
PRAGMA user_version = 1;
"""


def columns(conn, table):
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_a_new_database_has_the_four_spec_tables_with_their_columns(db_path):
    conn = schema.connect(db_path)
    assert columns(conn, "trajectories")[:5] == ["id", "spec_id", "agent_name", "run_id", "created_at"]
    assert columns(conn, "trajectory_turns")[:8] == [
        "id", "trajectory_id", "turn_number", "prompt", "response", "token_count", "latency_ms", "timestamp",
    ]
    assert columns(conn, "trajectory_questions")[:4] == ["id", "turn_id", "question_text", "effort_level"]
    assert columns(conn, "trajectory_violations")[:6] == [
        "id", "turn_id", "preference_name", "expected", "actual", "severity",
    ]


def test_a_new_database_is_at_the_latest_version_in_wal_mode_with_foreign_keys(db_path):
    conn = schema.connect(db_path)
    assert schema.schema_version(conn) == schema.latest_version()
    assert schema.journal_mode(conn) == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_wal_can_be_turned_off(db_path):
    conn = schema.connect(db_path, wal=False)
    assert schema.journal_mode(conn) == "delete"


def test_the_spec_indexes_exist(db_path):
    conn = schema.connect(db_path)
    indexed = {
        tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert ("spec_id", "agent_name") in indexed
    assert ("run_id",) in indexed
    assert ("trajectory_id", "turn_number") in indexed


def test_effort_and_severity_are_checked_by_the_database(db_path):
    conn = schema.connect(db_path)
    conn.execute("INSERT INTO trajectories (id, spec_id, agent_name) VALUES (1, 's', 'a')")
    conn.execute("INSERT INTO trajectory_turns (id, trajectory_id, turn_number) VALUES (1, 1, 1)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO trajectory_questions (turn_id, question_text, effort_level) VALUES (1, 'q?', 'huge')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO trajectory_violations (turn_id, preference_name, severity) VALUES (1, 'p', 'fatal')"
        )


def test_deleting_a_trajectory_deletes_its_turns_questions_and_violations(db_path):
    conn = schema.connect(db_path)
    conn.execute("INSERT INTO trajectories (id, spec_id, agent_name) VALUES (1, 's', 'a')")
    conn.execute("INSERT INTO trajectory_turns (id, trajectory_id, turn_number) VALUES (1, 1, 1)")
    conn.execute("INSERT INTO trajectory_questions (turn_id, question_text, effort_level) VALUES (1, 'q?', 'low')")
    conn.execute("INSERT INTO trajectory_violations (turn_id, preference_name, severity) VALUES (1, 'p', 'minor')")
    conn.execute("DELETE FROM trajectories")
    for table in ("trajectory_turns", "trajectory_questions", "trajectory_violations"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_rows_with_only_the_spec_columns_are_accepted(db_path):
    conn = schema.connect(db_path)
    conn.execute("INSERT INTO trajectories (spec_id, agent_name, run_id, created_at) VALUES ('s', 'a', 'r', 'now')")
    conn.execute(
        "INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, token_count, latency_ms, timestamp)"
        " VALUES (1, 1, 'p', 'r', 1, 1.0, 'now')"
    )
    conn.execute("INSERT INTO trajectories (spec_id, agent_name) VALUES ('s', 'b')")  # NULL span ids never clash


def test_a_version_1_database_is_migrated_keeping_its_rows(db_path):
    raw = sqlite3.connect(db_path)
    raw.executescript(SPEC_V1)
    raw.close()
    conn = schema.connect(db_path)
    assert schema.schema_version(conn) == schema.latest_version()
    assert conn.execute("SELECT spec_id, agent_name, run_id FROM trajectories").fetchall() == [
        ("spec-a", "agent-a", "run-1")
    ]
    assert conn.execute("SELECT prompt, response, token_count FROM trajectory_turns").fetchall() == [
        ("hi", "hello?", 5)
    ]
    assert "span_id" in columns(conn, "trajectory_turns")
    conn.execute("INSERT INTO trajectory_questions (turn_id, question_text, effort_level) VALUES (1, 'hello?', 'low')")


def test_migration_applies_each_pending_version_once(db_path):
    raw = sqlite3.connect(db_path)
    raw.executescript(SPEC_V1)
    raw.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    assert schema.migrate(conn) == list(range(2, schema.latest_version() + 1))
    assert schema.migrate(conn) == []


def test_a_failed_migration_leaves_the_file_as_it_was(db_path, monkeypatch):
    raw = sqlite3.connect(db_path)
    raw.executescript(SPEC_V1)
    raw.close()

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", [schema.MIGRATIONS[0], broken])
    conn = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(conn)
    assert schema.schema_version(conn) == 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_a_newer_database_is_refused_naming_both_versions_and_left_untouched(db_path):
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE future (x)")
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    before = db_path.read_bytes()
    with pytest.raises(schema.SchemaTooNewError) as info:
        schema.connect(db_path)
    assert "99" in str(info.value) and str(schema.latest_version()) in str(info.value)
    assert db_path.read_bytes() == before


def test_a_file_that_is_not_sqlite_gives_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not the pages you are looking for\n" * 100)
    with pytest.raises(schema.DatabaseError) as info:
        schema.connect(path)
    assert str(path) in str(info.value) and "not a SQLite database" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_refused_when_it_must_exist(tmp_path):
    with pytest.raises(schema.DatabaseError, match="no such database file"):
        schema.connect(tmp_path / "missing.db", must_exist=True)
    assert not (tmp_path / "missing.db").exists()
