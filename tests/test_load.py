"""Load: 10,000 trajectories of 20 turns, with questions and violations, stay quick to list, fetch and score.

The strict figures (20 ms) are measured by the benchmark report; here the
durations are printed and only generous bounds are asserted, so a busy
machine does not fail the suite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ppp_otel.storage.sqlite.reader import TrajectoryStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load_data import AGENTS, RUNS, SPECS, TURNS, build  # noqa: E402

pytestmark = pytest.mark.slow

GENEROUS_S = 1.0


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = tmp_path_factory.mktemp("load") / "load.db"
    began = time.perf_counter()
    outcome = build(path)
    print(f"\nwrote {outcome.turns} turns in {time.perf_counter() - began:.1f} s")
    assert outcome.trajectories == SPECS * AGENTS * RUNS
    assert outcome.turns == SPECS * AGENTS * RUNS * TURNS and not outcome.rejected
    return path


def timed(label: str, work):
    began = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - began
    print(f"{label}: {seconds * 1000:.2f} ms")
    return result, seconds


def test_listing_a_spec_with_a_limit_returns_the_right_trajectories_and_counts(loaded):
    with TrajectoryStore(loaded) as store:
        found, seconds = timed("list spec-42 limit 50", lambda: store.list_trajectories(spec_id="spec-42", limit=50))
        everything = store.list_trajectories(spec_id="spec-42")
    assert seconds < GENEROUS_S
    assert len(found) == 50 and len(everything) == AGENTS * RUNS
    assert {t.spec_id for t in found} == {"spec-42"}
    assert all((t.turn_count, t.question_count, t.violation_count) == (TURNS, TURNS + 2, 2) for t in found)


def test_fetching_one_trajectory_returns_its_turns_questions_and_violations(loaded):
    with TrajectoryStore(loaded) as store:
        target = store.list_trajectories(spec_id="spec-77", agent_name="agent-3", run_id="run-4")[0]
        found, seconds = timed("get one trajectory", lambda: store.get_trajectory(target.id))
    assert seconds < GENEROUS_S
    assert [t.number for t in found.turns] == list(range(1, TURNS + 1))
    assert sum(len(t.questions) for t in found.turns) == TURNS + 2
    assert [v.severity for t in found.turns for v in t.violations] == ["minor", "major"]


def test_scoring_one_trajectory_applies_the_spec_rewards(loaded):
    scoring = pytest.importorskip("ppp_otel.scoring.rewards")
    with TrajectoryStore(loaded) as store:
        target = store.list_trajectories(spec_id="spec-5", limit=1)[0]
    score, seconds = timed("score one trajectory", lambda: scoring.score_trajectory(loaded, target.id))
    assert seconds < GENEROUS_S
    assert score.questions == {"low": TURNS, "medium": 1, "high": 1}
    assert score.violations == {"minor": 1, "major": 1, "critical": 0}
    assert score.r_proact == pytest.approx(-0.1 - 0.5)
    assert score.r_pers == pytest.approx(-0.01 - 0.03)


def test_consensus_over_ten_agents_of_a_spec_picks_the_best_technical_score(loaded):
    consensus = pytest.importorskip("ppp_otel.scoring.consensus")
    # The load has one run per agent, ten in all: consensus says it averaged them.
    with pytest.warns(consensus.MixedConsensusWarning, match="averaged each agent over 10 runs"):
        result, seconds = timed(
            "consensus over 10 agents",
            lambda: consensus.consensus(loaded, "spec-9", weights=(0.7, 0.3), store=False),
        )
    assert seconds < GENEROUS_S
    assert len(result.agents) == AGENTS and result.best_agent == "agent-9"
    assert result.confidence == pytest.approx(0.7 * 0.9 + 0.3 * (-0.6 - 0.04))
