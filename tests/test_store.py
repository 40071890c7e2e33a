"""The read API: TrajectoryStore on real SQLite files and a real PostgreSQL server
(the same tests on both), and AsyncTrajectoryStore on both."""

from __future__ import annotations

import os
import sqlite3

import pytest

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.aio import AsyncTrajectoryStore
from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite.reader import (
    RecordedQuestion,
    RecordedViolation,
    Trajectory,
    TrajectorySummary,
    list_query,
)
import backends
from backends import is_postgres, run_sql, schema_of, set_schema_version


def _trajectory(n: int, spec: str, agent: str, run: str | None = None, **kw) -> TrajectoryRecord:
    return TrajectoryRecord(
        f"{n:032x}", f"{n:016x}", spec, agent, run_id=run,
        started_at=f"2025-01-01T00:00:{n:02d}.000Z", **kw,
    )


def _turn(t: TrajectoryRecord, number: int, *, questions=(), violations=()) -> TurnRecord:
    return TurnRecord(
        t.trace_id, f"{t.span_id[:12]}{number:04x}", t.key, number,
        f"prompt {number}", f"response {number}", token_count=10 * number, latency_ms=1.5,
        questions=list(questions), violations=list(violations), extract_questions=not questions,
    )


def _fill(path: str) -> str:
    """Three trajectories: two agents on spec A (run r1), one on spec B (run r2)."""
    a1 = _trajectory(1, "spec-a", "alice", "r1", preferences=("no_questions", "max_words(limit=50)"),
                     technical_score=0.9)
    a2 = _trajectory(2, "spec-a", "bob", "r1")
    b1 = _trajectory(3, "spec-b", "alice", "r2")
    records = [
        a1, a2, b1,
        _turn(a1, 1, questions=[Question("Which file?", "low"), Question("Investigate the cause?", "high")]),
        _turn(a1, 2, violations=[Violation("no_questions", "no questions", "2 questions", "critical")]),
        _turn(a1, 3),
        _turn(a2, 1),
    ]
    conn = backends.connect(path)
    outcome = backends.write_all(conn, records)
    conn.close()
    assert not outcome.rejected
    return path


@pytest.fixture
def db(store_url) -> str:
    """The three trajectories in a store of each backend."""
    return _fill(store_url)


@pytest.fixture
def sqlite_db(tmp_path) -> str:
    """The three trajectories in a SQLite file, for what only SQLite has (query plans, the WAL file, aiosqlite)."""
    return _fill(str(tmp_path / "t.db"))


def TrajectoryStore(db, **options):  # noqa: N802: the store of the database's backend
    return backends.open_store(db, **options)


def _ids(summaries: list[TrajectorySummary]) -> list[int]:
    return [s.id for s in summaries]


# --- listing ---------------------------------------------------------------

def test_list_returns_every_trajectory_oldest_first(db):
    with TrajectoryStore(db) as store:
        assert [(s.spec_id, s.agent_name) for s in store.list_trajectories()] == [
            ("spec-a", "alice"), ("spec-a", "bob"), ("spec-b", "alice"),
        ]


def test_list_counts_turns_questions_and_violations(db):
    with TrajectoryStore(db) as store:
        first = store.list_trajectories()[0]
    assert (first.turn_count, first.question_count, first.violation_count) == (3, 2, 1)
    assert first.technical_score == 0.9
    assert first.preferences == ["no_questions", "max_words(limit=50)"]


def test_list_filters_by_spec_agent_and_run(db):
    with TrajectoryStore(db) as store:
        assert len(store.list_trajectories(spec_id="spec-a")) == 2
        assert len(store.list_trajectories(agent_name="alice")) == 2
        assert len(store.list_trajectories(spec_id="spec-a", agent_name="alice")) == 1
        assert [s.run_id for s in store.list_trajectories(run_id="r2")] == ["r2"]
        assert store.list_trajectories(spec_id="no-such-spec") == []


def test_list_pages_with_limit_and_offset(db):
    with TrajectoryStore(db) as store:
        everything = _ids(store.list_trajectories())
        assert _ids(store.list_trajectories(limit=2)) == everything[:2]
        assert _ids(store.list_trajectories(limit=2, offset=2)) == everything[2:]
        assert store.list_trajectories(limit=0) == []


def test_list_rejects_a_negative_limit(db):
    with TrajectoryStore(db) as store, pytest.raises(ValueError, match="limit"):
        store.list_trajectories(limit=-1)


def test_filtered_listing_uses_the_indexes(sqlite_db):
    with TrajectoryStore(sqlite_db) as store:
        for filters, index in (
            ({"spec_id": "a", "agent_name": "b"}, "idx_trajectories_spec_agent"),
            ({"run_id": "r"}, "idx_trajectories_run"),
        ):
            sql, params = list_query(**filters)
            plan = " ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert index in plan
            assert "SCAN t " not in plan


# --- one trajectory --------------------------------------------------------

def test_get_returns_turns_in_order_with_their_questions_and_violations(db):
    with TrajectoryStore(db) as store:
        got = store.get_trajectory(1)
    assert isinstance(got, Trajectory)
    assert [t.number for t in got.turns] == [1, 2, 3]
    first, second, third = got.turns
    assert first.questions == [
        RecordedQuestion("Which file?", "low", "explicit"),
        RecordedQuestion("Investigate the cause?", "high", "explicit"),
    ]
    assert second.violations == [
        RecordedViolation("no_questions", "no questions", "2 questions", "critical", "explicit")
    ]
    assert third.questions == [] and third.violations == []
    assert (first.prompt, first.response, first.token_count, first.latency_ms) == (
        "prompt 1", "response 1", 10, 1.5)
    assert first.trace_id == f"{1:032x}"


def _with_tool_calls(path: str, extra: dict | None) -> str:
    t = _trajectory(9, "spec-t", "alice")
    turn = _turn(t, 1)
    turn.extra = extra
    conn = backends.connect(path)
    outcome = backends.write_all(conn, [t, turn, _turn(t, 2)])
    conn.close()
    assert not outcome.rejected
    return path


CALLS = [{"name": "run_tests", "arguments": '{"path": "tests"}', "id": "c1"},
         {"name": "ask_user", "arguments": '{"question": "Which branch?"}'}]


def test_get_gives_each_turn_the_tool_calls_folded_into_it_as_stored(store_url):
    with TrajectoryStore(_with_tool_calls(store_url, {"tool_calls": CALLS})) as store:
        first, second = store.get_trajectory(store.list_trajectories()[0].id).turns
    assert first.tool_calls == CALLS
    assert second.tool_calls == []


def test_to_dict_carries_the_tool_calls(store_url):
    with TrajectoryStore(_with_tool_calls(store_url, {"tool_calls": CALLS})) as store:
        data = store.get_trajectory(store.list_trajectories()[0].id).to_dict()
    assert [t["tool_calls"] for t in data["turns"]] == [CALLS, []]


def test_an_extra_written_by_another_tool_reads_as_no_tool_calls(store_url):
    path = _with_tool_calls(store_url, None)
    run_sql(path, "UPDATE trajectory_turns SET extra = 'not json' WHERE turn_number = 1")
    run_sql(path, "UPDATE trajectory_turns SET extra = '{\"tool_calls\": \"x\"}' WHERE turn_number = 2")
    with TrajectoryStore(path) as store:
        turns = store.get_trajectory(store.list_trajectories()[0].id).turns
    assert [(t.prompt, t.tool_calls) for t in turns] == [("prompt 1", []), ("prompt 2", [])]


def test_get_of_an_unknown_id_is_none(db):
    with TrajectoryStore(db) as store:
        assert store.get_trajectory(999) is None


def test_get_reads_a_trajectory_in_four_statements_whatever_its_length(sqlite_db):
    statements = []
    with TrajectoryStore(sqlite_db) as store:
        store.conn.set_trace_callback(statements.append)
        store.get_trajectory(1)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4


def test_to_dict_is_plain_data_down_to_the_questions(db):
    with TrajectoryStore(db) as store:
        data = store.get_trajectory(1).to_dict()
    assert data["turns"][0]["questions"][0] == {
        "text": "Which file?", "effort_level": "low", "source": "explicit"}
    assert data["turn_count"] == 3


def test_preferences_written_by_other_tools_as_a_comma_list_are_read(db):
    run_sql(db, "INSERT INTO trajectories (spec_id, agent_name, preferences) VALUES ('x', 'y', 'a, b')")
    with TrajectoryStore(db) as store:
        assert store.list_trajectories(spec_id="x")[0].preferences == ["a", "b"]


# --- specs, agents, status, migrate ----------------------------------------

def test_specs_and_agents_are_distinct_and_sorted(db):
    with TrajectoryStore(db) as store:
        assert store.specs() == ["spec-a", "spec-b"]
        assert store.agents() == ["alice", "bob"]
        assert store.agents("spec-b") == ["alice"]


def test_status_counts_the_rows_of_each_table(db):
    with TrajectoryStore(db) as store:
        report = store.status()
    assert report["row_counts"] == {
        "trajectories": 3, "trajectory_turns": 4,
        "trajectory_questions": 2, "trajectory_violations": 1,
    }
    assert report["schema_version"] == report["latest_version"] == schema_of(db).latest_version()
    assert report["journal_mode"] == ("postgresql" if is_postgres(db) else "wal")
    assert report["path"] == db
    assert report["file_size_bytes"] > 0


def test_status_file_size_includes_the_write_ahead_log(sqlite_db):
    db = sqlite_db
    with TrajectoryStore(db) as store:
        store.conn.execute("INSERT INTO trajectories (spec_id, agent_name) VALUES ('s', 'a')")
        size = store.status()["file_size_bytes"]
        assert os.path.exists(db + "-wal")
        assert size == os.path.getsize(db) + os.path.getsize(db + "-wal")


def test_status_of_an_old_schema_read_only_shows_its_version_and_missing_tables(store_url):
    path = store_url
    conn = backends.connect(path, migrate_schema=False)
    if is_postgres(path):
        with conn.cursor() as cur:
            schema_of(path).MIGRATIONS[0](cur)
    else:
        schema.MIGRATIONS[0](conn)
    conn.close()
    set_schema_version(path, 1)
    with TrajectoryStore(path, read_only=True) as store:
        report = store.status()
    assert report["schema_version"] == 1
    assert report["row_counts"]["trajectory_questions"] is None


def test_migrate_applies_pending_versions_once(store_url):
    path = store_url
    with TrajectoryStore(path, must_exist=False, migrate_schema=False) as store:
        assert store.migrate() == list(range(1, schema_of(path).latest_version() + 1))
        assert store.migrate() == []


# --- refusing files --------------------------------------------------------

def test_a_missing_file_is_refused_and_not_created(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(schema.DatabaseError, match="no such database file"):
        TrajectoryStore(path)
    assert not path.exists()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database, just text\n" * 100)
    with pytest.raises(schema.DatabaseError, match="not a SQLite database"):
        TrajectoryStore(path)


def test_a_newer_schema_is_refused(db):
    set_schema_version(db, schema_of(db).latest_version() + 1)
    with pytest.raises(schema.SchemaTooNewError, match="newer than this ppp-otel supports"):
        TrajectoryStore(db)


def test_a_postgresql_database_without_a_store_is_refused_and_left_empty(postgres_url):
    with pytest.raises(schema.DatabaseError, match="no trajectory store in this database"):
        TrajectoryStore(postgres_url)
    assert run_sql(postgres_url, "SELECT to_regclass('trajectories')") == [(None,)]


def test_an_unreachable_postgresql_server_is_a_clear_error():
    from support import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(schema.DatabaseError, match="cannot connect") as caught:
        TrajectoryStore(url)
    assert "secret" not in str(caught.value)


# --- async -----------------------------------------------------------------

async def test_async_store_gives_the_same_results_as_the_sync_store(db):
    with TrajectoryStore(db) as sync:
        expected = (
            sync.list_trajectories(), sync.list_trajectories(spec_id="spec-a", agent_name="bob"),
            sync.get_trajectory(1), sync.get_trajectory(999), sync.status(),
            sync.specs(), sync.agents(), sync.agents("spec-a"),
        )
    async with AsyncTrajectoryStore(db) as store:
        got = (
            await store.list_trajectories(),
            await store.list_trajectories(spec_id="spec-a", agent_name="bob"),
            await store.get_trajectory(1), await store.get_trajectory(999), await store.status(),
            await store.specs(), await store.agents(), await store.agents("spec-a"),
        )
    assert got == expected


async def test_async_scoring_and_consensus_give_the_sync_results_on_each_backend(db):
    from ppp_otel.scoring import arewards, rewards
    from ppp_otel.scoring.consensus import consensus

    async with AsyncTrajectoryStore(db) as store:
        got = (await arewards.score_spec(store, "spec-a"), await arewards.score_agents(store, "spec-a"),
               await store.run(consensus, "spec-a", store=False))
    with TrajectoryStore(db) as sync:
        expected = (rewards.score_spec(sync, "spec-a"), rewards.score_agents(sync, "spec-a"),
                    consensus(sync, "spec-a", store=False))
    assert got == expected


async def test_async_store_turns_foreign_keys_on(sqlite_db):
    db = sqlite_db
    async with AsyncTrajectoryStore(db) as store:
        row = await store.run(lambda sync: sync.conn.execute("PRAGMA foreign_keys").fetchone())
        assert row[0] == 1


async def test_async_store_creates_and_migrates_a_new_file_when_allowed(tmp_path):
    path = tmp_path / "new.db"
    async with AsyncTrajectoryStore(path, must_exist=False) as store:
        assert (await store.status())["schema_version"] == schema.latest_version()
        assert await store.migrate() == []


async def test_async_store_refuses_a_missing_file(tmp_path):
    with pytest.raises(schema.DatabaseError, match="no such database file"):
        async with AsyncTrajectoryStore(tmp_path / "missing.db"):
            pass
    assert not (tmp_path / "missing.db").exists()


async def test_async_store_refuses_a_newer_schema(sqlite_db):
    db = sqlite_db
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {schema.latest_version() + 1}")
    conn.close()
    with pytest.raises(schema.SchemaTooNewError):
        await AsyncTrajectoryStore(db).open()


async def test_async_store_runs_every_call_on_one_thread_of_its_own(db):
    import threading

    async with AsyncTrajectoryStore(db) as store:
        threads = {await store.run(lambda _: threading.get_ident()) for _ in range(5)}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_async_store_methods_are_the_sync_stores_methods(db):
    from ppp_otel.storage.aio import METHODS
    from ppp_otel.storage.sqlite.store import SQLiteStore

    for name in METHODS:
        assert callable(getattr(SQLiteStore, name))
    async with AsyncTrajectoryStore(db) as store:
        assert await store.missing_ids([1, 999]) == [999]


async def test_a_closed_async_store_says_it_is_not_open(db):
    store = await AsyncTrajectoryStore(db).open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.specs()


def wal_file_exists(db) -> bool:
    # SQLite removes the -wal file when the last connection to a WAL database closes.
    return os.path.exists(f"{db}-wal")


async def test_opening_an_open_async_store_again_keeps_its_one_connection(sqlite_db):
    store = await AsyncTrajectoryStore(sqlite_db).open()
    first = store._store
    assert await store.open() is store
    assert store._store is first
    await store.close()
    assert not wal_file_exists(sqlite_db)


async def test_a_cancelled_close_of_the_async_store_still_closes_its_connection(sqlite_db):
    import asyncio

    store = await AsyncTrajectoryStore(sqlite_db).open()
    thread = store._thread
    assert wal_file_exists(sqlite_db)
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await asyncio.to_thread(thread.shutdown, wait=True)
    assert not wal_file_exists(sqlite_db)


def test_an_async_store_given_a_sync_store_says_it_takes_a_path_or_url(sqlite_db):
    with TrajectoryStore(sqlite_db) as sync:
        with pytest.raises(TypeError, match="AsyncTrajectoryStore takes a database path or URL, got"):
            AsyncTrajectoryStore(sync)


async def test_run_given_a_coroutine_function_says_it_takes_a_sync_one(sqlite_db):
    async def count(store):
        return len(store.list_trajectories())

    async with AsyncTrajectoryStore(sqlite_db) as store:
        with pytest.raises(TypeError, match="run\\(\\) takes a sync function of the store, got the coroutine function count"):
            await store.run(count)
