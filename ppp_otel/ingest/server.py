"""``ppp-otel ingest``: an OTLP trace receiver (HTTP and gRPC) that fills the trajectory database.

Any OTLP exporter (another language's SDK, an OpenTelemetry Collector) can
post to ``/v1/traces`` or call the gRPC ``TraceService/Export``; the spans go
through the same records, analysis and writer thread as spans recorded in
process. A request is answered 200 (gRPC OK) only once its spans are
committed: turns that arrive before their trajectory span wait durably in
``pending_spans`` (see :mod:`ppp_otel.storage.sqlite.staging`), so nothing acknowledged is
lost to a restart, SIGTERM or kill -9. On PostgreSQL several ingest replicas
share that table: each also claims the waiting spans whose parent another
replica stored (:mod:`ppp_otel.storage.postgres.staging`), so a turn received by
one replica and its trajectory span by another are stored once. Many requests share one transaction
(group commit). The writer is idempotent on (trace id, span id), so a client
that retries after a lost answer does no harm.

HTTP is served by uvicorn (an ASGI server: chunked bodies, keep-alive and
timeouts, connection limits, graceful shutdown), gRPC by grpcio's server.

    server = IngestServer("runs.db", port=0)
    server.start()
    ... post to server.url + "/v1/traces" ...
    server.stop()          # finishes requests in flight, writes everything accepted
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from ppp_otel.ingest import wire as otlp
from ppp_otel.storage import check_creatable, open_store
from ppp_otel.storage.base import StorageError, TrajectoryBackend
from ppp_otel.ingest.assembler import Placement, TrajectoryAssembler, adopt
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.records import TurnRecord
from ppp_otel.storage.sqlite import staging
from ppp_otel.recorder import Recorder
from ppp_otel.ingest.defaults import (  # noqa: F401  (importable from here too)
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
)

logger = logging.getLogger(__name__)

#: How long a request waits for its spans to be committed before it is told to retry.
DEFAULT_COMMIT_TIMEOUT_S = 30.0
#: A client must send its whole body within this; a stalled one gets 408.
DEFAULT_READ_TIMEOUT_S = 30.0
#: Idle keep-alive connections are closed after this.
DEFAULT_KEEP_ALIVE_S = 5.0
#: At shutdown, requests in flight get this long to finish; then their connections are closed.
DEFAULT_GRACE_S = 3.0
DEFAULT_MAX_CONNECTIONS = 1000
_RETRY_AFTER_S = "1"
#: While a request waits for its commit, how often it checks whether the writes fail meanwhile.
_FAILING_CHECK_S = 0.2
_PURGE_EVERY_S = 60.0
#: How often a replica of a shared store claims the spans whose parent another replica stored.
_CLAIM_EVERY_S = 0.2
# An over-limit body is read and thrown away (so the client sees the 413, not
# a reset), up to this much more; past it the connection is simply closed.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


@dataclass
class IngestOutcome:
    spans: int = 0
    queued: int = 0  # records handed to the writer
    rejected: int = 0  # spans that could not be used
    not_queued: int = 0  # records the full queue refused; the client should retry
    first_error: str | None = None
    committed: bool = False  # everything taken is in the database
    write_failing: str | None = None  # why the database cannot be written now, when it cannot

    def why_not_committed(self) -> str:
        """For a 503 / UNAVAILABLE: why the client should send this request again."""
        if self.write_failing:
            return f"the database cannot be written now ({self.write_failing}); retry"
        if self.not_queued:
            return f"queue full; {self.not_queued} records not taken"
        return "the writer has not committed this request yet"


class _Committed:
    """Woken by the writer thread once the records queued before it are committed."""

    __slots__ = ("event", "loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.event = threading.Event()
        self.loop = loop
        self.future = loop.create_future() if loop is not None else None

    def set(self) -> None:
        self.event.set()
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:  # the loop has closed: nobody waits on the future any more
                pass

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(True)


def _given_up(outcome: IngestOutcome, processor: Any, deadline: float) -> bool:
    """Stop waiting for a commit: the deadline has passed, or the writes fail meanwhile (the
    client is told to retry now, not when its own timeout ends; ``outcome`` says why)."""
    outcome.write_failing = processor.write_failing
    return bool(outcome.write_failing) or time.monotonic() >= deadline


def _committed_in_time(waiter: _Committed, outcome: IngestOutcome, processor: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not waiter.event.wait(min(_FAILING_CHECK_S, max(0.0, deadline - time.monotonic()))):
        if _given_up(outcome, processor, deadline):
            return False
    return True


async def _committed_in_time_async(waiter: _Committed, outcome: IngestOutcome, processor: Any,
                                   timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future),
                                   min(_FAILING_CHECK_S, max(0.0, deadline - time.monotonic())))
            return True
        except asyncio.TimeoutError:
            if _given_up(outcome, processor, deadline):
                return False


class SpanIngest:
    """OTLP requests in, records durably written by a :class:`~ppp_otel.recorder.Recorder`; thread-safe."""

    def __init__(self, processor: Recorder | TrajectorySpanProcessor, assembler: TrajectoryAssembler | None = None,
                 *, pending_retention_s: float = staging.DEFAULT_RETENTION_S):
        self.processor = processor
        self.pending_retention_s = pending_retention_s
        self._lock = threading.Lock()
        self._db: TrajectoryBackend | None = None
        self.assembler = assembler or TrajectoryAssembler(self._stored_placement, load_staged=self._load_staged)
        self.received_spans = 0
        self.rejected_spans = 0
        self.repaired_text = 0
        self.purged_turns = 0
        self.claimed_spans = 0
        self._last_purge = 0.0
        self._last_claim = 0.0
        self._shared: bool | None = None  # does the store share pending spans with other replicas

    # ------------------------------------------------------------- requests

    def submit(self, request: Any) -> tuple[IngestOutcome, _Committed | None, int]:
        """Queue a request's records; returns the outcome so far, what to wait on and the
        loss count to compare with once woken (see :meth:`settle`). No waiter: nothing queued."""
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
            self.received_spans += outcome.spans
            # All or nothing: the assembler's state changes for good once spans are
            # added (held turns are released), so a request is refused (503, to be
            # retried) before anything changes rather than half taken. Spans that
            # wait for their parent are in the database, not the queue: they take no room.
            # Nor is it queued while writes fail: it could not be committed before its deadline.
            outcome.write_failing = self.processor.write_failing
            if outcome.write_failing or not self.processor.has_room(len(good) + 1):  # a record a span, a release
                outcome.not_queued = len(good)
                return outcome, None, 0
            assembled = self.assembler.add(good)
            records = self._records_of(assembled, good)
            lost = self.processor.lost_at_shutdown
            # Under the lock, so a trajectory record is queued before turns another request releases.
            taken = self.processor.submit(records, force=True)
            waiter = _Committed(self._loop())
            self.processor.when_written(waiter)
            self.rejected_spans += outcome.rejected + len(assembled.rejected)
        outcome.rejected += len(assembled.rejected)
        if assembled.rejected:
            outcome.first_error = outcome.first_error or assembled.rejected[0]
        outcome.queued = taken
        outcome.not_queued = len(records) - taken
        return outcome, waiter, lost

    def _records_of(self, assembled: Any, spans: list) -> list:
        """What the writer gets: the records, the spans that now wait, those that stopped
        waiting and, on a shared store, where the spans that make no row sit."""
        records: list = list(assembled.records)
        if assembled.staged:
            records.extend(staging.staged_records(assembled.staged))
        if assembled.released:
            records.append(staging.Unstaged(assembled.released))
        if spans and self._shares_pending():
            placed = self._placements(spans, assembled)
            if placed:
                records.append(staging.Placed(placed))
        return records

    def _placements(self, spans: list, assembled: Any) -> list:
        # A chain or tool span between a trajectory and its model calls is stored nowhere:
        # another replica can learn only from here where a span below it belongs.
        turns = {(r.trace_id, r.span_id) for r in assembled.records if isinstance(r, TurnRecord)}
        placed = []
        for span in spans:
            key = (span.trace_id, span.span_id)
            if key in turns:
                continue
            placement = self.assembler.placement_of(*key)
            if placement is not None and placement.trajectory is not None and placement.trajectory != key:
                placed.append((span.trace_id, span.span_id, placement.trajectory, placement.in_turn))
        return placed

    def _shares_pending(self) -> bool:
        if self._shared is None:
            try:
                self._shared = bool(getattr(self._store(), "shares_pending", False))
            except StorageError:
                return False
        return self._shared

    def claim_once(self) -> int:
        """On a shared store: write the spans (staged by any replica) whose parent has since
        been stored by any replica; how many were claimed."""
        with self._lock:
            if not self._shares_pending():
                return 0
            claimed = self._store().claim_pending()
            if not claimed:
                return 0
            assembled = adopt(self.assembler, claimed)
            records = self._records_of(assembled, claimed)
            self.processor.submit(records, force=True)
            self.claimed_spans += len(claimed)
            self.rejected_spans += len(assembled.rejected)
        return len(claimed)

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def settle(self, outcome: IngestOutcome, lost_before: int) -> IngestOutcome:
        """After the waiter fired: committed unless the writer gave records up meanwhile."""
        outcome.committed = not outcome.not_queued and self.processor.lost_at_shutdown == lost_before
        return outcome

    def ingest(self, request: Any, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> IngestOutcome:
        """Queue a request and wait (this thread) until it is committed, ``timeout_s`` passed
        or the writes fail."""
        outcome, waiter, lost = self.submit(request)
        if waiter is None or not _committed_in_time(waiter, outcome, self.processor, timeout_s):
            return outcome
        return self.settle(outcome, lost)

    async def ingest_async(self, request: Any, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> IngestOutcome:
        outcome, waiter, lost = self.submit(request)
        if waiter is None or not await _committed_in_time_async(waiter, outcome, self.processor, timeout_s):
            return outcome
        return self.settle(outcome, lost)

    # ---------------------------------------------------------- housekeeping

    def resume(self) -> int:
        """At startup: spans staged before a restart wait again; those whose parent is stored land."""
        with self._lock:
            try:
                parents = self._store().waiting_parents()
            except StorageError as exc:
                logger.warning("ppp-otel ingest: cannot read pending spans: %s", exc)
                return 0
            assembled = self.assembler.resume(parents)
            records: list = list(assembled.records)
            if assembled.released:
                records.append(staging.Unstaged(assembled.released))
            if records:
                self.processor.submit(records, force=True)
        if parents:
            logger.info("ppp-otel ingest: %d parents awaited by pending spans; %d spans released",
                        len(parents), len(assembled.released))
        return len(assembled.released)

    def tick(self) -> None:
        """Ten times a second: held spans past the TTL leave memory; on a shared store the spans
        other replicas' parents freed are claimed; now and then old ones are purged."""
        now = time.monotonic()
        if now - self._last_claim >= _CLAIM_EVERY_S:
            self._last_claim = now
            try:
                while self.claim_once():
                    pass
            except StorageError as exc:  # the server is down or restarting: next round
                logger.debug("ppp-otel ingest: claiming pending spans failed: %s", exc)
        with self._lock:
            self.assembler.expire()
            if now - self._last_purge < _PURGE_EVERY_S:
                return
            self._last_purge = now
            try:
                purged = self._store().purge_pending(self.pending_retention_s)
            except StorageError as exc:
                logger.debug("ppp-otel ingest: purging pending spans failed: %s", exc)
                return
        if purged:
            self.purged_turns += purged
            logger.warning("ppp-otel ingest: %d turns waited longer than %gs for their trajectory and were "
                           "deleted", purged, self.pending_retention_s)

    def close(self) -> None:
        """Write everything queued. Spans still waiting for a parent are already in the database
        (on a shared store, for the other replicas too)."""
        try:
            if self._shares_pending():
                # Parents this replica just accepted free spans other replicas hold: write those now.
                self.processor.force_flush(5_000)
                while self.claim_once():
                    pass
        except StorageError as exc:
            logger.warning("ppp-otel ingest: pending spans left for the other replicas: %s", exc)
        with self._lock:
            if self.assembler.pending:
                logger.info("ppp-otel ingest: %d spans wait for their parent in pending_spans",
                            self.assembler.pending)
            if self._db is not None:
                self._db.close()
                self._db = None
        self.processor.shutdown()

    @property
    def stats(self) -> dict[str, Any]:
        a = self.assembler
        return {
            "received_spans": self.received_spans,
            "rejected_spans": self.rejected_spans,
            "pending_spans": a.pending,
            "repaired_text_in_bodies": self.repaired_text,
            "pending_turns_out_of_memory": a.orphans,
            "purged_pending_turns": self.purged_turns,
            "claimed_spans": self.claimed_spans,
            **self.processor.stats,
        }

    def _store(self) -> TrajectoryBackend:
        if self._db is None:
            self._db = open_store(self.processor.db_path, must_exist=False,
                                  check_same_thread=False, migrate_schema=False)
        return self._db

    def _stored_placement(self, trace_id: str, span_id: str) -> Placement | None:
        """A parent recorded earlier (another process, a restart): a trajectory or a turn."""
        try:
            found = self._store().placement(trace_id, span_id)
        except StorageError as exc:
            logger.debug("ppp-otel ingest: parent lookup failed: %s", exc)
            return None
        if found is None:
            return None
        trajectory, in_turn = found
        return Placement(trajectory, in_turn=in_turn)

    def _load_staged(self, parent: tuple[str, str]) -> list[otlp.OtlpSpan]:
        try:
            return self._store().staged_children(parent)
        except (StorageError, ValueError) as exc:
            logger.warning("ppp-otel ingest: reading the spans waiting for %s failed: %s", parent[1], exc)
            return []


# --------------------------------------------------------------------- answers

# google.rpc.Code for each HTTP status we answer with.
_RPC_CODE = {400: 3, 401: 16, 404: 5, 405: 12, 408: 4, 413: 8, 415: 3, 500: 13, 503: 14}


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def authorized(header: str | None, token: str | None) -> bool:
    """``Authorization: Bearer <token>``, the scheme matched without regard to case (RFC 9110)."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


class _HttpApp:
    """The ASGI application: ``POST /v1/traces``, and clear answers for everything else."""

    def __init__(self, receiver: IngestServer):
        self.receiver = receiver

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        media: str | None = None
        try:
            media = await self._serve(scope, headers, receive, send)
        except _Refused as exc:
            await self._refuse(send, exc, media if media is not None else _media_or_none(headers))
        except Exception as exc:  # a bug must cost one request, not the receiver
            logger.exception("ppp-otel ingest: request failed")
            await self._refuse(send, _Refused(500, f"internal error: {type(exc).__name__}"), None)

    async def _serve(self, scope: dict, headers: dict, receive: Any, send: Any) -> str | None:
        r = self.receiver
        path = scope["path"]
        if path != otlp.TRACES_PATH:
            await _drain(receive, r.read_timeout_s)
            raise _Refused(404, f"no such path {path}; traces go to POST {otlp.TRACES_PATH}")
        if scope["method"] != "POST":
            await _drain(receive, r.read_timeout_s)
            raise _Refused(405, "use POST", {"Allow": "POST"})
        if not authorized(headers.get("authorization"), r.token):
            await _drain(receive, r.read_timeout_s)
            raise _Refused(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        try:
            media = otlp.media_type(headers.get("content-type"))
        except otlp.BodyError as exc:
            await _drain(receive, r.read_timeout_s)
            raise _Refused(exc.status, str(exc)) from None
        body = await _read_body(receive, headers, r.max_body_bytes, r.read_timeout_s)
        try:
            body = otlp.decompress(body, headers.get("content-encoding"), r.max_body_bytes)
            counts: dict = {}
            request = otlp.parse_request(body, media, counts)
        except otlp.BodyError as exc:
            raise _Refused(exc.status, str(exc)) from None
        if counts:
            r.ingest.repaired_text += counts.get("repaired_text", 0)
        outcome = await r.ingest.ingest_async(request, r.commit_timeout_s)
        if not outcome.committed:
            # Retryable per OTLP: the writer is behind or cannot write; a redelivery is stored once.
            raise _Refused(503, outcome.why_not_committed(), {"Retry-After": _RETRY_AFTER_S})
        body = otlp.response_body(outcome.rejected, outcome.first_error, media)
        await _respond(send, 200, body, media)
        return media

    async def _refuse(self, send: Any, exc: _Refused, media: str | None) -> None:
        body, content_type = otlp.status_body(_RPC_CODE.get(exc.status, 2), exc.message, media)
        if exc.status not in (503,):
            logger.info("ppp-otel ingest: %d: %s", exc.status, exc.message)
        headers = dict(exc.headers)
        if exc.status in (408, 413):
            headers["Connection"] = "close"  # the rest of the body was not read
        try:
            await _respond(send, exc.status, body, content_type, headers)
        except Exception:  # the client went away
            pass


def _media_or_none(headers: dict) -> str | None:
    try:
        return otlp.media_type(headers.get("content-type"))
    except otlp.BodyError:
        return None


async def _respond(send: Any, status: int, body: bytes, content_type: str,
                   headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Disconnected(Exception):
    pass


async def _receive(receive: Any, deadline: float) -> dict:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Refused(408, "the body was not received in time")
    try:
        message = await asyncio.wait_for(receive(), remaining)
    except asyncio.TimeoutError:
        raise _Refused(408, "the body was not received in time") from None
    if message["type"] == "http.disconnect":
        raise _Disconnected()
    return message


async def _read_body(receive: Any, headers: dict, limit: int, timeout_s: float) -> bytes:
    """The whole body, or 413 once it is known to be over ``limit`` (with the rest read and thrown away)."""
    deadline = time.monotonic() + timeout_s
    declared = headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            message = await _receive(receive, deadline)
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                too_large = True
                parts.clear()
            elif not too_large:
                parts.append(chunk)
            if not message.get("more_body", False) or total > limit + _DRAIN_LIMIT_BYTES:
                break
    except _Disconnected:
        raise _Refused(400, "the client closed the connection before the body ended") from None
    if too_large:
        shown = f"body of {declared} bytes" if declared and declared.isdigit() else "body"
        raise _Refused(413, f"{shown} is over the limit of {limit} bytes")
    return b"".join(parts)


async def _drain(receive: Any, timeout_s: float) -> None:
    """Read and drop a body nobody will use, so that the answer reaches the client."""
    deadline = time.monotonic() + timeout_s
    total = 0
    try:
        while total <= _DRAIN_LIMIT_BYTES:
            message = await _receive(receive, deadline)
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
    except (_Disconnected, _Refused):
        return


# ------------------------------------------------------------------------ gRPC

_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class _GrpcService:
    """``TraceService/Export`` with the same token, limits and answers as HTTP, as gRPC status codes."""

    def __init__(self, receiver: IngestServer):
        self.receiver = receiver

    def handler(self) -> Any:
        import grpc

        return grpc.method_handlers_generic_handler(_TRACE_SERVICE, {
            # Raw bytes in: a body that does not parse gets INVALID_ARGUMENT with the reason,
            # not grpcio's generic "exception deserializing request".
            "Export": grpc.unary_unary_rpc_method_handler(
                self.export, request_deserializer=None,
                response_serializer=lambda m: m.SerializeToString(),
            ),
        })

    def export(self, body: bytes, context: Any) -> Any:
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        r = self.receiver
        metadata = dict(context.invocation_metadata() or ())
        if not authorized(metadata.get("authorization"), r.token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            request = otlp.parse_request(body, otlp.PROTOBUF)
        except otlp.BodyError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            outcome = r.ingest.ingest(request, r.commit_timeout_s)
        except Exception as exc:
            logger.exception("ppp-otel ingest: gRPC export failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        if not outcome.committed:
            # UNAVAILABLE is what OTLP exporters retry with backoff.
            context.abort(grpc.StatusCode.UNAVAILABLE, outcome.why_not_committed())
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.first_error or ""
        return response


# ---------------------------------------------------------------------- server

class IngestServer:
    """An OTLP receiver on ``host:port`` (HTTP) and, when ``grpc_port`` is given, gRPC.

    ``port=0`` / ``grpc_port=0`` take free ports (see ``.url``, ``.grpc_port``).
    ``token`` requires ``Authorization: Bearer <token>`` (gRPC: the same
    ``authorization`` metadata). Bodies larger than ``max_body_bytes``, before
    or after gzip, get 413 (gRPC: RESOURCE_EXHAUSTED).
    """

    def __init__(
        self,
        db_path: str | os.PathLike,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        grpc_port: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        processor: Recorder | TrajectorySpanProcessor | None = None,
        pending_ttl_s: float = 600.0,
        max_pending_spans: int = 100_000,
        pending_retention_s: float = staging.DEFAULT_RETENTION_S,
        commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        keep_alive_s: float = DEFAULT_KEEP_ALIVE_S,
        grace_s: float = DEFAULT_GRACE_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ):
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty")
        if pending_retention_s <= 0:
            raise ValueError(f"pending_retention_s must be > 0, got {pending_retention_s}")
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.commit_timeout_s = commit_timeout_s
        self.read_timeout_s = read_timeout_s
        self.grace_s = grace_s
        if processor is None:
            check_creatable(db_path)  # a file that can never be created: now, not as unanswered requests
        # Bind first: a port in use is an error here, before any thread starts.
        try:
            self._socket = _listen(host, port)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for OTLP/HTTP on {_address(host, port)}: "
                                     f"{exc.strerror or exc}") from None
        self._address = self._socket.getsockname()[:2]
        self._grpc = None
        self.grpc_port: int | None = None
        if grpc_port is not None:
            try:
                self._grpc, self.grpc_port = self._grpc_server(host, grpc_port, max_connections)
            except OSError:
                self._socket.close()
                raise
        # Network batches are large: write them in big transactions. Requests wait for
        # their commit, so the writer starts a transaction as soon as one is waiting
        # and takes every request queued meanwhile into it (group commit). At shutdown
        # nothing queued has been answered 200 (its senders retry it), so a database
        # that cannot be written is given up after the grace, not after half a minute.
        if processor is None:
            processor = Recorder(db_path, buffer_size=5000, flush_interval_ms=100, max_queue_size=100_000,
                                 shutdown_timeout_ms=grace_s * 1000)
        self.ingest = SpanIngest(processor, pending_retention_s=pending_retention_s)
        self.ingest.assembler.pending_ttl_s = pending_ttl_s
        self.ingest.assembler.max_pending_spans = max_pending_spans
        self.ingest.resume()
        import uvicorn

        config = uvicorn.Config(
            _HttpApp(self), lifespan="off", http="h11", ws="none", log_level="warning", access_log=False,
            timeout_keep_alive=keep_alive_s, timeout_graceful_shutdown=grace_s,
            limit_concurrency=max_connections, server_header=False, date_header=False,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = False

    def _grpc_server(self, host: str, port: int, max_connections: int) -> tuple[Any, int]:
        import grpc

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ppp-otel-ingest-grpc"),
            handlers=[_GrpcService(self).handler()],
            maximum_concurrent_rpcs=max_connections,
            options=[
                ("grpc.max_receive_message_length", self.max_body_bytes),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
            ],
        )
        address = _address(host, port)
        if port:
            # grpcio reports a port in use only as "Failed to bind", after a line of its own
            # on stderr: bind it here first for the system's reason, in one line.
            try:
                _listen(host, port).close()
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen for gRPC on {address}: {exc.strerror or exc}") from None
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        return server, bound

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def grpc_endpoint(self) -> str | None:
        return None if self.grpc_port is None else f"{self.host}:{self.grpc_port}"

    @property
    def stats(self) -> dict[str, Any]:
        return self.ingest.stats

    def start(self) -> IngestServer:
        """Serve on background threads; returns at once."""
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(started))
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="ppp-otel-ingest", daemon=True)
        self._thread.start()
        self._ticker = threading.Thread(target=self._tick, name="ppp-otel-ingest-tick", daemon=True)
        self._ticker.start()
        if self._grpc is not None:
            self._grpc.start()
        started.wait(10)
        return self

    async def _serve(self, started: threading.Event) -> None:
        # uvicorn installs signal handlers only on the main thread; the CLI handles signals itself.
        async def ready() -> None:
            while not self._uvicorn.started and not self._uvicorn.should_exit:
                await asyncio.sleep(0.01)
            started.set()

        waiter = asyncio.ensure_future(ready())
        try:
            await self._uvicorn.serve(sockets=[self._socket])
        finally:
            waiter.cancel()
            started.set()

    def _tick(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.ingest.tick()
            except Exception:
                logger.exception("ppp-otel ingest: housekeeping failed")

    def stop(self) -> None:
        """Stop taking requests, finish those in flight (at most ``grace_s``), write everything
        accepted. Idle and half-open connections are closed at once. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        grpc_done = self._grpc.stop(self.grace_s) if self._grpc is not None else None
        if self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(self.grace_s + 5)
        try:
            self._socket.close()
        except OSError:
            pass
        if grpc_done is not None:
            grpc_done.wait(self.grace_s + 1)
        if self._ticker is not None:
            self._ticker.join(2)
        self.ingest.close()

    def __enter__(self) -> IngestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_HOST", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "IngestOutcome",
           "IngestServer", "SpanIngest", "authorized"]
