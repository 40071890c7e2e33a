"""``ppp-otel copy --from A --to B``: copy a trajectory store into another, SQLite or PostgreSQL."""

from __future__ import annotations

import argparse
from typing import Any

from ppp_otel.cli._output import int_at_least, print_fields, print_json, progress
from ppp_otel.storage.copy import DEFAULT_CHUNK_SIZE, copy_store


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "copy", parents=[common],
        help="copy every trajectory of one store into another (SQLite <-> PostgreSQL); safe to re-run",
        description="Copies trajectories with their turns, questions and violations. The target is "
        "created and migrated when missing. Trajectories the target already holds are skipped, so "
        "an interrupted copy is finished by running it again.",
    )
    p.add_argument("--from", dest="source", metavar="DB",
                   help="the store to read: a SQLite file or a postgresql:// URL (default: --db)")
    p.add_argument("--to", dest="target", metavar="DB", required=True,
                   help="the store to write: a SQLite file or a postgresql:// URL")
    p.add_argument("--chunk-size", metavar="N", type=int_at_least(1), default=DEFAULT_CHUNK_SIZE,
                   help=f"trajectories per transaction (default: {DEFAULT_CHUNK_SIZE})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = args.source or args.db
    if args.source is not None:
        args.db_given = True  # a missing source was named by --from: no hint about the default name
    with progress("copy", json_output=args.json) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.advance(done - bar.done)

        summary = copy_store(source, args.target, chunk_size=args.chunk_size, progress=advance)
    if args.json:
        print_json(summary.to_dict())
        return 0
    print(f"{summary.source} -> {summary.target}: copied {summary.trajectories} trajectories, "
          f"skipped {summary.skipped} the target already had")
    print_fields({"turns": summary.turns, "questions": summary.questions,
                  "violations": summary.violations,
                  "ids moved up": "yes" if summary.renumbered else "no"})
    return 0
