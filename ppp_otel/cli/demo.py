"""``ppp-otel demo``: agent turns -> SQLite -> scores, with no server."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from ppp_otel.config.settings import env_value, process_config
from ppp_otel.demo import record_demo, PROJECT_NAME
from ppp_otel.storage import check_creatable, display_name, open_store
from ppp_otel.cli._output import http_url, print_json, print_table, PROG, score_decimals


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "demo", parents=[common],
        help="record a small multi-agent run through the real pipeline and score it",
        description="Three agents work on one task, in two stages (plan, implement), for a user "
        "with interaction preferences, and again after a prompt change: two runs. Their turns go "
        "through a real OpenTelemetry pipeline into the database (no server), the recorder finds "
        "their questions and violations, and the rewards and the consensus of each stage and run "
        "are printed. Each demo adds two new runs of the demo spec to the file. "
        "With --phoenix, the spans go to that Phoenix too, each turn's questions and violations "
        "as span annotations and the rewards as session annotations.",
    )
    p.add_argument(
        "--run-prefix", metavar="P",
        help="name the two runs P-r1 and P-r2 (default: demo-<random>, new each time); "
        "runs the file already has are refused",
    )
    p.add_argument("--phoenix", metavar="URL", type=http_url,
                   help="also record into this Phoenix, e.g. http://localhost:6006")
    p.add_argument("--project", metavar="NAME", default=None,
                   help=f"Phoenix project (default: $PHOENIX_PROJECT_NAME, else {PROJECT_NAME})")
    p.set_defaults(func=run)


def _refuse_recorded_runs(db_path: str, prefix: str) -> None:
    """A second demo under the same prefix would add its trajectories to the runs already
    there, and every consensus of those runs would average the two demos."""
    from ppp_otel.demo import RUN_NAMES, SPEC_ID

    if "://" not in db_path and not os.path.exists(db_path):
        return
    with open_store(db_path, must_exist=False) as store:
        taken = [run_id for run_id in (f"{prefix}-{name}" for name in RUN_NAMES)
                 if store.list_trajectories(spec_id=SPEC_ID, run_id=run_id, limit=1)]
    if taken:
        raise ValueError(f"{display_name(db_path)} already has run{'s' if len(taken) > 1 else ''} "
                         f"{' and '.join(taken)} of the demo: give another --run-prefix, or another --db")


def _landed(db_path: str, run_ids: list[str]) -> list:
    with open_store(db_path) as store:
        return [store.get_trajectory(s.id) for run_id in run_ids
                for s in store.list_trajectories(run_id=run_id)]


def _scores(db_path: str, demo, config) -> tuple[list, list]:
    """Rewards, and the consensus of each stage of each run, when the scoring modules are
    installed with this version; under the reward profile of ``config``."""
    try:
        from ppp_otel.scoring.consensus import consensus, rewards_profile
        from ppp_otel.scoring.rewards import score_trajectories
    except ImportError:
        return [], []
    profile = rewards_profile(config)
    scores = [s for run_id in demo.run_ids
              for s in score_trajectories(db_path, spec_id=demo.spec_id, run_id=run_id, rewards=profile)]
    # Technical scores come from each trajectory's ppp.technical_score attribute.
    results = [consensus(db_path, demo.spec_id, stage=stage, run_id=run_id, store=True, config=config,
                         rewards=profile)
               for run_id in demo.run_ids for stage in demo.stages]
    return scores, results


def _annotate(args: argparse.Namespace, results: list) -> dict[str, Any] | None:
    """Each stage's and run's rewards and consensus as span and session annotations in Phoenix."""
    if not args.phoenix or not results:
        return None
    from ppp_otel.publish.phoenix_annotations import NOT_REACHED, annotate_consensus

    annotated, failed = [], []
    unreachable = None
    for result in results:
        if unreachable is not None:
            # Known unreachable: each stage and run would wait out its own timeout to learn it again.
            failed += [{"trajectory_id": t.trajectory_id,
                        "error": f"trajectory {t.trajectory_id} ({t.agent_name}), span {t.span_id}: {unreachable}"}
                       for t in result.trajectories]
            continue
        data = annotate_consensus(result, args.phoenix).to_dict()
        annotated += data.get("annotated", [])
        failed += data.get("failed", [])
        unreachable = next((f["error"][f["error"].index(NOT_REACHED):] for f in data.get("failed", [])
                            if NOT_REACHED in f["error"]), None)
    if failed:
        # One line, not one per trajectory: the reason is the same for all of them.
        print(f"{PROG}: warning: {len(failed)} of {len(failed) + len(annotated)} trajectories could not be "
              f"annotated in Phoenix at {args.phoenix}: {failed[0]['error']}", file=sys.stderr)
    return {"annotated": annotated, "failed": failed}


def run(args: argparse.Namespace) -> int:
    if args.run_prefix is not None and not args.run_prefix.strip():
        raise ValueError("--run-prefix must not be empty")
    # At once, not after a writer has retried for a minute.
    check_creatable(args.db, choose="--db / PPP_OTEL_DB")
    if args.run_prefix is not None:
        _refuse_recorded_runs(args.db, args.run_prefix)
    project = args.project or env_value("PHOENIX_PROJECT_NAME") or PROJECT_NAME
    demo = record_demo(args.db, run_id=args.run_prefix, phoenix=args.phoenix, project_name=project)
    trajectories = _landed(args.db, demo.run_ids)
    scores, results = _scores(args.db, demo, getattr(args, "settings", None) or process_config())
    annotations = _annotate(args, results)
    # Asked to record into Phoenix and nothing got there: a script must see it.
    status = 1 if args.phoenix and not (annotations and annotations["annotated"]) else 0
    if args.json:
        data = {
            "db_path": display_name(demo.db_path),
            "run_id": demo.run_id,
            "run_ids": demo.run_ids,
            "stages": list(demo.stages),
            "spec_id": demo.spec_id,
            "recorder": demo.recorder,
            "trajectories": trajectories,
            "scores": scores,
            "consensus": results,
        }
        if args.phoenix:
            data["phoenix"] = {"url": args.phoenix, "project": project, "judgments": demo.phoenix,
                               "annotations": annotations}
        print_json(data)
        return status

    runs = " and ".join(demo.run_ids)
    print(f"Recorded runs {runs} of spec {demo.spec_id!r}, stages {', '.join(demo.stages)}, "
          f"into {display_name(demo.db_path)}\n")
    print_table(
        [(t.id, t.stage, t.agent_name, t.run_id, t.turn_count, t.question_count, t.violation_count)
         for t in trajectories],
        ["trajectory", "stage", "agent", "run", "turns", "questions", "violations"],
    )
    print("\nQuestions (extracted from responses unless the agent code reported them):")
    print_table(
        [(t.id, t.agent_name, turn.number, q.text, q.effort_level, q.source)
         for t in trajectories for turn in t.turns for q in turn.questions],
        ["trajectory", "agent", "turn", "question", "effort", "source"], max_width=70,
    )
    print("\nPreference violations (detected from the user's preferences unless reported):")
    print_table(
        [(t.id, t.agent_name, turn.number, v.preference_name, v.actual, v.severity)
         for t in trajectories for turn in t.turns for v in turn.violations],
        ["trajectory", "agent", "turn", "preference", "actual", "severity"], max_width=40,
    )
    if scores:
        print("\nRewards:")
        print_table(
            [(s.trajectory_id, s.stage, s.agent_name, s.run_id, s.r_proact, s.r_pers) for s in scores],
            ["trajectory", "stage", "agent", "run", "r_proact", "r_pers"],
            decimals=score_decimals("r_proact", "r_pers"),
        )
    if results:
        w = results[0].weights
        print(f"\nConsensus of each stage and run (final = {w.technical} x technical + "
              f"{w.interaction} x (r_proact + r_pers)):")
        agents = [a.agent_name for a in sorted(results[0].agents, key=lambda a: a.agent_name)]
        print_table(
            [(r.stage, r.run_id, r.best_agent, r.confidence) + tuple(r.agent(a).final for a in agents)
             for r in results],
            ["stage", "run", "best agent", "confidence"] + [f"final {a}" for a in agents],
            decimals=score_decimals("confidence", *(f"final {a}" for a in agents)),
        )
    db = display_name(demo.db_path)
    if args.phoenix:
        sent = len(annotations["annotated"]) if annotations else 0
        if sent:
            print(f"\nPhoenix: spans, judgments and rewards of {sent} trajectories sent to {args.phoenix}, "
                  f"project {project}; open it and choose Sessions.")
        else:
            print(f"\nPhoenix: nothing reached {args.phoenix} (is `phoenix serve` running there?); "
                  f"the run is in {db}, and `ppp-otel export --db {db} --to {args.phoenix}` sends it later.")
    print("\nNext:")
    masked = db != os.fspath(demo.db_path)  # the URL's password is not printed
    # Named by PPP_OTEL_DB or the config, the store needs no --db: one with *** in it would not log in.
    where = "" if masked and not getattr(args, "db_given", True) else f" --db {db}"
    print(f"  ppp-otel report{where} --out report.html      # a page to look at (the report extra)")
    print(f"  ppp-otel trends{where} --spec {demo.spec_id}  # run against run")
    print(f"  ppp-otel show ID{where}                        # one trajectory's turns")
    if masked and where:
        print("  (*** is the URL's password, not printed: put it back, or keep it in PGPASSWORD or ~/.pgpass)")
    return status
