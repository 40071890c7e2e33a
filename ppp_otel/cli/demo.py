"""``ppp-otel demo``: agent turns -> SQLite -> scores, with no server."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from ..demo import PROJECT_NAME, record_demo
from ..store import TrajectoryStore
from ._output import PROG, print_json, print_table


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "demo", parents=[common],
        help="record a small multi-agent run through the real pipeline and score it",
        description="Three agents work on one task for a user with interaction preferences; their "
        "turns go through a real OpenTelemetry pipeline into the database (no server), the "
        "recorder finds their questions and violations, and the rewards and consensus are printed. "
        "Each run adds a new run id; consensus covers every run of the demo spec in the file. "
        "With --phoenix, the spans go to that Phoenix too, each turn's questions and violations "
        "as span annotations and the rewards as session annotations.",
    )
    p.add_argument("--phoenix", metavar="URL",
                   help="also record into this Phoenix, e.g. http://localhost:6006")
    p.add_argument("--project", metavar="NAME", default=None,
                   help=f"Phoenix project (default: $PHOENIX_PROJECT_NAME, else {PROJECT_NAME})")
    p.set_defaults(func=run)


def _landed(db_path: str, run_id: str) -> list:
    with TrajectoryStore(db_path) as store:
        return [store.get_trajectory(s.id) for s in store.list_trajectories(run_id=run_id)]


def _scores(db_path: str, run) -> tuple[list, Any]:
    """Rewards and consensus, when the scoring modules are installed with this version."""
    try:
        from ..consensus import consensus
        from ..scoring import score_trajectories
    except ImportError:
        return [], None
    scores = [s for s in score_trajectories(db_path, spec_id=run.spec_id) if s.run_id == run.run_id]
    # Technical scores come from each trajectory's ppp.technical_score attribute.
    result = consensus(db_path, run.spec_id, store=True)
    return scores, result


def _annotate(args: argparse.Namespace, demo, result) -> dict[str, Any] | None:
    """This run's rewards and consensus as span and session annotations in Phoenix."""
    if not args.phoenix or result is None:
        return None
    from ..annotations import annotate_consensus

    mine = dataclasses.replace(result, trajectories=[t for t in result.trajectories if t.run_id == demo.run_id])
    summary = annotate_consensus(mine, args.phoenix)
    for _, message in summary.failed:
        print(f"{PROG}: warning: annotation failed: {message}", file=sys.stderr)
    return summary.to_dict()


def run(args: argparse.Namespace) -> int:
    project = args.project or os.environ.get("PHOENIX_PROJECT_NAME") or PROJECT_NAME
    demo = record_demo(args.db, phoenix=args.phoenix, project_name=project)
    trajectories = _landed(args.db, demo.run_id)
    scores, result = _scores(args.db, demo)
    annotations = _annotate(args, demo, result)
    if args.json:
        data = {
            "db_path": demo.db_path,
            "run_id": demo.run_id,
            "spec_id": demo.spec_id,
            "recorder": demo.recorder,
            "trajectories": trajectories,
            "scores": scores,
            "consensus": result,
        }
        if args.phoenix:
            data["phoenix"] = {"url": args.phoenix, "project": project, "judgments": demo.phoenix,
                               "annotations": annotations}
        print_json(data)
        return 0

    print(f"Recorded run {demo.run_id} of spec {demo.spec_id!r} into {demo.db_path}\n")
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
    if args.phoenix:
        sent = len(annotations["annotated"]) if annotations else 0
        print(f"\nPhoenix: spans, judgments and rewards of {sent} trajectories sent to {args.phoenix}, "
              f"project {project}; open it and choose Sessions.")
    print(f"\nNext: ppp-otel trajectories --db {demo.db_path}   |   ppp-otel show ID --db {demo.db_path}")
    return 0
