"""``ppp-otel export``: replay trajectories from the database as OTLP spans (to Phoenix or any OTLP endpoint)."""

from __future__ import annotations

import argparse
from typing import Any

from ppp_otel.config.settings import PhoenixConfig, environ
from ppp_otel.publish.otlp_replay import export_trajectories, otlp_exporter
from ppp_otel.capture.register import phoenix_exporter_settings, phoenix_project_name
from ppp_otel.cli._output import fail, print_fields, print_json, progress


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
    p.add_argument("--project", metavar="NAME",
                   help="Phoenix project (default: $PHOENIX_PROJECT_NAME, else 'default')")
    p.set_defaults(func=export)


def _advance(bar: Any, done: int, total: int) -> None:
    bar.total = total
    bar.advance(done - bar.done)


def export(args: argparse.Namespace) -> int:
    env = environ()
    settings = PhoenixConfig()
    # --to is OTLP/HTTP whatever OTEL_EXPORTER_OTLP_PROTOCOL says for live export.
    http_env = {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    _, endpoint, headers = phoenix_exporter_settings(args.to, settings, http_env)
    project = phoenix_project_name(args.project, settings, env)
    exporter = otlp_exporter(endpoint, headers=headers)
    try:
        with progress(f"exporting to {endpoint}", json_output=args.json) as bar:
            summary = export_trajectories(
                args.db, exporter, endpoint=endpoint, project_name=project, spec_id=args.spec,
                trajectory_ids=args.trajectory, progress=lambda done, total: _advance(bar, done, total),
            )
    finally:
        exporter.shutdown()
    if args.json:
        print_json(summary.to_dict())
    else:
        print_fields({"endpoint": summary.endpoint, "project": summary.project,
                      "trajectories": summary.trajectories, "spans": summary.spans,
                      "failed spans": summary.failed_spans})
    if not summary.ok:
        return fail(f"{summary.failed_spans} spans were not accepted by {endpoint} "
                    f"(trajectories {', '.join(map(str, summary.failed_trajectory_ids))}); see the log above")
    return 0
