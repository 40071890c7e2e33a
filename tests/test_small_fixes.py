"""Small edges: export paths stay inside --out, read commands leave files as they are, errors say why."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from ppp_otel.storage.sqlite import migrations as schema

PPP_OTEL = os.path.join(os.path.dirname(sys.executable), "ppp-otel")


def ppp_otel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PPP_OTEL, *args], capture_output=True, text=True, timeout=60)


def test_export_atif_never_writes_outside_out_for_a_crafted_span_id(tmp_path):
    db = tmp_path / "r.db"
    with closing(schema.connect(db)) as conn:
        conn.execute("INSERT INTO trajectories (spec_id, agent_name, trace_id, span_id) "
                     "VALUES ('s', 'a', 'ab', '../../../escaped')")
        conn.execute("INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response) "
                     "VALUES (1, 1, 'hi', 'hello')")
    out = tmp_path / "deep" / "er" / "out"
    done = ppp_otel("export-atif", "--db", str(db), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    written = [p for p in tmp_path.rglob("*.json")]
    assert written and all(out in p.parents for p in written)


@pytest.mark.parametrize("command", [["status"], ["trajectories"], ["score"]])
def test_a_read_command_leaves_an_empty_file_empty_and_says_so(tmp_path, command):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    done = ppp_otel(*command, "--db", str(db))
    assert done.returncode == 2
    assert "empty file, not a trajectory database" in done.stderr
    assert db.stat().st_size == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write any directory")
def test_reading_from_a_read_only_directory_says_why_it_cannot_open(tmp_path):
    db = tmp_path / "ro" / "r.db"
    db.parent.mkdir()
    with closing(schema.connect(db)):
        pass
    db.parent.chmod(0o555)
    try:
        done = ppp_otel("trajectories", "--db", str(db))
    finally:
        db.parent.chmod(0o755)
    assert done.returncode == 2 and "is not writable" in done.stderr


def test_the_reason_names_the_unwritable_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    reason = schema._why_unopenable(str(tmp_path / "r.db"), "unable to open database file")
    assert f"the directory {tmp_path} is not writable" in reason


def test_a_database_in_a_missing_directory_says_the_directory_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-dir"
    (tmp_path / "a.json").write_text("{}")
    done = ppp_otel("import", "--db", str(missing / "x.db"), str(tmp_path / "a.json"))
    assert done.returncode == 2
    assert f"the directory {missing} does not exist" in done.stderr and "not writable" not in done.stderr


@pytest.mark.parametrize("command", [["status"], ["trajectories"], ["score"], ["migrate"]])
def test_a_read_command_leaves_another_applications_sqlite_file_untouched_and_says_so(tmp_path, command):
    db = tmp_path / "other.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    done = ppp_otel(*command, "--db", str(db))
    assert done.returncode == 2
    assert "no trajectory store in it" in done.stderr and "migrate --create" in done.stderr
    with closing(sqlite3.connect(db)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0


def test_migrate_create_adds_the_trajectory_store_to_another_sqlite_file(tmp_path):
    db = tmp_path / "other.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    assert ppp_otel("migrate", "--create", "--db", str(db)).returncode == 0
    assert ppp_otel("trajectories", "--db", str(db)).returncode == 0


def test_a_directory_given_as_the_database_is_named_as_a_directory(tmp_path):
    done = ppp_otel("trajectories", "--db", str(tmp_path))
    assert done.returncode == 2
    assert "it is a directory" in done.stderr and str(tmp_path / "ppp_trajectories.db") in done.stderr
