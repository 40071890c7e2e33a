"""``ppp-otel export``: replay trajectories from the database as OTLP spans (to Phoenix or any OTLP endpoint)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from ppp_otel.config.settings import PhoenixConfig, environ
from ppp_otel.cli._output import fail, print_fields, print_json, progress, url_problem, PROG
from ppp_otel.storage import display_name, open_store


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "export", parents=[common],
        help="send trajectories to Phoenix or any OTLP endpoint as spans",
        description="Replay trajectories as OTLP spans with their original ids and timestamps, so "
        "sending the same trajectory twice leaves one copy. Honors PHOENIX_API_KEY and "
        "OTEL_EXPORTER_OTLP_HEADERS.",
    )
    p.add_argument("--to", metavar="URL", required=True,
                   help="OTLP/HTTP endpoint, e.g. http://localhost:6006 (Phoenix); /v1/traces is added")
    p.add_argument("--spec", metavar="S", help="only trajectories of this spec id")
    p.add_argument("--trajectory", metavar="ID", type=int, action="append",
                   help="only this trajectory id (repeatable)")
    p.add_argument("--stage", metavar="X", help="only trajectories of this stage of the spec")
    p.add_argument("--run", metavar="R", help="only trajectories of this run id")
    p.add_argument("--project", metavar="NAME",
                   help="Phoenix project (default: $PHOENIX_PROJECT_NAME, else 'default')")
    p.set_defaults(func=export)


def _advance(bar: Any, done: int, total: int) -> None:
    bar.total = total
    bar.advance(done - bar.done)


#: Phoenix's UI opens on this many days back.
PHOENIX_DEFAULT_WINDOW_DAYS = 7


def _older_than_window(args: argparse.Namespace) -> tuple[int, str | None]:
    """How many of the trajectories to send started before Phoenix's default window, and the oldest start."""
    cutoff = (datetime.now(timezone.utc) - timedelta(days=PHOENIX_DEFAULT_WINDOW_DAYS)).strftime("%Y-%m-%dT%H:%M:%S")
    wanted = set(args.trajectory or ())
    with open_store(args.db, read_only=True) as store:
        found = [t for t in store.list_trajectories(spec_id=args.spec) if not wanted or t.id in wanted]
    # The stored texts are ISO 8601 (or SQLite's "YYYY-MM-DD HH:MM:SS"): they sort as times do.
    old = sorted(t.created_at.replace(" ", "T") for t in found if t.created_at and t.created_at.replace(" ", "T") < cutoff)
    return len(old), (old[0] if old else None)


def export(args: argparse.Namespace) -> int:
    from ppp_otel.capture.register import phoenix_exporter_settings, phoenix_project_name
    from ppp_otel.publish.otlp_replay import export_trajectories, otlp_exporter
    from ppp_otel.cli._sdk_log import sdk_log_kept_back

    problem = url_problem(args.to)
    if problem:
        return fail(f"--to {args.to!r} is not an OTLP/HTTP URL: {problem} "
                    "(e.g. http://localhost:6006 for Phoenix)")
    env = environ()
    settings = PhoenixConfig()
    # --to is OTLP/HTTP whatever OTEL_EXPORTER_OTLP_PROTOCOL says for live export.
    http_env = {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    _, endpoint, headers = phoenix_exporter_settings(args.to, settings, http_env)
    project = phoenix_project_name(args.project, settings, env)
    exporter = otlp_exporter(endpoint, headers=headers)
    try:
        with sdk_log_kept_back() as sdk_log, progress(f"exporting to {endpoint}", json_output=args.json) as bar:
            summary = export_trajectories(
                args.db, exporter, endpoint=endpoint, project_name=project, spec_id=args.spec,
                trajectory_ids=args.trajectory, progress=lambda done, total: _advance(bar, done, total),
                stage=args.stage, run_id=args.run,
            )
    finally:
        exporter.shutdown()
    old, oldest = _older_than_window(args) if summary.trajectories else (0, None)
    if old:
        print(f"{PROG}: warning: {old} of the {summary.trajectories} trajectories sent started more than "
              f"{PHOENIX_DEFAULT_WINDOW_DAYS} days ago (the oldest at {oldest}); Phoenix's UI opens on the "
              "last 7 days: choose a wider time range there to see them", file=sys.stderr)
    if args.json:
        data = summary.to_dict()
        data["older_than_phoenix_window"] = old
        print_json(data)
    elif not summary.trajectories:
        chosen = [(flag, value) for flag, value in (("spec", args.spec), ("stage", args.stage), ("run", args.run))
                  if value is not None]
        print(f"no trajectories to export{''.join(f' of {flag} {value!r}' for flag, value in chosen)} "
              f"in {display_name(args.db)}")
    else:
        print_fields({"endpoint": summary.endpoint, "project": summary.project,
                      "trajectories": summary.trajectories, "spans": summary.spans,
                      "failed spans": summary.failed_spans})
    if not summary.ok:
        return fail(f"{summary.failed_spans} spans were not accepted by {endpoint} "
                    f"(trajectories {', '.join(map(str, summary.failed_trajectory_ids))})"
                    + (f": {reason}" if (reason := sdk_log.reason()) else ""))
    return 0
