"""Commands that score: score, consensus, consensus-history.

A thin shell over :mod:`ppp_otel.scoring.rewards`, :mod:`ppp_otel.scoring.consensus`,
:mod:`ppp_otel.publish.consensus_span` and :mod:`ppp_otel.publish.phoenix_annotations`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from ppp_otel.scoring.consensus import (
    ATTRIBUTE,
    NONE,
    ConsensusResult,
    consensus,
    consensus_history,
    load_technical_file,
    parse_technical,
    parse_weights,
)
from ppp_otel.storage.backends import connect, display_name
from ppp_otel.scoring.rewards import score_trajectories
from ppp_otel.cli._output import PROG, fail, print_json, print_table


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "score", parents=[common], help="R_Proact and R_Pers of trajectories"
    )
    p.add_argument("--spec", metavar="S", help="only this spec id")
    p.add_argument("--agent", metavar="A", help="only this agent (with --spec)")
    p.add_argument("--trajectory", metavar="ID", type=int, help="only this trajectory")
    p.set_defaults(func=score)

    p = subparsers.add_parser(
        "consensus", parents=[common], help="the best agent on a spec by weighted consensus"
    )
    p.add_argument("--spec", metavar="S", required=True, help="the spec id to judge")
    p.add_argument(
        "--technical", metavar="AGENT=SCORE", action="append", default=[],
        help="an agent's technical score (repeatable; wins over --technical-file and the "
        "ppp.technical_score span attribute)",
    )
    p.add_argument(
        "--technical-file", metavar="F", help='JSON object of technical scores, {"agent": score}'
    )
    p.add_argument(
        "--weights", metavar="T,I", help="technical and interaction weights (default: the config's "
        "[ppp.weights], else 0.7,0.3)"
    )
    p.add_argument(
        "--agent", metavar="A", action="append", dest="agents",
        help="judge only this agent (repeatable); an agent with neither trajectory nor technical "
        "score is an error",
    )
    p.add_argument(
        "--phoenix", metavar="URL",
        help="Phoenix to send the ppp.consensus span to and annotate the trajectory spans in",
    )
    p.add_argument(
        "--project", metavar="NAME",
        help="Phoenix project for the consensus span (default: the config's project_name)",
    )
    p.add_argument(
        "--wait", metavar="S", type=float, default=10.0,
        help="seconds to wait for Phoenix to have the trajectory spans (default 10)",
    )
    p.add_argument("--no-store", action="store_true", help="do not record the run in the history")
    p.set_defaults(func=run_consensus)

    p = subparsers.add_parser(
        "consensus-history", parents=[common], help="stored consensus runs of a spec, newest first"
    )
    p.add_argument("--spec", metavar="S", required=True, help="the spec id")
    p.add_argument("--limit", metavar="N", type=int, help="at most N runs")
    p.set_defaults(func=history)


def _counts(counts: dict[str, int]) -> str:
    return "/".join(str(n) for n in counts.values())


def score(args: argparse.Namespace) -> int:
    scores = score_trajectories(
        args.db, spec_id=args.spec, agent_name=args.agent, trajectory_id=args.trajectory
    )
    if args.trajectory is not None and not scores:
        return fail(f"no trajectory with id {args.trajectory} in {display_name(args.db)}")
    if args.json:
        print_json([s.to_dict() for s in scores])
        return 0
    print_table(
        [(s.trajectory_id, s.spec_id, s.agent_name, s.run_id, s.r_proact, s.r_pers,
          _counts(s.questions), _counts(s.violations), s.technical_score) for s in scores],
        ["id", "spec", "agent", "run", "r_proact", "r_pers", "questions l/m/h",
         "violations mi/ma/cr", "technical"],
        max_width=32,
    )
    return 0


def _technical(args: argparse.Namespace) -> dict[str, float]:
    # The file first, so that --technical on the command line can correct one entry.
    scores = load_technical_file(args.technical_file) if args.technical_file else {}
    scores.update(parse_technical(args.technical))
    return scores


def _note(agent) -> str:
    if agent.technical_only:
        return "no trajectory: technical alone"
    if agent.technical_source == NONE:
        return "no technical score: interaction alone"
    if agent.technical_source == ATTRIBUTE:
        return "technical from ppp.technical_score"
    return ""


def _print_result(result: ConsensusResult) -> None:
    w = result.weights
    print(f"spec {result.spec_id}: best agent {result.best_agent}, confidence "
          f"{result.confidence:.4g} (weights technical {w.technical:g}, interaction {w.interaction:g})")
    print_table(
        [(a.rank, a.agent_name, a.technical, a.r_proact, a.r_pers, a.final,
          len(a.trajectory_ids), _note(a)) for a in result.agents],
        ["rank", "agent", "technical", "r_proact", "r_pers", "final", "trajectories", "note"],
    )


def _publish(args: argparse.Namespace, result: ConsensusResult) -> dict[str, Any]:
    """The consensus span to Phoenix, then the annotations; problems are reported, not raised."""
    from ppp_otel import register as register_tracing
    from ppp_otel.publish.phoenix_annotations import annotate_consensus
    from ppp_otel.config.settings import load_config
    from ppp_otel.publish.consensus_span import emit_consensus_span

    config = load_config()
    # Only the Phoenix exporter: scoring must not start a recorder, nor the
    # archival that [ppp.archival] auto_cleanup would run beside it.
    provider = register_tracing(args.db, config=dataclasses.replace(config, enabled=False),
                                phoenix=args.phoenix, project_name=args.project, set_global=False)
    try:
        if result.consensus_id is not None:
            conn = connect(args.db, must_exist=True)
            try:
                emit_consensus_span(result, tracer_provider=provider, conn=conn)
            finally:
                conn.close()
        else:
            emit_consensus_span(result, tracer_provider=provider)
    finally:
        provider.shutdown()  # exports the span before the annotations are posted
    api_key = os.environ.get("PHOENIX_API_KEY") or config.phoenix.api_key or None
    summary = annotate_consensus(result, args.phoenix, api_key=api_key, wait_s=args.wait)
    for _, message in summary.failed:
        print(f"{PROG}: warning: annotation failed: {message}", file=sys.stderr)
    return summary.to_dict()


def run_consensus(args: argparse.Namespace) -> int:
    weights = parse_weights(args.weights) if args.weights is not None else None
    technical = _technical(args)
    from ppp_otel.config.settings import load_config

    # The config gives the default weights, and says whether recording is off
    # (then agents are judged on technical scores alone).
    result = consensus(args.db, args.spec, technical=technical, weights=weights,
                       agents=args.agents, store=not args.no_store, config=load_config())
    annotations = _publish(args, result) if args.phoenix else None
    if args.json:
        data = result.to_dict()
        if annotations is not None:
            data["annotations"] = annotations
        print_json(data)
        return 0
    _print_result(result)
    if annotations is not None:
        print(f"Phoenix: {len(annotations['annotated'])} trajectory span(s) annotated, "
              f"{len(annotations['failed'])} failed")
    return 0


def history(args: argparse.Namespace) -> int:
    runs = consensus_history(args.db, args.spec, limit=args.limit)
    if args.json:
        print_json([run.to_dict() for run in runs])
        return 0
    print_table(
        [(run.consensus_id, run.created_at, run.best_agent, run.confidence, run.weights.technical,
          run.weights.interaction, len(run.agents)) for run in runs],
        ["id", "created", "best agent", "confidence", "w_technical", "w_interaction", "agents"],
    )
    return 0
