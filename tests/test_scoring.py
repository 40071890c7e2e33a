"""R_Proact and R_Pers, as the spec states them, read from SQLite and from PostgreSQL."""

from __future__ import annotations

import pytest

from ppp_otel.scoring import arewards as ascoring

import backends
from ppp_otel.storage.sqlite import migrations as schema

from ppp_otel.scoring import rewards as scoring
from ppp_otel.storage import using_store
from ppp_otel.storage.sqlite.migrations import DatabaseError
from scoring_data import add_trajectory


@pytest.fixture
def conn(store_url):
    connection = backends.connect(store_url)
    yield connection
    connection.close()


@pytest.fixture
def sqlite_conn(db_path):
    connection = schema.connect(db_path)
    yield connection
    connection.close()


def r_proact_of(conn, *efforts):
    tid = add_trajectory(conn, "spec", "agent", questions=efforts, turns=3)
    return scoring.score_trajectory(conn, tid).r_proact


def r_pers_of(conn, *severities):
    tid = add_trajectory(conn, "spec", "agent", violations=severities, turns=3)
    return scoring.score_trajectory(conn, tid).r_pers


# --- the spec's reward examples ----------------------------------------------

def test_no_questions_earn_the_proactivity_bonus(conn):
    assert r_proact_of(conn) == 0.05


def test_two_low_effort_questions_earn_the_proactivity_bonus(conn):
    assert r_proact_of(conn, "low", "low") == 0.05


def test_adding_a_high_effort_question_to_two_low_ones_costs_half_a_point(conn):
    assert r_proact_of(conn, "low", "low", "high") == -0.5


def test_each_medium_effort_question_costs_a_tenth(conn):
    assert r_proact_of(conn, "medium", "medium", "medium") == -0.3


def test_medium_and_high_questions_add_up(conn):
    assert r_proact_of(conn, "medium", "high", "low") == -0.6


# --- the spec's violation examples --------------------------------------------

def test_no_violations_earn_the_personalization_bonus(conn):
    assert r_pers_of(conn) == 0.05


def test_a_minor_violation_costs_a_hundredth(conn):
    assert r_pers_of(conn, "minor") == -0.01


def test_a_major_violation_costs_three_hundredths(conn):
    assert r_pers_of(conn, "major") == -0.03


def test_a_critical_violation_costs_five_hundredths(conn):
    assert r_pers_of(conn, "critical") == -0.05


def test_violations_of_every_severity_add_up(conn):
    assert r_pers_of(conn, "minor", "minor", "major", "critical") == -0.1


# --- what a score carries -----------------------------------------------------

def test_a_score_counts_questions_by_effort_and_violations_by_severity(conn):
    tid = add_trajectory(conn, "spec", "agent", questions=["low", "high", "high"],
                         violations=["major"], turns=2, technical_score=0.8, run_id="r1")
    score = scoring.score_trajectory(conn, tid)
    assert score.to_dict() == {
        "trajectory_id": tid, "spec_id": "spec", "agent_name": "agent", "run_id": "r1",
        "r_proact": -1.0, "r_pers": -0.03,
        "questions": {"low": 1, "medium": 0, "high": 2},
        "violations": {"minor": 0, "major": 1, "critical": 0},
        "technical_score": 0.8, "trace_id": score.trace_id, "span_id": score.span_id,
        "stage": None, "created_at": score.created_at,
        "rewards": "spec",
    }


def test_scoring_an_unknown_trajectory_gives_none(conn):
    assert scoring.score_trajectory(conn, 12345) is None


def test_a_trajectory_without_turns_earns_both_bonuses(conn):
    tid = add_trajectory(conn, "spec", "agent", turns=0)
    score = scoring.score_trajectory(conn, tid)
    assert (score.r_proact, score.r_pers) == (0.05, 0.05)


def test_scoring_a_path_opens_and_closes_the_database(conn, store_url):
    tid = add_trajectory(conn, "spec", "agent", questions=["high"])
    assert scoring.score_trajectory(store_url, tid).r_proact == -0.5


def test_scoring_a_missing_file_is_an_error_and_creates_nothing(tmp_path):
    with pytest.raises(DatabaseError, match="no such database file"):
        scoring.score_spec(tmp_path / "missing.db", "spec")
    assert not (tmp_path / "missing.db").exists()


# --- per spec and per agent ---------------------------------------------------

def test_a_spec_is_scored_trajectory_by_trajectory_and_only_that_spec(conn):
    a = add_trajectory(conn, "spec-1", "alpha", questions=["high"])
    b = add_trajectory(conn, "spec-1", "beta", violations=["minor"])
    add_trajectory(conn, "spec-2", "alpha", questions=["medium"])
    scores = scoring.score_spec(conn, "spec-1")
    assert [(s.trajectory_id, s.r_proact, s.r_pers) for s in scores] == [
        (a, -0.5, 0.05), (b, 0.05, -0.01)
    ]


def test_an_agent_scores_the_mean_of_its_trajectories_of_the_spec(conn):
    first = add_trajectory(conn, "spec", "alpha", questions=["high"], technical_score=1.0)
    second = add_trajectory(conn, "spec", "alpha", violations=["critical"], technical_score=0.5)
    add_trajectory(conn, "other-spec", "alpha", questions=["high", "high"])
    alpha = scoring.score_agents(conn, "spec")["alpha"]
    assert alpha.r_proact == -0.225  # mean of -0.5 and 0.05
    assert alpha.r_pers == 0.0  # mean of 0.05 and -0.05
    assert alpha.technical_score == 0.75
    assert alpha.trajectory_ids == [first, second]
    assert alpha.questions == {"low": 0, "medium": 0, "high": 1}
    assert alpha.violations == {"minor": 0, "major": 0, "critical": 1}


def test_agents_are_listed_by_name(conn):
    for agent in ("gamma", "alpha", "beta"):
        add_trajectory(conn, "spec", agent)
    assert list(scoring.score_agents(conn, "spec")) == ["alpha", "beta", "gamma"]


def test_an_agent_without_technical_scores_has_none(conn):
    add_trajectory(conn, "spec", "alpha")
    assert scoring.score_agents(conn, "spec")["alpha"].technical_score is None


def test_a_spec_with_no_trajectories_scores_nothing(conn):
    assert scoring.score_spec(conn, "nothing") == []
    assert scoring.score_agents(conn, "nothing") == {}


def test_an_agent_filter_needs_a_spec(conn):
    with pytest.raises(ValueError, match="spec_id"):
        scoring.score_trajectories(conn, agent_name="alpha")


def test_without_filters_every_trajectory_is_scored(conn):
    ids = [add_trajectory(conn, spec, "alpha") for spec in ("s1", "s2", "s3")]
    assert [s.trajectory_id for s in scoring.score_trajectories(conn)] == ids


# --- sync and async agree -----------------------------------------------------

@pytest.fixture
def mixed(sqlite_conn):
    conn = sqlite_conn
    add_trajectory(conn, "spec", "alpha", questions=["low", "high"], violations=["minor"], turns=4)
    add_trajectory(conn, "spec", "alpha", questions=["medium"], technical_score=0.4)
    add_trajectory(conn, "spec", "beta", violations=["major", "critical"], turns=2)
    add_trajectory(conn, "other", "beta")
    return conn


async def test_async_scores_a_spec_as_the_sync_api_does(mixed, db_path):
    assert await ascoring.score_spec(db_path, "spec") == scoring.score_spec(mixed, "spec")


async def test_async_scores_agents_as_the_sync_api_does(mixed, db_path):
    assert await ascoring.score_agents(db_path, "spec") == scoring.score_agents(mixed, "spec")


async def test_async_scores_one_trajectory_as_the_sync_api_does(mixed, db_path):
    assert await ascoring.score_trajectory(db_path, 1) == scoring.score_trajectory(mixed, 1)
    assert await ascoring.score_trajectories(db_path) == scoring.score_trajectories(mixed)


async def test_async_scoring_accepts_an_open_store(mixed, db_path):
    from ppp_otel.storage.aio import AsyncTrajectoryStore

    async with AsyncTrajectoryStore(db_path) as store:
        assert await ascoring.score_spec(store, "spec") == scoring.score_spec(mixed, "spec")


async def test_async_scoring_given_a_sync_connection_says_what_it_takes(mixed):
    with pytest.raises(TypeError, match=r"db must be an open AsyncTrajectoryStore or a database path or URL, "
                                        r"got Connection .*ppp_otel\.scoring\.rewards"):
        await ascoring.score_spec(mixed, "spec")


def test_score_columns_hold_every_field_of_each_score(conn):
    add_trajectory(conn, "spec", "a", questions=("low", "high"), violations=("major",), turns=3,
                   technical_score=0.5, run_id="r1", stage="plan")
    add_trajectory(conn, "spec", "b", questions=("medium",), turns=2)
    add_trajectory(conn, "other", "a", turns=1)
    for choice in ({}, {"spec_id": "spec"}, {"spec_id": "spec", "agent_name": "b"}):
        expected = [(s.trajectory_id, s.spec_id, s.agent_name, s.run_id, s.r_proact, s.r_pers,
                     tuple(s.questions.values()), tuple(s.violations.values()), s.technical_score, s.stage)
                    for s in scoring.score_trajectories(conn, **choice)]
        assert list(zip(*scoring.score_columns(conn, **choice).values())) == expected


def test_score_columns_of_a_backend_that_only_gives_rows_are_the_same(conn):
    add_trajectory(conn, "spec", "a", questions=("low", "high"), violations=("major", "minor"), turns=3)
    add_trajectory(conn, "spec", "b", questions=("medium",), turns=2)

    class RowsOnly:
        def __init__(self, store):
            self.score_counts = store.score_counts

    with using_store(conn) as store:
        assert scoring.score_columns(RowsOnly(store)) == scoring.score_columns(store)


@pytest.mark.parametrize("profile", ["spec", "paper"])
def test_score_columns_are_the_scores_of_each_trajectory_by_column(conn, profile):
    add_trajectory(conn, "spec", "a", questions=("low", "high"), violations=("major",), turns=3)
    add_trajectory(conn, "spec", "b", questions=("medium",), turns=2)
    add_trajectory(conn, "other", "a", turns=1)
    for choice in ({}, {"spec_id": "spec"}, {"spec_id": "nothing"}):
        scores = scoring.score_trajectories(conn, rewards=profile, **choice)
        columns = scoring.score_columns(conn, rewards=profile, **choice)
        assert tuple(columns) == scoring.SCORE_ROW_COLUMNS
        assert columns["r_proact"] == [s.r_proact for s in scores]
        assert columns["r_pers"] == [s.r_pers for s in scores]
        assert columns["questions"] == [tuple(s.questions.values()) for s in scores]
        assert columns["violations"] == [tuple(s.violations.values()) for s in scores]
        assert columns["trajectory_id"] == [s.trajectory_id for s in scores]


def test_a_score_as_a_dict_is_what_asdict_gives(conn):
    import dataclasses

    add_trajectory(conn, "spec", "a", questions=("low", "high"), violations=("major",), turns=3)
    for score in scoring.score_trajectories(conn) + scoring.score_trajectories(conn, rewards="paper"):
        assert score.to_dict() == dataclasses.asdict(score)
        assert list(score.to_dict()) == [f.name for f in dataclasses.fields(score)]
        assert score.to_dict()["questions"] is not score.questions
