"""``ppp-otel trends``: each agent's rewards, questions and violations run after run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ppp_otel.cli._output import SCORE_DECIMALS, print_json, print_table, score_decimals, value_may_start_with_dash
from ppp_otel.cli.scoring import add_rewards_argument, rewards_of
from ppp_otel.storage import display_name

if TYPE_CHECKING:
    from ppp_otel.scoring.trends import RunTrend


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "trends", parents=[common],
        help="each agent's R_Proact, R_Pers, final score, questions and violations per run",
        description="Per agent and per run of a spec, in the order the runs started: R_Proact, "
        "R_Pers, technical and final score (as the consensus of that run weighs them), questions "
        "by effort and violations by preference, each with its change since the agent's "
        "previous run.",
    )
    p.add_argument("--spec", metavar="S", required=True, help="the spec id")
    p.add_argument("--agent", metavar="A", help="only this agent")
    p.add_argument("--stage", metavar="X", help="only this stage of the spec (plan, implement, ...)")
    value_may_start_with_dash(p.add_argument(
        "--weights", metavar="T,I", help="technical and interaction weights for the final score "
        "(default: the config's [ppp.weights], else 0.7,0.3)"
    ))
    add_rewards_argument(p)
    p.set_defaults(func=run)


#: The scores of each run, in the table's order; each is followed by its change.
_SCORES = ("technical", "r_proact", "r_pers", "final")


def _signed(value: float | int) -> str:
    # A score's change has the score's four decimals; no change at all reads as one.
    text = f"{value:+.{SCORE_DECIMALS}f}" if isinstance(value, float) else f"{value:+d}"
    return "±0" if value == 0 else text


def _change(change: float | None) -> str:
    return "" if change is None else f"({_signed(change)})"


def _questions(run: RunTrend) -> str:
    counts = "/".join(str(run.questions[e]) for e in ("low", "medium", "high"))
    if run.change is None:
        return counts
    moved = run.change["questions"]
    return f"{counts} ({'/'.join(_signed(moved[e]) for e in ('low', 'medium', 'high'))})"


def _violations(run: RunTrend) -> str:
    names = sorted(set(run.violations) | set((run.change or {}).get("violations", {})))
    parts = []
    for name in names:
        text = f"{name} {run.violations.get(name, 0)}"
        if run.change is not None:
            text += f" ({_signed(run.change['violations'].get(name, 0))})"
        parts.append(text)
    return ", ".join(parts) or "-"


def _stages(run: RunTrend) -> str:
    return ", ".join("-" if s is None else s for s in run.stages)


def run(args: argparse.Namespace) -> int:
    from ppp_otel.config.settings import load_config
    from ppp_otel.scoring.consensus import parse_weights
    from ppp_otel.scoring.trends import trends

    weights = parse_weights(args.weights) if args.weights is not None else None

    found = trends(args.db, args.spec, agent_name=args.agent, stage=args.stage, weights=weights,
                   config=load_config() if weights is None else None, rewards=rewards_of(args))
    if args.json:
        print_json(found.to_dict())
        return 0
    scope = f"spec {found.spec_id}" + (f", stage {found.stage}" if found.stage else "")
    w = found.weights
    print(f"{scope} (final = {w.technical:g} x technical + {w.interaction:g} x (r_proact + r_pers), "
          f"{found.rewards} rewards; changes since the agent's previous run in brackets)")
    if not found.agents:
        named = [(flag, value) for flag, value in (("spec", args.spec), ("stage", args.stage), ("agent", args.agent))
                 if value is not None]
        print(f"no trajectories{''.join(f' of {flag} {value!r}' for flag, value in named)} "
              f"in {display_name(args.db)}")
        return 0
    for agent in found.agents:
        print(f"\n{agent.agent_name}")
        # Each score a column of its own, as the other score tables print it (four decimals,
        # lined up on the point), and its change in the unnamed column after it; an agent
        # with one run has no changes, and no such columns.
        changed = any(r.change is not None for r in agent.runs)
        headers = ["run", "started", "stages"]
        for name in _SCORES:
            headers += [name, ""] if changed else [name]
        rows = []
        for r in agent.runs:
            ch = r.change or {}
            row = [r.run_id, r.started_at, _stages(r)]
            for name in _SCORES:
                row += [getattr(r, name), _change(ch.get(name))] if changed else [getattr(r, name)]
            rows.append((*row, _questions(r), _violations(r)))
        print_table(rows, headers + ["questions l/m/h", "violations by preference"], max_width=None,
                    decimals=score_decimals(*_SCORES))
    return 0
