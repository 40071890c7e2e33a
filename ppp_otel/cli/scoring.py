"""Commands that score: score, consensus, consensus-history.

A thin shell over :mod:`ppp_otel.scoring.rewards`, :mod:`ppp_otel.scoring.consensus`,
:mod:`ppp_otel.publish.consensus_span` and :mod:`ppp_otel.publish.phoenix_annotations`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from ppp_otel.scoring.paper import PROFILES
from ppp_otel.cli._output import (
    PROG, SCORE_DECIMALS, add_stage_column, bulk, fail, http_url, limit_type, number_at_least, print_columns,
    print_json, print_table, score_decimals, value_may_start_with_dash,
)
from ppp_otel.storage import display_name

if TYPE_CHECKING:
    from ppp_otel.scoring.consensus import ConsensusResult

# The scoring, consensus and publishing modules are imported by the commands
# that use them: every command's start builds this parser.


def add_rewards_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rewards", choices=PROFILES, default=None,
        help="reward profile: spec (SPEC-PPP-004) or paper (the PPP paper's reward functions); "
        "default: the config's [ppp.scoring] rewards, else spec",
    )


def rewards_of(args: argparse.Namespace) -> str:
    if args.rewards:
        return args.rewards
    from ppp_otel.config.settings import process_config
    from ppp_otel.scoring.consensus import rewards_profile

    # The config the command line already read, as every command uses it.
    return rewards_profile(getattr(args, "settings", None) or process_config())


#: ``consensus --phoenix`` when no trajectory could be annotated (the scores are still printed and stored).
EXIT_NOTHING_ANNOTATED = 1


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "score", parents=[common], help="R_Proact and R_Pers of trajectories"
    )
    add_rewards_argument(p)
    p.add_argument("--spec", metavar="S", help="only this spec id")
    p.add_argument("--agent", metavar="A", help="only this agent (with --spec)")
    p.add_argument("--trajectory", metavar="ID", type=int, help="only this trajectory")
    _add_stage_and_run(p, "only trajectories of this")
    p.set_defaults(func=score)

    p = subparsers.add_parser(
        "consensus", parents=[common], help="the best agent on a spec by weighted consensus",
        description="Judge a spec's agents by weighted consensus and store the run (see "
        "consensus-history). A ppp.consensus span, linked to the trajectories judged, is sent "
        "when there is somewhere to send it: --phoenix URL, or the Phoenix that tracing forwards "
        "to ([ppp.phoenix] enabled = true in the config, or PHOENIX_COLLECTOR_ENDPOINT set). "
        "--json's trace_id and span_id are that span's; both are null when no span was sent.",
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
    value_may_start_with_dash(p.add_argument(
        "--weights", metavar="T,I", help="technical and interaction weights (default: the config's "
        "[ppp.weights], else 0.7,0.3)"
    ))
    p.add_argument(
        "--agent", metavar="A", action="append", dest="agents",
        help="judge only this agent (repeatable); an agent with neither trajectory nor technical "
        "score is an error",
    )
    p.add_argument(
        "--phoenix", metavar="URL", type=http_url,
        help="Phoenix to send the ppp.consensus span to (instead of the configured one) and annotate "
        "the trajectories in (span and session annotations); exit 1 when none could be annotated",
    )
    p.add_argument(
        "--project", metavar="NAME",
        help="Phoenix project for the consensus span (default: the project the judged trajectories' "
        "spans are in, found through Phoenix's REST API; else the config's project_name)",
    )
    p.add_argument(
        "--wait", metavar="S", type=number_at_least(0), default=10.0,
        help="seconds to wait for Phoenix to have the trajectory spans (default 10)",
    )
    p.add_argument("--no-store", action="store_true", help="do not record the run in the history")
    _add_stage_and_run(p, "judge only the trajectories of this")
    add_rewards_argument(p)
    p.set_defaults(func=run_consensus)

    p = subparsers.add_parser(
        "consensus-history", parents=[common], help="stored consensus runs of a spec, newest first"
    )
    p.add_argument("--spec", metavar="S", required=True, help="the spec id")
    p.add_argument("--limit", metavar="N", type=limit_type("runs"), help="at most N runs (N >= 1; default: all)")
    _add_stage_and_run(p, "only consensus runs that judged this")
    p.set_defaults(func=history)


def _add_stage_and_run(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--stage", metavar="X", help=f"{what} stage of the spec (plan, implement, ...)")
    parser.add_argument("--run", metavar="R", help=f"{what} run id")


def score(args: argparse.Namespace) -> int:
    with bulk():
        return _score(args)


def _score(args: argparse.Namespace) -> int:
    from ppp_otel.scoring.rewards import score_columns, score_trajectories

    if args.agent is not None and args.spec is None:
        return fail("--agent needs --spec: an agent is scored on a spec "
                    f"(e.g. {PROG} score --spec SPEC --agent {args.agent})")
    choice = dict(spec_id=args.spec, agent_name=args.agent, trajectory_id=args.trajectory,
                  stage=args.stage, run_id=args.run)
    profile = rewards_of(args)
    if args.json:
        scores = score_trajectories(args.db, rewards=profile, **choice)
        if args.trajectory is not None and not scores:
            return fail(f"no trajectory with id {args.trajectory} in {display_name(args.db)}")
        print_json([s.to_dict() for s in scores])
        return 0
    # By column: at 100,000 trajectories, objects or rows would cost more than the SQL.
    columns = score_columns(args.db, rewards=profile, **choice)
    if args.trajectory is not None and not columns["trajectory_id"]:
        return fail(f"no trajectory with id {args.trajectory} in {display_name(args.db)}")
    counts: dict[tuple, str] = {}  # a few distinct count triples, each joined once
    for triple in {*columns["questions"], *columns["violations"]}:
        counts[triple] = "/".join(map(str, triple))
    shown = [columns[name] for name in ("trajectory_id", "spec_id", "agent_name", "run_id", "r_proact", "r_pers")]
    shown += [list(map(counts.__getitem__, columns["questions"])), list(map(counts.__getitem__, columns["violations"])),
              columns["technical_score"]]
    headers = ["id", "spec", "agent", "run", "r_proact", "r_pers", "questions l/m/h", "violations mi/ma/cr",
               "technical"]
    add_stage_column(shown, headers, columns["stage"])
    print_columns(shown, headers, max_width=32, empty=f"no trajectories{_filters(args)} in {display_name(args.db)}",
                  decimals=score_decimals("r_proact", "r_pers", "technical"))
    if profile == "paper" and columns["trajectory_id"]:
        # The same columns under either profile: the table must say whose rewards these are.
        print("paper rewards: R_Proact and R_Pers by the PPP paper's reward functions")
    _say_pending(args, columns["trajectory_id"])
    return 0


def _say_pending(args: argparse.Namespace, shown: list[int]) -> None:
    """A note under the table when some of its trajectories have turns not judged yet (an
    LLM judge that gave no answer, a process that ended first): their scores may lack
    questions or violations until `ppp-otel judge --pending` judges them."""
    from ppp_otel.storage import using_store

    if not shown:
        return
    with using_store(args.db) as store:
        pending = set(store.to_rejudge(spec_id=args.spec, since=None, pending=True)).intersection(shown)
    if pending:
        print(f"{len(pending)} of these trajectories have turns not judged yet, so their scores may lack "
              f"questions or violations: {PROG} judge --pending judges them", file=sys.stderr)


def _filters(args: argparse.Namespace) -> str:
    named = [(flag, getattr(args, attr, None)) for flag, attr in
             (("spec", "spec"), ("stage", "stage"), ("agent", "agent"), ("run", "run"))]
    return "".join(f" of {flag} {value!r}" for flag, value in named if value is not None)


def _technical(args: argparse.Namespace) -> dict[str, float]:
    from ppp_otel.scoring.consensus import load_technical_file, parse_technical

    # The file first, so that --technical on the command line can correct one entry.
    scores = load_technical_file(args.technical_file) if args.technical_file else {}
    scores.update(parse_technical(args.technical))
    return scores


def _note(agent) -> str:
    from ppp_otel.scoring.consensus import ATTRIBUTE, NONE

    if agent.technical_only:
        return "no trajectory: technical alone"
    if agent.technical_source == NONE:
        return "no technical score: interaction alone"
    if agent.technical_source == ATTRIBUTE:
        return "technical from ppp.technical_score"
    return "technical as given"  # --technical, --technical-file, or the caller's mapping


def _print_result(result: ConsensusResult) -> None:
    w = result.weights
    print(f"{result.scope}: best agent {result.best_agent}, confidence "
          f"{result.confidence:.{SCORE_DECIMALS}f} (weights technical {w.technical:g}, interaction {w.interaction:g}; "
          f"{result.rewards} rewards)")
    print_table(
        [(a.rank, a.agent_name, a.technical, a.r_proact, a.r_pers, a.final,
          len(a.trajectory_ids), _note(a)) for a in result.agents],
        ["rank", "agent", "technical", "r_proact", "r_pers", "final", "trajectories", "note"],
        decimals=score_decimals("technical", "r_proact", "r_pers", "final"),
    )


def _sends_spans(args: argparse.Namespace, config: Any) -> bool:
    """Whether the ``ppp.consensus`` span has somewhere to go: ``--phoenix``, or the Phoenix
    that tracing forwards to (``[ppp.phoenix] enabled``, ``PHOENIX_COLLECTOR_ENDPOINT``), as
    :func:`ppp_otel.register` decides. With nowhere to go there is no span, and no ids."""
    from ppp_otel.capture.register import phoenix_exporter_settings
    from ppp_otel.config.settings import environ

    return args.phoenix is not None or phoenix_exporter_settings(None, config.phoenix, environ()) is not None


def _span_project(args: argparse.Namespace, result: ConsensusResult, config: Any, wait_s: float) -> str:
    """The Phoenix project for the ``ppp.consensus`` span: ``--project``, else the one holding
    the judged trajectories' spans (where a person looking at them looks: ``demo --phoenix``
    records into ``ppp-otel-demo``), else the one tracing would use (``PHOENIX_PROJECT_NAME``,
    the config's ``project_name``)."""
    from ppp_otel.capture.register import phoenix_project_name, phoenix_rest_url
    from ppp_otel.config.settings import environ
    from ppp_otel.publish.phoenix_projects import project_of_spans

    env = environ()
    if args.project:
        return args.project
    url = phoenix_rest_url(args.phoenix, config.phoenix, env)
    found = None
    if url is not None:
        found = project_of_spans(url, [t.span_id for t in result.trajectories if t.span_id],
                                 api_key=config.phoenix.api_key or None, wait_s=wait_s)
    return found or phoenix_project_name(None, config.phoenix, env)


def _emit_span(args: argparse.Namespace, result: ConsensusResult, config: Any, project: str) -> bool:
    """The consensus span, exported before this returns (so before any annotation is
    posted); whether Phoenix took it. A span Phoenix did not take has no ids: neither
    the output nor the stored run names a span nobody can find."""
    from ppp_otel import register as register_tracing
    from ppp_otel.capture.register import spans_forwarded
    from ppp_otel.publish.consensus_span import emit_consensus_span
    from ppp_otel.scoring.history import record_consensus_span

    # Only the Phoenix exporter: scoring must not start a recorder, nor the
    # archival that [ppp.archival] auto_cleanup would run beside it.
    provider = register_tracing(args.db, config=dataclasses.replace(config, enabled=False),
                                phoenix=args.phoenix, project_name=project, set_global=False)
    try:
        emit_consensus_span(result, tracer_provider=provider)
    finally:
        provider.shutdown()
    if spans_forwarded(provider) == 0:
        result.trace_id = result.span_id = None
        return False
    if result.consensus_id is not None:
        record_consensus_span(args.db, result.consensus_id, result.trace_id, result.span_id)
    return True


def _publish(args: argparse.Namespace, result: ConsensusResult, config: Any, project: str,
             deadline: float) -> tuple[bool, dict[str, Any]]:
    """The consensus span to Phoenix, then the annotations: (whether the span was taken,
    the annotations' summary); problems are reported, not raised."""
    from ppp_otel.publish.phoenix_annotations import NOT_IN_PHOENIX, annotate_consensus

    sent = _emit_span(args, result, config, project)
    api_key = config.phoenix.api_key or None  # PHOENIX_API_KEY, else the file's (load_config's rule)
    # One --wait for finding the project and annotating: spans Phoenix lacks are not waited for twice.
    summary = annotate_consensus(result, args.phoenix, api_key=api_key,
                                 wait_s=max(0.0, deadline - time.monotonic()))
    for _, message in summary.failed:
        print(f"{PROG}: warning: annotation failed: {message}", file=sys.stderr)
    for _, message in summary.span_only:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    if any(NOT_IN_PHOENIX in message for _, message in summary.failed):
        project = f" --project {args.project}" if args.project else ""
        print(f"{PROG}: Phoenix at {args.phoenix} does not have the spans of these trajectories: they "
              f"were recorded without forwarding to it. Send them with `{PROG} export --db {display_name(args.db)} "
              f"--to {args.phoenix} --spec {result.spec_id}{project}`, then run this command again.",
              file=sys.stderr)
    return sent, summary.to_dict()


def run_consensus(args: argparse.Namespace) -> int:
    from ppp_otel.scoring.consensus import MixedConsensusWarning, consensus, parse_weights, rewards_profile

    weights = parse_weights(args.weights) if args.weights is not None else None
    technical = _technical(args)
    from ppp_otel.config.settings import process_config

    # The config gives the default weights, and says whether recording is off
    # (then agents are judged on technical scores alone).
    config = args.settings or process_config()
    with warnings.catch_warnings():
        # Said once below, in the output and the JSON, rather than as a Python warning.
        warnings.simplefilter("ignore", MixedConsensusWarning)
        result = consensus(args.db, args.spec, technical=technical, weights=weights,
                           agents=args.agents, store=not args.no_store, config=config,
                           stage=args.stage, run_id=args.run,
                           rewards=args.rewards or rewards_profile(config))
    deadline = time.monotonic() + args.wait
    # Waited for only when annotating (--wait is for that); else one look, not a slower command.
    project = (_span_project(args, result, config, args.wait if args.phoenix else 0.0)
               if _sends_spans(args, config) else None)
    sent, annotations = _publish(args, result, config, project, deadline) if args.phoenix else (None, None)
    if annotations is None and project is not None:
        sent = _emit_span(args, result, config, project)
    # Nothing annotated at all is a failure a script must see.
    status = EXIT_NOTHING_ANNOTATED if annotations is not None and annotations["failed"] and not annotations["annotated"] else 0
    if args.json:
        data = result.to_dict()
        if project is not None:
            data["phoenix_project"] = project if sent else None  # where the ppp.consensus span went
        if annotations is not None:
            data["annotations"] = annotations
        print_json(data)
        if result.warning:  # in the JSON too; said here for the person running the script
            print(f"{PROG}: warning: {result.warning}", file=sys.stderr)
        return status
    _print_result(result)
    if result.warning:
        print(f"note: {result.warning}")
    if project is not None and sent:
        print(f"Phoenix: ppp.consensus span sent to project {project}")
    elif project is not None:
        print("Phoenix: ppp.consensus span not sent: Phoenix did not take it")
    if annotations is not None:
        span_only = len(annotations.get("span_only", []))
        print(f"Phoenix: {len(annotations['annotated'])} trajectories annotated (span and session"
              f"{f'; {span_only} on their span only' if span_only else ''}), {len(annotations['failed'])} failed")
    return status


def _judging(args: argparse.Namespace, *, as_options: bool = False) -> str:
    """The stage and run asked for: `` of stage 'plan'``, or as options `` --stage plan``."""
    asked = [(flag, value) for flag, value in (("stage", args.stage), ("run", args.run)) if value is not None]
    if as_options:
        return "".join(f" --{flag} {shlex.quote(value)}" for flag, value in asked)
    return "".join(f" of {flag} {value!r}" for flag, value in asked)


def _judged(asked: str | None, covered: list) -> str | None:
    """The stage (or run) a stored consensus judged: the one asked for, else what it covered."""
    if asked is not None:
        return asked
    named = [v for v in covered if v is not None]
    if len(covered) > 1:
        return f"mixed: {', '.join(named)}" + (" + none" if None in covered else "")
    return named[0] if named else None


def history(args: argparse.Namespace) -> int:
    from ppp_otel.scoring.consensus import consensus_history

    runs = consensus_history(args.db, args.spec, limit=args.limit, stage=args.stage, run_id=args.run)
    if args.json:
        print_json([run.to_dict() for run in runs])
        return 0
    # What a run judged first, the stage before the run, as the trajectories' tables have them
    # (the spec is the one asked for).
    print_table(
        [(run.consensus_id, _judged(run.stage, run.stages), _judged(run.run_id, run.runs), run.created_at,
          run.best_agent, run.confidence, run.weights.technical, run.weights.interaction, len(run.agents))
         for run in runs],
        ["id", "stage", "run", "created", "best agent", "confidence", "w_technical", "w_interaction",
         "agents"],
        decimals=score_decimals("confidence", "w_technical", "w_interaction"),
        empty=f"no consensus runs of spec {args.spec!r}{_judging(args)} in {display_name(args.db)} "
              f"(run `{PROG} consensus --spec {args.spec}{_judging(args, as_options=True)}`)",
    )
    return 0
