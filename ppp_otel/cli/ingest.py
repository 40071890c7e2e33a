"""``ppp-otel ingest``: receive OTLP traces into the database; ``ppp-otel export``: send them back out."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from ppp_otel.ingest.server import DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, IngestServer
from ppp_otel.cli._output import int_at_least, print_fields, print_json
from ppp_otel.storage.backends import display_name


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "ingest", parents=[common],
        help="receive OTLP/HTTP traces (POST /v1/traces) into the database",
        description="An OTLP/HTTP trace receiver: point any OTLP exporter or collector at "
        "http://HOST:PORT/v1/traces. Runs until SIGTERM or Ctrl-C, then writes everything accepted.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST}; "
                   "0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--grpc-port", type=_port, metavar="PORT",
                   help="also receive OTLP/gRPC on this port (4317 is OTLP's; the Collector's loadbalancing "
                   "exporter speaks only gRPC; default: off)")
    p.add_argument("--token", metavar="T", help="require 'Authorization: Bearer T' (default: $PPP_OTEL_INGEST_TOKEN)")
    p.add_argument("--max-body-bytes", metavar="N", type=int_at_least(1), default=DEFAULT_MAX_BODY_BYTES,
                   help=f"largest body accepted, before or after gzip (default: {DEFAULT_MAX_BODY_BYTES})")
    p.add_argument("--pending-ttl", metavar="S", type=float, default=600.0,
                   help="how long turns wait for their trajectory span, which arrives when the "
                   "trajectory ends; raise it for longer runs (default: 600)")
    p.set_defaults(func=ingest)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def ingest(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    token = args.token or os.environ.get("PPP_OTEL_INGEST_TOKEN") or None
    try:
        server = IngestServer(args.db, args.host, args.port, token, max_body_bytes=args.max_body_bytes,
                              pending_ttl_s=args.pending_ttl, grpc_port=args.grpc_port)
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    # The handler only sets a flag: stopping the server from inside it would
    # wait on the very thread the signal interrupted.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    # A line a supervisor (or a test) can wait for, with the real port when --port 0.
    grpc_note = f" and gRPC on {server.host}:{server.grpc.port}" if server.grpc is not None else ""
    print(f"ppp-otel ingest: listening on {server.url}/v1/traces{grpc_note}, writing to {display_name(args.db)}",
          file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    server.stop()
    stats = server.stats
    if args.json:
        print_json(stats)
    else:
        print_fields({k: v for k, v in stats.items() if k in (
            "received_spans", "rejected_spans", "orphan_turns", "written_trajectories", "written_turns",
            "duplicates", "dropped", "rejected", "db_path")}, file=sys.stderr)
    return 0
