"""``trends``: each agent's figures per run of a spec, in time order, with the change since its last run."""

from __future__ import annotations

import json

import pytest

import backends
from ppp_otel.cli import main
from ppp_otel.scoring.trends import trends
from scoring_data import add_trajectory

# Named so that time order (zeta, alpha, mid) is not name order.
T0, T1, T2 = "2026-01-01T10:00:00.000Z", "2026-01-02T10:00:00.000Z", "2026-01-03T10:00:00.000Z"


@pytest.fixture
def three_runs(store_url):
    conn = backends.connect(store_url)
    add_trajectory(conn, "spec", "careful", run_id="mid", started_at=T2, technical_score=0.9)
    add_trajectory(conn, "spec", "careful", run_id="zeta", started_at=T0, technical_score=0.5,
                   questions=["high"], violations=[("concise", "minor")])
    add_trajectory(conn, "spec", "careful", run_id="alpha", started_at=T1, technical_score=0.7,
                   questions=["medium", "low"], turns=2,
                   violations=[("concise", "major"), ("one_question", "minor")])
    # In two of the three runs only: its change is against its own previous run.
    add_trajectory(conn, "spec", "sparse", run_id="zeta", started_at=T0, questions=["medium"])
    add_trajectory(conn, "spec", "sparse", run_id="mid", started_at=T2)
    conn.close()
    return store_url


def test_runs_come_in_the_order_they_started(three_runs):
    found = trends(three_runs, "spec", weights=(0.5, 0.5))
    assert [r.run_id for r in found.agent("careful").runs] == ["zeta", "alpha", "mid"]
    assert [r.run_id for r in found.agent("sparse").runs] == ["zeta", "mid"]


def test_each_run_has_its_rewards_final_questions_and_violations(three_runs):
    runs = trends(three_runs, "spec", weights=(0.5, 0.5)).agent("careful").runs
    assert [(r.r_proact, r.r_pers) for r in runs] == [(-0.5, -0.01), (-0.1, -0.04), (0.05, 0.05)]
    assert [r.final for r in runs] == pytest.approx([-0.005, 0.28, 0.5])
    assert [r.questions for r in runs] == [
        {"low": 0, "medium": 0, "high": 1}, {"low": 1, "medium": 1, "high": 0},
        {"low": 0, "medium": 0, "high": 0}]
    assert [r.violations for r in runs] == [{"concise": 1}, {"concise": 1, "one_question": 1}, {}]


def test_the_change_is_against_the_agents_previous_run(three_runs):
    runs = trends(three_runs, "spec", weights=(0.5, 0.5)).agent("careful").runs
    assert runs[0].change is None
    assert runs[1].change == {
        "technical": 0.2, "r_proact": 0.4, "r_pers": -0.03, "final": 0.285,
        "questions": {"low": 1, "medium": 1, "high": -1},
        "violations": {"concise": 0, "one_question": 1}, "since_run_id": "zeta",
    }
    assert runs[2].change == {
        "technical": 0.2, "r_proact": 0.15, "r_pers": 0.09, "final": 0.22,
        "questions": {"low": -1, "medium": -1, "high": 0},
        "violations": {"concise": -1, "one_question": -1}, "since_run_id": "alpha",
    }


def test_an_agent_missing_from_a_run_is_compared_with_the_run_before(three_runs):
    mid = trends(three_runs, "spec", weights=(0.5, 0.5)).agent("sparse").runs[1]
    assert mid.change["since_run_id"] == "zeta"
    assert mid.change["r_proact"] == pytest.approx(0.15)
    assert mid.change["technical"] is None  # it never had a technical score


def test_a_stage_limits_the_trend_to_that_stage(store_url):
    conn = backends.connect(store_url)
    for run, start in (("r1", T0), ("r2", T1)):
        add_trajectory(conn, "spec", "a", run_id=run, stage="plan", started_at=start,
                       questions=["high"] if run == "r1" else [])
        add_trajectory(conn, "spec", "a", run_id=run, stage="implement", started_at=start,
                       questions=["medium"])
    conn.close()
    plan = trends(store_url, "spec", stage="plan", weights=(0.5, 0.5)).agent("a").runs
    assert [(r.r_proact, r.stages) for r in plan] == [(-0.5, ["plan"]), (0.05, ["plan"])]
    assert plan[1].change["r_proact"] == pytest.approx(0.55)
    both = trends(store_url, "spec", weights=(0.5, 0.5)).agent("a").runs
    assert [r.r_proact for r in both] == pytest.approx([-0.3, -0.025])
    assert sorted(both[0].stages) == ["implement", "plan"]


def test_one_agent_can_be_asked_for(three_runs):
    found = trends(three_runs, "spec", agent_name="sparse", weights=(0.5, 0.5))
    assert [a.agent_name for a in found.agents] == ["sparse"]


def test_a_spec_with_no_trajectories_has_no_trends(three_runs):
    assert trends(three_runs, "other", weights=(0.5, 0.5)).agents == []


def test_cli_trends_of_nothing_says_what_was_asked_for_and_where(three_runs, capsys):
    from ppp_otel.storage import display_name

    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--agent", "nobody"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"no trajectories of spec 'spec' of agent 'nobody' in {display_name(str(three_runs))}"


def test_cli_trends_prints_each_run_with_its_change(three_runs, capsys):
    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--weights", "0.5,0.5"]) == 0
    out = capsys.readouterr().out
    careful = out.split("\ncareful\n")[1].split("\nsparse\n")[0].splitlines()
    assert careful[0].split()[:3] == ["RUN", "STARTED", "STAGES"]
    assert [line.split()[0] for line in careful[1:]] == ["zeta", "alpha", "mid"]
    assert "-0.1000  (+0.4000)" in careful[2] and "0.2800  (+0.2850)" in careful[2]
    assert "1/1/0 (+1/+1/-1)" in careful[2]
    assert "concise 1 (±0), one_question 1 (+1)" in careful[2]
    assert "concise 0 (-1), one_question 0 (-1)" in careful[3]


def test_cli_trends_prints_scores_with_four_decimals_lined_up_on_the_point(three_runs, capsys):
    import re

    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--weights", "0.5,0.5"]) == 0
    careful, sparse = capsys.readouterr().out.split("\ncareful\n")[1].split("\nsparse\n")
    careful = careful.splitlines()
    # The scores outside the brackets: technical, r_proact, r_pers, final.
    points = [[line.index(".", m.start()) for m in re.finditer(r"(?<![(+\d-])-?\d+\.\d{4}(?!\d)", line)]
              for line in careful[1:]]
    assert len(points[0]) == 4 and points[1:] == [points[0]] * 2
    assert "0.5000" in careful[1] and "-0.5000" in careful[1]
    # A change of nothing reads as one; a change has the score's four decimals.
    assert "0.7000  (+0.2000)" in careful[2]
    assert "0.0500  (±0)" in sparse.splitlines()[2]  # its R_Pers, the same in both its runs


def test_cli_trends_of_an_agent_with_one_run_has_no_change_columns(store_url, capsys):
    conn = backends.connect(store_url)
    add_trajectory(conn, "new-spec", "careful", run_id="first", started_at=T0, technical_score=0.9)
    conn.close()
    assert main(["trends", "--db", str(store_url), "--spec", "new-spec"]) == 0
    header, row = capsys.readouterr().out.split("\ncareful\n")[1].splitlines()
    assert row.split()[3:7] == ["0.9000", "0.0500", "0.0500", "0.6600"]
    assert header.split() == ["RUN", "STARTED", "STAGES", "TECHNICAL", "R_PROACT", "R_PERS", "FINAL",
                              "QUESTIONS", "L/M/H", "VIOLATIONS", "BY", "PREFERENCE"]


def test_cli_trends_json_is_the_same_figures(three_runs, capsys):
    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--agent", "careful",
                 "--weights", "0.5,0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spec_id"] == "spec" and data["weights"] == {"technical": 0.5, "interaction": 0.5}
    runs = data["agents"][0]["runs"]
    assert [r["run_id"] for r in runs] == ["zeta", "alpha", "mid"]
    assert runs[2]["change"]["final"] == 0.22 and runs[0]["change"] is None


def test_the_paper_profile_gives_each_run_the_papers_rewards(three_runs):
    from ppp_otel.scoring.rewards import score_trajectories

    found = trends(three_runs, "spec", agent_name="careful", weights=(0.5, 0.5), rewards="paper")
    paper = {s.run_id: s for s in score_trajectories(three_runs, spec_id="spec", agent_name="careful",
                                                     rewards="paper")}
    assert found.rewards == "paper"
    assert [(r.r_proact, r.r_pers) for r in found.agent("careful").runs] == [
        (paper[run].r_proact, paper[run].r_pers) for run in ("zeta", "alpha", "mid")]
    # Nothing asked in "mid": 0 in the paper, where the spec profile gives +0.05.
    assert found.agent("careful").runs[2].r_proact == 0


def test_cli_trends_takes_the_profile_the_config_file_names(three_runs, capsys, tmp_path, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.scoring]\nrewards = "paper"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rewards"] == "paper"
    assert main(["trends", "--db", str(three_runs), "--spec", "spec", "--rewards", "spec", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rewards"] == "spec"
