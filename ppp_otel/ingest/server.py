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

HTTP is served by uvicorn (:mod:`ppp_otel.ingest.http`), gRPC by grpcio's
server (:mod:`ppp_otel.ingest.grpc_service`); both hand each request to
:class:`~ppp_otel.ingest.receiver.SpanIngest`, which queues it and waits for its
commit. This module owns the sockets, the threads and the shutdown.

    server = IngestServer("runs.db", port=0)
    server.start()
    ... post to server.url + "/v1/traces" ...
    server.stop()          # finishes requests in flight, writes everything accepted
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
from concurrent import futures
from typing import Any, Sequence

from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS
from ppp_otel.ingest.defaults import (  # noqa: F401  (importable from here too)
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
)
from ppp_otel.ingest.grpc_service import _GrpcService
from ppp_otel.ingest.http import _HttpApp, authorized
from ppp_otel.ingest.receiver import DEFAULT_COMMIT_TIMEOUT_S, IngestOutcome, SpanIngest
from ppp_otel.recorder import Recorder
from ppp_otel.storage import check_creatable
from ppp_otel.storage.sqlite import staging

logger = logging.getLogger(__name__)

#: A client must send its whole body within this; a stalled one gets 408.
DEFAULT_READ_TIMEOUT_S = 30.0
#: Idle keep-alive connections are closed after this.
DEFAULT_KEEP_ALIVE_S = 5.0
#: At shutdown, requests in flight get this long to finish; then their connections are closed.
DEFAULT_GRACE_S = 3.0
DEFAULT_MAX_CONNECTIONS = 1000


# ---------------------------------------------------------------------- server

class IngestServer:
    """An OTLP receiver on ``host:port`` (HTTP) and, when ``grpc_port`` is given, gRPC.

    ``port=0`` / ``grpc_port=0`` take free ports (see ``.url``, ``.grpc_port``).
    ``token`` requires ``Authorization: Bearer <token>`` (gRPC: the same
    ``authorization`` metadata). Bodies larger than ``max_body_bytes``, before
    or after gzip, get 413 (gRPC: RESOURCE_EXHAUSTED). ``question_tools`` names the
    tools through which an agent asks its user, as for the span processor.
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
        question_tools: Sequence[str] = DEFAULT_QUESTION_TOOLS,
    ):
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty")
        for name, seconds in (("pending_ttl_s", pending_ttl_s), ("pending_retention_s", pending_retention_s)):
            if not 0 < seconds < math.inf:  # NaN too
                raise ValueError(f"{name} must be a finite number > 0, got {seconds}")
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
        self.ingest = SpanIngest(processor, pending_retention_s=pending_retention_s, question_tools=question_tools)
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
