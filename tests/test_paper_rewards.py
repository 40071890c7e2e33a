"""The ``paper`` reward profile returns what the PPP paper's own reward code returns, case by case.

The oracle (tests/paper_oracle.py) is the paper's REWARD_FUNCTIONS and
calculate_preference_reward as written; each case is written to a real SQLite
file and a real PostgreSQL store the way the recorder writes it and scored with ``rewards="paper"``.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paper_oracle
from ppp_otel.scoring import arewards as ascoring
import backends
from ppp_otel.scoring import rewards as scoring
from ppp_otel.model import Question, Violation
from ppp_otel.scoring.paper import PAPER_NAMES
from ppp_otel.records import TrajectoryRecord, TurnRecord

OURS = {paper: ours for ours, paper in PAPER_NAMES.items()}
LEVEL_EFFORT = {1: "low", 2: "medium", 3: "high"}
_ids = itertools.count(1)


def write_case(conn, agent_messages, preference_names, *, extra_questions=0):
    """One trajectory: a turn per agent message; an ask's questions have the ask's
    level as their costliest effort, and a rejected preference is a violation."""
    n = next(_ids)
    trace_id, span_id = format(n, "032x"), format(n, "016x")
    preferences = tuple(OURS[name] for name in preference_names)
    records = [TrajectoryRecord(trace_id, span_id, "spec", "agent", preferences=preferences)]
    for i, ask in enumerate(agent_messages):
        turn = TurnRecord(trace_id, format(n * 1000 + i, "016x"), (trace_id, span_id), i + 1,
                          f"prompt {i}", f"response {i}", extract_questions=False)
        if ask is not None:
            level, rejected = ask
            turn.questions.append(Question(f"question {i}?", LEVEL_EFFORT[level]))
            # More questions in the same ask, none costlier: still one ask of that cost.
            for k in range(extra_questions):
                turn.questions.append(Question(f"question {i}.{k}?", "low"))
            for name in sorted(rejected):
                turn.violations.append(Violation(OURS[name], "expected", "actual", "major"))
        records.append(turn)
    assert not backends.write_all(conn, records).rejected
    mark = "%s" if backends.is_postgres_connection(conn) else "?"
    return conn.execute(f"SELECT id FROM trajectories WHERE span_id = {mark}", (span_id,)).fetchone()[0]


@pytest.fixture
def conn(store_url):
    connection = backends.connect(store_url)
    yield connection
    connection.close()


def paper_score(conn, tid):
    return scoring.score_trajectory(conn, tid, rewards="paper")


def expect(agent_messages, names):
    return paper_oracle.r_proact(agent_messages), paper_oracle.r_pers(agent_messages, names)


# --- the cases the paper's code singles out ------------------------------------

NAMED_CASES = {
    "asking nothing earns no proactivity bonus": ([None, None], ["no_preference"]),
    "one low ask earns the bonus": ([(1, set())], ["no_preference"]),
    "a medium ask costs 0.1 and voids the bonus": ([(1, set()), (2, set())], ["no_preference"]),
    "a high ask costs 0.5": ([(3, set()), (3, set())], ["no_preference"]),
    "no_ask costs 1 once however many asks": ([(1, set()), (1, set()), (1, set())], ["no_ask"]),
    "no_ask without asks is 0 and gets no bonus": ([None], ["no_ask"]),
    "only_begin forgives an ask in the first message": ([(1, set()), None], ["only_begin"]),
    "only_begin costs 1 for a later ask": ([None, (1, set())], ["only_begin"]),
    "ask_many costs 1 for a second asking turn": ([(1, set()), (1, set())], ["ask_many"]),
    "answer_more costs 3 with no ask": ([None], ["answer_more"]),
    "answer_more costs 1 with two asks": ([(1, set()), (1, set())], ["answer_more"]),
    "answer_more is satisfied by three asks": ([(1, set())] * 3, ["answer_more"]),
    "a rejected selection ask costs 0.5": ([(1, {"do_selection"}), (1, set())], ["do_selection"]),
    "a rejected concise ask costs 0.1": ([(1, {"concise_question"})], ["concise_question"]),
    "professional has no function": ([(3, {"professional"})], ["professional"]),
    "a complied preference earns 0.05 per preference": ([(1, set())], ["lang_ita", "json"]),
    "no preferences, no personalization reward": ([(1, set())], []),
}


@pytest.mark.parametrize("case", NAMED_CASES, ids=list(NAMED_CASES))
def test_a_named_case_scores_as_the_papers_code(conn, case):
    agent_messages, names = NAMED_CASES[case]
    score = paper_score(conn, write_case(conn, agent_messages, names))
    r_proact, r_pers = expect(agent_messages, names)
    assert score.r_proact == pytest.approx(r_proact)
    assert score.r_pers == pytest.approx(r_pers)
    assert score.rewards == "paper"


def test_an_ask_of_several_questions_is_one_ask_priced_at_its_costliest(conn):
    agent_messages = [(2, set()), (1, set())]
    tid = write_case(conn, agent_messages, ["one_question"], extra_questions=2)
    score = paper_score(conn, tid)
    assert score.questions == {"low": 5, "medium": 1, "high": 0}
    assert score.r_proact == pytest.approx(paper_oracle.r_proact(agent_messages)) == -0.1


def test_preferences_the_paper_does_not_have_give_no_paper_reward(conn):
    n = next(_ids)
    trace_id, span_id = format(n, "032x"), format(n, "016x")
    records = [TrajectoryRecord(trace_id, span_id, "spec", "agent", preferences=("max_words(limit=5)",)),
               TurnRecord(trace_id, format(n, "016x"), (trace_id, span_id), 1, "p", "r",
                          questions=[Question("q?", "low")],
                          violations=[Violation("max_words", "e", "a", "major")],
                          extract_questions=False)]
    backends.write_all(conn, records)
    tid = scoring.score_trajectories(conn)[-1].trajectory_id
    assert paper_score(conn, tid).r_pers == 0


def test_the_spec_profile_stays_the_default(conn):
    tid = write_case(conn, [None], ["no_ask"])
    score = scoring.score_trajectory(conn, tid)
    assert (score.rewards, score.r_proact, score.r_pers) == ("spec", 0.05, 0.05)


def test_an_unknown_profile_is_refused(conn):
    with pytest.raises(ValueError, match="unknown reward profile 'papers'"):
        scoring.score_trajectories(conn, rewards="papers")


# --- every case, generated ------------------------------------------------------

_ASK = st.one_of(
    st.none(),
    st.tuples(st.sampled_from([1, 2, 3]), st.frozensets(st.sampled_from(sorted(OURS)), max_size=3)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    agent_messages=st.lists(_ASK, min_size=1, max_size=6),
    names=st.lists(st.sampled_from(sorted(OURS)), max_size=3, unique=True),
)
def test_every_generated_case_scores_as_the_papers_code(conn, agent_messages, names):
    tid = write_case(conn, agent_messages, names)
    score = paper_score(conn, tid)
    r_proact, r_pers = expect(agent_messages, names)
    assert score.r_proact == pytest.approx(r_proact, abs=1e-9)
    assert score.r_pers == pytest.approx(r_pers, abs=1e-9)


def test_async_scoring_gives_the_same_paper_rewards(store_url, conn):
    cases = [([(2, {"json"}), None, (1, set())], ["json", "only_begin"]),
             ([None], ["answer_more"])]
    ids = [write_case(conn, *case) for case in cases]
    sync = scoring.score_trajectories(conn, rewards="paper")
    async_ = asyncio.run(ascoring.score_trajectories(store_url, rewards="paper"))
    assert [(s.trajectory_id, s.r_proact, s.r_pers) for s in async_] == \
        [(s.trajectory_id, s.r_proact, s.r_pers) for s in sync]
    assert [s.trajectory_id for s in sync] == ids


def test_the_consensus_span_and_annotations_name_the_profile(conn):
    from ppp_otel import conventions as c
    from ppp_otel.publish.phoenix_annotations import annotation_payload
    from ppp_otel.scoring.consensus import consensus
    from ppp_otel.publish.consensus_span import consensus_attributes

    write_case(conn, [(1, set())], ["json"])
    result = consensus(conn, "spec", technical={"agent": 1.0}, rewards="paper", store=False)
    assert consensus_attributes(result)[c.CONSENSUS_REWARDS] == "paper"
    payload = annotation_payload(result, result.trajectories[0])
    assert {a["metadata"]["rewards"] for a in payload["data"]} == {"paper"}
    assert "paper rewards" in payload["data"][-1]["result"]["explanation"]


def test_a_consensus_called_without_a_config_takes_the_profile_the_config_file_names(db_path, monkeypatch):
    # As the weights do, and as `ppp-otel consensus` does: [ppp.scoring] rewards = "paper".
    from ppp_otel.scoring.consensus import consensus, run_spec_consensus_weighted
    from ppp_otel.storage.sqlite import migrations as schema

    config = db_path.parent / "ppp.toml"
    config.write_text('[ppp.scoring]\nrewards = "paper"\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    conn = schema.connect(db_path)
    write_case(conn, [None], ["no_ask"])  # nothing asked: 0 and 0 in the paper, 0.05 and 0.05 in the spec
    conn.close()
    for result in (consensus(db_path, "spec", store=False),
                   run_spec_consensus_weighted("spec", db=db_path, store=False)):
        agent = result.agents[0]
        assert (result.rewards, agent.r_proact, agent.r_pers) == ("paper", 0, 0)
