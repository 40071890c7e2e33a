"""Talking to one Phoenix server: requests that say what went wrong, and one log line when it is down.

Shared by the span exporter and the annotation sender that ``register()``
attaches when spans are forwarded to Phoenix. Phoenix being down must cost
one log line naming Phoenix and its URL, not one per request or per retry.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

logger = logging.getLogger("ppp_otel.phoenix")

#: How much of an error body goes into a message.
BODY_EXCERPT_CHARS = 300


class PhoenixError(Exception):
    """A request Phoenix did not take. ``unreachable``: no answer at all
    (``timed_out`` when it may only be slow: connected, or trying to, but no
    answer in time); ``status``: the HTTP status of an answer."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "", unreachable: bool = False,
                 timed_out: bool = False):
        super().__init__(message)
        self.status = status
        self.body = body
        self.unreachable = unreachable or timed_out
        self.timed_out = timed_out

    @property
    def retryable(self) -> bool:
        return self.unreachable or self.status in (408, 429, 500, 502, 503, 504)


def base_url(url: str) -> str:
    """The server's base URL, also when given the OTLP endpoint (``.../v1/traces``)."""
    url = url.rstrip("/")
    for suffix in ("/v1/traces", "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> bytes:
    """POST ``body``; the answer's body, or :class:`PhoenixError`."""
    return _send(url, body, headers, timeout_s, "POST")


def get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """GET a JSON answer (Phoenix's REST API); the decoded value, or :class:`PhoenixError`."""
    answer = _send(url, None, headers, timeout_s, "GET")
    try:
        return json.loads(answer)
    except ValueError:
        raise PhoenixError(f"the answer from {url} is not JSON", body=answer[:BODY_EXCERPT_CHARS].decode(
            "utf-8", "replace")) from None


def _send(url: str, body: bytes | None, headers: dict[str, str], timeout_s: float, method: str) -> bytes:
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
    except ValueError as exc:  # "unknown url type": an endpoint without http:// (as the span exporter says)
        raise PhoenixError(str(exc), unreachable=True) from None
    try:
        with urllib.request.urlopen(request, timeout=max(timeout_s, 0.01)) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        excerpt = " ".join(exc.read().decode("utf-8", "replace").split())[:BODY_EXCERPT_CHARS]
        raise PhoenixError(f"HTTP {exc.code}: {excerpt or exc.reason}", status=exc.code, body=excerpt) from None
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError)
        raise PhoenixError(f"{exc.reason}", unreachable=True, timed_out=timed_out) from None
    except TimeoutError as exc:
        raise PhoenixError(f"no answer within {timeout_s:.3g} s", timed_out=True) from None
    except OSError as exc:  # resets
        raise PhoenixError(f"{exc}", unreachable=True) from None


class Reachability:
    """Logs once when a Phoenix stops answering and once when it answers again.

    One per Phoenix (see :func:`reachability`): its span exporter and its
    annotation sender share it, so Phoenix being down is one line, not two.
    The line saying it answers again is a warning too, naming the spans lost
    meanwhile (:meth:`dropped`): a restarted Phoenix lacks those trajectories,
    and the person who saw the first line needs to know which to send again.
    """

    def __init__(self, url: str):
        self.url = url
        self._down = False
        self._slow = False
        self._lock = threading.Lock()
        self.failures = 0
        self._dropped_spans = 0

    def failed(self, error: PhoenixError) -> None:
        """A request got no answer: down when refused, slow when it timed out."""
        if error.timed_out:
            self.slow(error)
        elif error.unreachable:
            self.down(error)

    def slow(self, reason: object) -> None:
        with self._lock:
            self.failures += 1
            first, self._slow = not self._slow, True
        if first:
            logger.warning(
                "ppp-otel: Phoenix at %s is not answering in time (%s); what is sent to it is retried "
                "and, past the retries, dropped. Recording to the database goes on.", self.url, reason,
            )

    def down(self, reason: object) -> None:
        with self._lock:
            self.failures += 1
            first, self._down = not self._down, True
        if first:
            logger.warning(
                "ppp-otel: Phoenix at %s is unreachable (%s); spans and annotations for Phoenix "
                "are dropped until it answers. Recording to the database goes on.", self.url, reason,
            )

    def dropped(self, spans: int) -> None:
        """Spans given up on while this Phoenix did not answer."""
        with self._lock:
            self._dropped_spans += spans

    def up(self) -> None:
        with self._lock:
            was, self._down = self._down or self._slow, False
            self._slow = False
            lost, self._dropped_spans = self._dropped_spans, 0
        if was and lost:
            logger.warning(
                "ppp-otel: Phoenix at %s answers again; %s sent while it did not answer %s dropped "
                "(the database has them: `ppp-otel export --db DB --to %s` sends them again, "
                "keeping one copy of what Phoenix already has)",
                self.url, "1 span" if lost == 1 else f"{lost} spans", "was" if lost == 1 else "were", self.url,
            )
        elif was:
            logger.info("ppp-otel: Phoenix at %s answers again", self.url)

    @property
    def is_down(self) -> bool:
        return self._down


_by_url: dict[str, Reachability] = {}
_by_url_lock = threading.Lock()


def reachability(url: str) -> Reachability:
    """The shared :class:`Reachability` of the Phoenix at ``url`` (any of its endpoints)."""
    key = base_url(url)
    with _by_url_lock:
        found = _by_url.get(key)
        if found is None:
            found = _by_url[key] = Reachability(key)
        return found
