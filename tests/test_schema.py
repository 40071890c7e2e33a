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


# --- version 8: every stored time in one form ------------------------------------

def a_version_7_store(db, monkeypatch) -> None:
    """A store made by the code of schema version 7, holding times as ATIF imports
    wrote them then: offsets, nanoseconds, a space, no "Z", and one that is no time."""
    from tests.backends import run_sql, schema_of

    migrations = schema_of(db)
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:7])
        migrations.connect(db).close()
    for row in [
        (1, "abroad", "2025-10-16T16:30:00+02:00", "2025-10-16T16:31:00.123456789+02:00"),
        (2, "recorded", "2025-10-16T15:00:00.000Z", "2025-10-16T15:01:00.000Z"),
        (3, "other-tool", "2025-10-16 14:45:00", None),
        (4, "unknown", "yesterday", None),
    ]:
        run_sql(db, "INSERT INTO trajectories (id, spec_id, agent_name, created_at, ended_at) "
                    "VALUES (?, 's', ?, ?, ?)", row)
    for row in [(1, 1, "2025-10-16T16:30:05+02:00"), (2, 2, "2025-10-16T15:00:05.000Z")]:
        run_sql(db, "INSERT INTO trajectory_turns (id, trajectory_id, turn_number, timestamp) "
                    "VALUES (?, ?, 1, ?)", row)
    run_sql(db, "INSERT INTO consensus_runs (id, spec_id, best_agent, confidence, w_technical, w_interaction, "
                "created_at) VALUES (1, 's', 'abroad', 0.5, 0.7, 0.3, '2025-10-16T14:30:00Z')")


def row_versions(db) -> dict:
    """Something about each row that any UPDATE of it changes (to see what a migration touched)."""
    from tests.backends import is_postgres, run_sql

    if is_postgres(db):
        return {(table, i): v for table in ("trajectories", "trajectory_turns", "consensus_runs")
                for i, v in run_sql(db, f"SELECT id, xmin::text FROM {table}")}
    return {(table, i): v for table, i, v in run_sql(db, "SELECT tbl, id, count(*) FROM touched GROUP BY tbl, id")}


def watch_updates(db) -> None:
    from tests.backends import is_postgres, run_sql

    if is_postgres(db):
        return  # xmin changes with every update
    run_sql(db, "CREATE TABLE touched (tbl TEXT, id INTEGER)")
    for table in ("trajectories", "trajectory_turns", "consensus_runs"):
        run_sql(db, f"CREATE TRIGGER touched_{table} AFTER UPDATE ON {table} "
                    f"BEGIN INSERT INTO touched VALUES ('{table}', new.id); END")


def test_version_8_rewrites_times_in_other_forms_in_utc_with_milliseconds(store_url, monkeypatch):
    from tests.backends import connect, run_sql

    a_version_7_store(store_url, monkeypatch)
    connect(store_url).close()
    assert run_sql(store_url, "SELECT id, created_at, ended_at FROM trajectories ORDER BY id") == [
        (1, "2025-10-16T14:30:00.000Z", "2025-10-16T14:31:00.123Z"),
        (2, "2025-10-16T15:00:00.000Z", "2025-10-16T15:01:00.000Z"),
        (3, "2025-10-16T14:45:00.000Z", None),
        (4, "yesterday", None),  # no instant to rewrite it as: kept as it was
    ]
    assert run_sql(store_url, "SELECT timestamp FROM trajectory_turns ORDER BY id") == [
        ("2025-10-16T14:30:05.000Z",), ("2025-10-16T15:00:05.000Z",)]
    assert run_sql(store_url, "SELECT created_at FROM consensus_runs") == [("2025-10-16T14:30:00.000Z",)]


def test_version_8_touches_only_the_rows_whose_times_need_it(store_url, monkeypatch):
    from tests.backends import connect, is_postgres

    a_version_7_store(store_url, monkeypatch)
    watch_updates(store_url)
    before = row_versions(store_url)
    connect(store_url).close()
    after = row_versions(store_url)
    if is_postgres(store_url):
        touched = {key for key in after if after[key] != before[key]}
    else:
        touched = set(after)
    assert touched == {("trajectories", 1), ("trajectories", 3), ("trajectory_turns", 1), ("consensus_runs", 1)}


def test_an_upgraded_store_lists_its_trajectories_in_time_order(store_url, monkeypatch):
    from tests.backends import open_store

    a_version_7_store(store_url, monkeypatch)
    with open_store(store_url) as store:
        names = [t.agent_name for t in store.list_trajectories() if t.agent_name != "unknown"]
    assert names == ["abroad", "other-tool", "recorded"]  # 14:30, 14:45, 15:00 UTC


# --- version 9: the effort and severity CHECKs as comparisons ---------------------

def a_version_8_store_with_judgments(db_path, monkeypatch) -> None:
    """A store made by the code of schema version 8, whose CHECKs were IN lists."""
    with monkeypatch.context() as patched:
        patched.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:8])
        patched.setattr(schema, "_EFFORT_CHECK", "effort_level IN ('low', 'medium', 'high')")
        patched.setattr(schema, "_SEVERITY_CHECK", "severity IN ('minor', 'major', 'critical')")
        conn = schema.connect(db_path)
    conn.executescript("""
        INSERT INTO trajectories (id, spec_id, agent_name) VALUES (1, 's', 'a');
        INSERT INTO trajectory_turns (id, trajectory_id, turn_number) VALUES (7, 1, 1);
        INSERT INTO trajectory_questions (id, turn_id, question_text, effort_level, source, judge)
            VALUES (40, 7, 'Which file?', 'low', 'extracted', 'rules/3'), (41, 7, 'Why?', 'high', 'explicit', NULL);
        INSERT INTO trajectory_violations (id, turn_id, preference_name, expected, actual, severity, source, judge)
            VALUES (50, 7, 'no_commas', 'none', 'a comma', 'major', 'detected', 'rules/3');
    """)
    conn.close()


def test_version_9_keeps_every_question_and_violation_with_its_id_and_index(db_path, monkeypatch):
    a_version_8_store_with_judgments(db_path, monkeypatch)
    conn = schema.connect(db_path)
    assert schema.schema_version(conn) == 9
    assert conn.execute("SELECT id, turn_id, question_text, effort_level, source, judge FROM trajectory_questions "
                        "ORDER BY id").fetchall() == [(40, 7, "Which file?", "low", "extracted", "rules/3"),
                                                      (41, 7, "Why?", "high", "explicit", None)]
    assert conn.execute("SELECT id, severity, judge FROM trajectory_violations").fetchall() == [(50, "major", "rules/3")]
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"idx_questions_turn", "idx_violations_turn"} <= indexes
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    tables = "".join(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"))
    assert " IN (" not in tables and "effort_level = 'low' OR" in tables and "severity = 'minor' OR" in tables


def test_a_new_database_is_made_with_the_comparisons_and_nothing_to_rebuild(db_path):
    conn = schema.connect(db_path)
    tables = "".join(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"))
    assert " IN (" not in tables
    assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)  # no table was dropped


@pytest.mark.parametrize("table, row", [
    ("trajectory_questions (turn_id, question_text, effort_level)", (7, "Which file?", "extreme")),
    ("trajectory_violations (turn_id, preference_name, severity)", (7, "no_commas", "fatal")),
])
def test_version_9_still_refuses_an_effort_or_severity_outside_the_schemas(db_path, monkeypatch, table, row):
    a_version_8_store_with_judgments(db_path, monkeypatch)
    conn = schema.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(f"INSERT INTO {table} VALUES (?, ?, ?)", row)


def test_version_9_deletes_a_turns_questions_with_it_as_before(db_path, monkeypatch):
    a_version_8_store_with_judgments(db_path, monkeypatch)
    conn = schema.connect(db_path)
    conn.execute("DELETE FROM trajectory_turns WHERE id = 7")
    assert conn.execute("SELECT count(*) FROM trajectory_questions").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM trajectory_violations").fetchone() == (0,)
