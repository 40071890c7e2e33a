"""The CLI without traps: what a new user runs into, each answered with a clear line."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

import ppp_otel
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.cli import FLOW, _in_flow_order, build_parser, main
from ppp_otel.ingest.server import IngestServer
from scoring_data import add_trajectory, two_agents_of_one_spec

pytestmark = pytest.mark.usefixtures("no_ambient_database")


@pytest.fixture
def db(db_path) -> str:
    return two_agents_of_one_spec(db_path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppp-otel: error: "), err
    return lines[0]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"ppp-otel {ppp_otel.__version__}"


def test_every_command_has_a_description_in_its_help():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {choice.dest for choice in commands._choices_actions}
    assert set(commands.choices) == listed  # every command is listed with its help
    for name, command in commands.choices.items():
        assert command.description, f"ppp-otel {name} --help has no description"


def test_no_help_breaks_a_line_inside_a_hyphenated_name():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in {"ppp-otel": parser, **commands.choices}.items():
        broken = [line for line in command.format_help().splitlines() if line[-2:-1].isalnum() and line[-1] == "-"]
        assert broken == [], f"{name} --help"


def listed_commands(help_text: str) -> list[str]:
    """The command names of ``ppp-otel --help``, in the order it lists them."""
    commands = help_text.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in commands.splitlines()[1:] if line.startswith("    ") and line[4] != " "]


def test_help_lists_the_commands_as_the_data_goes_in_then_looked_at_then_out_then_upkeep(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert listed_commands(out) == [
        "demo", "ingest", "import",
        "trajectories", "show", "score", "consensus", "consensus-history", "report", "trends", "judge",
        "export", "export-atif",
        "copy", "cleanup", "status", "migrate", "config",
    ]


def test_help_names_the_data_s_way_and_points_at_each_command_s_help(capsys):
    _, out, _ = run(capsys, "--help")
    epilog = " ".join(out.split("The commands as the data goes:", 1)[1].split())
    for title, _ in FLOW:
        assert title in epilog
    assert out.rstrip().endswith("Run `ppp-otel COMMAND --help` for a command's options.")


def test_a_usage_error_offers_the_commands_in_the_order_help_lists_them(capsys):
    code, _, err = run(capsys, "nope")
    assert code == 2
    assert "(choose from 'demo', 'ingest', 'import', 'trajectories'," in err


def test_a_command_the_flow_does_not_name_is_listed_after_those_it_does():
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(metavar="COMMAND")
    for name in ("zebra", "status", "demo", "aardvark"):
        subparsers.add_parser(name, help=name)
    sections = _in_flow_order(subparsers)
    assert [action.dest for action in subparsers._choices_actions] == ["demo", "status", "zebra", "aardvark"]
    assert sections == [("getting trajectories in", ["demo"]), ("keeping the store", ["status"]),
                        ("the others", ["zebra", "aardvark"])]


def test_a_technical_score_for_a_mistyped_agent_is_an_error_naming_the_spec_agents(capsys, db):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical", "carefull-agent=0.9")
    assert code == 2
    line = one_error_line(err)
    assert "carefull-agent" in line and "careful-agent, hasty-agent" in line


def test_a_mistyped_agent_in_one_stage_and_run_names_that_scope_and_its_agents(capsys, db_path):
    conn = schema.connect(db_path)
    add_trajectory(conn, "spec-s", "careful-agent", stage="plan", run_id="r1")
    add_trajectory(conn, "spec-s", "hasty-agent", stage="implement", run_id="r1")
    conn.close()
    code, _, err = run(capsys, "consensus", "--db", str(db_path), "--spec", "spec-s", "--stage", "plan",
                       "--run", "r1", "--technical", "carefull-agent=0.9")
    assert code == 2
    line = one_error_line(err)
    assert "spec spec-s, stage plan, run r1 (its agents: careful-agent)" in line


@pytest.mark.parametrize("score", ["1.22", "-0.5"])
def test_a_technical_score_outside_zero_to_one_is_an_error(capsys, db, score):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical", f"careful-agent={score}")
    assert code == 2
    assert "between 0 and 1" in one_error_line(err)


def test_a_technical_file_score_above_one_is_an_error_naming_the_file(capsys, db, tmp_path):
    path = tmp_path / "tech.json"
    path.write_text('{"careful-agent": 1.5}')
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical-file", str(path))
    assert code == 2
    line = one_error_line(err)
    assert str(path) in line and "between 0 and 1" in line


@pytest.mark.parametrize("argv, expected", [
    (["trajectories", "--spec", "nope"], "no trajectories of spec 'nope' in"),
    (["trajectories", "--agent", "nobody"], "no trajectories of agent 'nobody' in"),
    (["score", "--spec", "nope"], "no trajectories of spec 'nope' in"),
    (["consensus-history", "--spec", "spec-a"], "no consensus runs of spec 'spec-a'"),
])
def test_empty_results_say_so_instead_of_printing_a_lone_header(capsys, db, argv, expected):
    code, out, _ = run(capsys, *argv, "--db", db)
    assert code == 0
    assert out.startswith(expected), out
    assert "SPEC" not in out


def test_empty_results_in_json_are_an_empty_list(capsys, db):
    code, out, _ = run(capsys, "trajectories", "--db", db, "--spec", "nope", "--json")
    assert (code, out.strip()) == (0, "[]")


@pytest.mark.parametrize("argv", [
    ["status"], ["trajectories"], ["score"], ["show", "1"], ["consensus", "--spec", "spec-a"],
    ["consensus-history", "--spec", "spec-a"], ["cleanup", "--dry-run"], ["export-atif", "--out", "x"],
    ["migrate"], ["config"],
])
def test_a_broken_config_file_is_the_same_error_for_every_command(capsys, db, monkeypatch, tmp_path, argv):
    broken = tmp_path / "broken.toml"
    broken.write_text("[ppp\nenabled = true\n")
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(broken))
    monkeypatch.setenv("PPP_OTEL_DB", db)  # told where the database is: still an error
    code, _, err = run(capsys, *argv)
    assert code == 2
    line = one_error_line(err)
    assert str(broken) in line and "unset PPP_OTEL_CONFIG" in line


def test_a_bad_value_from_a_variable_says_to_unset_that_variable_not_the_config_file(capsys, db, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_ENABLED", "maybe")
    code, _, err = run(capsys, "status", "--db", db)
    assert code == 2
    line = one_error_line(err)
    assert line.endswith("(in env PPP_OTEL_ENABLED); fix it, or unset PPP_OTEL_ENABLED")


def test_config_with_its_own_file_is_not_stopped_by_a_broken_ppp_otel_config(capsys, monkeypatch, tmp_path):
    broken, good = tmp_path / "broken.toml", tmp_path / "good.toml"
    broken.write_text("[ppp\n")
    good.write_text("[ppp]\nenabled = true\n")
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(broken))
    code, out, _ = run(capsys, "config", "--config", str(good))
    assert code == 0 and f"config file: {good}" in out


def test_score_agent_without_spec_names_the_flags(capsys, db):
    code, _, err = run(capsys, "score", "--db", db, "--agent", "careful-agent")
    assert code == 2
    line = one_error_line(err)
    assert "--agent needs --spec" in line and "--spec SPEC --agent careful-agent" in line


@pytest.mark.parametrize("option, value, accepted", [
    ("--port", "abc", "a number from 0 to 65535; 0 picks a free one"),
    ("--port", "70000", "a number from 0 to 65535; 0 picks a free one"),
    ("--grpc-port", "abc", "a number from 0 to 65535; 0 picks a free one; off serves HTTP only"),
])
def test_a_bad_ingest_port_is_a_usage_error_saying_what_a_port_may_be(capsys, tmp_path, option, value, accepted):
    code, _, err = run(capsys, "ingest", "--db", str(tmp_path / "in.db"), option, value)
    assert code == 2
    assert err.splitlines()[-1] == f"ppp-otel ingest: error: argument {option}: not a port: {value} ({accepted})"
    assert not (tmp_path / "in.db").exists()


def test_migrate_on_a_missing_file_points_at_create(capsys, tmp_path):
    missing = tmp_path / "missing.db"
    code, _, err = run(capsys, "migrate", "--db", str(missing))
    assert code == 2
    assert f"ppp-otel migrate --create --db {missing}" in one_error_line(err)
    assert not missing.exists()


def test_export_warns_when_it_sends_runs_older_than_phoenix_default_window(capsys, db_path, tmp_path):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    for agent in ("old-agent", "new-agent"):
        with ppp_otel.trajectory("spec", agent, tracer_provider=provider):
            with ppp_otel.turn("p", tracer_provider=provider) as t:
                t.respond("r")
    provider.shutdown()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE trajectories SET created_at = '2025-01-02T03:04:05.000Z' WHERE agent_name = 'old-agent'")
    with IngestServer(tmp_path / "copy.db", port=0) as receiver:
        code, _, err = run(capsys, "export", "--db", str(db_path), "--to", receiver.url)
    assert code == 0
    assert "warning: 1 of the 2 trajectories sent started more than 7 days ago" in err
    assert "2025-01-02T03:04:05" in err and "wider time range" in err


def test_export_of_recent_runs_does_not_warn(capsys, db_path, tmp_path):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    with ppp_otel.trajectory("spec", "agent", tracer_provider=provider):
        pass
    provider.shutdown()
    with IngestServer(tmp_path / "copy.db", port=0) as receiver:
        code, _, err = run(capsys, "export", "--db", str(db_path), "--to", receiver.url)
    assert code == 0 and "warning" not in err


def test_export_with_nothing_to_send_says_so(capsys, db_path, tmp_path):
    ppp_otel.register(db_path, phoenix=False, set_global=False, env={}).shutdown()
    with IngestServer(tmp_path / "copy.db", port=0) as receiver:
        code, out, _ = run(capsys, "export", "--db", str(db_path), "--to", receiver.url, "--spec", "none")
    assert code == 0 and out.startswith("no trajectories to export of spec 'none'")


def test_export_with_nothing_to_send_names_the_stage_and_run_it_was_given(capsys, db, tmp_path):
    with IngestServer(tmp_path / "copy.db", port=0) as receiver:
        code, out, _ = run(capsys, "export", "--db", db, "--to", receiver.url, "--stage", "plan", "--run", "r9")
    assert code == 0 and out.startswith("no trajectories to export of stage 'plan' of run 'r9' in")


def test_the_demo_without_phoenix_records_three_agents_and_names_the_best(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--db", str(tmp_path / "demo.db"))
    assert code == 0, err
    consensus = out.split("Consensus of each stage and run")[1]
    assert "BEST AGENT" in consensus and "careful-agent" in consensus
    assert "Phoenix" not in out


def test_the_demo_with_phoenix_down_says_so_once_and_exits_1(capsys, tmp_path):
    from support import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = run(capsys, "demo", "--db", str(tmp_path / "demo.db"), "--phoenix", url)
    assert code == 1
    assert f"nothing reached {url}" in out and "ppp-otel export" in out
    assert err.count("could not be annotated") == 1



def test_a_consensus_span_phoenix_never_took_is_said_not_sent_and_has_no_ids(capsys, tmp_path):
    import json

    from support import free_port

    db = str(tmp_path / "demo.db")
    assert run(capsys, "demo", "--db", db)[0] == 0
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec = ["consensus", "--db", db, "--spec", "demo-fix-flaky-test", "--stage", "plan", "--phoenix", url, "--wait", "0"]
    code, out, _ = run(capsys, *spec)
    assert "ppp.consensus span not sent" in out and "span sent to project" not in out
    code, out, _ = run(capsys, *spec, "--json")
    judged = json.loads(out)
    assert (judged["trace_id"], judged["span_id"], judged["phoenix_project"]) == (None, None, None)
    code, out, _ = run(capsys, "consensus-history", "--db", db, "--spec", "demo-fix-flaky-test", "--json")
    assert all(run_["trace_id"] is None for run_ in json.loads(out))

# --- import --stage: the stage of the documents that carry none -------------------------

_NO_KEY = object()


def atif_document(agent: str, stage=_NO_KEY, subagents=()) -> dict:
    """A small ATIF document; ``stage``: its ``extra.ppp.stage`` (no key when not given)."""
    doc = {
        "schema_version": "ATIF-v1.7", "session_id": f"session-{agent}", "trajectory_id": agent,
        "agent": {"name": agent},
        "steps": [{"step_id": 1, "source": "user", "message": "Rename the config key."},
                  {"step_id": 2, "source": "agent", "message": "Done."}],
    }
    if stage is not _NO_KEY:
        doc["extra"] = {"ppp": {"stage": stage}}
    if subagents:
        doc["subagent_trajectories"] = list(subagents)
    return doc


def imported_stages(capsys, tmp_path, *documents: dict, stage: str | None = None) -> dict[str, str | None]:
    """Each imported trajectory's agent and stage, from `ppp-otel import` of ``documents``."""
    import json

    paths = []
    for i, doc in enumerate(documents):
        path = tmp_path / f"doc{i}.trajectory.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    db = tmp_path / "imported.db"
    code, out, err = run(capsys, "import", *paths, "--db", str(db), "--json",
                         *(["--stage", stage] if stage is not None else []))
    assert code == 0, err
    assert json.loads(out)["imported"] == len(documents)
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT agent_name, stage FROM trajectories"))
    finally:
        conn.close()


def test_import_stage_leaves_a_document_its_own_stage(capsys, tmp_path):
    assert imported_stages(capsys, tmp_path, atif_document("a", "plan"), stage="validate") == {"a": "plan"}


def test_import_stage_is_the_stage_of_a_document_without_one(capsys, tmp_path):
    assert imported_stages(capsys, tmp_path, atif_document("a"), stage="validate") == {"a": "validate"}


def test_import_stage_is_the_stage_of_a_trajectory_exported_without_one(capsys, tmp_path):
    assert imported_stages(capsys, tmp_path, atif_document("a", None), stage="validate") == {"a": "validate"}


def test_import_stage_fills_in_only_the_documents_that_carry_none(capsys, tmp_path):
    stages = imported_stages(capsys, tmp_path, atif_document("a", "plan"), atif_document("b"), stage="validate")
    assert stages == {"a": "plan", "b": "validate"}


def test_an_embedded_subagent_without_a_stage_works_in_its_parents_whatever_import_stage_says(
        capsys, tmp_path):
    doc = atif_document("parent", "plan", subagents=[atif_document("sub")])
    assert imported_stages(capsys, tmp_path, doc, stage="validate") == {"parent": "plan", "sub": "plan"}


def test_an_embedded_subagent_keeps_a_stage_of_its_own(capsys, tmp_path):
    doc = atif_document("parent", subagents=[atif_document("sub", "review")])
    assert imported_stages(capsys, tmp_path, doc, stage="validate") == {"parent": "validate", "sub": "review"}


def test_import_without_stage_keeps_a_document_without_one_stageless(capsys, tmp_path):
    assert imported_stages(capsys, tmp_path, atif_document("a"), atif_document("b", None)) == {"a": None, "b": None}


def test_an_empty_import_stage_is_a_usage_error_naming_the_flag(capsys, tmp_path):
    code, _, err = run(capsys, "import", str(tmp_path), "--db", str(tmp_path / "x.db"), "--stage", " ")
    assert code == 2
    assert "argument --stage: a stage must not be empty" in err
    assert not (tmp_path / "x.db").exists()


def test_import_help_says_a_documents_own_stage_wins(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--stage X the spec's stage (plan, implement, ...) of the documents that carry none" in text
    assert "a document's own stage (extra.ppp.stage) wins" in text


@pytest.mark.parametrize("argv", [
    ["demo"], ["consensus", "--spec", "spec-a"], ["report", "--out", "r.html"],
])
def test_a_phoenix_url_without_its_scheme_is_a_usage_error_before_anything_is_done(capsys, tmp_path, argv):
    db = tmp_path / "never.db"
    code, out, err = run(capsys, *argv, "--db", str(db), "--phoenix", "localhost:6006")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "argument --phoenix: 'localhost:6006' is not an http(s) URL: it does not start with http://" in err
    assert not db.exists()
