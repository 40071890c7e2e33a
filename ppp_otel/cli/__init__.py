"""The ``ppp-otel`` command: a thin shell over the library.

Subcommands are found, not listed: every module of this package whose name
does not start with ``_`` is a command module and exposes::

    def register(subparsers, common) -> None:
        parser = subparsers.add_parser("name", parents=[common], help="...")
        parser.set_defaults(func=run)   # run(args) -> int

``common`` gives every command ``--db PATH`` and ``--json``, so adding a
command is dropping in a module; this file does not change. A command's
``help`` is also its ``description`` unless it has one of its own.

``ppp-otel --help`` lists the commands in the order a user meets them along the
data's way (:data:`FLOW`), not in the order the modules happen to be found; a
command :data:`FLOW` does not name comes after those it does.

Every command reads the configuration the same way: ``main()`` loads it once
(``$PPP_OTEL_CONFIG``) into ``args.settings`` before the command runs, so a
broken file is the same error for every command, not fatal for some and
ignored by others.

Errors a user can cause (a missing or non-SQLite database, a bad config, a bad
value) become one line ``ppp-otel: error: ...`` on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sqlite3
import sys
from typing import Sequence

from ppp_otel.config.settings import ConfigError, load_config, CONFIG_ENV, DB_ENV
from ppp_otel.storage.sqlite.migrations import DEFAULT_DB_PATH, DatabaseError
from ppp_otel.config import settings
from ppp_otel.storage.base import NoSuchDatabase, StorageError
from ppp_otel.cli._output import PROG, attach_dashed_values, fail

__all__ = ["main", "build_parser", "default_db_path"]

#: The commands by the data's way through ppp-otel: how ``--help`` lists them.
FLOW: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("getting trajectories in", ("demo", "ingest", "import")),
    ("looking at them", ("trajectories", "show", "score", "consensus", "consensus-history", "report",
                      "trends", "judge")),
    ("sending them out", ("export", "export-atif")),
    ("keeping the store", ("copy", "cleanup", "status", "migrate", "config")),
)


def default_db_path(config=None) -> str:
    """``$PPP_OTEL_DB``, else the config file's ``db_path``, else the default name."""
    if config is None:
        return settings.default_db_path()
    return settings.env_value(DB_ENV) or config.db_path or DEFAULT_DB_PATH


class _Commands:
    """``add_subparsers()``'s object, giving each command its help as description too, and
    the help layout of ``ppp-otel --help``."""

    def __init__(self, subparsers: argparse._SubParsersAction):
        self._subparsers = subparsers

    def add_parser(self, name: str, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        if kwargs.get("help") and not kwargs.get("description"):
            text = kwargs["help"]
            kwargs["description"] = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
        return self._subparsers.add_parser(name, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._subparsers, name)


def _add_common_options(parser: argparse.ArgumentParser, *, db: object, json: object) -> None:
    parser.add_argument(
        "--db", metavar="PATH", default=db,
        help=f"trajectory database: a SQLite file or a postgresql:// URL (default: ${DB_ENV}, else the config's db_path, "
        f"else {DEFAULT_DB_PATH})",
    )
    parser.add_argument(
        "--json", action="store_true", default=json, help="print JSON instead of a table"
    )


def _common_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand (`ppp-otel --json status`)
    # is not overwritten by the subcommand's own default. The top parser gets
    # its own copies of the options (not `parents=`): argparse shares action
    # objects with parents, so its defaults would leak into every subcommand.
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, db=argparse.SUPPRESS, json=argparse.SUPPRESS)
    return common


def _command_modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


def _in_flow_order(subparsers: argparse._SubParsersAction) -> list[tuple[str, list[str]]]:
    """Put the registered commands in :data:`FLOW`'s order, in the help and in the
    choices a usage error lists; return FLOW's sections as registered (the names of
    absent commands left out, commands FLOW does not name in a section of their own)."""
    rank = {name: i for i, name in enumerate(name for _, names in FLOW for name in names)}
    # The help listing; discovery order breaks ties, so unnamed commands keep theirs.
    listed = subparsers._choices_actions
    listed.sort(key=lambda action: rank.get(action.dest, len(rank)))
    choices = subparsers.choices
    ordered = sorted(choices, key=lambda name: rank.get(name, len(rank)))
    for name in ordered:
        choices[name] = choices.pop(name)
    sections = [(title, [n for n in names if n in choices]) for title, names in FLOW]
    others = [n for n in ordered if n not in rank]
    if others:
        sections.append(("the others", others))
    return [(title, names) for title, names in sections if names]


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, but lines are not broken inside a hyphenated name (``export-atif``),
    and a blank line in a description or epilog starts a new paragraph."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join("\n".join(indent + line for line in self._split_lines(paragraph, width - len(indent)))
                           for paragraph in text.split("\n\n"))


def _epilog(sections: list[tuple[str, list[str]]]) -> str:
    def span(names: list[str]) -> str:
        return ", ".join(names) if len(names) <= 2 else f"{names[0]} to {names[-1]}"

    ways = ", ".join(f"{title} ({span(names)})" for title, names in sections)
    return f"The commands as the data goes: {ways}.\n\nRun `{PROG} COMMAND --help` for a command's options."


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record, inspect and score AI agent trajectories.",
        formatter_class=_HelpFormatter,
    )
    from ppp_otel import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common_options(parser, db=None, json=False)
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    commands = _Commands(subparsers)
    for name in _command_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(commands, common)
    parser.epilog = _epilog(_in_flow_order(subparsers))
    return parser


def _config_way_out(exc: ConfigError) -> str:
    """What to undo: the variables that gave the bad values, else the config file."""
    sources = [s.strip() for s in (exc.source or "").split(",") if s.strip()]
    variables = [s[len("env:"):] for s in sources if s.startswith("env:") and s != f"env:{CONFIG_ENV}"]
    if sources and len(variables) == len(sources):
        return f"fix it, or unset {' and '.join(variables)}"
    return f"fix it, or unset {CONFIG_ENV} to run without it"


def _named_by(args: argparse.Namespace) -> str:
    """Where a database that is not there was named, when not on the command line: a
    command run in another directory than the agent finds no file by the default name."""
    if getattr(args, "db_given", True):
        return ""
    if settings.env_value(DB_ENV):
        return f" (named by {DB_ENV})"
    if getattr(args, "settings", None) is not None and args.settings.db_path != DEFAULT_DB_PATH:
        return " (named by the config's db_path)"
    return (f" (the default name, in {os.getcwd()}: name the database with --db PATH or {DB_ENV}; "
            f"`{PROG} demo` records one)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(attach_dashed_values(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        try:
            args.settings = load_config()
        except ConfigError as exc:
            # `ppp-otel config --config FILE` reads another file: the broken one is not its business.
            if not (getattr(args, "reads_config_itself", False) and getattr(args, "config", None)):
                raise ConfigError(f"{exc}; {_config_way_out(exc)}") from None
            args.settings = None  # `ppp-otel config --config FILE` may name another file
        args.db_given = args.db is not None
        if args.db is None:
            args.db = (default_db_path(args.settings) if args.settings is not None
                       else settings.env_value(DB_ENV) or DEFAULT_DB_PATH)
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `ppp-otel trajectories | head`: the reader has gone, which is fine.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as exc:  # a missing file, a directory where a file was meant, no permission
        return fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc)
    except NoSuchDatabase as exc:
        return fail(f"{exc}{_named_by(args)}")
    except (StorageError, ConfigError, ValueError, sqlite3.Error) as exc:
        return fail(exc)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
