"""The HTTP side of ``ppp-otel ingest``: an ASGI application for ``POST /v1/traces``.

uvicorn serves it (chunked bodies, keep-alive and timeouts, connection
limits, graceful shutdown). Every request that is not a good OTLP export gets
a clear answer in the client's own encoding: 404, 405, 401, 413 (with the
rest of the body read and thrown away, so that the client sees it), 408 for a
stalled body, and 503 with ``Retry-After`` while its spans cannot be committed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

from ppp_otel.ingest import wire as otlp

if TYPE_CHECKING:
    from ppp_otel.ingest.server import IngestServer

logger = logging.getLogger(__name__)

_RETRY_AFTER_S = "1"
# An over-limit body is read and thrown away (so the client sees the 413, not
# a reset), up to this much more; past it the connection is simply closed.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


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
            self.receiver.ingest.refusals.add()
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
