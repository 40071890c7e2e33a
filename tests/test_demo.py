"""``ppp-otel demo``: two runs of two stages of three agents, through the real pipeline, worth a report."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from ppp_otel.cli import main
from ppp_otel.scoring.consensus import consensus_history
from browser import chromium  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--db", str(db), "--json"]) == 0
    return db, json.loads(out.getvalue())


def test_the_demo_records_two_runs_of_two_stages_of_three_agents(demo):
    _, data = demo
    cells = {(t["run_id"], t["stage"], t["agent_name"]) for t in data["trajectories"]}
    assert len(data["trajectories"]) == 12 and len(cells) == 12
    assert data["stages"] == ["plan", "implement"] and len(data["run_ids"]) == 2
    assert data["recorder"]["dropped"] == 0


def test_the_demo_judges_each_stage_of_each_run_and_the_prompt_change_shows(demo):
    db, data = demo
    first, second = data["run_ids"]
    best = {(c["run_id"], c["stage"]): c["best_agent"] for c in data["consensus"]}
    assert best == {(first, "plan"): "careful-agent", (first, "implement"): "careful-agent",
                    (second, "plan"): "curious-agent", (second, "implement"): "curious-agent"}
    assert all(c["warnings"] == [] for c in data["consensus"])
    assert len(consensus_history(db, data["spec_id"])) == 4


def test_the_demo_prints_the_consensus_of_each_stage_and_run(tmp_path, capsys):
    assert main(["demo", "--db", str(tmp_path / "demo.db")]) == 0
    out = capsys.readouterr().out
    assert "Consensus of each stage and run" in out
    table = out.split("Consensus of each stage and run")[1].split("Next:")[0].splitlines()[2:]
    assert [line.split()[0:3:2] for line in table if line.strip()] == [  # stage, run, best agent
        ["plan", "careful-agent"], ["implement", "careful-agent"],
        ["plan", "curious-agent"], ["implement", "curious-agent"]]
    assert "ppp-otel report --db" in out


def test_the_demos_rewards_and_finals_print_four_digits_after_the_point(tmp_path, capsys):
    assert main(["demo", "--db", str(tmp_path / "demo.db")]) == 0
    out = capsys.readouterr().out
    rewards = out.split("Rewards:")[1].split("Consensus of each")[0].splitlines()[2:]
    finals = out.split("Consensus of each stage and run")[1].split("Next:")[0].splitlines()[2:]
    numbers = [word for line in rewards if line.strip() for word in line.split()[4:]]
    numbers += [word for line in finals if line.strip() for word in line.split()[3:]]
    assert numbers and all(re.fullmatch(r"-?\d+\.\d{4}", word) for word in numbers), numbers


def test_the_demo_scores_with_the_profile_the_config_file_names(tmp_path, capsys, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.scoring]\nrewards = "paper"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    assert main(["demo", "--db", str(tmp_path / "demo.db"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {s["rewards"] for s in data["scores"]} == {"paper"}
    assert {c["rewards"] for c in data["consensus"]} == {"paper"}


def test_the_report_of_the_demo_shows_every_agent_in_chromium(demo, tmp_path, chromium):
    db, data = demo
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    visit = chromium.open(out.as_uri())
    assert visit.console_errors == [] and visit.requests == [out.as_uri()]
    text = chromium.evaluate("document.body.innerText")
    for agent in ("careful-agent", "curious-agent", "hasty-agent"):
        assert agent in text
    assert chromium.evaluate("document.querySelectorAll('figure.chart svg .series').length") > 10


def test_a_database_in_a_missing_directory_is_a_one_line_error_before_anything_is_recorded(tmp_path):
    import os
    import subprocess
    import sys

    missing = tmp_path / "no-such-dir"
    ppp_otel = os.path.join(os.path.dirname(sys.executable), "ppp-otel")
    # The timeout only catches a command that records first and fails later.
    done = subprocess.run([ppp_otel, "demo", "--db", str(missing / "d.db")],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"ppp-otel: error: cannot record to {missing / 'd.db'}: the directory {missing} does not exist "
        "(create it, or choose another --db / PPP_OTEL_DB)"]
    assert not missing.exists()


def test_a_run_prefix_the_file_already_has_is_refused_and_nothing_is_added(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    assert main(["demo", "--db", db, "--run-prefix", "week1", "--json"]) == 0
    before = len(json.loads(capsys.readouterr().out)["trajectories"])
    assert main(["demo", "--db", db, "--run-prefix", "week1"]) == 2
    err = capsys.readouterr().err
    assert "already has runs week1-r1 and week1-r2" in err and "--run-prefix" in err
    assert main(["trajectories", "--db", db, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == before


def test_a_new_run_prefix_adds_its_runs_beside_the_ones_there(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    assert main(["demo", "--db", db, "--run-prefix", "week1"]) == 0
    assert main(["demo", "--db", db, "--run-prefix", "week2"]) == 0
    capsys.readouterr()
    assert main(["trajectories", "--db", db, "--run", "week2-r1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 6


def test_the_demo_asks_a_phoenix_that_does_not_answer_for_annotations_once_not_per_stage_and_run(tmp_path, capsys):
    import socket
    import threading

    consensus_posts = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def hang_up():  # reads each request, then closes without answering: Phoenix fell over
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536) or b"\r\n\r\n"
                    head, _, body = data.partition(b"\r\n\r\n")
                    found = re.search(rb"(?i)content-length: *(\d+)", head)
                    length = int(found.group(1)) if found else 0
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    if b"ppp.final" in body:
                        consensus_posts.append(head.split(b" ")[1])

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        assert main(["demo", "--db", str(tmp_path / "demo.db"), "--phoenix", url]) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "12 of 12 trajectories could not be annotated" in err and "cannot reach" in err
    assert len(consensus_posts) == 1  # not one per stage and run, each waiting out a timeout
