"""``ppp-otel ingest``: an OTLP/HTTP trace receiver that fills the trajectory database.

Any OTLP exporter (another language's SDK, an OpenTelemetry Collector) can
post to ``/v1/traces``; the spans go through the same records, analysis and
writer thread as spans recorded in process. The receiver answers once the
spans are queued, not written: the writer is idempotent on (trace id, span
id), so a client that retries after a lost answer does no harm.

    server = IngestServer("runs.db", port=0)
    server.start()
    ... post to server.url + "/v1/traces" ...
    server.stop()          # flushes everything accepted
"""

from __future__ import annotations

import hmac
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ppp_otel import conventions as c
from ppp_otel.ingest import wire as otlp
from ppp_otel.logs import LogLimiter
from ppp_otel.records import TurnRecord
from ppp_otel.storage import backends
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.ingest.assembler import Placement, TrajectoryAssembler
from ppp_otel.capture.processor import TrajectorySpanProcessor

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318  # the OTLP/HTTP port, so exporters' defaults point here
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class IngestOutcome:
    spans: int = 0
    queued: int = 0  # records handed to the writer
    rejected: int = 0  # spans that could not be used
    not_queued: int = 0  # records the full queue refused; the client should retry
    first_error: str | None = None


class SpanIngest:
    """OTLP requests in, records queued on a :class:`TrajectorySpanProcessor`; thread-safe.

    On a PostgreSQL store, spans still waiting for their parent after a request
    are not held in this process: they go to the store's pending table before
    the request is answered, and a claimer thread writes them once any replica
    has stored their parent (:mod:`ppp_otel.storage.postgres.ingest`).
    """

    #: How often the claimer looks for pending spans whose parent has been stored.
    claim_interval_s = 0.2
    _EXPIRE_EVERY_S = 5.0

    def __init__(self, processor: TrajectorySpanProcessor, assembler: TrajectoryAssembler | None = None):
        self.processor = processor
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.shared = None
        if backends.is_postgres(processor.db_path):
            from ppp_otel.storage.postgres.ingest import SharedPending

            self.shared = SharedPending(processor.db_path)
        self.assembler = assembler or TrajectoryAssembler(self._stored_placement)
        self.received_spans = 0
        self.rejected_spans = 0
        self.shared_orphans = 0
        self._stop_claiming = threading.Event()
        self._claimer: threading.Thread | None = None
        self._log_claim = LogLimiter(logger)

    def start(self) -> None:
        """Start the claimer (PostgreSQL stores only)."""
        if self.shared is not None and self._claimer is None:
            self._claimer = threading.Thread(target=self._claim_loop, name="ppp-otel-ingest-claimer", daemon=True)
            self._claimer.start()

    def ingest(self, request: Any) -> IngestOutcome:
        outcome = IngestOutcome()
        good = []
        for item in otlp.spans(request):
            outcome.spans += 1
            if isinstance(item, str):
                outcome.rejected += 1
                outcome.first_error = outcome.first_error or item
            else:
                good.append(item)
        with self._lock:
            # All or nothing: the assembler's state changes for good once spans are
            # added (held turns are released), so a request is refused (503, to be
            # retried) before anything changes rather than half taken.
            if not self.processor.has_room(len(good) + self.assembler.pending):
                self.received_spans += outcome.spans
                outcome.not_queued = len(good)
                return outcome
            assembled = self.assembler.add(good)
            held = self.assembler.take_waiting() if self.shared is not None else []
            placed = self._shared_placements(good, assembled) if self.shared is not None else []
            # Under the lock, so a trajectory record is queued before turns another request releases.
            taken = self.processor.submit(assembled.records, force=True)
            self.received_spans += outcome.spans
            self.rejected_spans += outcome.rejected + len(assembled.rejected)
        if held or placed:
            try:
                self.shared.stage(held, placed)
            except Exception as exc:  # the store is unreachable: these spans are not accepted
                self._log_claim("ppp-otel ingest: cannot keep %d waiting spans in the store: %s", len(held), exc)
                outcome.not_queued += len(held) + len(placed)
                outcome.first_error = outcome.first_error or f"the store is unavailable: {exc}"
        outcome.rejected += len(assembled.rejected)
        if assembled.rejected:
            outcome.first_error = outcome.first_error or assembled.rejected[0]
        outcome.queued = taken
        outcome.not_queued += len(assembled.records) - taken
        return outcome

    def _shared_placements(self, spans: list, assembled: Any) -> list:
        """Spans inside a trajectory that are stored as neither trajectory nor turn: other
        replicas can learn only from here where a span below them belongs."""
        turns = {(r.trace_id, r.span_id) for r in assembled.records if isinstance(r, TurnRecord)}
        placed = []
        for span in spans:
            if (span.trace_id, span.span_id) in turns or c.is_trajectory_span(span.name, span.attributes):
                continue
            placement = self.assembler.placement_of(span.trace_id, span.span_id)
            if placement is not None and placement.trajectory is not None:
                placed.append((span.trace_id, span.span_id, placement))
        return placed

    # ------------------------------------------------------ shared pending spans

    def _claim_loop(self) -> None:
        next_expiry = 0.0
        while not self._stop_claiming.wait(self.claim_interval_s):
            try:
                while self.claim_once() and not self._stop_claiming.is_set():
                    pass
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + self._EXPIRE_EVERY_S
                    self.expire_shared()
            except Exception as exc:  # the store is down or restarting: try again next round
                self._log_claim("ppp-otel ingest: claiming pending spans failed: %s", exc)

    def claim_once(self) -> int:
        """Write the pending spans (of any replica) whose parent is now stored; how many."""
        spans = self.shared.claim()
        if not spans:
            return 0
        with self._lock:
            assembled = self.assembler.add(spans)
            still = self.assembler.take_waiting()
            placed = self._shared_placements(spans, assembled)
            written_later = set()
            for record in assembled.records:
                if isinstance(record, TurnRecord):
                    # The writer deletes its pending row in the transaction that stores the turn.
                    record.claimed_pending = True
                    written_later.add((record.trace_id, record.span_id))
            self.processor.submit(assembled.records, force=True)
            self.rejected_spans += len(assembled.rejected)
        self.shared.stage(still, placed)  # what still waits goes back, unclaimed
        waiting = {(s.trace_id, s.span_id) for s in still} | written_later
        # Spans that make no row (a chain span, a rejected turn) are done once placed.
        self.shared.done([(s.trace_id, s.span_id) for s in spans if (s.trace_id, s.span_id) not in waiting])
        return len(spans)

    def expire_shared(self) -> int:
        """Give up pending spans older than the TTL; returns how many turns became orphans."""
        before = datetime.now(timezone.utc) - timedelta(seconds=self.assembler.pending_ttl_s)
        orphans = 0
        for parent, span in self.shared.expire(before.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"):
            if span is not None and c.is_turn_span(span.name, span.attributes):
                orphans += 1
                self._log_claim(
                    "ppp-otel ingest: turn span %s of trace %s dropped as an orphan: parent %s never arrived "
                    "(no parent within %gs)", span.span_id, span.trace_id, parent, self.assembler.pending_ttl_s)
        with self._lock:
            self.shared_orphans += orphans
        return orphans

    def expire(self) -> int:
        with self._lock:
            return self.assembler.expire()

    def close(self, timeout_s: float | None = None) -> None:
        """Give up spans still waiting for a parent, then write everything queued.

        Spans waiting in a PostgreSQL store stay there for the other replicas (or this one, restarted)."""
        self._stop_claiming.set()
        if self._claimer is not None:
            self._claimer.join(60)
        if self.shared is not None:
            # Parents this replica just accepted free the spans waiting for them: write those now.
            try:
                self.processor.force_flush(5_000)
                while self.claim_once():
                    pass
            except Exception as exc:
                logger.warning("ppp-otel ingest: pending spans left for the other replicas: %s", exc)
        with self._lock:
            orphans = self.assembler.expire_all()
            if orphans:
                logger.warning("ppp-otel ingest: %d turns still waited for their trajectory at shutdown", orphans)
            if self._db is not None:
                self._db.close()
                self._db = None
        self.processor.shutdown()
        if self.shared is not None:
            self.shared.close()

    @property
    def stats(self) -> dict[str, Any]:
        a = self.assembler
        return {
            "received_spans": self.received_spans,
            "rejected_spans": self.rejected_spans,
            "pending_spans": a.pending,
            "orphan_turns": a.orphans + self.shared_orphans,
            "staged_spans": self.shared.staged if self.shared is not None else 0,
            "claimed_spans": self.shared.claimed if self.shared is not None else 0,
            **self.processor.stats,
        }

    def _stored_placement(self, trace_id: str, span_id: str) -> Placement | None:
        """A parent recorded earlier (another process, a restart): a trajectory or a turn."""
        if self.shared is not None:
            try:
                return self.shared.placement(trace_id, span_id)
            except Exception as exc:  # unreachable now: the span waits, and is claimed later
                logger.debug("ppp-otel ingest: parent lookup failed: %s", exc)
                return None
        try:
            if self._db is None:
                self._db = schema.connect(self.processor.db_path, check_same_thread=False, migrate_schema=False)
            row = self._db.execute(
                "SELECT 1 FROM trajectories WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
            ).fetchone()
            if row is not None:
                return Placement((trace_id, span_id))
            row = self._db.execute(
                """SELECT t.trace_id, t.span_id FROM trajectory_turns u JOIN trajectories t
                   ON t.id = u.trajectory_id WHERE u.trace_id = ? AND u.span_id = ?""",
                (trace_id, span_id),
            ).fetchone()
            if row is not None:
                return Placement((row[0], row[1]), in_turn=True)
        except (sqlite3.Error, schema.DatabaseError) as exc:
            logger.debug("ppp-otel ingest: parent lookup failed: %s", exc)
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: exporters post batch after batch
    server_version = "ppp-otel-ingest"

    def do_POST(self) -> None:
        try:
            self.server.receiver._handle(self)
        except Exception as exc:  # a bug must cost one request, not the receiver
            logger.exception("ppp-otel ingest: request failed")
            self.server.receiver._error(self, 500, f"internal error: {type(exc).__name__}", None)

    def do_GET(self) -> None:
        self._refuse_method()

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _refuse_method(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != otlp.TRACES_PATH:
            self.server.receiver._error(self, 404, f"no such path {path}; traces go to POST {otlp.TRACES_PATH}", None)
        else:
            self.server.receiver._error(self, 405, "use POST", None, extra={"Allow": "POST"})

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("ppp-otel ingest: %s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() waits for requests in flight
    block_on_close = True
    receiver: IngestServer


class IngestServer:
    """An OTLP/HTTP receiver on ``host:port`` writing into ``db_path``.

    ``port=0`` takes a free port (see ``.url``). ``token`` requires
    ``Authorization: Bearer <token>``. Bodies larger than ``max_body_bytes``,
    before or after gzip, get 413.
    """

    def __init__(
        self,
        db_path: str | os.PathLike,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        processor: TrajectorySpanProcessor | None = None,
        pending_ttl_s: float = 600.0,
        max_pending_spans: int = 100_000,
        grpc_port: int | None = None,
    ):
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty")
        # Network batches are large: write them in big transactions, soon.
        # A collector sends bursts of thousands of spans: queue more than an app would.
        processor = processor or TrajectorySpanProcessor(
            db_path, buffer_size=1000, flush_interval_ms=100, max_queue_size=100_000
        )
        self.ingest = SpanIngest(processor)
        self.ingest.assembler.pending_ttl_s = pending_ttl_s
        self.ingest.assembler.max_pending_spans = max_pending_spans
        self.token = token
        self.max_body_bytes = max_body_bytes
        self._httpd = _Server((host, port), _Handler, bind_and_activate=True)
        self._httpd.receiver = self
        self.grpc = None
        if grpc_port is not None:
            from ppp_otel.ingest.grpc_receiver import GrpcReceiver

            try:
                self.grpc = GrpcReceiver(self.ingest, host, grpc_port, token, max_message_bytes=max_body_bytes)
            except BaseException:
                self._httpd.server_close()
                raise
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def stats(self) -> dict[str, Any]:
        return self.ingest.stats

    def start(self) -> IngestServer:
        """Serve on a background thread; returns at once."""
        self._thread = threading.Thread(target=self.serve_forever, name="ppp-otel-ingest", daemon=True)
        self._thread.start()
        if self.grpc is not None:
            self.grpc.start()
        return self

    def serve_forever(self) -> None:
        self.ingest.start()
        self._httpd.service_actions = self.ingest.expire  # runs every poll, ten times a second
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop taking requests, finish those in flight, write everything queued. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.grpc is not None:
            self.grpc.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self.ingest.close()

    def __enter__(self) -> IngestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- request

    def _handle(self, h: _Handler) -> None:
        path = h.path.split("?", 1)[0]
        if path != otlp.TRACES_PATH:
            return self._error(h, 404, f"no such path {path}; traces go to POST {otlp.TRACES_PATH}", None)
        if self.token is not None and not self._authorized(h.headers.get("Authorization")):
            return self._error(h, 401, "missing or wrong bearer token", None, extra={"WWW-Authenticate": "Bearer"})
        try:
            media = otlp.media_type(h.headers.get("Content-Type"))
        except otlp.BodyError as exc:
            return self._error(h, exc.status, str(exc), None)
        try:
            body = self._read_body(h)
            body = otlp.decompress(body, h.headers.get("Content-Encoding"), self.max_body_bytes)
            request = otlp.parse_request(body, media)
        except otlp.BodyError as exc:
            return self._error(h, exc.status, str(exc), media)
        outcome = self.ingest.ingest(request)
        if outcome.not_queued:
            # Retryable per OTLP: the writer's queue is full; redelivery is stored once.
            return self._error(h, 503, f"queue full; {outcome.not_queued} records not taken", media,
                               extra={"Retry-After": "1"})
        self._send(h, 200, otlp.response_body(outcome.rejected, outcome.first_error, media), media)

    def _authorized(self, header: str | None) -> bool:
        expected = f"Bearer {self.token}".encode()
        return header is not None and hmac.compare_digest(header.strip().encode(), expected)

    def _read_body(self, h: _Handler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(h)
        length_text = h.headers.get("Content-Length")
        if length_text is None:
            raise otlp.BodyError("a Content-Length or chunked transfer encoding is required")
        try:
            length = int(length_text)
        except ValueError:
            raise otlp.BodyError(f"Content-Length is not a number: {length_text!r}") from None
        if length < 0:
            raise otlp.BodyError("Content-Length is negative")
        if length > self.max_body_bytes:
            raise otlp.BodyTooLarge(f"body of {length} bytes is over the limit of {self.max_body_bytes} bytes")
        body = h.rfile.read(length)
        if len(body) != length:
            raise otlp.BodyError(f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self, h: _Handler) -> bytes:
        parts, total = [], 0
        while True:
            line = h.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise otlp.BodyError("malformed chunked body") from None
            if size == 0:
                while h.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > self.max_body_bytes:
                raise otlp.BodyTooLarge(f"body is over the limit of {self.max_body_bytes} bytes")
            parts.append(h.rfile.read(size))
            h.rfile.readline(1024)

    def _error(self, h: _Handler, status: int, message: str, media: str | None, *, extra: dict | None = None) -> None:
        # google.rpc.Code: 3 INVALID_ARGUMENT, 16 UNAUTHENTICATED, 8 RESOURCE_EXHAUSTED, ...
        code = {400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 503: 14}.get(status, 2)
        body, content_type = otlp.status_body(code, message, media)
        if status != 503:
            logger.info("ppp-otel ingest: %d for %s: %s", status, h.address_string(), message)
        # The body may be unread (413, 401, 404): the connection cannot carry another request.
        self._send(h, status, body, content_type, extra=extra, close=status not in (200, 503))

    def _send(self, h: _Handler, status: int, body: bytes, content_type: str, *,
              extra: dict | None = None, close: bool = False) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        if close:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(body)


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "IngestOutcome", "IngestServer",
           "SpanIngest"]
