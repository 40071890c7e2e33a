"""ppp-otel copy: a store copied into another backend reads back the same, and copying again adds nothing."""

from __future__ import annotations

import json

import pytest

from ppp_otel.cli import main
from ppp_otel.scoring.rewards import score_trajectories
import backends
from backends import run_sql
from scoring_data import add_trajectory

pytestmark = pytest.mark.usefixtures("no_ambient_database")


def everything(db: str) -> list:
    with backends.open_store(db) as store:
        return [store.get_trajectory(s.id) for s in store.list_trajectories()]


@pytest.fixture
def sqlite_store(tmp_path) -> str:
    path = str(tmp_path / "local.db")
    conn = backends.connect(path)
    add_trajectory(conn, "spec", "alpha", questions=["low", "high"], violations=["minor"], turns=3,
                   technical_score=0.7)
    add_trajectory(conn, "spec", "beta", violations=["critical"], turns=2)
    conn.execute("INSERT INTO trajectories (spec_id, agent_name, created_at) VALUES ('spec', 'other-tool', "
                 "'2025-01-01 10:00:00')")  # a row without span ids, as other tools write them
    conn.close()
    return path


def test_a_sqlite_store_copied_into_postgresql_reads_back_the_same(sqlite_store, postgres_url, capsys):
    assert main(["copy", "--from", sqlite_store, "--to", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["trajectories"], report["turns"], report["questions"], report["violations"]) == (3, 5, 2, 2)
    assert everything(postgres_url) == everything(sqlite_store)
    assert score_trajectories(postgres_url) == score_trajectories(sqlite_store)


def test_copying_again_adds_nothing(sqlite_store, postgres_url, capsys):
    main(["copy", "--from", sqlite_store, "--to", postgres_url])
    capsys.readouterr()
    assert main(["copy", "--from", sqlite_store, "--to", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trajectories"] == 0 and report["skipped"] == 3
    assert run_sql(postgres_url, "SELECT count(*) FROM trajectory_turns") == [(5,)]


def test_new_rows_after_a_copy_get_fresh_ids(sqlite_store, postgres_url):
    main(["copy", "--from", sqlite_store, "--to", postgres_url])
    conn = backends.connect(postgres_url)
    new_id = add_trajectory(conn, "spec", "gamma")
    conn.close()
    assert new_id == 4


def test_a_postgresql_store_copies_back_into_a_new_sqlite_file(sqlite_store, postgres_url, tmp_path):
    main(["copy", "--from", sqlite_store, "--to", postgres_url])
    back = str(tmp_path / "back.db")
    assert main(["copy", "--from", postgres_url, "--to", back]) == 0
    assert everything(back) == everything(sqlite_store)


def test_ids_taken_in_the_target_are_moved_up_with_their_turns(sqlite_store, postgres_url):
    conn = backends.connect(postgres_url)
    add_trajectory(conn, "spec", "already-there", turns=4)
    conn.close()
    assert main(["copy", "--from", sqlite_store, "--to", postgres_url]) == 0
    copied = {t.agent_name: t for t in everything(postgres_url)}
    assert set(copied) == {"already-there", "alpha", "beta", "other-tool"}
    assert [t.prompt for t in copied["alpha"].turns] == ["prompt 1", "prompt 2", "prompt 3"]
    assert len(copied["already-there"].turns) == 4


def test_copy_refuses_a_missing_source_and_the_same_store(tmp_path, capsys):
    assert main(["copy", "--from", str(tmp_path / "missing.db"), "--to", str(tmp_path / "t.db")]) == 2
    assert "no such database file" in capsys.readouterr().err
    same = str(tmp_path / "t.db")
    assert main(["copy", "--from", same, "--to", same]) == 2
    assert "the same database" in capsys.readouterr().err


def test_a_missing_source_named_by_from_gets_no_hint_about_the_default_database_name(tmp_path, capsys):
    assert main(["copy", "--from", str(tmp_path / "missing.db"), "--to", str(tmp_path / "t.db")]) == 2
    err = capsys.readouterr().err
    assert "missing.db: no such database file" in err and "the default name" not in err


def test_a_copy_of_a_sqlite_store_being_written_is_complete_in_its_one_file(tmp_path, capsys):
    import shutil

    live = str(tmp_path / "live.db")
    writer = backends.connect(live)  # stays open, as ingest's does: its writes wait in the WAL
    add_trajectory(writer, "spec", "alpha", turns=2)
    assert (tmp_path / "live.db-wal").stat().st_size > 0
    assert main(["copy", "--from", live, "--to", str(tmp_path / "snapshot.db")]) == 0
    writer.close()
    assert not (tmp_path / "snapshot.db-wal").exists()
    shutil.copyfile(tmp_path / "snapshot.db", tmp_path / "moved.db")  # the file alone, as `docker compose cp`
    [trajectory] = everything(str(tmp_path / "moved.db"))
    assert len(trajectory.turns) == 2


def test_a_trajectory_copied_while_it_was_recorded_gets_its_later_turns_and_end_on_the_next_copy(
        tmp_path, postgres_url, capsys):
    from opentelemetry.sdk.trace import TracerProvider

    import ppp_otel
    from ppp_otel import TrajectorySpanProcessor

    live = str(tmp_path / "live.db")
    provider = TracerProvider()
    processor = TrajectorySpanProcessor(live)
    provider.add_span_processor(processor)
    with ppp_otel.trajectory("spec", "long-agent", tracer_provider=provider):
        for i in (1, 2):
            with ppp_otel.turn(f"turn {i}", tracer_provider=provider) as t:
                t.respond("ok")
        assert processor.force_flush()
        assert main(["copy", "--from", live, "--to", postgres_url]) == 0
        for i in (3, 4, 5):
            with ppp_otel.turn(f"turn {i}", tracer_provider=provider) as t:
                t.respond("ok")
    provider.shutdown()
    capsys.readouterr()
    assert main(["copy", "--from", live, "--to", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["trajectories"], report["skipped"], report["turns"]) == (0, 1, 3)
    assert everything(postgres_url) == everything(live)
