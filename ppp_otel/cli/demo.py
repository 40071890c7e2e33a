"""``ppp-otel demo``: agent turns -> SQLite -> scores, with no server."""

from __future__ import annotations

import argparse
from typing import Any

from ppp_otel.demo import record_demo
from ppp_otel.storage.backends import display_name, open_store as TrajectoryStore
from ppp_otel.cli._output import print_json, print_table


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "demo", parents=[common],
        help="record a small multi-agent run through the real pipeline and score it",
        description="Three agents work on one task for a user with interaction preferences; their "
        "turns go through a real OpenTelemetry pipeline into the database (no server), the "
        "recorder finds their questions and violations, and the rewards and consensus are printed. "
        "Each run adds a new run id; consensus covers every run of the demo spec in the file.",
    )
    p.set_defaults(func=run)


def _landed(db_path: str, run_id: str) -> list:
    with TrajectoryStore(db_path) as store:
        return [store.get_trajectory(s.id) for s in store.list_trajectories(run_id=run_id)]


def _scores(db_path: str, run) -> tuple[list, Any]:
    """Rewards and consensus, when the scoring modules are installed with this version."""
    try:
        from ppp_otel.scoring.consensus import consensus
        from ppp_otel.scoring.rewards import score_trajectories
    except ImportError:
        return [], None
    scores = [s for s in score_trajectories(db_path, spec_id=run.spec_id) if s.run_id == run.run_id]
    # Technical scores come from each trajectory's ppp.technical_score attribute.
    result = consensus(db_path, run.spec_id, store=True)
    return scores, result


def run(args: argparse.Namespace) -> int:
    demo = record_demo(args.db)
    trajectories = _landed(args.db, demo.run_id)
    scores, result = _scores(args.db, demo)
    if args.json:
        print_json({
            "db_path": display_name(demo.db_path),
            "run_id": demo.run_id,
            "spec_id": demo.spec_id,
            "recorder": demo.recorder,
            "trajectories": trajectories,
            "scores": scores,
            "consensus": result,
        })
        return 0

    print(f"Recorded run {demo.run_id} of spec {demo.spec_id!r} into {display_name(demo.db_path)}\n")
    print_table(
        [(t.id, t.agent_name, t.turn_count, t.question_count, t.violation_count) for t in trajectories],
        ["trajectory", "agent", "turns", "questions", "violations"],
    )
    print("\nQuestions (extracted from responses unless the agent code reported them):")
    print_table(
        [(t.agent_name, turn.number, q.text, q.effort_level, q.source)
         for t in trajectories for turn in t.turns for q in turn.questions],
        ["agent", "turn", "question", "effort", "source"], max_width=70,
    )
    print("\nPreference violations (detected from the user's preferences unless reported):")
    print_table(
        [(t.agent_name, turn.number, v.preference_name, v.expected, v.actual, v.severity)
         for t in trajectories for turn in t.turns for v in turn.violations],
        ["agent", "turn", "preference", "expected", "actual", "severity"], max_width=36,
    )
    if scores:
        print("\nRewards:")
        print_table(
            [(s.trajectory_id, s.agent_name, s.r_proact, s.r_pers) for s in scores],
            ["trajectory", "agent", "r_proact", "r_pers"],
        )
    if result is not None:
        w = result.weights
        print(f"\nConsensus (final = {w.technical} x technical + {w.interaction} x (r_proact + r_pers)):")
        print_table(
            [(a.agent_name, a.technical, a.r_proact, a.r_pers, a.final) for a in result.agents],
            ["agent", "technical", "r_proact", "r_pers", "final"],
        )
        print(f"\nBest agent: {result.best_agent} (confidence {result.confidence:.3f})")
    shown = display_name(demo.db_path)
    print(f"\nNext: ppp-otel trajectories --db {shown}   |   ppp-otel show ID --db {shown}")
    return 0
