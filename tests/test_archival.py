"""Retention: cleanup deletes old trajectories whole, archives them readably, gives space back.

On both backends; an archive is always a SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.sqlite.retention import ArchivalScheduler, cutoff_for
from backends import cleanup
from ppp_otel.cli import main
from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord, now_iso
import backends
from backends import run_sql

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
OLD = (NOW - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
RECENT = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def db(store_url) -> str:
    """An empty store of each backend."""
    return store_url


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch, tmp_path):
    monkeypatch.delenv("PPP_OTEL_DB", raising=False)
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def trajectory_with_turns(n: int, created_at: str, turns: int = 3, spec: str = "spec") -> list:
    traj = TrajectoryRecord(f"{n:032x}", f"{n:016x}", spec, f"agent-{n % 3}", started_at=created_at)
    records: list = [traj]
    for number in range(1, turns + 1):
        records.append(TurnRecord(
            f"{n:032x}", f"{n:08x}{number:08x}", traj.key, number, f"prompt {n}/{number}",
            "Which file?", questions=[Question("Which file?", "low")],
            violations=[Violation("no_lists", "prose", "a list", "minor")],
            extract_questions=False,
        ))
    return records


def build(path, old: range, recent: range, turns: int = 3, recent_at: str = RECENT) -> None:
    records = []
    for n in old:
        records += trajectory_with_turns(n, OLD, turns)
    for n in recent:
        records += trajectory_with_turns(n, recent_at, turns)
    with closing(backends.connect(str(path))) as conn:
        backends.write_all(conn, records)


def counts(path) -> dict[str, int]:
    with backends.open_store(str(path)) as store:
        return store.status()["row_counts"]


def spans(path) -> set[str]:
    return {row[0] for row in run_sql(str(path), "SELECT span_id FROM trajectories")}


def test_trajectories_past_retention_go_with_their_turns_questions_and_violations(db):
    build(db, old=range(1, 6), recent=range(6, 9))
    summary = cleanup(db, older_than_days=30, now=NOW)
    assert (summary.trajectories, summary.turns, summary.questions, summary.violations) == (5, 15, 15, 15)
    assert counts(db) == {"trajectories": 3, "trajectory_turns": 9,
                               "trajectory_questions": 9, "trajectory_violations": 9}
    assert spans(db) == {f"{n:016x}" for n in range(6, 9)}


def test_work_is_done_in_chunks_and_reported_as_progress(db):
    build(db, old=range(1, 11), recent=())
    seen = []
    cleanup(db, older_than_days=30, now=NOW, chunk_size=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_a_dry_run_counts_and_changes_nothing(db):
    build(db, old=range(1, 4), recent=range(4, 6))
    before = counts(db)
    summary = cleanup(db, older_than_days=30, now=NOW, dry_run=True)
    assert summary.dry_run and (summary.trajectories, summary.turns) == (3, 9)
    assert counts(db) == before


def test_retention_defaults_to_the_configured_retention_days(db, tmp_path, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text("[ppp.archival]\nretention_days = 200\n")
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    build(db, old=range(1, 3), recent=())
    assert cleanup(db, now=NOW).trajectories == 0  # 100 days old, kept for 200


def test_rows_written_by_other_tools_with_a_space_in_created_at_are_judged_by_time(db):
    backends.connect(db).close()
    run_sql(db, "INSERT INTO trajectories (spec_id, agent_name, created_at) VALUES "
                     "('s', 'early', '2025-05-01 11:00:00'), ('s', 'late', '2025-05-02 13:00:00'), "
                     "('s', 'unreadable', '1999 or so')")
    cutoff_now = datetime(2025, 5, 2, 12, 0, tzinfo=timezone.utc) + timedelta(days=1)
    cleanup(db, older_than_days=1, now=cutoff_now)
    assert sorted(r[0] for r in run_sql(db, "SELECT agent_name FROM trajectories")) == [
        "late", "unreadable"]


def test_the_cutoff_is_spelled_like_created_at():
    assert cutoff_for(1, NOW) == "2025-05-31T12:00:00.000Z"
    with pytest.raises(ValueError):
        cutoff_for(-1, NOW)


def test_archived_trajectories_read_back_whole_from_the_archive(db, tmp_path):
    archive = tmp_path / "archive.db"
    build(db, old=range(1, 5), recent=range(5, 7))
    with backends.open_store(db) as store:
        original = store.get_trajectory(store.list_trajectories(limit=1)[0].id)
    summary = cleanup(db, older_than_days=30, now=NOW, archive_path=archive, chunk_size=2)
    assert summary.archived == 4 and not summary.renumbered
    with backends.open_store(str(archive)) as store:
        assert len(store.list_trajectories()) == 4
        copy = store.get_trajectory(original.id)
    assert copy == original  # same ids, turns, questions and violations
    assert spans(db) == {f"{n:016x}" for n in (5, 6)}


def test_ids_already_taken_in_the_archive_are_moved_up_with_their_turns(db, tmp_path):
    archive = tmp_path / "archive.db"
    other = tmp_path / "other.db"
    build(other, old=range(100, 103), recent=())
    cleanup(other, older_than_days=30, now=NOW, archive_path=archive)
    build(db, old=range(1, 3), recent=())  # the same ids 1 and 2, other spans
    summary = cleanup(db, older_than_days=30, now=NOW, archive_path=archive)
    assert summary.renumbered
    with backends.open_store(str(archive)) as store:
        listed = store.list_trajectories()
        assert len(listed) == 5
        for summary_row in listed:
            full = store.get_trajectory(summary_row.id)
            n = int(full.span_id, 16)
            assert [t.prompt for t in full.turns] == [f"prompt {n}/{k}" for k in (1, 2, 3)]
            assert all(len(t.questions) == 1 and len(t.violations) == 1 for t in full.turns)


def test_a_trajectory_the_archive_already_holds_is_deleted_but_not_copied_twice(db, tmp_path):
    # As after a crash between the archive's commit and the database's.
    archive = tmp_path / "archive.db"
    build(db, old=range(1, 3), recent=())
    cleanup(db, older_than_days=30, now=NOW, archive_path=archive)
    build(db, old=range(1, 3), recent=())
    summary = cleanup(db, older_than_days=30, now=NOW, archive_path=archive)
    assert (summary.trajectories, summary.archived) == (2, 0)
    assert counts(archive)["trajectory_turns"] == 6
    assert counts(db)["trajectories"] == 0


def test_the_archive_cannot_be_the_database_itself(db_path):
    build(db_path, old=range(1, 2), recent=())
    with pytest.raises(ValueError, match="another file"):
        cleanup(db_path, older_than_days=30, now=NOW, archive_path=db_path)
    assert counts(db_path)["trajectories"] == 1


def test_space_is_given_back_at_once_on_an_incremental_vacuum_file(db_path):
    build(db_path, old=range(1, 200), recent=range(200, 202), turns=10)
    summary = cleanup(db_path, older_than_days=30, now=NOW)
    assert summary.space == "incremental"
    assert summary.freed_bytes > 0 and summary.free_pages_left == 0


def test_a_file_without_incremental_vacuum_says_a_vacuum_is_needed_and_runs_one_when_asked(tmp_path):
    path = tmp_path / "old-style.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA page_size = 4096")  # a file made by other tools: auto_vacuum off
        conn.execute("CREATE TABLE placeholder (x)")
    build(path, old=range(1, 100), recent=range(100, 102), turns=10)
    summary = cleanup(path, older_than_days=30, now=NOW)
    assert summary.space == "needed" and summary.free_pages_left > 0
    build(path, old=range(300, 400), recent=(), turns=10)
    summary = cleanup(path, older_than_days=30, now=NOW, vacuum=True)
    assert summary.space == "vacuum" and summary.free_pages_left == 0 and summary.freed_bytes > 0


def test_recording_goes_on_while_cleanup_runs(db):
    from ppp_otel import TrajectorySpanProcessor

    build(db, old=range(1, 400), recent=(), turns=5)
    processor = TrajectorySpanProcessor(db, buffer_size=5, flush_interval_ms=20)
    fresh = [r for n in range(1000, 1040) for r in trajectory_with_turns(n, RECENT, 5)]
    stop = threading.Event()

    def record() -> None:
        for i in range(0, len(fresh), 6):
            processor.submit(fresh[i:i + 6])
            processor.force_flush()
        stop.set()

    writer = threading.Thread(target=record)
    writer.start()
    summary = cleanup(db, older_than_days=30, now=NOW, chunk_size=10)
    writer.join(30)
    processor.shutdown()
    assert stop.is_set() and summary.trajectories == 399
    assert processor.stats["dropped"] == 0 and processor.stats["rejected"] == 0
    assert counts(db)["trajectory_turns"] == 40 * 5


# --- the background scheduler ------------------------------------------------

def test_the_scheduler_cleans_up_right_after_start_and_stops_on_shutdown(db, tmp_path):
    archive = tmp_path / "archive.db"
    # The scheduler goes by the real clock.
    build(db, old=range(1, 4), recent=range(4, 5), recent_at=now_iso())
    scheduler = ArchivalScheduler(db, retention_days=30, interval_s=3600, archive_path=archive)
    assert scheduler.wait_for_runs(1, timeout_s=20)
    scheduler.shutdown()
    assert not scheduler.running
    assert scheduler.last_error is None and scheduler.last_summary.trajectories == 3
    assert counts(archive)["trajectories"] == 3


def test_an_interval_longer_than_threads_can_wait_keeps_the_scheduler_waiting_until_shutdown(db, tmp_path):
    build(db, old=range(1, 2), recent=range(2, 3), recent_at=now_iso())
    scheduler = ArchivalScheduler(db, retention_days=30, interval_s=1e300)
    assert scheduler.wait_for_runs(1, timeout_s=20)
    time.sleep(0.2)  # the wait after the first run has begun
    assert scheduler.running
    scheduler.shutdown()
    assert not scheduler.running and scheduler.last_error is None


def test_a_failing_cleanup_is_logged_and_the_scheduler_keeps_going(tmp_path, caplog):
    scheduler = ArchivalScheduler(tmp_path / "missing.db", retention_days=30, interval_s=0.05)
    assert scheduler.wait_for_runs(2, timeout_s=20)
    scheduler.shutdown()
    assert scheduler.failures >= 2 and "no such database file" in scheduler.last_error
    assert "automatic cleanup" in caplog.text


def test_register_starts_the_scheduler_only_when_auto_cleanup_is_on(db_path):
    from ppp_otel import register
    from ppp_otel.config.settings import ArchivalConfig, Config

    def schedulers(config: Config) -> list:
        provider = register(db_path, config=config, phoenix=False, set_global=False, env={})
        found = [p for p in provider._active_span_processor._span_processors
                 if isinstance(p, ArchivalScheduler)]
        provider.shutdown()
        return found

    assert schedulers(Config(db_path=str(db_path))) == []
    assert schedulers(Config(db_path=str(db_path), archival=ArchivalConfig(enabled=True))) == []
    on = Config(db_path=str(db_path), archival=ArchivalConfig(enabled=True, auto_cleanup=True))
    [scheduler] = schedulers(on)
    assert not scheduler.running  # provider shutdown stopped it


# --- the command -------------------------------------------------------------

def test_the_command_deletes_and_archives_and_reports_json(db, tmp_path, capsys):
    archive = tmp_path / "archive.db"
    build(db, old=range(1, 3), recent=range(3, 4))
    # Days relative to the real clock: OLD is long past, RECENT is not yet old enough.
    code = main(["cleanup", "--db", str(db), "--older-than", "5000", "--archive", str(archive), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["trajectories"] == 0
    code = main(["cleanup", "--db", str(db), "--older-than", "0", "--archive", str(archive), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["trajectories"] == 3 and report["archived"] == 3
    assert counts(archive)["trajectories"] == 3


def test_the_command_dry_run_says_what_it_would_delete(db, capsys):
    build(db, old=range(1, 3), recent=())
    assert main(["cleanup", "--db", str(db), "--older-than", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 2 trajectories" in out
    assert counts(db)["trajectories"] == 2


def test_the_command_says_which_trajectories_the_archive_already_held(db, tmp_path, capsys):
    archive = tmp_path / "archive.db"
    build(db, old=range(1, 3), recent=())
    assert main(["cleanup", "--db", str(db), "--older-than", "0", "--archive", str(archive)]) == 0
    build(db, old=range(1, 3), recent=())  # as after a crash between the two commits
    capsys.readouterr()
    assert main(["cleanup", "--db", str(db), "--older-than", "0", "--archive", str(archive)]) == 0
    assert f"{archive} (0 trajectories; 2 already there)" in capsys.readouterr().out


def test_the_command_counts_one_trajectory_in_the_singular(db, capsys):
    build(db, old=range(1, 2), recent=())
    assert main(["cleanup", "--db", str(db), "--older-than", "0", "--dry-run"]) == 0
    assert "would delete 1 trajectory created before" in capsys.readouterr().out


def test_no_vacuum_is_advised_when_no_page_is_left_free(tmp_path):
    path = tmp_path / "old-style.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA page_size = 4096")  # auto_vacuum off, as a file made by other tools
        conn.execute("CREATE TABLE placeholder (x)")
    build(path, old=range(1, 2), recent=range(2, 3), turns=1)
    summary = cleanup(path, older_than_days=30, now=NOW)
    assert (summary.space == "needed") == (summary.free_pages_left > 0)

def test_the_command_refuses_negative_days_and_a_missing_database(tmp_path, capsys):
    assert main(["cleanup", "--db", str(tmp_path / "nope.db"), "--older-than", "-1"]) == 2
    assert main(["cleanup", "--db", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err
    assert "must not be negative" in err and "no such database file" in err
    assert not (tmp_path / "nope.db").exists()


def test_scoring_reads_the_archive_like_any_trajectory_database(db, tmp_path):
    scoring = pytest.importorskip("ppp_otel.scoring.rewards")
    archive = tmp_path / "archive.db"
    build(db, old=range(1, 4), recent=())
    before = {s.span_id: (s.r_proact, s.r_pers) for s in scoring.score_spec(db, "spec")}
    cleanup(db, older_than_days=30, now=NOW, archive_path=archive)
    after = {s.span_id: (s.r_proact, s.r_pers) for s in scoring.score_spec(archive, "spec")}
    assert after == before and len(after) == 3


def test_retention_is_taken_from_the_configuration_the_caller_passes(db_path, monkeypatch):
    from ppp_otel.config.settings import ArchivalConfig, Config

    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    build(db_path, old=range(1, 3), recent=())
    config = Config(archival=ArchivalConfig(retention_days=200))
    assert cleanup(db_path, now=NOW, config=config).trajectories == 0  # 100 days old, kept for 200
