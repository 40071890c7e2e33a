"""Annotations to Phoenix from a thread of their own: bounded, retried, counted.

When spans are forwarded to Phoenix, ``register()`` attaches a
:class:`PhoenixAnnotationSender` and the recorder hands it each turn once the
turn is judged: its questions and violations become span annotations on the
turn span (:func:`turn_annotations`), which Phoenix shows beside the span.

Nothing here can delay recording: :meth:`submit` is a bounded append (past
``max_queue_size`` annotations are dropped and counted), and every request is
made by the sender's thread. Phoenix being down costs those annotations only:
they are retried for ``retry_for_s``, then counted as ``failed``.

Phoenix takes an annotation only for a span it has, and spans reach it in
batches a few seconds apart; an annotation that comes first (HTTP 404 with
``sync=true``) is tried again for ``wait_for_span_s``, then handed to Phoenix
with ``sync=false``, which keeps it until the span arrives (Phoenix 20.x
retries such annotations for 10 minutes). At shutdown whatever is left is
handed over the same way, within ``shutdown_timeout_s`` (1 s by default).

Every annotation carries the identifier ``ppp-otel``: Phoenix upserts on
(name, target, identifier), so judging a turn again updates its annotations
instead of adding more.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from opentelemetry.sdk.trace import SpanProcessor

from ppp_otel import conventions as c
from ppp_otel.conventions import EFFORT_LEVELS, SEVERITIES
from ppp_otel.logs import LogLimiter
from ppp_otel.publish.phoenix_link import PhoenixError, base_url, logger, post, reachability

SPAN_ANNOTATIONS = "span_annotations"
SESSION_ANNOTATIONS = "session_annotations"
ANNOTATOR_KIND = "CODE"
IDENTIFIER = "ppp-otel"

#: Annotation names on a turn span.
QUESTIONS = c.ANNOTATION_QUESTIONS
VIOLATIONS = c.ANNOTATION_VIOLATIONS
VIOLATION_PREFIX = c.ANNOTATION_VIOLATION_PREFIX
NONE = "none"

DEFAULT_MAX_QUEUE_SIZE = 10_000
DEFAULT_BATCH_SIZE = 100


def _highest(levels: Iterable[str | None], order: Sequence[str]) -> str:
    known = [level for level in levels if level in order]
    return max(known, key=order.index) if known else NONE


def turn_annotations(record: Any) -> list[dict[str, Any]]:
    """The judgment of one turn (a judged ``TurnRecord``) as Phoenix span annotations.

    - ``ppp.questions``: score = how many questions, label = the highest effort
      (``none`` without questions), explanation = each question with its effort;
    - ``ppp.violations``: score = how many violations, label = the worst severity;
    - ``ppp.violation.<preference>`` for each preference violated: label = the
      worst severity, explanation = each violation's expected and actual.
    """
    common = {"span_id": record.span_id, "annotator_kind": ANNOTATOR_KIND, "identifier": IDENTIFIER}
    questions = list(record.questions)
    asked: dict[str, Any] = {"score": len(questions), "label": _highest((q.effort for q in questions), EFFORT_LEVELS)}
    if questions:
        asked["explanation"] = "\n".join(f"[{q.effort or 'unclassified'}] {q.text}" for q in questions)
    violations = list(record.violations)
    found: dict[str, Any] = {"score": len(violations), "label": _highest((v.severity for v in violations), SEVERITIES)}
    if violations:
        found["explanation"] = "\n".join(f"{v.preference} ({v.severity})" for v in violations)
    out = [{**common, "name": QUESTIONS, "result": asked}, {**common, "name": VIOLATIONS, "result": found}]
    by_preference: dict[str, list] = {}
    for v in violations:
        by_preference.setdefault(v.preference, []).append(v)
    for preference, found_here in by_preference.items():
        out.append({**common, "name": VIOLATION_PREFIX + preference, "result": {
            "score": len(found_here),
            "label": _highest((v.severity for v in found_here), SEVERITIES),
            "explanation": "\n".join(f"expected: {v.expected}; actual: {v.actual}" for v in found_here),
        }})
    return out


@dataclass
class _Pending:
    kind: str
    annotation: dict[str, Any]
    queued_at: float
    attempts: int = 0
    not_before: float = 0.0


class PhoenixAnnotationSender(SpanProcessor):
    """Posts span and session annotations to the Phoenix at ``url`` from its own thread.

    A span processor only so that the provider's ``force_flush()`` and
    ``shutdown()`` reach it; it looks at no span.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        wait_for_span_s: float = 10.0,
        retry_for_s: float = 60.0,
        timeout_s: float = 5.0,
        shutdown_timeout_s: float = 1.0,
    ):
        if max_queue_size < 1 or batch_size < 1:
            raise ValueError("max_queue_size and batch_size must be >= 1")
        self.url = base_url(url)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self.max_queue_size = max_queue_size
        self.batch_size = batch_size
        self.wait_for_span_s = wait_for_span_s
        self.retry_for_s = retry_for_s
        self.timeout_s = timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.reachability = reachability(self.url)
        self._log_refused = LogLimiter(logger)
        # Counters: sent (taken by Phoenix at once), handed_over (taken with
        # sync=false, for spans Phoenix did not have yet), dropped (queue full),
        # failed (refused, or unreachable past retry_for_s), lost_at_shutdown.
        self.sent = self.handed_over = self.dropped = self.failed = self.lost_at_shutdown = 0
        self.retries = 0
        self.last_error: str | None = None
        self._init_thread_state()

    def _init_thread_state(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._in_flight = 0
        self._closing = False
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        # Called with the condition held. A forked child starts afresh: the
        # parent's thread does not exist there and its queue is the parent's.
        if self._pid != os.getpid():
            self._init_thread_state()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ppp-otel-phoenix-annotations", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ producers

    def submit(self, kind: str, annotations: Iterable[dict[str, Any]]) -> int:
        """Queue annotations (``SPAN_ANNOTATIONS`` or ``SESSION_ANNOTATIONS``); never blocks.

        Returns how many were taken; the rest are counted as ``dropped``.
        """
        if kind not in (SPAN_ANNOTATIONS, SESSION_ANNOTATIONS):
            raise ValueError(f"kind must be {SPAN_ANNOTATIONS} or {SESSION_ANNOTATIONS}, got {kind!r}")
        now = time.monotonic()
        taken = 0
        with self._cond:
            if self._pid != os.getpid():
                self._init_thread_state()
            for annotation in annotations:
                if self._closing or len(self._queue) >= self.max_queue_size:
                    self.dropped += 1
                    continue
                self._queue.append(_Pending(kind, annotation, now))
                taken += 1
            if taken:
                self._ensure_thread()
                self._cond.notify_all()
        return taken

    def judged(self, records: Sequence[Any]) -> None:
        """The recorder's hook: turn records, once judged, become span annotations."""
        annotations = [a for r in records if getattr(r, "questions", None) is not None
                       and getattr(r, "span_id", None) for a in turn_annotations(r)]
        if annotations:
            self.submit(SPAN_ANNOTATIONS, annotations)

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "url": self.url, "queued": len(self._queue), "sent": self.sent,
            "handed_over": self.handed_over, "retries": self.retries, "dropped": self.dropped,
            "failed": self.failed, "lost_at_shutdown": self.lost_at_shutdown,
            "phoenix_down": self.reachability.is_down, "last_error": self.last_error,
        }

    # --------------------------------------------------------------- thread

    def _take(self) -> list[_Pending] | None:
        """The next batch of one kind that is due; None when closing and nothing is left."""
        with self._cond:
            while True:
                if self._closing and (not self._queue or time.monotonic() >= self._deadline):
                    self.lost_at_shutdown += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return None
                now = time.monotonic()
                due = [p for p in self._queue if p.not_before <= now or self._closing]
                if due:
                    kind = due[0].kind
                    batch = [p for p in due if p.kind == kind][: self.batch_size]
                    chosen = set(map(id, batch))
                    self._queue = collections.deque(p for p in self._queue if id(p) not in chosen)
                    self._in_flight = len(batch)
                    return batch
                waits = [p.not_before - now for p in self._queue]
                self._cond.wait(min(waits) if waits else None)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._send(batch)
            except Exception as exc:  # a bug must not end the thread
                self.failed += len(batch)
                self.last_error = repr(exc)
                logger.exception("ppp-otel: sending annotations to Phoenix failed")
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _post(self, kind: str, batch: list[_Pending], *, sync: bool) -> None:
        timeout = self.timeout_s
        if self._closing:
            timeout = min(timeout, self._deadline - time.monotonic())
        body = json.dumps({"data": [p.annotation for p in batch]}).encode()
        post(f"{self.url}/v1/{kind}?sync={'true' if sync else 'false'}", body, self._headers, timeout)

    def _send(self, batch: list[_Pending]) -> None:
        kind = batch[0].kind
        now = time.monotonic()
        # Past the wait for its span, or at shutdown, Phoenix keeps the annotation itself.
        handing_over = self._closing or all(now - p.queued_at >= self.wait_for_span_s for p in batch)
        try:
            self._post(kind, batch, sync=not handing_over)
        except PhoenixError as exc:
            self.last_error = str(exc)
            # 404 from the annotation endpoints: a span or session Phoenix has not ingested
            # yet (its message lists the ids, so it may be cut before saying so).
            if exc.status == 404:
                self._retry(batch, now, cap_s=2.0)
                return
            self.reachability.failed(exc)
            if exc.retryable and not self._closing:
                fresh = [p for p in batch if now - p.queued_at < self.retry_for_s]
                self.failed += len(batch) - len(fresh)
                self._retry(fresh, now, cap_s=10.0)
                return
            self.failed += len(batch)
            if not exc.unreachable:
                self._log_refused("ppp-otel: Phoenix at %s refused %d annotations: %s", self.url, len(batch), exc)
            return
        self.reachability.up()
        if handing_over:
            self.handed_over += len(batch)
        else:
            self.sent += len(batch)

    def _retry(self, batch: list[_Pending], now: float, *, cap_s: float) -> None:
        with self._cond:
            for p in batch:
                p.attempts += 1
                p.not_before = now + min(0.25 * 2 ** (p.attempts - 1), cap_s)
                self._queue.append(p)
            self.retries += len(batch)

    # ------------------------------------------------------ flush, shutdown

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True once everything queued so far has been sent, handed over or given up.

        While Phoenix is unreachable it returns False at once rather than
        waiting out the retries: a flush must not hang on Phoenix being down.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if (remaining <= 0 or self._thread is None or not self._thread.is_alive()
                        or (self.reachability.is_down and not self._in_flight)):
                    return not self._queue and not self._in_flight
                self._cond.wait(min(remaining, 0.1))
        return True

    def shutdown(self) -> None:
        """Hand over what is left within ``shutdown_timeout_s``; count the rest as lost."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + self.shutdown_timeout_s
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.shutdown_timeout_s + 0.5)
        if self.lost_at_shutdown:
            logger.warning("ppp-otel: %d annotations for Phoenix at %s were not sent before exit",
                           self.lost_at_shutdown, self.url)
