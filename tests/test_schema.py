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


# --- PostgreSQL: the same tables, columns and migrations ---------------------------

def pg_columns(conn, table):
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]


@pytest.fixture
def pg(postgres_url):
    from ppp_otel.storage.postgres import migrations as pg_schema

    conn = pg_schema.connect(postgres_url)
    yield conn
    conn.close()


def test_postgresql_has_every_table_and_column_of_the_sqlite_schema_in_the_same_order(pg, db_path):
    lite = schema.connect(db_path)
    tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"trajectories", "trajectory_turns", "trajectory_questions", "trajectory_violations"} <= set(tables)
    # What replicas share beyond SQLite's staging: a claim's lease, and where chain spans sit.
    only_postgres = {"pending_spans": ["claimed_until"]}
    for table in tables:
        assert pg_columns(pg, table) == columns(lite, table) + only_postgres.get(table, []), table


def test_postgresql_has_the_spec_indexes_and_the_span_id_constraints(pg):
    indexed = {row[0] for row in pg.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()")}
    text = "\n".join(indexed)
    for wanted in ("(spec_id, agent_name)", "(run_id)", "(trajectory_id, turn_number)",
                   "UNIQUE INDEX ux_trajectories_span ON", "UNIQUE INDEX ux_turns_span ON"):
        assert wanted in text, wanted


def test_postgresql_checks_effort_and_severity_and_cascades_deletes(pg):
    import psycopg

    pg.execute("INSERT INTO trajectories (id, spec_id, agent_name) VALUES (1, 's', 'a')")
    pg.execute("INSERT INTO trajectory_turns (id, trajectory_id, turn_number) VALUES (1, 1, 1)")
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO trajectory_questions (turn_id, question_text, effort_level) VALUES (1, 'q?', 'huge')")
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO trajectory_violations (turn_id, preference_name, severity) VALUES (1, 'p', 'fatal')")
    pg.execute("INSERT INTO trajectory_questions (turn_id, question_text, effort_level) VALUES (1, 'q?', 'low')")
    pg.execute("DELETE FROM trajectories")
    for table in ("trajectory_turns", "trajectory_questions"):
        assert pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_postgresql_accepts_rows_with_only_the_spec_columns(pg):
    pg.execute("INSERT INTO trajectories (spec_id, agent_name, run_id, created_at) VALUES ('s', 'a', 'r', 'now')")
    pg.execute("INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, token_count, "
               "latency_ms, timestamp) VALUES (1, 1, 'p', 'r', 1, 1.0, 'now')")
    pg.execute("INSERT INTO trajectories (spec_id, agent_name) VALUES ('s', 'b')")  # NULL span ids never clash
    created = pg.execute("SELECT created_at FROM trajectories WHERE agent_name = 'b'").fetchone()[0]
    assert created.endswith("Z") and created[10] == "T"  # spelled as SQLite's default spells it


def test_postgresql_text_sorts_in_code_point_order_as_sqlite_does(pg):
    for name in ("b", "B", "a-c", "ab", "é"):
        pg.execute("INSERT INTO trajectories (spec_id, agent_name) VALUES (%s, 'x')", (name,))
    assert [r[0] for r in pg.execute("SELECT spec_id FROM trajectories ORDER BY spec_id")] == sorted(
        ["b", "B", "a-c", "ab", "é"])


def test_postgresql_migrations_are_tracked_in_a_table_and_applied_once(postgres_url):
    from ppp_otel.storage.postgres import migrations as pg_schema

    conn = pg_schema.connect(postgres_url, migrate_schema=False)
    assert pg_schema.schema_version(conn) == 0
    assert pg_schema.migrate(conn) == list(range(1, pg_schema.latest_version() + 1))
    assert pg_schema.migrate(conn) == []
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, pg_schema.latest_version() + 1))


def test_postgresql_processes_migrating_at_once_apply_each_version_exactly_once(postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    from ppp_otel.storage.postgres import migrations as pg_schema

    def open_and_migrate(_):
        conn = pg_schema.connect(postgres_url, migrate_schema=False)
        try:
            return pg_schema.migrate(conn)
        finally:
            conn.close()

    with ThreadPoolExecutor(6) as pool:
        applied = list(pool.map(open_and_migrate, range(6)))
    assert sorted(v for versions in applied for v in versions) == list(range(1, pg_schema.latest_version() + 1))


def test_a_failed_postgresql_migration_leaves_the_database_as_it_was(postgres_url, monkeypatch):
    import psycopg

    from ppp_otel.storage.postgres import migrations as pg_schema

    def broken(cur):
        cur.execute("CREATE TABLE half_done (x int)")
        raise psycopg.OperationalError("the disk is full")

    monkeypatch.setattr(pg_schema, "MIGRATIONS", [pg_schema.MIGRATIONS[0], broken])
    conn = pg_schema.connect(postgres_url, migrate_schema=False)
    with pytest.raises(psycopg.OperationalError):
        pg_schema.migrate(conn)
    assert pg_schema.schema_version(conn) == 1
    assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None


def test_a_newer_postgresql_store_is_refused_naming_both_versions_and_left_untouched(pg, postgres_url):
    from ppp_otel.storage.postgres import migrations as pg_schema

    pg.execute("INSERT INTO schema_migrations (version) VALUES (99)")
    with pytest.raises(schema.SchemaTooNewError) as info:
        pg_schema.connect(postgres_url)
    assert "99" in str(info.value) and str(pg_schema.latest_version()) in str(info.value)
    assert pg.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 99
