"""The storage seam: open_store picks the backend, errors are the store's own, not sqlite3's."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage import (
    BackendNotInstalled,
    DatabaseError,
    ReadOnlyError,
    StorageError,
    TrajectoryBackend,
    open_store,
    using_store,
)
from ppp_otel.storage.base import NotADatabaseError, cursor_columns, TurnNumberClash, WriteFailed
from ppp_otel.storage.sqlite.store import SQLiteStore


def _trajectory() -> TrajectoryRecord:
    return TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent", started_at="2025-01-01T00:00:00.000Z")


def _turn(t: TrajectoryRecord, span: str, number: int, *, renumber: bool = False) -> TurnRecord:
    record = TurnRecord(t.trace_id, span, t.key, number, "prompt", "response", extract_questions=False)
    record.renumber_on_conflict = renumber
    return record


def test_a_path_opens_the_sqlite_store_which_is_a_trajectory_backend(db_path):
    with open_store(db_path, must_exist=False) as store:
        assert isinstance(store, SQLiteStore)
        assert isinstance(store, TrajectoryBackend)
        assert store.list_trajectories() == []


def _without_psycopg(code: str) -> subprocess.CompletedProcess:
    # A fresh interpreter in which psycopg cannot be imported, as without the postgres extra.
    return subprocess.run([sys.executable, "-c", "import sys; sys.modules['psycopg'] = None\n" + code],
                          capture_output=True, text=True, timeout=60)


def test_a_postgresql_url_opens_the_postgres_store_which_has_every_method_of_the_sqlite_one(postgres_url):
    from ppp_otel.storage.postgres.store import PostgresStore

    with open_store(postgres_url, must_exist=False, wal=True, busy_timeout_ms=10, check_same_thread=False) as store:
        assert isinstance(store, PostgresStore)
        assert isinstance(store, TrajectoryBackend)
        assert store.path == postgres_url
    public = {name for name in dir(SQLiteStore) if not name.startswith("_")} - {"path"}
    assert sorted(public - set(dir(PostgresStore))) == []


def test_a_postgresql_url_without_the_backend_installed_is_a_clear_error_without_the_password():
    done = _without_psycopg(
        "from ppp_otel.storage import open_store, BackendNotInstalled, StorageError\n"
        "try:\n    open_store('postgresql://ppp:secret@db.example/ppp')\n"
        "except BackendNotInstalled as exc:\n    assert isinstance(exc, StorageError); print(exc)\n")
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL backend is not installed" in done.stdout and "secret" not in done.stdout


def test_an_unreachable_postgresql_server_is_a_database_error_without_the_password(tmp_path):
    from support import free_port

    with pytest.raises(DatabaseError, match="cannot connect") as info:
        open_store(f"postgresql://ppp:secret@127.0.0.1:{free_port()}/ppp")
    assert "secret" not in str(info.value)


def test_a_missing_file_is_a_database_error_naming_it(tmp_path):
    with pytest.raises(DatabaseError, match="no such database file"):
        open_store(tmp_path / "missing.db")


def test_a_file_that_is_not_sqlite_is_a_not_a_database_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    with pytest.raises(NotADatabaseError, match="not a SQLite database"):
        open_store(path)


def test_a_write_to_a_read_only_store_is_a_read_only_error(store_url):
    open_store(store_url, must_exist=False).close()
    with open_store(store_url, read_only=True) as store:
        with pytest.raises(ReadOnlyError):
            store.write([_trajectory()])


def test_a_locked_database_is_a_write_failed_worth_retrying(db_path):
    open_store(db_path, must_exist=False).close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with open_store(db_path, busy_timeout_ms=10) as store:
            with pytest.raises(WriteFailed, match="database is locked"):
                store.write([_trajectory()])
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_turn_number_already_taken_is_rejected_with_the_clash_named(store_url):
    t = _trajectory()
    with open_store(store_url, must_exist=False) as store:
        store.write([t, _turn(t, "1" * 16, 1)])
        outcome = store.write([_turn(t, "2" * 16, 1)])
    assert outcome.turns == 0
    [(_, reason)] = outcome.rejected
    assert reason == f"turn {'2' * 16}: turn number 1 is already taken by another turn"


def test_a_sequenced_turn_whose_number_is_taken_is_renumbered(store_url):
    t = _trajectory()
    with open_store(store_url, must_exist=False) as store:
        store.write([t, _turn(t, "1" * 16, 1)])
        outcome = store.write([_turn(t, "2" * 16, 1, renumber=True)])
        numbers = [turn.number for turn in store.get_trajectory(1).turns]
    assert outcome.turns == 1 and not outcome.rejected
    assert numbers == [1, 2]


def test_the_turn_number_clash_is_its_own_storage_error():
    clash = TurnNumberClash(3)
    assert isinstance(clash, StorageError) and clash.turn_number == 3
    assert str(clash) == "turn number 3 is already taken by another turn"


def test_using_store_wraps_a_connection_without_closing_it(db_path):
    open_store(db_path, must_exist=False).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    with using_store(conn) as store:
        assert store.specs() == []
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.close()


def test_using_store_passes_a_store_through_and_leaves_it_open(store_url):
    with open_store(store_url, must_exist=False) as store:
        with using_store(store) as same:
            assert same is store
        assert store.specs() == []


def test_cleanup_through_the_seam_runs_the_backends_retention(db_path):
    from ppp_otel.storage import cleanup

    t = _trajectory()
    with open_store(db_path, must_exist=False) as store:
        store.write([t])
    summary = cleanup(db_path, older_than_days=1, dry_run=True)
    assert summary.dry_run and summary.trajectories == 1  # started 2025-01-01


def test_cleanup_of_a_postgresql_url_without_the_backend_is_a_clear_error():
    done = _without_psycopg(
        "from ppp_otel.storage import cleanup, BackendNotInstalled\n"
        "try:\n    cleanup('postgresql://localhost/ppp', older_than_days=1)\n"
        "except BackendNotInstalled:\n    print('refused')\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_the_read_results_are_importable_from_the_storage_package():
    from ppp_otel.storage import Trajectory, TrajectorySummary, Turn
    from ppp_otel.storage.sqlite import reader

    assert (Trajectory, TrajectorySummary, Turn) == (reader.Trajectory, reader.TrajectorySummary, reader.Turn)


def test_the_listing_by_column_is_the_columns_of_its_rows_for_every_filter(store_url):
    with open_store(store_url, must_exist=False) as store:
        for n, (spec, agent) in enumerate([("s1", "a"), ("s1", "b"), ("s2", "a")]):
            t = TrajectoryRecord(f"{n + 1:032x}", f"{n + 1:016x}", spec, agent, run_id=f"r{n % 2}",
                                 started_at=f"2025-01-01T00:00:0{n}.000Z")
            store.write([t, _turn(t, f"{n + 10:016x}", 1)])
        picked = [0, 1, 2, 3, 6, 13]
        for chosen in ({}, {"spec_id": "s1"}, {"spec_id": "s1", "agent_name": "b"}, {"run_id": "r0"},
                       {"limit": 1, "offset": 1}, {"spec_id": "none"}):
            rows = store.list_trajectory_rows(**chosen)
            assert store.list_trajectory_columns(picked, **chosen) == [[row[i] for row in rows] for i in picked]


def test_a_cursor_read_by_column_in_several_batches_gives_every_row_in_order():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b, c)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"x{i}", None) for i in range(10)])
    columns = cursor_columns(conn.execute("SELECT * FROM t ORDER BY a"), [2, 0], batch=3)
    assert columns == [[None] * 10, list(range(10))]
