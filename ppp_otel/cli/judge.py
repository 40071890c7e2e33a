"""``ppp-otel judge``: judge stored trajectories again, with the current rules or an LLM judge.

A database recorded before a better judge (or while an LLM judge was down)
is brought up to it: extracted questions and detected violations are found
anew, an effort a judge gave is graded again, and what the agent code
reported is kept.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from typing import Any

from ppp_otel.config.settings import load_config
from ppp_otel.cli._output import print_fields, print_json, progress


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "judge", parents=[common],
        help="judge stored trajectories again: questions, their effort, preference violations",
    )
    p.add_argument("--spec", metavar="S", help="only this spec id")
    p.add_argument("--since", metavar="DATE", type=_date,
                   help="only trajectories created on or after this date (YYYY-MM-DD or ISO time)")
    p.add_argument("--judge", choices=("rules", "llm"), default=None,
                   help="rules, or llm (the config's [ppp.question_classifier] endpoint); "
                   "default: what the config says")
    p.add_argument("--pending", action="store_true",
                   help="only trajectories with turns not judged yet (recorded while judgment lagged)")
    p.set_defaults(func=run)


def _date(text: str) -> str:
    try:
        if len(text) == 10:
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO time: {text}") from None
    return text


def run(args: argparse.Namespace) -> int:
    from ppp_otel.analysis.judgment_stage import judges_from_config, rejudge

    classifier, preference_judge = judges_from_config(load_config().question_classifier, method=args.judge)
    bar = progress("judging trajectories", json_output=args.json)

    judged = [0, None]

    def advance(done: int, total: int) -> None:
        judged[:] = [done, total]
        bar.total = total
        bar.advance()

    try:
        with bar:
            summary = rejudge(args.db, spec_id=args.spec, since=args.since, classifier=classifier,
                              preference_judge=preference_judge, pending_only=args.pending, progress=advance)
    except KeyboardInterrupt:
        done, total = judged
        print(f"\nppp-otel: interrupted: {done} of {total if total is not None else 'the'} trajectories "
              "judged again and stored; the others keep the judgments they had", file=sys.stderr)
        return 130
    data = summary.to_dict()
    for name, judge in (("effort_judge", classifier), ("preference_judge", preference_judge)):
        if judge is not None and hasattr(judge, "stats"):
            data[f"{name}_stats"] = judge.stats
    # Turns a judge gave no answer on are stored and pending: the run is not finished.
    code = 1 if summary.left_pending else 0
    if args.json:
        print_json(data)
        return code
    changed = ", ".join(f"{k} {v}" for k, v in sorted(summary.changed.items())) or "none"
    effort_stats, preference_stats = data.get("effort_judge_stats"), data.get("preference_judge_stats")
    fields = {
        "judge": summary.judge,
        "trajectories": summary.trajectories,
        "turns": summary.turns,
        "questions judged": summary.questions,
        "violations found": summary.violations,
        "efforts changed": changed,
        "fell back to rules": _fell_back(summary.classifier_failures, effort_stats),
    }
    if preference_stats is not None:
        fields["preferences unjudged"] = _by_reason(preference_stats) or "0"
    if effort_stats is not None or preference_stats is not None:
        fields["LLM requests"] = _requests(effort_stats, preference_stats)
    fields["left pending"] = (f"{summary.left_pending} turns (a judge gave no answer on part of each; "
                              "`ppp-otel judge --pending` judges them again)" if summary.left_pending else "0")
    print_fields(fields)
    return code


def _by_reason(stats: dict) -> str:
    """"9 (http_error 9)": the answers a judge's endpoint did not give, by reason."""
    reasons = {reason: n for reason, n in stats.get("fallbacks", {}).items() if n}
    if not reasons:
        return ""
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    return f"{sum(reasons.values())} ({why})"


def _requests(effort: dict | None, preference: dict | None) -> str:
    """What the run cost: requests sent (each retry is one) and answers the cache gave."""
    parts = [(name, stats) for name, stats in (("effort", effort), ("preferences", preference)) if stats]
    sent = sum(stats["calls"] for _, stats in parts)
    cached = sum(stats["cache_hits"] for _, stats in parts)
    each = ", ".join(f"{name} {stats['calls']}" for name, stats in parts)
    return f"{sent} sent ({each}); {cached} answered from the cache"


def _fell_back(failed_batches: int, stats: dict | None) -> str:
    """How many questions the rules graded instead of the LLM judge, and why: each question
    its endpoint failed on (unreachable, a timeout, nonsense), and each batch it raised on."""
    parts = []
    questions = _by_reason(stats) if stats else ""
    if questions:
        parts.append(questions.replace(" (", " questions (", 1))
    if failed_batches:
        parts.append(f"{failed_batches} batch{'es' if failed_batches > 1 else ''} the judge failed on")
    return "; ".join(parts) or "0"
