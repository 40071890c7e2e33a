"""Commands that look at the database itself: status, migrate, trajectories, show.

Only ``migrate --create`` may create a file: looking at a database must never
leave an empty one behind because a path was mistyped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any

from ppp_otel.storage.sqlite.reader import SUMMARY_COLUMNS, summary_dict_from_row
from ppp_otel.cli._output import (
    PROG, add_stage_column, bulk, cell, counted, fail, human_size, int_at_least, limit_type, print_columns, print_fields,
    print_json, print_table, print_wrapped, score_decimals, text_width, SCORE_DECIMALS,
)
from ppp_otel.storage import display_name, is_postgres_url, open_store
from ppp_otel.storage.base import directory_named

#: Recording processes listed by ``status`` without ``--all``: each process that ever wrote keeps
#: its row (a pool's workers, a server's restarts), and the latest are the ones looked for.
RECORDERS_SHOWN = 10


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "status", parents=[common], help="schema version, row counts, file size, journal mode"
    )
    p.add_argument("--all", action="store_true",
                   help=f"list every recording process, not only the {RECORDERS_SHOWN} that wrote last")
    p.set_defaults(func=status)

    p = subparsers.add_parser("migrate", parents=[common], help="bring the schema up to date")
    p.add_argument("--create", action="store_true", help="create the database if it is missing")
    p.set_defaults(func=migrate)

    p = subparsers.add_parser("trajectories", parents=[common], help="list trajectories")
    p.add_argument("--spec", metavar="S", help="only this spec id")
    p.add_argument("--agent", metavar="A", help="only this agent")
    p.add_argument("--run", metavar="R", help="only this run id")
    p.add_argument("--stage", metavar="X", help="only this stage of the spec (plan, implement, ...)")
    p.add_argument("--limit", metavar="N", type=limit_type("trajectories"),
                   help="at most N trajectories (N >= 1; default: all)")
    p.add_argument("--offset", metavar="N", type=int_at_least(0), default=0, help="skip the first N")
    p.set_defaults(func=trajectories)

    p = subparsers.add_parser(
        "show", parents=[common], help="one trajectory: its turns, questions, violations and tool calls"
    )
    p.add_argument("id", type=int, help="trajectory id (see `ppp-otel trajectories`)")
    p.add_argument(
        "--full", action="store_true",
        help="each turn's prompt and response whole, as wrapped paragraphs, with its tool calls, "
        "questions and violations under it (the table cuts them to fit one line)",
    )
    p.set_defaults(func=show)


def status(args: argparse.Namespace) -> int:
    # Read-only: status reports the file as it is, an old schema included,
    # and does not migrate or switch its journal mode.
    with open_store(args.db, read_only=True) as store:
        report = store.status()
        report["recorders"] = store.recorders()
        # Turns ingest acknowledged whose trajectory span has not come (yet): kept, never dropped.
        report["pending"] = store.pending_summary()
    if args.json:
        # db_path, as demo, ingest and cleanup name the database; "path" is kept for the scripts that read it.
        print_json({"db_path": report["path"], **report})
        return 0
    shown: dict[str, Any] = {
        "path": report["path"],
        "schema version": _version_text(report["schema_version"], report["latest_version"]),
        "journal mode": report["journal_mode"],
        "file size": f"{human_size(report['file_size_bytes'])} ({report['file_size_bytes']} bytes)",
        "rows": {table: count for table, count in report["row_counts"].items()},
    }
    pending = report["pending"]
    age = pending["oldest_pending_age_s"]
    shown["pending turns"] = (  # waiting for their trajectory span
        f"{pending['pending_turns']} ({pending['pending_spans']} spans in pending_spans"
        + (f", oldest {age:g}s" if age is not None else "") + ")"
    )
    if report.get("backend") == "postgresql":
        del shown["journal mode"]
        shown["database size"] = shown.pop("file size")
    known = {"path", "schema_version", "latest_version", "journal_mode", "file_size_bytes", "backend",
             "row_counts", "recorders", "pending"}
    # Whatever else status() reports is shown as it comes.
    shown.update({key: value for key, value in report.items() if key not in known})
    print_fields(shown)
    if report["recorders"]:
        _print_recorders(report["recorders"], every=args.all)
    return 0


_RECORDER_COUNTS = (("written_turns", "turns written"), ("dropped", "dropped"), ("rejected", "rejected"),
                    ("write_errors", "write errors"))


def _print_recorders(recorders: list[dict], *, every: bool) -> None:
    shown = recorders if every else recorders[:RECORDERS_SHOWN]  # the latest first
    print("\nrecorders (each process that wrote here; counts since it started):")
    print_table(
        [(r["pid"], r["updated_at"], *(r[key] for key, _ in _RECORDER_COUNTS), r["last_error"]) for r in shown],
        ["pid", "updated", *(label for _, label in _RECORDER_COUNTS), "last error"],
        max_width=80,
    )
    hidden = len(recorders) - len(shown)
    if hidden:
        # What is left out still counts: a drop in an old process must not go unseen.
        totals = ", ".join(f"{sum(r[key] or 0 for r in recorders)} {label}" for key, label in _RECORDER_COUNTS)
        print(f"{hidden} earlier {'recorder is' if hidden == 1 else 'recorders are'} not listed "
              f"(`{PROG} status --all` lists them).\nAll {len(recorders)} together: {totals}.")


def _version_text(version: int, latest: int) -> str:
    if version < latest:
        return f"{version} (latest {latest}; run `ppp-otel migrate`)"
    return str(version)


def migrate(args: argparse.Namespace) -> int:
    # A path that names a directory is the store's to refuse, in the words every command uses.
    if not args.create and not os.path.exists(args.db) and "://" not in args.db and not directory_named(args.db):
        create = f"`{PROG} migrate --create --db {shlex.quote(args.db)}`"
        directory = os.path.dirname(os.path.abspath(args.db))
        if not os.path.isdir(directory):  # --create alone would fail too: say what comes first
            return fail(f"{args.db}: no such database file, and the directory {directory} does not exist; "
                        f"create the directory, then {create} creates the file")
        return fail(f"{args.db}: no such database file; {create} creates it")
    if args.create and is_postgres_url(args.db):  # as createdb would, then the schema in it
        from ppp_otel.storage.postgres.migrations import create_database

        create_database(args.db)
    with open_store(args.db, must_exist=not args.create, migrate_schema=False) as store:
        applied = store.migrate()
        version = store.status()["schema_version"]
    if args.json:
        path = display_name(store.path)
        print_json({"db_path": path, "path": path, "applied": applied, "schema_version": version})
    elif applied:
        versions = ", ".join(str(v) for v in applied)
        print(f"{display_name(store.path)}: migrated to schema version {version} (applied {versions})")
    else:
        print(f"{display_name(store.path)}: up to date at schema version {version}")
    return 0


# The listing's columns, picked from its rows: a listing of 100,000 trajectories
# must not spend more on objects than SQLite spends on finding them.
_COLUMNS = ("id", "spec_id", "agent_name", "run_id", "created_at", "turn_count", "question_count",
            "violation_count", "technical_score")
_LISTED = [SUMMARY_COLUMNS.index(name) for name in _COLUMNS]
_STAGE = SUMMARY_COLUMNS.index("stage")


def trajectories(args: argparse.Namespace) -> int:
    with bulk():
        return _trajectories(args)


def _trajectories(args: argparse.Namespace) -> int:
    chosen = dict(spec_id=args.spec, agent_name=args.agent, run_id=args.run, stage=args.stage,
                  limit=args.limit, offset=args.offset)
    with open_store(args.db) as store:
        if args.json:
            found = store.list_trajectory_rows(**chosen)
        else:
            columns = store.list_trajectory_columns(_LISTED + [_STAGE], **chosen)
    if args.json:
        print_json([summary_dict_from_row(row) for row in found])
        return 0
    headers = ["id", "spec", "agent", "run", "created", "turns", "questions", "violations", "technical"]
    add_stage_column(columns, headers, columns.pop())
    print_columns(columns, headers, max_width=32, empty=_none_found(args), decimals=score_decimals("technical"))
    return 0


def _none_found(args: argparse.Namespace) -> str:
    named = [(flag, value) for flag, value in
             (("spec", args.spec), ("stage", args.stage), ("agent", args.agent), ("run", args.run))
             if value is not None]
    where = "".join(f" of {flag} {value!r}" for flag, value in named)
    if args.offset:
        where += f" past the first {args.offset}"
    return f"no trajectories{where} in {display_name(args.db)}"


#: A turn's latency in tables: milliseconds to two decimals (a hundredth is ten
#: microseconds), lined up on the point; ``--json`` keeps the stored value.
LATENCY_DECIMALS = 2


#: The width of the prompt and response cells of ``show``'s table.
_TURN_TEXT_WIDTH = 40


def _cut(text: str | None) -> bool:
    """Whether the table shows less than all of ``text``."""
    return text is not None and (len(text) > _TURN_TEXT_WIDTH or "\n" in text)


def _tool_call_line(call: dict, width: int) -> str:
    """A tool call as ``name(arguments)`` on one line of ``width``: enough to see what the
    agent did; ``--json`` keeps the arguments whole."""
    arguments = call.get("arguments")
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):  # another writer stored them as JSON, not text
        arguments = json.dumps(arguments, ensure_ascii=False)
    return cell(f"{call.get('name') or '?'}({arguments})", width)


def _print_turns_whole(turns: list) -> None:
    """``show --full``: a block per turn, read top to bottom as the conversation went, rather
    than table cells: a prompt or a response of several paragraphs only reads whole so."""
    width = text_width()
    for t in turns:
        facts = [f"{t.token_count} tokens" if t.token_count is not None else None,
                 f"{t.latency_ms:.{LATENCY_DECIMALS}f} ms" if t.latency_ms is not None else None,
                 counted(len(t.questions), "question"), counted(len(t.violations), "violation"),
                 counted(len(t.tool_calls), "tool call") if t.tool_calls else None]
        print(f"\n── turn {t.number} ({', '.join(f for f in facts if f)})")
        print("prompt:")
        print_wrapped(t.prompt, indent=2, width=width)
        if t.tool_calls:  # made between the prompt and the response
            print("tool calls:")
            for call in t.tool_calls:
                print("  " + _tool_call_line(call, width - 2))
        print("response:")
        print_wrapped(t.response, indent=2, width=width)
        for q in t.questions:
            print(f"question ({q.effort_level} effort, {q.source}):")
            print_wrapped(q.text, indent=2, width=width)
        for v in t.violations:
            print(f"violation of {v.preference_name} ({v.severity}):")
            print_wrapped(f"expected {v.expected}; actual {v.actual}", indent=2, width=width)


def show(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        found = store.get_trajectory(args.id)
    if found is None:
        return fail(f"no trajectory with id {args.id} in {display_name(args.db)}")
    if args.json:
        print_json(found.to_dict())
        return 0
    print_fields({
        "trajectory": found.id,
        "spec": found.spec_id,
        "stage": found.stage,
        "agent": found.agent_name,
        "run": found.run_id,
        "created": found.created_at,
        "ended": found.ended_at,
        "technical score": None if found.technical_score is None else f"{found.technical_score:.{SCORE_DECIMALS}f}",
        "preferences": found.preferences,
        "trace id": found.trace_id,
    })
    if not found.turns:  # an empty table would look like a listing that lost its rows
        print()
        print("no turns recorded in this trajectory")
        return 0
    if args.full:
        _print_turns_whole(found.turns)
        return 0
    print()
    print_table(
        [(t.number, t.prompt, t.response, t.token_count, t.latency_ms, len(t.questions),
          len(t.violations), len(t.tool_calls)) for t in found.turns],
        ["turn", "prompt", "response", "tokens", "latency_ms", "questions", "violations", "tools"],
        max_width=_TURN_TEXT_WIDTH, decimals={"latency_ms": LATENCY_DECIMALS},
    )
    cut = any(_cut(t.prompt) or _cut(t.response) for t in found.turns)
    tools = any(t.tool_calls for t in found.turns)
    if cut:
        print(f"(prompts and responses cut to one line; `{PROG} show {found.id} --full` prints them whole"
              + (", with each turn's tool calls)" if tools else ")"))
    elif tools:
        print(f"(`{PROG} show {found.id} --full` lists each turn's tool calls)")
    questions = [(t.number, q.effort_level, q.source, q.text) for t in found.turns for q in t.questions]
    if questions:
        print()
        print_table(questions, ["turn", "effort", "source", "question"], max_width=80)
    violations = [
        (t.number, v.severity, v.preference_name, v.expected, v.actual)
        for t in found.turns for v in t.violations
    ]
    if violations:
        print()
        print_table(violations, ["turn", "severity", "preference", "expected", "actual"])
    return 0
