"""ppp-otel score / consensus / consensus-history: the JSON contract, the tables, the errors, on both backends."""

from __future__ import annotations

import json

import pytest

import backends
from ppp_otel.cli import main
from scoring_data import add_trajectory


pytestmark = pytest.mark.usefixtures("no_ambient_database")


@pytest.fixture
def db(store_url) -> str:
    conn = backends.connect(store_url)
    add_trajectory(conn, "spec-a", "alpha", questions=["low", "high"], violations=["minor"],
                   technical_score=0.9)
    add_trajectory(conn, "spec-a", "beta", technical_score=0.8)
    add_trajectory(conn, "spec-b", "alpha")
    conn.close()
    return store_url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppp-otel: error: "), err
    assert fragment in lines[0]


# --- score ------------------------------------------------------------------------

def test_score_json_lists_rewards_and_counts_per_trajectory(capsys, db):
    code, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["agent_name"] for r in rows] == ["alpha", "beta"]
    alpha = rows[0]
    assert {"trajectory_id", "spec_id", "agent_name", "r_proact", "r_pers", "questions",
            "violations"} <= alpha.keys()
    assert alpha["questions"] == {"low": 1, "medium": 0, "high": 1}
    assert alpha["violations"] == {"minor": 1, "major": 0, "critical": 0}
    assert (alpha["r_proact"], alpha["r_pers"]) == (-0.5, -0.01)


def test_score_without_filters_scores_every_trajectory(capsys, db):
    code, out, _ = run(capsys, "score", "--db", db, "--json")
    assert code == 0 and len(json.loads(out)) == 3


def test_score_of_one_trajectory(capsys, db):
    code, out, _ = run(capsys, "score", "--db", db, "--trajectory", "2", "--json")
    assert [r["trajectory_id"] for r in json.loads(out)] == [2]


def test_score_prints_a_table_without_json(capsys, db):
    code, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:6] == ["ID", "SPEC", "AGENT", "RUN", "R_PROACT", "R_PERS"]
    assert "alpha" in lines[1] and "-0.5" in lines[1] and "1/0/1" in lines[1]


def test_score_puts_the_stage_next_to_the_spec_when_some_trajectory_has_one(capsys, db):
    conn = backends.connect(db)
    add_trajectory(conn, "spec-a", "gamma", stage="implement")
    conn.close()
    code, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a")
    header, *rows = out.splitlines()
    assert code == 0
    assert header.split()[:5] == ["ID", "SPEC", "STAGE", "AGENT", "RUN"]
    assert rows[-1].split()[1:4] == ["spec-a", "implement", "gamma"]
    assert rows[0].split()[1:4] == ["spec-a", "-", "alpha"]


def test_score_of_an_unknown_trajectory_is_a_one_line_error(capsys, db):
    code, _, err = run(capsys, "score", "--db", db, "--trajectory", "99")
    assert_one_line_error(code, err, "no trajectory with id 99")


def test_score_of_a_missing_database_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run(capsys, "score", "--db", str(tmp_path / "nope.db"))
    assert_one_line_error(code, err, "no such database file")


# --- consensus --------------------------------------------------------------------

def test_consensus_json_names_the_best_agent_and_every_agents_scores(capsys, db):
    code, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--weights", "0.7,0.3",
                       "--json")
    assert code == 0
    data = json.loads(out)
    assert {"best_agent", "confidence", "agents"} <= data.keys()
    assert data["best_agent"] == "beta"  # 0.56 + 0.03 beats 0.63 - 0.153
    assert data["confidence"] == pytest.approx(0.59)
    for agent in data["agents"]:
        assert {"agent_name", "technical", "r_proact", "r_pers", "final", "technical_only"} <= agent.keys()


def test_consensus_technical_arguments_override_the_file(capsys, db, tmp_path):
    path = tmp_path / "technical.json"
    path.write_text(json.dumps({"alpha": 0.1, "beta": 0.2, "ghost": 0.95}))
    code, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical-file",
                       str(path), "--technical", "alpha=0.3", "--agent", "alpha", "--agent", "beta",
                       "--agent", "ghost", "--json")
    agents = {a["agent_name"]: a for a in json.loads(out)["agents"]}
    assert (agents["alpha"]["technical"], agents["beta"]["technical"]) == (0.3, 0.2)
    assert agents["ghost"]["technical_only"] is True
    assert agents["ghost"]["r_proact"] is None


def test_consensus_prints_a_table_that_says_who_was_scored_on_technical_alone(capsys, db):
    code, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical",
                       "ghost=0.1", "--agent", "alpha", "--agent", "beta", "--agent", "ghost")
    assert code == 0
    assert out.startswith("spec spec-a: best agent beta, confidence")
    assert "RANK" in out and "FINAL" in out
    ghost = next(line for line in out.splitlines() if "ghost" in line)
    assert "no trajectory: technical alone" in ghost


def test_the_consensus_table_says_which_technical_scores_were_given(capsys, db):
    code, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical", "alpha=0.3")
    assert code == 0
    alpha = next(line for line in out.splitlines() if "alpha" in line and "0.3000" in line)
    assert alpha.rstrip().endswith("technical as given")

def test_consensus_runs_are_kept_unless_told_not_to(capsys, db):
    run(capsys, "consensus", "--db", db, "--spec", "spec-a")
    run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--no-store")
    code, out, _ = run(capsys, "consensus-history", "--db", db, "--spec", "spec-a", "--json")
    runs = json.loads(out)
    assert code == 0 and len(runs) == 1 and runs[0]["best_agent"] == "beta"


@pytest.mark.parametrize("bad", ["alpha", "alpha=", "=0.5", "alpha=much"])
def test_a_malformed_technical_argument_is_a_one_line_error(capsys, db, bad):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical", bad)
    assert_one_line_error(code, err, "technical score")


@pytest.mark.parametrize("bad", ["0.7", "x,y", "0.7,0.3,1", "-0.7,0.3", "0,0"])
def test_malformed_weights_are_a_one_line_error(capsys, db, bad):
    # The = form: argparse would take a leading "-" for an option.
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", f"--weights={bad}")
    assert_one_line_error(code, err, "weight")


def test_a_spec_with_no_agents_is_a_one_line_error(capsys, db):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "nothing")
    assert_one_line_error(code, err, "no agents to judge for spec nothing")


@pytest.fixture
def staged(store_url) -> str:
    conn = backends.connect(store_url)
    for stage, run_id in (("plan", "r1"), ("implement", "r1"), ("plan", "r2")):
        add_trajectory(conn, "spec-s", "alpha", stage=stage, run_id=run_id)
    add_trajectory(conn, "spec-s", "beta", run_id="r2")  # no stage
    conn.close()
    return store_url


def test_consensus_of_a_stage_the_spec_lacks_names_the_stage_and_lists_those_it_has(capsys, staged):
    code, _, err = run(capsys, "consensus", "--db", staged, "--spec", "spec-s", "--stage", "nosuch")
    assert_one_line_error(code, err, "no agents to judge for spec spec-s: none of its trajectories is of stage "
                          "'nosuch' (its stages: implement, plan; some have no stage), and no technical scores "
                          "were given")


def test_consensus_of_a_run_the_spec_lacks_names_the_run_and_lists_those_it_has(capsys, staged):
    code, _, err = run(capsys, "consensus", "--db", staged, "--spec", "spec-s", "--run", "nosuch")
    assert_one_line_error(code, err, "none of its trajectories is of run 'nosuch' (its runs: r1, r2)")


def test_consensus_of_a_stage_and_run_never_met_together_lists_both(capsys, staged):
    code, _, err = run(capsys, "consensus", "--db", staged, "--spec", "spec-s", "--stage", "implement",
                       "--run", "r2")
    assert_one_line_error(code, err, "none of its trajectories is of stage 'implement' and run 'r2' "
                          "(its stages: implement, plan; some have no stage; its runs: r1, r2)")


def test_consensus_of_a_stage_of_a_spec_with_no_trajectories_says_the_spec_has_none(capsys, staged):
    code, _, err = run(capsys, "consensus", "--db", staged, "--spec", "nothing", "--stage", "plan")
    assert_one_line_error(code, err, "no agents to judge for spec nothing: it has no trajectories at all, "
                          "and no technical scores were given")


def test_a_consensus_that_finds_no_agent_stores_no_run(capsys, staged):
    run(capsys, "consensus", "--db", staged, "--spec", "spec-s", "--stage", "nosuch")
    code, out, _ = run(capsys, "consensus-history", "--db", staged, "--spec", "spec-s", "--json")
    assert (code, json.loads(out)) == (0, [])


@pytest.mark.parametrize("argv, expected", [
    (["score", "--stage", "nosuch"], "no trajectories of stage 'nosuch' in"),
    (["score", "--spec", "spec-s", "--stage", "nosuch"], "no trajectories of spec 'spec-s' of stage 'nosuch' in"),
    (["score", "--run", "nosuch"], "no trajectories of run 'nosuch' in"),
    (["trajectories", "--stage", "nosuch"], "no trajectories of stage 'nosuch' in"),
])
def test_an_empty_listing_names_the_stage_and_run_that_left_nothing(capsys, staged, argv, expected):
    code, out, _ = run(capsys, *argv, "--db", staged)
    assert code == 0 and out.startswith(expected), out


def test_consensus_history_with_nothing_of_a_stage_names_the_stage_and_the_command_to_run(capsys, staged):
    code, out, _ = run(capsys, "consensus-history", "--db", staged, "--spec", "spec-s", "--stage", "plan")
    assert code == 0
    assert out.startswith("no consensus runs of spec 'spec-s' of stage 'plan' in ")
    assert out.rstrip().endswith("(run `ppp-otel consensus --spec spec-s --stage plan`)")


def test_an_unknown_agent_is_a_one_line_error(capsys, db):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--agent", "zeta")
    assert_one_line_error(code, err, "unknown agent")


def test_a_missing_technical_file_is_a_one_line_error(capsys, db, tmp_path):
    code, _, err = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--technical-file",
                       str(tmp_path / "missing.json"))
    assert_one_line_error(code, err, "missing.json")


# --- the reward profile -----------------------------------------------------------

def test_score_rewards_paper_scores_by_the_papers_functions(capsys, db):
    code, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a", "--rewards", "paper", "--json")
    assert code == 0
    rows = {row["agent_name"]: row for row in json.loads(out)}
    # alpha asked once, a high question among its questions: -0.5; beta never asked: 0.
    assert (rows["alpha"]["rewards"], rows["alpha"]["r_proact"], rows["beta"]["r_proact"]) == ("paper", -0.5, 0)


def test_the_score_table_says_when_its_rewards_are_the_papers(capsys, db):
    _, paper, _ = run(capsys, "score", "--db", db, "--spec", "spec-a", "--rewards", "paper")
    _, spec, _ = run(capsys, "score", "--db", db, "--spec", "spec-a")
    assert paper.splitlines()[-1] == "paper rewards: R_Proact and R_Pers by the PPP paper's reward functions"
    assert "rewards" not in spec


def test_the_config_chooses_the_profile_and_the_flag_overrides_it(capsys, db, tmp_path, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.scoring]\nrewards = "paper"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    _, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a", "--json")
    assert {row["rewards"] for row in json.loads(out)} == {"paper"}
    _, out, _ = run(capsys, "score", "--db", db, "--spec", "spec-a", "--rewards", "spec", "--json")
    assert {row["rewards"] for row in json.loads(out)} == {"spec"}


def test_consensus_says_which_profile_it_used_and_history_keeps_it(capsys, db):
    code, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a", "--rewards", "paper", "--json")
    assert code == 0 and json.loads(out)["rewards"] == "paper"
    _, out, _ = run(capsys, "consensus", "--db", db, "--spec", "spec-a")
    assert "spec rewards" in out
    _, out, _ = run(capsys, "consensus-history", "--db", db, "--spec", "spec-a", "--json")
    assert [run_["rewards"] for run_ in json.loads(out)] == ["spec", "paper"]


def test_export_atif_writes_the_chosen_profiles_rewards(capsys, db, tmp_path):
    out_dir = tmp_path / "atif"
    code, _, _ = run(capsys, "export-atif", "--db", db, "--spec", "spec-a", "--out", str(out_dir),
                     "--rewards", "paper")
    assert code == 0
    documents = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    assert {d["extra"]["ppp"]["rewards"] for d in documents} == {"paper"}
    assert sorted(d["extra"]["ppp"]["r_proact"] for d in documents) == [-0.5, 0]
