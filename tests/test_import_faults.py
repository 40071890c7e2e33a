"""``ppp-otel import``: a bad file costs itself and is named; a database it cannot write stops it at once."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "atif"
FULL = DATA / "full.trajectory.json"
PPP_OTEL = os.path.join(os.path.dirname(sys.executable), "ppp-otel")


def ppp_otel(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PPP_OTEL, *args], capture_output=True, text=True, timeout=timeout)


def bad_directory(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(FULL, runs / "a_good.trajectory.json")
    (runs / "b_nested.json").write_text("[" * 100_000 + "]" * 100_000)
    document = json.loads(FULL.read_text())
    document["schema_version"] = "ATIF-v1." + "9" * 5000
    (runs / "c_long_version.json").write_text(json.dumps(document))
    surrogate = json.loads(FULL.read_text())
    surrogate["steps"][0]["message"] = "cut mid-emoji \ud83d"
    (runs / "d_surrogate.json").write_text(json.dumps(surrogate))  # \ud83d escaped: valid JSON
    shutil.copy(FULL, runs / "e_good_too.trajectory.json")
    return runs


def test_import_skips_each_bad_file_with_its_reason_goes_on_and_exits_1(tmp_path):
    runs = bad_directory(tmp_path)
    done = ppp_otel("import", str(runs), "--db", str(tmp_path / "r.db"), "--json")
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    skipped = {Path(s["file"]).name: s["reason"] for s in summary["skipped"]}
    assert "nested too deeply" in skipped["b_nested.json"]
    # A 5,000-digit version is an odd version string, not a reason to stop.
    assert "c_long_version.json" not in skipped
    # The surrogate costs a character, not the document.
    assert "d_surrogate.json" not in skipped
    assert summary["imported"] == 4 and len(skipped) == 1


def test_import_prints_a_summary_naming_what_it_skipped(tmp_path):
    runs = bad_directory(tmp_path)
    done = ppp_otel("import", str(runs), "--db", str(tmp_path / "r.db"))
    assert done.returncode == 1
    assert "imported 4 document(s)" in done.stdout and "skipped 1:" in done.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_import_into_a_read_only_database_exits_2_at_once(tmp_path):
    db = tmp_path / "r.db"
    ppp_otel("import", str(FULL), "--db", str(db))
    db.chmod(0o444)
    done = ppp_otel("import", str(FULL), "--db", str(db), timeout=30)
    assert done.returncode == 2 and "readonly" in done.stderr.replace("-", "").replace(" ", "")


def test_import_into_a_file_that_is_not_a_database_exits_2_at_once(tmp_path):
    db = tmp_path / "r.db"
    db.write_bytes(b"this is not a database" * 100)
    done = ppp_otel("import", str(FULL), "--db", str(db), timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("ppp-otel: error:") and "not a SQLite database" in done.stderr


def test_import_into_a_locked_database_exits_2_at_once(tmp_path):
    db = tmp_path / "r.db"
    ppp_otel("import", str(FULL), "--db", str(db))
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the file
        done = ppp_otel("import", str(FULL), "--db", str(db), timeout=60)
        holder.execute("ROLLBACK")
    assert done.returncode == 2 and "locked" in done.stderr
