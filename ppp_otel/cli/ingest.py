"""``ppp-otel ingest``: receive OTLP traces into the database; ``ppp-otel export``: send them back out."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ppp_otel.ingest.defaults import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT
from ppp_otel.config.settings import INGEST_TOKEN_ENV, env_value, process_config
from ppp_otel.cli._output import PROG, int_at_least, number_at_least, print_fields, print_json
from ppp_otel.storage import check_creatable, display_name, is_postgres_url, open_store
from ppp_otel.storage.base import DatabaseError, ReadOnlyError
from ppp_otel.storage.sqlite.staging import DEFAULT_RETENTION_S


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "ingest", parents=[common],
        help="receive OTLP traces (HTTP POST /v1/traces and gRPC) into the database",
        description="An OTLP trace receiver: point any OTLP exporter or collector at "
        "http://HOST:PORT/v1/traces (OTLP/HTTP) or HOST:GRPC_PORT (OTLP/gRPC). A request is answered "
        "once its spans are committed. Runs until SIGTERM or Ctrl-C, then finishes the requests in "
        "flight, prints a summary and exits: 0, or 1 when records it had queued could not be written "
        "before it stopped (the summary's lost_at_shutdown; their senders were not answered 200 and "
        "still hold them).",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST}; "
                   "0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"OTLP/HTTP port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--grpc-port", type=_grpc_port, default=DEFAULT_GRPC_PORT, metavar="PORT",
                   help=f"OTLP/gRPC port (default: {DEFAULT_GRPC_PORT}; 0 picks a free one; 'off' serves HTTP only)")
    p.add_argument("--token", metavar="T", help="require 'Authorization: Bearer T' (default: $PPP_OTEL_INGEST_TOKEN)")
    p.add_argument("--max-body-bytes", metavar="N", type=int_at_least(1), default=DEFAULT_MAX_BODY_BYTES,
                   help=f"largest body accepted, before or after gzip (default: {DEFAULT_MAX_BODY_BYTES})")
    p.add_argument("--pending-ttl", metavar="S", type=number_at_least(0, above=True), default=600.0,
                   help="how long turns waiting for their trajectory span (it arrives when the trajectory "
                   "ends) are also kept in memory; they are in the database either way (default: 600)")
    p.add_argument("--pending-retention", metavar="S", type=number_at_least(0, above=True), default=DEFAULT_RETENTION_S,
                   help="delete turns whose trajectory span has not come after S seconds "
                   f"(default: {DEFAULT_RETENTION_S:.0f}, seven days)")
    p.set_defaults(func=ingest)


_PORTS = "a number from 0 to 65535; 0 picks a free one"


def _port(text: str, accepted: str = _PORTS) -> int:
    # ArgumentTypeError, not ValueError: argparse would name this function in the message.
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text} ({accepted})")
    return value


def _grpc_port(text: str) -> int | None:
    return None if text.strip().lower() == "off" else _port(text, f"{_PORTS}; off serves HTTP only")


#: ``ingest`` when it stopped with records it had queued and could not write (``lost_at_shutdown``).
EXIT_LOST_AT_SHUTDOWN = 1


def _check_store(db: str) -> None:
    """Refuse to start on a store that cannot be used at all (its directory missing, a server
    that is not there, not a database), as import does: a receiver that started anyway would
    take requests it can never answer. A locked or read-only file is retried while serving."""
    check_creatable(db, choose="--db / PPP_OTEL_DB")
    try:
        # PostgreSQL: the schema is made now, so a role that may not create it (a refusal that
        # never passes) stops the start. SQLite: not now, a locked file must not.
        open_store(db, must_exist=False, migrate_schema=is_postgres_url(db)).close()
    except ReadOnlyError:
        pass
    except DatabaseError as exc:
        raise type(exc)(f"cannot ingest into {exc}") from None


def ingest(args: argparse.Namespace) -> int:
    import errno
    import logging
    import signal
    import threading

    from ppp_otel.ingest.server import IngestServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    token = args.token or env_value(INGEST_TOKEN_ENV)
    _check_store(args.db)
    try:
        server = IngestServer(args.db, args.host, args.port, token, grpc_port=args.grpc_port,
                              max_body_bytes=args.max_body_bytes, pending_ttl_s=args.pending_ttl,
                              pending_retention_s=args.pending_retention,
                              # The config's question tools, as recording and import read them.
                              question_tools=(args.settings or process_config()).trajectory.question_tools)
    except OSError as exc:
        hint = (" (other ports: --port P, --grpc-port P, or --grpc-port off for HTTP only)"
                if exc.errno == errno.EADDRINUSE else "")
        raise ValueError(f"{exc.strerror or exc}{hint}") from None
    stop = threading.Event()
    # The handler only sets a flag: stopping the server from inside it would
    # wait on the very thread the signal interrupted.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    # A line a supervisor (or a test) can wait for, with the real port when --port 0.
    grpc = f" and gRPC {server.grpc_endpoint}" if server.grpc_endpoint else ""
    print(f"ppp-otel ingest: listening on {server.url}/v1/traces{grpc}, writing to {display_name(args.db)}",
          file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()
    stats = server.stats
    if args.json:
        print_json(stats)
    else:
        summary = {k: v for k, v in stats.items() if k in (
            "received_spans", "rejected_spans", "refused_requests", "pending_spans", "written_trajectories", "written_turns",
            "duplicates", "dropped", "rejected", "lost_at_shutdown", "turns_without_content", "db_path")}
        if stats.get("turns_without_content"):  # which instrumentations to turn content capture on for
            summary["turns_without_content_by_instrumentation"] = stats["turns_without_content_by_instrumentation"]
        print_fields(summary, file=sys.stderr)
    lost = stats.get("lost_at_shutdown", 0)
    if lost:
        # A supervisor must see it in the exit status, not only in the summary.
        print(f"{PROG} ingest: {lost} records queued were not written before it stopped (the database "
              "could not be written); their senders were not answered 200 and still hold them",
              file=sys.stderr)
        return EXIT_LOST_AT_SHUTDOWN
    return 0
