"""Crash safety: a killed process, a locked, full or read-only database never cost confirmed data or the app."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import ppp_otel
from ppp_otel import TrajectorySpanProcessor
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.cli import main

CHILD = str(Path(__file__).with_name("recording_child.py"))


def turn_prompts(path, agent: str) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {
            row[0] for row in conn.execute(
                "SELECT t.prompt FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id "
                "WHERE j.agent_name = ?", (agent,))
        }


def integrity(path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def pipeline(db_path, **options) -> tuple[TracerProvider, TrajectorySpanProcessor]:
    provider = TracerProvider()
    processor = TrajectorySpanProcessor(db_path, **options)
    provider.add_span_processor(processor)
    return provider, processor


def record_turns(provider, agent: str, count: int, start: int = 1) -> list[float]:
    """Record turns inside one trajectory; return how long each turn's end took on this thread."""
    seconds = []
    with ppp_otel.trajectory("crash-spec", agent, tracer_provider=provider):
        for i in range(start, start + count):
            with ppp_otel.turn(f"{agent} turn {i}", tracer_provider=provider) as t:
                t.respond("ok")
                began = time.perf_counter()
            seconds.append(time.perf_counter() - began)
    return seconds


@pytest.mark.slow
def test_kill_9_while_recording_keeps_the_file_intact_and_every_confirmed_turn(db_path):
    child = subprocess.Popen(
        [sys.executable, CHILD, str(db_path), "killed", "0", "25"],
        stdout=subprocess.PIPE, text=True,
    )
    confirmed = 0
    try:
        for line in child.stdout:
            confirmed = int(line.split()[1])
            if confirmed >= 1000:  # well into the stream, with batches in flight
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert confirmed >= 1000
    assert integrity(db_path) == "ok"
    stored = turn_prompts(db_path, "killed")
    assert {f"killed turn {i}" for i in range(1, confirmed + 1)} <= stored
    # And the file still takes new recordings.
    provider, processor = pipeline(db_path, flush_interval_ms=20)
    record_turns(provider, "after-kill", 3)
    provider.shutdown()
    assert len(turn_prompts(db_path, "after-kill")) == 3


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@pytest.mark.slow
def test_a_database_locked_by_another_process_neither_blocks_the_app_nor_loses_count(db_path):
    max_queue = 200
    provider, processor = pipeline(
        db_path, buffer_size=20, flush_interval_ms=20, max_queue_size=max_queue, busy_timeout_ms=100,
    )
    record_turns(provider, "before-lock", 1)
    assert processor.force_flush()
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        turns = 600  # three times what the queue holds
        highest_queue = 0
        end_seconds: list[float] = []
        with ppp_otel.trajectory("crash-spec", "locked-out", tracer_provider=provider):
            for i in range(1, turns + 1):
                with ppp_otel.turn(f"locked-out turn {i}", tracer_provider=provider) as t:
                    t.respond("ok")
                    began = time.perf_counter()
                end_seconds.append(time.perf_counter() - began)
                highest_queue = max(highest_queue, processor.stats["queued"])
        deadline = time.monotonic() + 10
        while "locked" not in (processor.stats["last_error"] or "") and time.monotonic() < deadline:
            time.sleep(0.05)
        during = processor.stats
    finally:
        locker.stdin.write("\n")
        locker.stdin.close()
        locker.wait(30)
    assert processor.force_flush(30_000)
    after = processor.stats
    provider.shutdown()

    assert max(end_seconds) < 0.5  # the app thread never waits on the lock
    assert highest_queue <= max_queue  # memory bounded by the queue
    assert "database is locked" in during["last_error"] and during["write_errors"] > 0
    assert after["dropped"] > 0
    stored = turn_prompts(db_path, "locked-out")
    # Every turn is either in the file or counted as dropped, none both, none neither.
    # (The trajectory's end record can be one of the drops, never a turn twice.)
    assert turns - len(stored) <= after["dropped"] <= turns - len(stored) + 1
    # Submitted = taken + dropped, and everything taken was written once the lock went.
    assert after["queued"] == 0
    assert after["enqueued"] == after["written_turns"] + after["written_trajectories"] + after["trajectory_updates"] + after["rejected"]


def limit_pages(limit: dict):
    def hook(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA max_page_count = {limit['pages']}").fetchall()
    return hook


def test_a_full_disk_is_reported_and_recording_resumes_once_there_is_room(db_path, caplog):
    with closing(schema.connect(db_path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    limit = {"pages": pages + 2}
    provider, processor = pipeline(db_path, buffer_size=10, flush_interval_ms=20,
                                   connection_hook=limit_pages(limit))
    with caplog.at_level(logging.WARNING, logger="ppp_otel"):
        with ppp_otel.trajectory("crash-spec", "full-disk", tracer_provider=provider):
            for i in range(1, 201):
                with ppp_otel.turn(f"full-disk turn {i}", tracer_provider=provider) as t:
                    t.respond("x" * 2000)  # the app goes on; nothing raises here
        deadline = time.monotonic() + 10
        while "full" not in (processor.stats["last_error"] or "") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "database or disk is full" in processor.stats["last_error"]
    assert "database or disk is full" in caplog.text

    limit["pages"] = 1_000_000  # room again: the writer's next connection gets it
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert processor.stats["dropped"] == 0
    assert len(turn_prompts(db_path, "full-disk")) == 200
    assert integrity(db_path) == "ok"


def status_json(capsys, db_path) -> dict:
    assert main(["status", "--db", str(db_path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_shows_the_recorders_counters_and_last_error(db_path, capsys):
    with closing(schema.connect(db_path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    limit = {"pages": pages + 1}
    provider, processor = pipeline(db_path, buffer_size=5, flush_interval_ms=20,
                                   connection_hook=limit_pages(limit))
    record_turns(provider, "status", 50)
    deadline = time.monotonic() + 10
    while not processor.stats["write_errors"] and time.monotonic() < deadline:
        time.sleep(0.05)
    limit["pages"] = 1_000_000
    provider.shutdown()
    [recorder] = status_json(capsys, db_path)["recorders"]
    assert recorder["pid"] == os.getpid()
    assert recorder["written_turns"] == 50 and recorder["dropped"] == 0
    assert recorder["write_errors"] >= 1 and "full" in recorder["last_error"]
    assert main(["status", "--db", str(db_path)]) == 0
    table = capsys.readouterr().out
    assert "WRITE ERRORS" in table and "database or disk is full" in table


def test_status_names_the_recorders_written_count_as_turns(db_path, capsys):
    provider, _ = pipeline(db_path)
    record_turns(provider, "status", 3)
    provider.shutdown()
    assert main(["status", "--db", str(db_path)]) == 0
    header, row = capsys.readouterr().out.split("recorders (", 1)[1].splitlines()[1:3]
    assert "TURNS WRITTEN" in header and row.split()[2] == "3"


def _immutable(path: Path, on: bool) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_a_read_only_file_is_reported_and_recording_resumes_once_it_is_writable(db_path, caplog):
    # Tests run as root, which ignores permission bits; an immutable file refuses even root.
    schema.connect(db_path).close()
    if not _immutable(db_path, True):
        pytest.skip("chattr +i is not available here")
    try:
        with caplog.at_level(logging.WARNING, logger="ppp_otel"):
            provider, processor = pipeline(db_path, buffer_size=10, flush_interval_ms=20)
            record_turns(provider, "read-only", 30)
            deadline = time.monotonic() + 10
            while not processor.stats["write_errors"] and time.monotonic() < deadline:
                time.sleep(0.05)
        error = processor.stats["last_error"]
        assert error and ("readonly" in error or "read-only" in error or "unable to open" in error), error
        assert str(db_path) in caplog.text
        print("read-only error:", error)
    finally:
        _immutable(db_path, False)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert processor.stats["dropped"] == 0
    assert len(turn_prompts(db_path, "read-only")) == 30


def test_a_database_deleted_while_recording_is_made_again_and_takes_the_turns_after(db_path, caplog):
    provider, processor = pipeline(db_path, buffer_size=10, flush_interval_ms=20)
    record_turns(provider, "before", 5)
    assert processor.force_flush(30_000)
    for suffix in ("", "-wal", "-shm"):  # rm runs.db*
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="ppp_otel"):
        record_turns(provider, "after", 5)
        assert processor.force_flush(30_000)
    provider.shutdown()
    assert "deleted or replaced" in caplog.text and str(db_path) in caplog.text
    assert turn_prompts(db_path, "after") == {f"after turn {i}" for i in range(1, 6)}
    assert integrity(db_path) == "ok"
