"""Weighted consensus: final = w_t * technical + w_i * (r_proact + r_pers); best agent and history."""

from __future__ import annotations

import json

import pytest

import backends
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.config.settings import Config, WeightsConfig
from ppp_otel.scoring.consensus import (
    Weights,
    consensus,
    consensus_history,
    load_technical_file,
    parse_technical,
    parse_weights,
    resolve_weights,
)
from scoring_data import add_trajectory

EVEN = Weights(0.5, 0.5)


@pytest.fixture
def conn(store_url):
    connection = backends.connect(store_url)
    yield connection
    connection.close()


# --- the formula -----------------------------------------------------------------

def test_final_weighs_technical_and_interaction(conn):
    add_trajectory(conn, "spec", "alpha", questions=["high"], violations=["minor"])
    result = consensus(conn, "spec", technical={"alpha": 0.9}, weights=(0.7, 0.3))
    alpha = result.agent("alpha")
    assert (alpha.technical, alpha.r_proact, alpha.r_pers) == (0.9, -0.5, -0.01)
    assert alpha.final == pytest.approx(0.7 * 0.9 + 0.3 * (-0.5 - 0.01))


def test_default_weights_come_from_the_config(conn):
    add_trajectory(conn, "spec", "alpha")
    config = Config(weights=WeightsConfig(technical=0.2, interaction=0.8))
    result = consensus(conn, "spec", technical={"alpha": 1.0}, config=config)
    assert result.weights == Weights(0.2, 0.8)
    assert result.agent("alpha").final == pytest.approx(0.2 + 0.8 * 0.1)


def test_without_config_file_the_weights_are_seven_and_three_tenths(monkeypatch):
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    assert resolve_weights() == Weights(0.7, 0.3)


def test_the_best_agent_has_the_highest_final_and_its_final_is_the_confidence(conn):
    add_trajectory(conn, "spec", "alpha", questions=["high"])
    add_trajectory(conn, "spec", "beta")
    result = consensus(conn, "spec", technical={"alpha": 0.8, "beta": 0.8}, weights=EVEN)
    assert result.best_agent == "beta"
    assert result.confidence == result.agent("beta").final == 0.45  # 0.5*0.8 + 0.5*0.1
    assert [a.agent_name for a in result.agents] == ["beta", "alpha"]
    assert [a.rank for a in result.agents] == [1, 2]


# --- where technical scores come from ----------------------------------------------

def test_technical_comes_from_the_trajectory_span_attribute(conn):
    add_trajectory(conn, "spec", "alpha", technical_score=0.6)
    add_trajectory(conn, "spec", "alpha", technical_score=1.0)
    alpha = consensus(conn, "spec", weights=EVEN).agent("alpha")
    assert (alpha.technical, alpha.technical_source) == (0.8, "attribute")


def test_a_technical_score_given_by_the_caller_wins_over_the_attribute(conn):
    add_trajectory(conn, "spec", "alpha", technical_score=0.1)
    alpha = consensus(conn, "spec", technical={"alpha": 0.9}, weights=EVEN).agent("alpha")
    assert (alpha.technical, alpha.technical_source) == (0.9, "given")


def test_an_agent_with_no_technical_score_anywhere_is_judged_on_interaction(conn):
    add_trajectory(conn, "spec", "alpha")
    alpha = consensus(conn, "spec", weights=EVEN).agent("alpha")
    assert (alpha.technical, alpha.technical_source, alpha.final) == (None, "none", 0.05)


def test_technical_scores_are_read_from_a_json_file(tmp_path):
    path = tmp_path / "technical.json"
    path.write_text(json.dumps({"alpha": 0.9, "beta": 1}))
    assert load_technical_file(path) == {"alpha": 0.9, "beta": 1.0}


def test_a_technical_file_that_is_not_an_object_of_numbers_is_refused(tmp_path):
    path = tmp_path / "technical.json"
    path.write_text(json.dumps({"alpha": "high"}))
    with pytest.raises(ValueError, match="technical score of alpha must be a finite number"):
        load_technical_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_technical_file(path)


def test_a_missing_technical_file_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="missing.json"):
        load_technical_file(tmp_path / "missing.json")


def test_technical_arguments_are_agent_equals_score():
    assert parse_technical(["alpha=0.9", "team=b=1"]) == {"alpha": 0.9, "team=b": 1.0}


@pytest.mark.parametrize("item", ["alpha", "=0.5", "alpha=", "alpha=high", "alpha=nan"])
def test_a_malformed_technical_argument_is_refused(item):
    with pytest.raises(ValueError):
        parse_technical([item])


# --- agents with and without trajectories -------------------------------------------

def test_an_agent_named_with_no_trajectory_is_scored_on_technical_alone(conn):
    add_trajectory(conn, "spec", "alpha")
    result = consensus(conn, "spec", technical={"alpha": 0.5, "ghost": 0.9}, weights=(0.7, 0.3),
                       agents=["alpha", "ghost"])
    ghost = result.agent("ghost")
    assert ghost.technical_only is True
    assert (ghost.r_proact, ghost.r_pers, ghost.trajectory_ids) == (None, None, [])
    assert ghost.final == pytest.approx(0.7 * 0.9)
    assert result.agent("alpha").technical_only is False


def test_a_spec_with_no_trajectories_is_judged_on_technical_scores_alone(conn):
    result = consensus(conn, "no-trajectories", technical={"alpha": 0.4, "beta": 0.6}, weights=EVEN)
    assert result.best_agent == "beta"
    assert all(a.technical_only for a in result.agents)


def test_a_technical_score_for_an_agent_not_on_the_spec_is_an_error_naming_its_agents(conn):
    add_trajectory(conn, "spec", "careful-agent")
    add_trajectory(conn, "spec", "hasty-agent")
    with pytest.raises(ValueError, match="carefull-agent.*careful-agent, hasty-agent"):
        consensus(conn, "spec", technical={"carefull-agent": 0.9}, weights=EVEN)


@pytest.mark.parametrize("score", [1.22, -0.1])
def test_a_technical_score_outside_zero_to_one_is_an_error(conn, score):
    add_trajectory(conn, "spec", "alpha")
    with pytest.raises(ValueError, match="between 0 and 1"):
        consensus(conn, "spec", technical={"alpha": score}, weights=EVEN)


def test_no_agents_at_all_is_an_error(conn):
    with pytest.raises(ValueError, match="no agents to judge for spec nothing"):
        consensus(conn, "nothing", weights=EVEN)


def test_an_agent_named_with_neither_a_trajectory_nor_a_technical_score_is_unknown(conn):
    add_trajectory(conn, "spec", "alpha")
    with pytest.raises(ValueError, match="unknown agent.*zeta"):
        consensus(conn, "spec", agents=["alpha", "zeta"], weights=EVEN)


def test_naming_agents_judges_only_those(conn):
    add_trajectory(conn, "spec", "alpha")
    add_trajectory(conn, "spec", "beta")
    result = consensus(conn, "spec", agents=["beta", "ghost"], technical={"ghost": 1.0}, weights=EVEN)
    assert sorted(a.agent_name for a in result.agents) == ["beta", "ghost"]


def test_the_judged_trajectories_are_those_of_the_judged_agents(conn):
    a = add_trajectory(conn, "spec", "alpha")
    add_trajectory(conn, "spec", "beta")
    result = consensus(conn, "spec", agents=["alpha"], weights=EVEN)
    assert [t.trajectory_id for t in result.trajectories] == [a]
    assert result.agent("alpha").trajectory_ids == [a]


# --- ties ----------------------------------------------------------------------------

def test_equal_finals_go_to_the_higher_technical_score(conn):
    add_trajectory(conn, "spec", "alpha", questions=["medium"])  # interaction -0.05
    add_trajectory(conn, "spec", "beta")  # interaction 0.1
    # alpha: 0.5*0.65 + 0.5*-0.05 = 0.3 ; beta: 0.5*0.5 + 0.5*0.1 = 0.3
    result = consensus(conn, "spec", technical={"alpha": 0.65, "beta": 0.5}, weights=EVEN)
    assert result.agent("alpha").final == result.agent("beta").final
    assert result.best_agent == "alpha"


def test_equal_finals_and_technical_scores_go_to_the_first_name(conn):
    for agent in ("gamma", "beta", "delta"):
        add_trajectory(conn, "spec", agent)
    result = consensus(conn, "spec", technical=dict.fromkeys(["gamma", "beta", "delta"], 0.5),
                       weights=EVEN)
    assert [a.agent_name for a in result.agents] == ["beta", "delta", "gamma"]


def test_the_tie_break_does_not_depend_on_insertion_order(db_path, tmp_path):
    results = []
    for i, order in enumerate((["a", "b"], ["b", "a"])):
        conn = schema.connect(tmp_path / f"{i}.db")
        for agent in order:
            add_trajectory(conn, "spec", agent)
        results.append(consensus(conn, "spec", weights=EVEN).best_agent)
        conn.close()
    assert results == ["a", "a"]


# --- weights errors --------------------------------------------------------------------

def test_a_negative_weight_is_an_error(conn):
    add_trajectory(conn, "spec", "alpha")
    with pytest.raises(ValueError, match="weight technical must be >= 0"):
        consensus(conn, "spec", weights=(-0.1, 1.0))


def test_both_weights_zero_is_an_error():
    with pytest.raises(ValueError, match="both 0"):
        Weights(0, 0)


def test_weights_are_parsed_from_technical_comma_interaction():
    assert parse_weights("0.6, 0.4") == Weights(0.6, 0.4)


@pytest.mark.parametrize("text", ["0.7", "0.7;0.3", "a,b", "0.7,0.3,0", "-1,1", "inf,1"])
def test_malformed_weights_are_refused(text):
    with pytest.raises(ValueError):
        parse_weights(text)



@pytest.mark.parametrize("weights", [(0.7,), (0.7, 0.3, 0.0), {"technical": 0.7}, {"tech": 0.7, "interaction": 0.3},
                                     0.7])
def test_weights_of_the_wrong_shape_are_refused_naming_the_shape(weights):
    with pytest.raises(ValueError, match="technical and interaction"):
        resolve_weights(weights)


def test_weights_given_as_text_read_as_on_the_command_line():
    assert resolve_weights("0.6,0.4") == Weights(0.6, 0.4)

# --- history ------------------------------------------------------------------------------

def test_each_run_is_stored_and_read_back_newest_first(conn):
    add_trajectory(conn, "spec", "alpha")
    first = consensus(conn, "spec", technical={"alpha": 0.1, "ghost": 0.2}, weights=EVEN,
                      agents=["alpha", "ghost"])
    second = consensus(conn, "spec", technical={"alpha": 0.9}, weights=(0.7, 0.3))
    history = consensus_history(conn, "spec")
    assert [run.consensus_id for run in history] == [second.consensus_id, first.consensus_id]
    assert history[1].to_dict() == first.to_dict()
    assert history[0].to_dict() == second.to_dict()


def test_history_is_per_spec_and_can_be_limited(conn):
    add_trajectory(conn, "spec-1", "alpha")
    add_trajectory(conn, "spec-2", "alpha")
    for _ in range(3):
        consensus(conn, "spec-1", weights=EVEN)
    consensus(conn, "spec-2", weights=EVEN)
    assert len(consensus_history(conn, "spec-1")) == 3
    assert len(consensus_history(conn, "spec-1", limit=2)) == 2
    assert {run.spec_id for run in consensus_history(conn, "spec-2")} == {"spec-2"}


def test_a_run_not_stored_leaves_no_history(conn):
    add_trajectory(conn, "spec", "alpha")
    result = consensus(conn, "spec", weights=EVEN, store=False)
    assert result.consensus_id is None
    assert consensus_history(conn, "spec") == []


def test_consensus_on_a_path_stores_in_that_file(conn, store_url):
    add_trajectory(conn, "spec", "alpha")
    stored = consensus(store_url, "spec", weights=EVEN)
    assert consensus_history(store_url, "spec")[0].consensus_id == stored.consensus_id
