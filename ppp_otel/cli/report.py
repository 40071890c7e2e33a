"""``ppp-otel report``: one self-contained HTML page comparing the agents of each spec."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ppp_otel.config.settings import env_value
from ppp_otel.cli._output import fail, http_url, int_at_least, print_json
from ppp_otel.cli._paths import file_problem
from ppp_otel.cli.scoring import add_rewards_argument, rewards_of


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "report", parents=[common],
        help="write an HTML page: consensus per stage, rewards over runs, questions, violations",
        description="Write one self-contained HTML file (it loads nothing from the network): per "
        "spec, the consensus of each stage and run, each agent's rewards over the runs as a "
        "chart, the effort of its questions, a preference x agent table of violations, and every "
        "trajectory with its turns, linked from the rows (and to Phoenix with --phoenix or "
        "[ppp.phoenix] enabled). Needs the report extra: pip install 'ppp-otel[report]'.",
    )
    p.add_argument("--out", metavar="FILE", required=True, help="the HTML file to write")
    p.add_argument("--spec", metavar="S", help="only this spec id (default: every spec)")
    p.add_argument(
        "--phoenix", metavar="URL", type=http_url,
        help="Phoenix to link each trajectory to (default: [ppp.phoenix] endpoint when enabled, "
        "else $PHOENIX_COLLECTOR_ENDPOINT; no links when neither is set)",
    )
    p.add_argument(
        "--weights", metavar="T,I", help="technical and interaction weights (default: the config's "
        "[ppp.weights], else 0.7,0.3)"
    )
    p.add_argument(
        "--max-trajectories", metavar="N", type=int_at_least(0), default=None,
        help="show the turns of at most N trajectories per spec, the newest (default 200)",
    )
    p.add_argument(
        "--max-runs", metavar="N", type=int_at_least(1), default=None,
        help="the consensus grid shows the latest N runs (default 4); the rewards show every run",
    )
    add_rewards_argument(p)
    p.set_defaults(func=run)


def _phoenix_url(args: argparse.Namespace, config: Any) -> str | None:
    if args.phoenix:
        return args.phoenix
    if config.phoenix.enabled:
        return config.phoenix.endpoint
    return env_value("PHOENIX_COLLECTOR_ENDPOINT")


def run(args: argparse.Namespace) -> int:
    from ppp_otel.config.settings import load_config
    from ppp_otel.publish.report import DEFAULT_MAX_TRAJECTORIES, ReportDependencyError, write_report
    from ppp_otel.scoring.consensus import parse_weights

    problem = file_problem(args.out)
    if problem:
        return fail(f"--out {args.out}: {problem}; --out names the HTML file to write")
    config = load_config()
    weights = parse_weights(args.weights) if args.weights is not None else None
    try:
        summary = write_report(
            args.db, args.out, spec_id=args.spec, phoenix_url=_phoenix_url(args, config),
            weights=weights, config=config,
            max_trajectories=DEFAULT_MAX_TRAJECTORIES if args.max_trajectories is None else args.max_trajectories,
            max_runs=args.max_runs, rewards=rewards_of(args),
        )
    except ReportDependencyError as exc:
        return fail(exc)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(f"wrote {summary.path}: {len(summary.specs)} spec(s), {summary.charts} charts, "
              f"{summary.trajectories} trajectories with their turns")
    return 0
