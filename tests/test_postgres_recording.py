"""Recording into PostgreSQL: register() and the span processor with a postgresql:// URL,
and many writers (threads here, hosts in production) on one store."""

from __future__ import annotations

import random
import threading

import psycopg
import pytest

import ppp_otel
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.cli import main
from ppp_otel.records import TrajectoryRecord, TurnRecord
import backends
from ppp_otel.storage.postgres.writer import STORAGE_ERRORS, TrajectoryWriter
from backends import run_sql

pytestmark = pytest.mark.usefixtures("no_ambient_database")


def test_register_with_a_postgresql_url_records_trajectories_there(postgres_url):
    provider = ppp_otel.register(postgres_url, phoenix=False, set_global=False, env={})
    with ppp_otel.trajectory("spec", "agent", tracer_provider=provider):
        with ppp_otel.turn("Fix the test", tracer_provider=provider) as t:
            t.respond("Which test fails, test_a or test_b?")
    assert provider.force_flush()
    provider.shutdown()
    with backends.open_store(postgres_url) as store:
        [summary] = store.list_trajectories()
        full = store.get_trajectory(summary.id)
    assert [q.text for q in full.turns[0].questions] == ["Which test fails, test_a or test_b?"]
    assert full.turns[0].questions[0].source == "extracted"


def test_ppp_otel_db_may_name_a_postgresql_store(postgres_url, monkeypatch, capsys):
    monkeypatch.setenv("PPP_OTEL_DB", postgres_url)
    processor = TrajectorySpanProcessor(flush_interval_ms=50)
    assert processor.db_path == postgres_url
    processor.submit([TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")])
    assert processor.force_flush()
    processor.shutdown()
    assert main(["status", "--json"]) == 0
    assert '"trajectories": 1' in capsys.readouterr().out


def test_status_shows_each_recording_process_on_postgresql(postgres_url, capsys):
    processor = TrajectorySpanProcessor(postgres_url, flush_interval_ms=50)
    processor.submit([TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")])
    assert processor.force_flush()
    processor.shutdown()
    assert main(["status", "--db", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "recorders (each process that wrote here" in out


def test_a_recorder_whose_server_is_down_keeps_the_app_running_and_counts_write_errors(postgres_server):
    from support import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    processor = TrajectorySpanProcessor(url, flush_interval_ms=20, shutdown_timeout_ms=300)
    processor.submit([TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")])
    assert not processor.force_flush(500)
    processor.shutdown()
    stats = processor.stats
    assert stats["write_errors"] >= 1 and stats["lost_at_shutdown"] == 1
    assert "cannot connect" in stats["last_error"]


def _records(n_trajectories: int, turns: int) -> list:
    records = []
    for i in range(n_trajectories):
        t = TrajectoryRecord(f"{i + 1:032x}", f"{i + 1:016x}", "spec", f"agent-{i % 5}")
        records.append(t)
        records += [TurnRecord(t.trace_id, f"{i + 1:08x}{k:08x}", t.key, None, f"p{k}", f"r{k}",
                               extract_questions=False) for k in range(turns)]
    return records


def _write_with_retries(url: str, batches: list[list]) -> None:
    conn = backends.connect(url)
    writer = TrajectoryWriter(conn)
    try:
        for batch in batches:
            for _ in range(50):
                try:
                    outcome = writer.write(batch)
                    assert not outcome.rejected, outcome.rejected[:3]
                    break
                except STORAGE_ERRORS:
                    continue  # a deadlock PostgreSQL broke: the recorder retries so too
    finally:
        conn.close()


def test_many_writers_sending_the_same_spans_in_any_order_store_each_once(postgres_url):
    records = _records(30, 4)
    trajectories = [r for r in records if isinstance(r, TrajectoryRecord)]
    turns = [r for r in records if isinstance(r, TurnRecord)]
    backends.connect(postgres_url).close()
    threads = []
    for seed in range(4):
        mine = turns[:]
        random.Random(seed).shuffle(mine)
        # Trajectories first in every batch list, so no writer sees an orphan turn.
        batches = [trajectories] + [mine[i:i + 30] for i in range(0, len(mine), 30)]
        threads.append(threading.Thread(target=_write_with_retries, args=(postgres_url, batches)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert run_sql(postgres_url, "SELECT count(*) FROM trajectories") == [(30,)]
    assert run_sql(postgres_url, "SELECT count(*), count(DISTINCT span_id) FROM trajectory_turns") == [(120, 120)]
    # Unnumbered turns written by racing writers still get distinct numbers 1..4 per trajectory.
    assert run_sql(postgres_url, """SELECT count(*) FROM (SELECT trajectory_id FROM trajectory_turns
                                    GROUP BY trajectory_id HAVING min(turn_number) = 1 AND max(turn_number) = 4
                                    AND count(DISTINCT turn_number) = 4) t""") == [(30,)]


def test_a_turn_with_a_nul_character_is_rejected_alone_and_its_batch_kept(postgres_url):
    t = TrajectoryRecord("c" * 32, "d" * 16, "spec", "agent")
    good = TurnRecord(t.trace_id, "1" * 16, t.key, 1, "fine", "fine", extract_questions=False)
    bad = TurnRecord(t.trace_id, "2" * 16, t.key, 2, "nul \x00 here", "x", extract_questions=False)
    conn = backends.connect(postgres_url)
    outcome = backends.write_all(conn, [t, good, bad])
    conn.close()
    assert outcome.turns == 1 and len(outcome.rejected) == 1
    assert "NUL" in outcome.rejected[0][1] or "0x00" in outcome.rejected[0][1]


def test_the_postgres_extra_is_needed_only_for_postgresql_urls(tmp_path):
    import subprocess
    import sys

    # psycopg blocked: SQLite still works, and a URL says what to install.
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from ppp_otel.storage import open_store\n"
        f"open_store({str(tmp_path / 'x.db')!r}, must_exist=False).close()\n"
        "try:\n"
        "    open_store('postgresql://localhost/x')\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'ppp-otel[postgres]'" in done.stdout, done.stderr


def test_the_demo_on_postgresql_prints_the_same_scores_as_on_sqlite(postgres_url, tmp_path, capsys):
    import json

    results = {}
    for name, db in (("sqlite", str(tmp_path / "demo.db")), ("postgresql", postgres_url)):
        assert main(["demo", "--db", db, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        results[name] = (
            [(s["trajectory_id"], s["agent_name"], s["r_proact"], s["r_pers"]) for s in out["scores"]],
            [[(a["agent_name"], a["technical"], a["r_proact"], a["r_pers"], a["final"]) for a in c["agents"]]
             for c in out["consensus"]],
            [c["best_agent"] for c in out["consensus"]],
        )
    assert results["postgresql"] == results["sqlite"]
    assert results["sqlite"][0] and "careful-agent" in results["sqlite"][2]


def test_ppp_otel_config_shows_a_postgresql_url_without_its_password(monkeypatch, capsys):
    monkeypatch.setenv("PPP_OTEL_DB", "postgresql://ppp:hunter2@db.internal:5432/ppp_otel")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "postgresql://ppp:***@db.internal:5432/ppp_otel" in out and "hunter2" not in out


def test_the_demo_on_postgresql_prints_the_same_tables_as_on_sqlite(postgres_url, tmp_path, capsys):
    from ppp_otel.storage import display_name

    printed = {}
    for name, db in (("sqlite", str(tmp_path / "demo.db")), ("postgresql", postgres_url)):
        assert main(["demo", "--db", db, "--run-prefix", "same"]) == 0
        printed[name] = capsys.readouterr().out.replace(display_name(db), "DB")
    assert "R_PROACT" in printed["sqlite"]
    assert printed["postgresql"] == printed["sqlite"]


def test_the_report_of_a_postgresql_store_shows_what_the_sqlite_one_shows(postgres_url, tmp_path, capsys):
    from ppp_otel.publish.report import build_report

    shown = {}
    for name, db in (("sqlite", str(tmp_path / "demo.db")), ("postgresql", postgres_url)):
        assert main(["demo", "--db", db, "--run-prefix", "same"]) == 0
        _html, reports = build_report(db)
        shown[name] = [(r.spec_id, r.agents, r.questions, r.violations,
                        [(s.trajectory_id, s.r_proact, s.r_pers) for s in r.scores]) for r in reports]
    capsys.readouterr()
    assert shown["postgresql"] == shown["sqlite"] and shown["sqlite"]
