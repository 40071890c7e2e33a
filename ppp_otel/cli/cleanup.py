"""``ppp-otel cleanup``: delete trajectories past retention, optionally archiving them first."""

from __future__ import annotations

import argparse
from typing import Any

from ppp_otel.storage import cleanup, display_name
from ppp_otel.config.settings import process_config
from ppp_otel.cli._output import counted, print_fields, print_json, progress


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "cleanup", parents=[common],
        help="delete trajectories past retention (with their turns), optionally archiving them",
    )
    p.add_argument(
        "--older-than", metavar="DAYS", type=_days,
        help="retention in days (default: the config's [ppp.archival] retention_days)",
    )
    p.add_argument(
        "--archive", metavar="FILE",
        help="copy them into this SQLite file first (default: the config's archive_path, if set)",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument(
        "--vacuum", action="store_true",
        help="run VACUUM when the file cannot give space back incrementally (locks it meanwhile)",
    )
    p.set_defaults(func=run)


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text}") from None
    from ppp_otel.storage.sqlite.retention import retention_problem

    problem = retention_problem(value)  # the check cleanup() makes, before any work
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}: {text}")
    return value


def run(args: argparse.Namespace) -> int:
    config = args.settings or process_config()
    archival = config.archival
    days = args.older_than if args.older_than is not None else archival.retention_days
    archive = args.archive or archival.archive_path or None
    with progress("cleanup", json_output=args.json) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.advance(done - bar.done)

        summary = cleanup(
            args.db, older_than_days=days, archive_path=archive, dry_run=args.dry_run,
            vacuum=args.vacuum, progress=advance, config=config,
        )
    if args.json:
        print_json(summary.to_dict())
        return 0
    verb = "would delete" if summary.dry_run else "deleted"
    print(
        f"{display_name(summary.db_path)}: {verb} {counted(summary.trajectories, 'trajectory', 'trajectories')} "
        f"created before "
        f"{summary.cutoff}"
    )
    shown: dict[str, Any] = {
        "turns": summary.turns,
        "questions": summary.questions,
        "violations": summary.violations,
    }
    if summary.archive_path and not summary.dry_run:
        already = summary.trajectories - summary.archived  # the archive had them from an earlier run
        shown["archived to"] = (f"{summary.archive_path} ({counted(summary.archived, 'trajectory', 'trajectories')}"
                                + (f"; {already} already there" if already > 0 else "") + ")")
    if not summary.dry_run:
        shown["space"] = _space_text(summary)
    print_fields(shown)
    return 0


def _space_text(summary: Any) -> str:
    if summary.space == "needed":
        return (
            f"{summary.free_pages_left} free pages stay in the file; "
            "run `ppp-otel cleanup --vacuum` to give them back"
        )
    if summary.space == "autovacuum":
        return "PostgreSQL's autovacuum makes the space reusable; --vacuum does it now"
    if summary.space == "none":
        return "nothing to give back"
    return f"{summary.freed_bytes} bytes given back ({summary.space})"
