"""ppp-otel status / migrate / trajectories / show, and the CLI's error contract, on both backends."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import closing
import sys
from pathlib import Path

import pytest

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.cli import _command_modules, main
from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
import backends
from backends import is_postgres, run_sql, schema_of, set_schema_version
from support import free_port

LONG_PROMPT = "Please refactor the whole module " + "and keep going " * 40 + "END-OF-PROMPT"


pytestmark = pytest.mark.usefixtures("no_ambient_database")


@pytest.fixture
def db(store_url) -> str:
    path = store_url
    t1 = TrajectoryRecord("1" * 32, "1" * 16, "spec-a", "alice", run_id="r1", technical_score=0.5)
    t2 = TrajectoryRecord("2" * 32, "2" * 16, "spec-b", "bob", run_id="r2")
    turn = TurnRecord(
        "1" * 32, "a" * 16, t1.key, 1, LONG_PROMPT, "Which file should I edit?",
        token_count=42, latency_ms=12.5,
        questions=[Question("Which file should I edit?", "low")],
        violations=[Violation("no_questions", "no questions", "1 question", "critical")],
        extract_questions=False,
    )
    conn = backends.connect(path)
    backends.write_all(conn, [t1, t2, turn])
    conn.close()
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppp-otel: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# --- status ----------------------------------------------------------------

def test_status_shows_version_counts_size_and_journal_mode(capsys, db):
    code, out, _ = run(capsys, "status", "--db", db)
    assert code == 0
    assert f"schema version  {schema_of(db).latest_version()}" in out
    if is_postgres(db):
        assert "database size" in out and "journal mode" not in out
    else:
        assert "journal mode    wal" in out
    assert "bytes)" in out
    assert "trajectory_turns       1" in out


def test_status_json_parses_and_counts_rows(capsys, db):
    code, out, _ = run(capsys, "status", "--db", db, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["row_counts"]["trajectories"] == 2
    assert report["file_size_bytes"] > 0


def _recorders_wrote(path: str, n: int, *, dropped_by_the_first: int = 0) -> None:
    """``n`` recording processes' counters, the first the oldest, as the writer saves them."""
    from ppp_otel.storage import open_store

    with open_store(path) as store:
        for i in range(n):
            store.save_recorder_stats((f"recorder-{i}", 1000 + i, "2026-11-01T00:00:00.000Z",
                                       f"2026-11-01T00:{i // 60:02d}:{i % 60:02d}.000Z", 5, 5, 0,
                                       dropped_by_the_first if i == 0 else 0, 0, 0, None))


def test_status_lists_the_latest_recorders_and_counts_the_earlier_ones(capsys, db):
    _recorders_wrote(db, 25, dropped_by_the_first=7)
    code, out, _ = run(capsys, "status", "--db", db)
    assert code == 0
    listed = out.split("recorders (", 1)[1]
    assert "1024" in listed and "1015" in listed and "1014" not in listed and "1000" not in listed
    assert "15 earlier recorders are not listed (`ppp-otel status --all` lists them)." in out
    assert "All 25 together: 125 turns written, 7 dropped, 0 rejected, 0 write errors." in out


def test_status_all_lists_every_recorder(capsys, db):
    _recorders_wrote(db, 25)
    code, out, _ = run(capsys, "status", "--db", db, "--all")
    assert code == 0
    assert "1000" in out and "1024" in out and "not listed" not in out


def test_status_json_gives_every_recorder(capsys, db):
    _recorders_wrote(db, 25)
    code, out, _ = run(capsys, "status", "--db", db, "--json")
    assert code == 0 and len(json.loads(out)["recorders"]) == 25


def test_status_does_not_migrate_an_old_database(capsys, store_url):
    path = store_url
    conn = backends.connect(path, migrate_schema=False)
    if is_postgres(path):
        with conn.cursor() as cur:
            schema_of(path).MIGRATIONS[0](cur)
    else:
        schema.MIGRATIONS[0](conn)
    conn.close()
    set_schema_version(path, 1)
    code, out, _ = run(capsys, "status", "--db", path)
    assert code == 0
    assert "run `ppp-otel migrate`" in out
    with closing(backends.connect(path, migrate_schema=False)) as conn:
        assert schema_of(path).schema_version(conn) == 1


# --- migrate ---------------------------------------------------------------

def test_migrate_refuses_a_missing_file_without_create(capsys, tmp_path):
    path = tmp_path / "new.db"
    code, _, err = run(capsys, "migrate", "--db", str(path))
    assert_one_line_error(code, err, str(path), "no such database file")
    assert not path.exists()


def test_migrate_create_makes_a_database_at_the_latest_version(capsys, store_url):
    path = store_url
    latest = schema_of(path).latest_version()
    code, out, _ = run(capsys, "migrate", "--db", path, "--create", "--json")
    assert code == 0
    assert json.loads(out) == {"db_path": path, "path": path, "applied": list(range(1, latest + 1)),
                               "schema_version": latest}


def test_migrate_refuses_a_postgresql_database_without_a_store_unless_asked_to_create(capsys, postgres_url):
    code, _, err = run(capsys, "migrate", "--db", postgres_url)
    assert_one_line_error(code, err, "no trajectory store in this database", "--create")
    assert run_sql(postgres_url, "SELECT to_regclass('trajectories')") == [(None,)]


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["trajectories"], ["show", "1"], ["score"]])
def test_an_unreachable_postgresql_server_is_a_one_line_error_without_the_password(capsys, command):
    url = f"postgresql://ppp:hunter2@127.0.0.1:{free_port()}/trajectories"
    code, _, err = run(capsys, *command, "--db", url)
    assert_one_line_error(code, err, "postgresql://ppp:***@127.0.0.1", "cannot connect")
    assert "hunter2" not in err


def test_migrate_of_a_current_database_says_it_is_up_to_date(capsys, db):
    code, out, _ = run(capsys, "migrate", "--db", db)
    assert code == 0
    assert "up to date" in out


# --- trajectories ----------------------------------------------------------

def test_trajectories_lists_one_aligned_row_each(capsys, db):
    code, out, _ = run(capsys, "trajectories", "--db", db)
    header, *rows = out.strip().splitlines()
    assert code == 0
    assert header.split() == ["ID", "SPEC", "AGENT", "RUN", "CREATED", "TURNS", "QUESTIONS",
                              "VIOLATIONS", "TECHNICAL"]
    assert len(rows) == 2
    assert header.index("AGENT") == rows[0].index("alice") == rows[1].index("bob")


def test_trajectories_put_the_stage_next_to_the_spec_when_some_trajectory_has_one(capsys, db):
    conn = backends.connect(db)
    backends.write_all(conn, [TrajectoryRecord("3" * 32, "3" * 16, "spec-a", "carol", run_id="r3", stage="plan")])
    conn.close()
    code, out, _ = run(capsys, "trajectories", "--db", db)
    header, *rows = out.splitlines()
    assert code == 0
    assert header.split()[:5] == ["ID", "SPEC", "STAGE", "AGENT", "RUN"]
    assert [row.split()[1:4] for row in rows] == [
        ["spec-a", "-", "alice"], ["spec-b", "-", "bob"], ["spec-a", "plan", "carol"]]


def test_trajectories_filters_by_spec_agent_and_run(capsys, db):
    for flag, value in (("--spec", "spec-b"), ("--agent", "bob"), ("--run", "r2")):
        code, out, _ = run(capsys, "trajectories", "--db", db, flag, value, "--json")
        assert code == 0
        assert [t["agent_name"] for t in json.loads(out)] == ["bob"]


def test_trajectories_limit_caps_the_rows(capsys, db):
    code, out, _ = run(capsys, "trajectories", "--db", db, "--limit", "1", "--json")
    assert code == 0
    assert len(json.loads(out)) == 1


def test_options_may_come_before_the_command(capsys, db):
    code, out, _ = run(capsys, "--json", "--db", db, "trajectories")
    assert code == 0
    assert len(json.loads(out)) == 2


def test_the_database_defaults_to_ppp_otel_db(capsys, db, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_DB", db)
    code, out, _ = run(capsys, "trajectories", "--json")
    assert code == 0
    assert len(json.loads(out)) == 2


def test_the_database_defaults_to_the_config_files_db_path(capsys, db, monkeypatch, tmp_path):
    config = tmp_path / "ppp-otel.toml"
    config.write_text(f'[ppp]\ndb_path = "{db}"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    assert json.loads(out)["path"] == db


def test_a_missing_default_database_says_it_is_the_default_name_and_how_to_name_another(
        capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "trajectories")
    assert_one_line_error(code, err, "ppp_trajectories.db: no such database file", "the default name",
                          str(tmp_path), "--db PATH or PPP_OTEL_DB")


def test_a_missing_database_named_by_ppp_otel_db_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_DB", str(tmp_path / "gone.db"))
    code, _, err = run(capsys, "score")
    assert_one_line_error(code, err, "gone.db: no such database file (named by PPP_OTEL_DB)")


def test_a_missing_database_named_by_the_config_says_so(capsys, tmp_path, monkeypatch):
    config = tmp_path / "ppp-otel.toml"
    config.write_text(f'[ppp]\ndb_path = "{tmp_path / "gone.db"}"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    code, _, err = run(capsys, "status")
    assert_one_line_error(code, err, "gone.db: no such database file (named by the config's db_path)")


def test_a_missing_database_given_with_db_is_named_without_more(capsys, tmp_path):
    code, _, err = run(capsys, "trajectories", "--db", str(tmp_path / "gone.db"))
    assert_one_line_error(code, err)
    assert err.strip() == f"ppp-otel: error: {tmp_path / 'gone.db'}: no such database file"


# --- show ------------------------------------------------------------------

def test_show_prints_turns_cut_to_fit_with_questions_and_violations(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db)
    assert code == 0
    assert "Please refactor the whole module" in out
    assert "END-OF-PROMPT" not in out  # cut for the table
    assert "…" in out
    assert "low" in out and "Which file should I edit?" in out
    assert "critical" in out and "no_questions" in out


def test_show_says_how_to_read_a_cut_turn_whole(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db)
    assert code == 0
    assert "`ppp-otel show 1 --full` prints them whole" in out


def test_show_full_prints_each_prompt_whole(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db, "--full")
    assert code == 0
    assert " ".join(out.split("prompt:\n", 1)[1].split("response:", 1)[0].split()) == LONG_PROMPT
    assert "…" not in out


def test_show_full_wraps_the_text_to_the_terminal_width(capsys, db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "show", "1", "--db", db, "--full")
    assert code == 0
    prompt_lines = out.split("prompt:\n", 1)[1].split("response:", 1)[0].splitlines()
    assert len(prompt_lines) > 1 and all(len(line) <= 60 and line.startswith("  ") for line in prompt_lines)


def test_show_full_puts_questions_and_violations_under_their_turn(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db, "--full")
    turn = out.split("── turn 1 ", 1)[1]
    assert code == 0
    assert turn.startswith("(42 tokens, 12.50 ms, 1 question, 1 violation)")
    assert "question (low effort, explicit):\n  Which file should I edit?" in turn
    assert "violation of no_questions (critical):\n  expected no questions; actual 1 question" in turn


@pytest.fixture
def tool_db(tmp_path) -> str:
    """A trajectory recorded through the OTel SDK: a GenAI model call that only called two
    tools, then the reply it led to (one turn carrying both calls)."""
    from opentelemetry.sdk.trace import TracerProvider

    import ppp_otel

    path = tmp_path / "tools.db"
    provider = TracerProvider()
    ppp_otel.register(path, phoenix=False, set_global=False, tracer_provider=provider, env={})
    tracer = provider.get_tracer("test-instrumentation")
    user = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Fix the flaky test"}]}])
    calls = [{"type": "tool_call", "id": "c1", "name": "run_tests", "arguments": {"path": "tests/" + "x" * 200}},
             {"type": "tool_call", "id": "c2", "name": "read_file", "arguments": {"path": "app.py"}}]
    with ppp_otel.trajectory("spec-t", "alice", tracer_provider=provider):
        for output in (calls, [{"type": "text", "content": "Fixed: it waits for the server."}]):
            with tracer.start_as_current_span("chat m") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.input.messages", user)
                span.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": output}]))
    provider.shutdown()
    return str(path)


def test_show_counts_each_turns_tool_calls_in_a_tools_column(capsys, tool_db):
    code, out, _ = run(capsys, "show", "1", "--db", tool_db)
    header, row = [line for line in out.splitlines() if line.startswith(("TURN ", "   1 "))][:2]
    assert code == 0
    assert header.split()[-1] == "TOOLS" and row.split()[-1] == "2"
    assert "(`ppp-otel show 1 --full` lists each turn's tool calls)" in out


def test_show_full_lists_a_turns_tool_calls_one_line_each_between_its_prompt_and_response(capsys, tool_db,
                                                                                          monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "show", "1", "--db", tool_db, "--full")
    turn = out.split("── turn 1 ", 1)[1]
    assert code == 0
    assert turn.splitlines()[0].endswith("0 questions, 0 violations, 2 tool calls)")
    calls = turn.split("tool calls:\n", 1)[1].split("response:", 1)[0].splitlines()
    assert "prompt:" in turn.split("tool calls:", 1)[0]
    assert len(calls) == 2 and all(len(line) <= 80 for line in calls)
    assert calls[0].startswith('  run_tests({"path": "tests/xxx') and calls[0].endswith("…")
    assert calls[1] == '  read_file({"path": "app.py"})'


def test_show_full_of_a_turn_without_tool_calls_says_nothing_of_them(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db, "--full")
    assert code == 0
    assert "tool call" not in out


def test_show_json_gives_each_turn_its_tool_calls_whole(capsys, tool_db):
    code, out, _ = run(capsys, "show", "1", "--db", tool_db, "--json")
    (turn,) = json.loads(out)["turns"]
    assert code == 0
    assert [(c["name"], json.loads(c["arguments"]), c["id"]) for c in turn["tool_calls"]] == [
        ("run_tests", {"path": "tests/" + "x" * 200}, "c1"), ("read_file", {"path": "app.py"}, "c2")]


def test_show_gives_the_stage_right_after_the_spec(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[:5]] == ["trajectory", "spec", "stage", "agent", "run"]


def test_show_prints_each_turns_latency_in_milliseconds_to_two_decimals(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db)
    header, row = [line for line in out.splitlines() if line.startswith(("TURN ", "   1 "))][:2]
    assert code == 0
    latency = header.index("LATENCY_MS") + len("LATENCY_MS")
    assert row[:latency].endswith(" 12.50")  # right-aligned under its header


def test_show_prints_the_technical_score_with_four_digits_as_the_score_tables_do(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db)
    assert code == 0
    assert "technical score  0.5000" in out


@pytest.mark.parametrize("full", [[], ["--full"]], ids=["table", "full"])
def test_show_of_a_trajectory_without_turns_says_it_has_none(capsys, db, full):
    code, out, _ = run(capsys, "show", "2", "--db", db, *full)
    assert code == 0
    assert out.rstrip().endswith("no turns recorded in this trajectory")
    assert "TURN" not in out

def test_show_json_keeps_the_latency_as_stored(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db, "--json")
    assert code == 0
    assert json.loads(out)["turns"][0]["latency_ms"] == 12.5


def test_show_json_keeps_the_whole_prompt(capsys, db):
    code, out, _ = run(capsys, "show", "1", "--db", db, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["turns"][0]["prompt"] == LONG_PROMPT
    assert data["turns"][0]["questions"] == [
        {"text": "Which file should I edit?", "effort_level": "low", "source": "explicit"}]
    assert data["turns"][0]["violations"][0]["severity"] == "critical"


def test_show_of_an_unknown_id_names_it(capsys, db):
    code, _, err = run(capsys, "show", "4242", "--db", db)
    assert_one_line_error(code, err, "4242")


# --- bad databases ---------------------------------------------------------

@pytest.mark.parametrize("command", [["status"], ["trajectories"], ["show", "1"]])
def test_a_missing_database_is_an_error_and_is_not_created(capsys, tmp_path, command):
    path = tmp_path / "missing.db"
    code, _, err = run(capsys, *command, "--db", str(path))
    assert_one_line_error(code, err, str(path), "no such database file")
    assert not path.exists()


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["trajectories"], ["show", "1"]])
def test_a_file_that_is_not_sqlite_is_an_error(capsys, tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 50)
    code, _, err = run(capsys, *command, "--db", str(path))
    assert_one_line_error(code, err, str(path), "not a SQLite database")


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["trajectories"], ["show", "1"]])
def test_a_database_from_a_newer_ppp_otel_is_an_error(capsys, db, command):
    set_schema_version(db, schema_of(db).latest_version() + 1)
    code, _, err = run(capsys, *command, "--db", db)
    assert_one_line_error(code, err, "newer than this ppp-otel supports")


def test_a_broken_config_file_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    config = tmp_path / "broken.toml"
    config.write_text("[ppp\n")
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    code, _, err = run(capsys, "status")
    assert_one_line_error(code, err, str(config))


def test_commands_are_discovered_from_modules_and_helpers_are_not(capsys):
    assert "database" in _command_modules()
    assert not any(name.startswith("_") for name in _command_modules())
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert all(command in out for command in ("status", "migrate", "trajectories", "show"))


def test_a_usage_error_exits_2(capsys):
    code, _, err = run(capsys, "show", "not-a-number")
    assert code == 2
    assert "invalid int value" in err


# --- the installed command -------------------------------------------------

def _console_script() -> str:
    script = Path(sys.executable).with_name("ppp-otel")
    if not script.exists():
        pytest.skip("the ppp-otel console script is not installed next to this interpreter")
    return str(script)


def test_the_installed_command_prints_json(db):
    done = subprocess.run(
        [_console_script(), "trajectories", "--db", db, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [t["spec_id"] for t in json.loads(done.stdout)] == ["spec-a", "spec-b"]


def test_the_installed_command_fails_in_one_line_on_a_missing_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PPP_OTEL_DB", "PPP_OTEL_CONFIG")}
    done = subprocess.run(
        [_console_script(), "status", "--db", str(tmp_path / "missing.db")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_python_dash_m_ppp_otel_runs_the_command(db):
    done = subprocess.run(
        [sys.executable, "-m", "ppp_otel", "status", "--db", db, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["row_counts"]["trajectory_turns"] == 1


def test_a_file_where_a_directory_is_expected_is_a_one_line_error(tmp_path, capsys):
    from ppp_otel.cli import main

    db = tmp_path / "t.db"
    assert main(["migrate", "--create", "--db", str(db)]) == 0
    capsys.readouterr()
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    assert main(["export-atif", "--db", str(db), "--out", str(not_a_directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppp-otel: error:") and "Traceback" not in err and err.count("\n") == 1


def test_status_and_migrate_json_name_the_database_db_path_as_every_command_does(capsys, db):
    assert main(["status", "--db", db, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert main(["migrate", "--db", db, "--json"]) == 0
    migrated = json.loads(capsys.readouterr().out)
    assert main(["cleanup", "--db", db, "--json", "--dry-run", "--older-than", "30"]) == 0
    cleanup = json.loads(capsys.readouterr().out)
    assert status["db_path"] == migrated["db_path"] == cleanup["db_path"]
    # "path", their earlier name for it, stays for the scripts that read it.
    assert status["path"] == migrated["path"] == status["db_path"]


@pytest.mark.parametrize("command", [("trajectories",), ("consensus-history", "--spec", "spec-a")])
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_a_usage_error_saying_to_leave_it_out_for_all(tmp_path, command, limit):
    done = subprocess.run(
        [_console_script(), *command, "--db", str(tmp_path / "runs.db"), "--limit", limit],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert f"argument --limit: must be at least 1: {limit} (leave --limit out for all " in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs.db").exists()
