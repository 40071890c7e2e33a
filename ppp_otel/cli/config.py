"""``ppp-otel config``: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ppp_otel.config.settings import display_value, load_config, unknown_variables
from ppp_otel.cli._output import print_json, print_table
from ppp_otel.storage import display_name


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "config", parents=[common],
        help="effective configuration: every key, its value and where it came from",
    )
    p.add_argument(
        "--config", metavar="FILE",
        help="the TOML file to read (default: $PPP_OTEL_CONFIG, else none)",
    )
    p.set_defaults(func=show_config, reads_config_itself=True)


def show_config(args: argparse.Namespace) -> int:
    # --db is every command's option; here it is one more override, so the
    # listing shows the path this very command line would use. main() fills a
    # missing --db with the default path, which must not count as an argument.
    db_override = args.db if getattr(args, "db_given", True) else None
    config = load_config(args.config, overrides={"db_path": db_override})
    rows = [(key, display_value(key, value), source) for key, value, source in config.items()]
    # A postgresql:// URL may carry a password: shown without it, as everywhere else.
    rows = [(k, display_name(v) if k.endswith("db_path") and isinstance(v, str) else v, s) for k, v, s in rows]
    warnings = unknown_variables()
    if args.json:
        print_json({
            "file": config.file,
            "settings": [{"key": k, "value": v, "source": s} for k, v, s in rows],
            "warnings": warnings,
        })
        return 0
    print(f"config file: {config.file or '(none; set PPP_OTEL_CONFIG or pass --config)'}")
    print_table([(k, _shown(v), s) for k, v, s in rows], ["key", "value", "source"], max_width=None)
    for warning in warnings:
        print(f"note: {warning}", file=sys.stderr)
    return 0


def _shown(value: Any) -> str:
    # A table cell of "" would read as missing; say it is empty.
    return '""' if value == "" else str(value).lower() if isinstance(value, bool) else value
