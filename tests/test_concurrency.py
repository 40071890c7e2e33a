"""Several processes, and forked processes, record into one database without losing a turn,
on a SQLite file and on a PostgreSQL store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from backends import is_postgres, run_sql

CHILD = str(Path(__file__).with_name("recording_child.py"))


@pytest.fixture
def db_path(store_url):
    return store_url


def prompts_by_agent(path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for agent, prompt in run_sql(str(path), "SELECT j.agent_name, t.prompt FROM trajectory_turns t "
                                            "JOIN trajectories j ON j.id = t.trajectory_id"):
        found.setdefault(agent, set()).add(prompt)
    return found


def stats_lines(output: str, prefix: str = "stats ") -> list[dict]:
    return [json.loads(line[len(prefix):]) for line in output.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
def test_four_processes_recording_into_one_new_database_lose_nothing(db_path):
    processes, turns = 4, 500
    children = [
        subprocess.Popen([sys.executable, CHILD, str(db_path), f"proc-{k}", str(turns), "50"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(processes)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs):
        # No exception, "database is locked" included, reached the app.
        assert child.returncode == 0, out + err
        [stats] = stats_lines(out)
        assert stats["dropped"] == 0 and stats["rejected"] == 0
        assert stats["written_turns"] == turns
    stored = prompts_by_agent(db_path)
    for k in range(processes):
        assert stored[f"proc-{k}"] == {f"proc-{k} turn {i}" for i in range(1, turns + 1)}
    assert run_sql(db_path, "SELECT count(*) FROM trajectory_turns") == [(processes * turns,)]
    if not is_postgres(db_path):
        with closing(sqlite3.connect(db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_forked_child_gets_a_working_recorder_and_the_parent_keeps_its_own(db_path):
    child = subprocess.run(
        [sys.executable, CHILD, str(db_path), "parent", "0", "1", "--fork", "40"],
        capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    [in_child] = stats_lines(child.stdout, "child stats ")
    [in_parent] = stats_lines(child.stdout)
    assert in_child["written_turns"] == 40 and in_child["dropped"] == 0
    assert in_parent["dropped"] == 0 and in_parent["write_errors"] == 0
    stored = prompts_by_agent(db_path)
    assert stored["parent-child"] == {f"parent-child turn {i}" for i in range(1, 41)}
    assert stored["parent"] == {"parent turn 1"}
    assert stored["parent-after-fork"] == {f"parent-after-fork turn {i}" for i in range(1, 6)}
