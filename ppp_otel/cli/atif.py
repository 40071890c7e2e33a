"""ATIF commands: ``import`` trajectory files into the database, ``export-atif`` them out.

``import`` exits 0 when every ATIF document it found was imported, 1 when
some file or document was skipped (or a record refused, or nothing was found)
while the rest was imported, and 2 on a usage error (a missing path, an
unusable database), before anything is written.
"""

from __future__ import annotations

import argparse
from typing import Any

from ppp_otel.cli._output import fail, print_json, progress
from ppp_otel.cli._paths import directory_problem
from ppp_otel.cli.scoring import add_rewards_argument, rewards_of
from ppp_otel.storage import display_name

EXIT_PARTIAL = 1


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "import", parents=[common],
        help="import ATIF trajectory files or directories (any ATIF-v1.x)",
        description="Import ATIF documents (*.json, *.trajectory.json, JSON lines) into the "
        "trajectory database; directories are read recursively. Exit 0: all imported; "
        "1: some files skipped (the rest imported); 2: usage error.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="ATIF files or directories")
    p.add_argument("--spec", metavar="S", help="spec id for every imported trajectory")
    p.add_argument("--agent", metavar="NAME", help="agent name for every imported document")
    p.add_argument("--stage", metavar="X", type=_stage,
                   help="the spec's stage (plan, implement, ...) of the documents that carry none: a "
                   "document's own stage (extra.ppp.stage) wins, and an embedded subagent without one "
                   "works in its parent's")
    p.set_defaults(func=run_import)

    p = subparsers.add_parser(
        "export-atif", parents=[common],
        help="write trajectories as ATIF-v1.7 files with PPP rewards in extra.ppp",
    )
    p.add_argument("--out", metavar="DIR", required=True, help="directory to write into")
    p.add_argument("--spec", metavar="S", help="only this spec id")
    p.add_argument("--trajectory", metavar="ID", type=int, help="only this trajectory (and its subagents)")
    p.add_argument("--stage", metavar="X", help="only this stage of the spec (plan, implement, ...)")
    p.add_argument("--run", metavar="R", help="only this run id")
    add_rewards_argument(p)
    p.set_defaults(func=run_export)


def _stage(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a stage must not be empty")
    return text


def run_import(args: argparse.Namespace) -> int:
    from ppp_otel.config.settings import process_config
    from ppp_otel.interchange.atif import import_paths

    # The config's question tools, as recording and ingest read them.
    question_tools = (args.settings or process_config()).trajectory.question_tools

    bar = progress("importing files", json_output=args.json)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.advance()

    with bar:
        summary = import_paths(
            args.paths, args.db, spec_id=args.spec, agent_name=args.agent, progress=advance,
            stage=args.stage, question_tools=question_tools,
        )
    if args.json:
        print_json(summary.to_dict())
    else:
        new_turns = summary.turns - summary.duplicates
        print(
            f"imported {summary.imported} document(s) from {summary.files} file(s) into {display_name(args.db)}: "
            f"{summary.trajectories} trajectories, {summary.turns} turns "
            f"({new_turns} new, {summary.duplicates} already there)"
            + (f"; {summary.tool_steps} agent step(s) only called tools (no turns of their own)"
               if summary.tool_steps else "")
        )
        if summary.skipped:
            print(f"skipped {len(summary.skipped)}:")
            for file, reason in summary.skipped:
                print(f"  {file}: {reason}")
        if summary.ignored:
            print(f"ignored {len(summary.ignored)} JSON file(s) that are not ATIF")
        if summary.rejected:
            print(f"refused {summary.rejected} record(s) while writing: {summary.last_error}")
        if not summary.imported and not summary.skipped:
            print("no ATIF documents found")
    return 0 if summary.ok else EXIT_PARTIAL


def run_export(args: argparse.Namespace) -> int:
    from ppp_otel.interchange.atif import export_atif

    problem = directory_problem(args.out)
    if problem:
        return fail(f"--out {args.out}: {problem}; --out names the directory to write the ATIF files into "
                    "(made when missing)")
    paths = export_atif(args.db, args.out, spec_id=args.spec, trajectory_id=args.trajectory,
                        stage=args.stage, run_id=args.run, rewards=rewards_of(args))
    if args.json:
        print_json({"out": args.out, "files": [str(p) for p in paths]})
    elif not paths:
        # As `export` says it: an empty choice is an answer, not an error; nothing is made.
        chosen = [(flag, value) for flag, value in (("spec", args.spec), ("stage", args.stage), ("run", args.run))
                  if value is not None]
        print(f"no trajectories to export{''.join(f' of {flag} {value!r}' for flag, value in chosen)} "
              f"in {display_name(args.db)}: nothing written")
    else:
        print(f"wrote {len(paths)} ATIF-v1.7 document(s) to {args.out}")
    return 0
