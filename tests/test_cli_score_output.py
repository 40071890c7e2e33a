"""What score, consensus, consensus-history and trajectories print: for people, each score
column in one format, four digits after the point; for scripts, --json keeps the values,
and its ids name the trajectories as the README's "JSON for scripts" says."""

from __future__ import annotations

import json
import re

import pytest

import backends
from ppp_otel.cli import main
from scoring_data import add_trajectory

pytestmark = pytest.mark.usefixtures("no_ambient_database")

FOUR_DECIMALS = re.compile(r"-?\d+\.\d{4}")


@pytest.fixture
def db(store_url) -> str:
    conn = backends.connect(store_url)
    add_trajectory(conn, "spec-a", "alpha", questions=["low", "high"], violations=["minor"],
                   technical_score=0.9)
    add_trajectory(conn, "spec-a", "beta", technical_score=0.59)
    conn.close()
    return store_url


def table(capsys, *argv: str) -> tuple[list[str], list[str]]:
    """The header line and the rows of the one table the command printed."""
    assert main(list(argv)) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(("ID ", "RANK ")))
    return lines[at], [line for line in lines[at + 1:] if line.strip() and not line.startswith("note:")]


def column(header: str, rows: list[str], name: str) -> list[str]:
    """A right-aligned column's cells: the text that ends under the end of its title."""
    end = header.index(name) + len(name)
    return [row[:end].split()[-1] for row in rows]


def test_score_prints_every_reward_and_technical_score_with_four_decimals(capsys, db):
    header, rows = table(capsys, "score", "--db", db)
    assert column(header, rows, "R_PROACT") == ["-0.5000", "0.0500"]
    assert column(header, rows, "R_PERS") == ["-0.0100", "0.0500"]
    assert column(header, rows, "TECHNICAL") == ["0.9000", "0.5900"]


def test_consensus_prints_every_score_column_with_four_decimals(capsys, db):
    header, rows = table(capsys, "consensus", "--db", db, "--spec", "spec-a", "--no-store")
    for name in ("TECHNICAL", "R_PROACT", "R_PERS", "FINAL"):
        assert all(FOUR_DECIMALS.fullmatch(text) for text in column(header, rows, name)), name
    assert column(header, rows, "TECHNICAL") == ["0.9000", "0.5900"]
    assert column(header, rows, "FINAL") == ["0.4770", "0.4430"]


def test_consensus_gives_the_confidence_with_four_decimals(capsys, db):
    assert main(["consensus", "--db", db, "--spec", "spec-a", "--no-store"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "best agent alpha, confidence 0.4770 " in first  # 0.7 x 0.9 + 0.3 x (-0.5 - 0.01)


def test_consensus_json_keeps_the_scores_as_computed(capsys, db):
    assert main(["consensus", "--db", db, "--spec", "spec-a", "--no-store", "--json"]) == 0
    agents = {a["agent_name"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    assert agents["beta"]["technical"] == 0.59 and agents["alpha"]["r_pers"] == -0.01


def test_consensus_history_prints_confidence_and_weights_with_four_decimals(capsys, db):
    assert main(["consensus", "--db", db, "--spec", "spec-a"]) == 0
    capsys.readouterr()
    header, rows = table(capsys, "consensus-history", "--db", db, "--spec", "spec-a")
    assert column(header, rows, "CONFIDENCE") == ["0.4770"]
    assert (column(header, rows, "W_TECHNICAL"), column(header, rows, "W_INTERACTION")) == (["0.7000"], ["0.3000"])


def test_trajectories_print_the_technical_score_with_four_decimals(capsys, db):
    header, rows = table(capsys, "trajectories", "--db", db)
    assert column(header, rows, "TECHNICAL") == ["0.9000", "0.5900"]


def test_score_json_names_a_trajectory_by_trajectory_id_the_listing_by_id(capsys, db):
    assert main(["score", "--db", db, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert main(["trajectories", "--db", db, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_span = {t["span_id"]: t["id"] for t in listed}
    assert [by_span[s["span_id"]] for s in scores] == [s["trajectory_id"] for s in scores]
    assert "id" not in scores[0] and "trajectory_id" not in listed[0]


def _json(capsys, *argv: str):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_every_json_names_a_technical_score_technical_score(capsys, db):
    scores = {s["agent_name"]: s for s in _json(capsys, "score", "--db", db, "--json")}
    listed = {t["agent_name"]: t for t in _json(capsys, "trajectories", "--db", db, "--json")}
    shown = _json(capsys, "show", str(listed["beta"]["id"]), "--db", db, "--json")
    judged = {a["agent_name"]: a for a in _json(capsys, "consensus", "--db", db, "--spec", "spec-a", "--json")["agents"]}
    stored = {a["agent_name"]: a
              for a in _json(capsys, "consensus-history", "--db", db, "--spec", "spec-a", "--json")[0]["agents"]}
    trend = {a["agent_name"]: a["runs"][0] for a in _json(capsys, "trends", "--db", db, "--spec", "spec-a", "--json")["agents"]}
    assert {scores["beta"]["technical_score"], listed["beta"]["technical_score"], shown["technical_score"],
            judged["beta"]["technical_score"], stored["beta"]["technical_score"],
            trend["beta"]["technical_score"]} == {0.59}


def test_consensus_and_trends_json_keep_technical_the_earlier_name_of_the_technical_score(capsys, store_url):
    conn = backends.connect(store_url)
    add_trajectory(conn, "spec-b", "alpha", run_id="r1", started_at="2026-01-01T10:00:00.000Z", technical_score=0.5)
    add_trajectory(conn, "spec-b", "alpha", run_id="r2", started_at="2026-01-02T10:00:00.000Z", technical_score=0.8)
    conn.close()
    agent = _json(capsys, "consensus", "--db", store_url, "--spec", "spec-b", "--run", "r2", "--json")["agents"][0]
    assert agent["technical"] == agent["technical_score"] == 0.8
    later = _json(capsys, "trends", "--db", store_url, "--spec", "spec-b", "--json")["agents"][0]["runs"][1]
    assert later["technical"] == later["technical_score"] == 0.8
    assert later["change"]["technical"] == later["change"]["technical_score"] == 0.3
