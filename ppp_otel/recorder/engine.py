"""The queue engine: a bounded queue, one worker thread, precise flush and shutdown.

Modelled on opentelemetry-sdk's shared ``BatchProcessor``: one small engine
that knows nothing of spans or SQLite, with thin users over it (the span
processor, OTLP ingest, ATIF import). Producers call :meth:`QueueEngine.put`
from any thread; the worker hands batches of up to ``buffer_size`` items to a
:class:`Sink`. A batch is due when it is full and the producers have paused
(``QUIET_S``; looked for at doubling intervals while they are not), when
``BUSY_BATCH`` items wait however busy they are, when its
oldest item is ``flush_interval_ms`` old, when someone waits in
:meth:`force_flush`, when an item is put with ``due`` (a trajectory's end), or
at shutdown. Waiting for a pause matters because the worker shares the GIL
with the app: run beside a busy app thread, every batch makes the app wait;
run in the app's pauses (its model calls, its I/O), it costs the app nothing. Nothing here raises into a producer: a full queue is a counted drop,
a sink that raises is a counted internal error and the worker goes on.

``force_flush`` waits for a sequence number (everything enqueued before the
call), not for an empty queue, so producers that keep going cannot starve it.
After ``os.fork`` the child gets a new worker and an empty queue; items the
``carry_after_fork`` predicate picks (in flight or queued in the parent) are
queued again in the child.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Protocol

from ppp_otel.config.settings import ON_FULL, RECORDING
from ppp_otel.logs import LogLimiter
from ppp_otel.recorder.fork import ForkCarry, restart_in_child
from ppp_otel.recorder.stats import RecorderStats

logger = logging.getLogger(__name__)

# How often the worker wakes, when idle with unsaved counters, to let the sink save them.
TICK_S = 1.0
#: The most items one batch takes when more than two batches wait and the queue is half full.
BACKLOG_BATCH = 100
#: A full batch waits until no item has been put for this long...
QUIET_S = 0.002
#: ... unless this many (or buffer_size, if larger) wait: a producer that never pauses is
#: written behind, in big batches.
BUSY_BATCH = 512


class Sink(Protocol):
    """What the engine hands batches to; runs on the worker thread only."""

    def process(self, batch: list, engine: "QueueEngine") -> None: ...

    def tick(self, *, final: bool) -> None:
        """After every batch and every idle second with changed counters; ``final`` at shutdown."""

    def close(self) -> None:
        """The worker is ending: release what it held."""

    def after_fork(self) -> None:
        """In a forked child, before its worker starts: forget the parent's resources."""


def _wait_s(ms: float) -> float:
    """Milliseconds as the seconds a thread may wait: threading refuses a longer wait than
    TIMEOUT_MAX (about 292 years), which is forever all the same."""
    return min(ms / 1000, threading.TIMEOUT_MAX - 1)


def check_arguments(buffer_size: int, flush_interval_ms: float, max_queue_size: int, on_full: str) -> None:
    """ValueError naming the first argument a queue cannot work with."""
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    if flush_interval_ms <= 0:
        raise ValueError(f"flush_interval_ms must be > 0, got {flush_interval_ms}")
    if max_queue_size < 1:
        raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
    if on_full not in ON_FULL:
        raise ValueError(f"on_full must be one of {', '.join(ON_FULL)}, got {on_full!r}")


def batch_size(queued: int, buffer_size: int, max_queue_size: int | None = None) -> int:
    """How many items the next batch takes. Behind a backlog, one batch (one transaction,
    one statement per table) for several: each BEGIN, COMMIT and statement gives up the
    GIL, which a busy app thread then holds for up to a switch interval, and each COMMIT
    writes every page its batch touched. Up to ``BUSY_BATCH`` items at once; but while the
    queue is half full or more, producers may be waiting for room, which each batch frees
    as it is taken, so batches of ``BACKLOG_BATCH`` free it sooner."""
    if queued < 2 * buffer_size:
        return min(buffer_size, queued)
    pressed = max_queue_size is None or 2 * queued >= max_queue_size
    return max(buffer_size, min(queued, BACKLOG_BATCH if pressed else BUSY_BATCH))


def due_in(queued: int, now: float, oldest: float, last_put: float, buffer_size: int,
           flush_interval_s: float, look_again_s: float = 0.0) -> float:
    """Seconds until the queued items make a due batch (0 or less: now): the flush
    interval after the oldest, or, once a batch is full, the producers' next pause,
    looked for no sooner than ``look_again_s`` from now."""
    remaining = oldest + flush_interval_s - now
    if queued >= buffer_size:
        quiet = last_put + QUIET_S - now
        if quiet <= 0:
            return quiet
        remaining = min(remaining, max(quiet, look_again_s))
    return remaining


class PauseWatch:
    """:func:`due_in` for one batch, looking for the producers' pause at doubling intervals.

    Each look that finds a full batch's producers still busy doubles the time to the
    next. A producer that pauses for less than ``QUIET_S`` between items (1 ms of I/O a
    turn) would otherwise wake the worker once an item, and each wake costs about as much
    CPU as writing the item."""

    def __init__(self) -> None:
        self._look_again_s = 0.0  # the first look is at the pause's earliest end

    def due_in(self, queued: int, now: float, oldest: float, last_put: float, buffer_size: int,
               flush_interval_s: float) -> float:
        remaining = due_in(queued, now, oldest, last_put, buffer_size, flush_interval_s, self._look_again_s)
        if remaining > 0 and queued >= buffer_size:
            self._look_again_s = min(max(QUIET_S, 2 * self._look_again_s), flush_interval_s)
        return remaining


class FlushWaiters:
    """Who waits for everything up to which sequence number, woken by the worker.

    A waiter that raises when woken (an event loop that has closed meanwhile) is its
    caller's problem: counted in ``failed``, logged once, and the others are still
    woken; the worker never dies of a caller, as the SDK's batch processor never does."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, Any]] = []
        self.failed = 0
        self._log = LogLimiter.once(logger)

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, target: float, waiter: Any) -> None:
        self._waiting.append((target, waiter))

    def wake(self, done: float) -> None:
        """Wake every waiter whose target is at most ``done``."""
        left = []
        for target, waiter in self._waiting:
            if target > done:
                left.append((target, waiter))
            else:
                self.wake_one(waiter)
        self._waiting = left

    def wake_one(self, waiter: Any) -> None:
        try:
            waiter.set()
        except Exception as exc:
            self.failed += 1
            self._log("ppp-otel: a flush waiter could not be woken (%r); counted and skipped", exc)


class QueueEngine:
    def __init__(
        self,
        sink: Sink,
        stats: RecorderStats,
        *,
        buffer_size: int = RECORDING.buffer_size,
        flush_interval_ms: float = RECORDING.flush_interval_ms,
        max_queue_size: int = RECORDING.max_queue_size,
        on_full: str = RECORDING.on_full,
        block_timeout_ms: float = RECORDING.block_timeout_ms,
        shutdown_timeout_ms: float = 30_000,
        carry_after_fork: Callable[[Any], bool] | None = None,
        thread_name: str = "ppp-otel-writer",
    ):
        check_arguments(buffer_size, flush_interval_ms, max_queue_size, on_full)
        self.sink = sink
        self.stats = stats
        self.buffer_size = buffer_size
        self.flush_interval_s = _wait_s(flush_interval_ms)
        self.max_queue_size = max_queue_size
        self.on_full = on_full
        # Headroom for forced items, so memory stays bounded even for them.
        self._hard_limit = max_queue_size + max(10, max_queue_size // 10)
        self.block_timeout_s = _wait_s(block_timeout_ms)
        self.shutdown_timeout_s = _wait_s(shutdown_timeout_ms)
        self._fork = ForkCarry(carry_after_fork)
        self._thread_name = thread_name
        # A tight loop overflowing the queue must not write a line per drop.
        self._log_dropped = LogLimiter(logger, every_s=10.0)
        self._reset()
        self._start_worker()
        restart_in_child(self._after_fork_in_child)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque = collections.deque()
        self._oldest: float | None = None
        self._last_put = 0.0
        self._due = False  # an item put with due=True is queued
        self.flush_waiters = FlushWaiters()
        self._taken = 0  # items taken by the worker, in queue order
        self._done = 0  # of those, items processed (written, or counted as not)
        self._stopping = False
        self._shutdown_deadline = float("inf")
        self._stopped = threading.Event()
        # Set by the sink while writes fail (a locked or full file): a full queue
        # then drops at once, since a stuck writer would cost every put the full wait.
        self.writer_stuck = False

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's worker does not exist here; what it queued is the parent's to write.
        carried = self._fork.in_child(self._queue)
        self.stats.reset()
        self.sink.after_fork()
        self._reset()
        if carried:
            self._queue.extend(carried)
            self.stats.enqueued = len(carried)
            self._oldest = time.monotonic()
        self._start_worker()

    # -------------------------------------------------------------- producers

    @property
    def queued(self) -> int:
        return len(self._queue)

    def has_room(self, n: int) -> bool:
        """Whether ``n`` more items fit in the queue now."""
        return len(self._queue) + n <= self.max_queue_size

    def put(self, item: Any, *, force: bool = False, due: bool = False) -> bool:
        """Queue one item; False when the queue is full and it was dropped (and counted).

        ``force`` lets an item into the headroom above ``max_queue_size`` (a tenth of it),
        for items without which others are useless; past it even they are dropped, so memory
        stays bounded. ``due`` makes what is queued due at once (a trajectory's end).
        """
        lock = self._lock
        lock.acquire()  # not ``with``: the same lock at less cost, on the app thread for every span
        try:
            if self._stopping:
                self.stats.dropped += 1  # as BatchSpanProcessor does after shutdown
                return False
            n = len(self._queue)
            if n >= self.max_queue_size and (not force or n >= self._hard_limit):
                return self._put_when_full(item)
            self._append(item)
            if due:
                self._due = True
                self._cond.notify_all()
        finally:
            lock.release()
        return True

    def _append(self, item: Any) -> None:
        # Called with the lock held; wakes the worker when a batch starts or fills.
        self._queue.append(item)
        self.stats.enqueued += 1
        self._last_put = now = time.monotonic()
        n = len(self._queue)
        if n == 1:
            self._oldest = now
        if n == 1 or n == self.buffer_size or n == BUSY_BATCH:
            self._cond.notify_all()

    def _put_when_full(self, item: Any) -> bool:
        # Called with the lock held.
        if self.on_full == "block" and not self._stopping and not self.writer_stuck:
            deadline = time.monotonic() + self.block_timeout_s
            while len(self._queue) >= self.max_queue_size and not self._stopping:
                self._due = True  # a waiting producer: the worker may be waiting out the flush interval
                self._cond.notify_all()
                if not self._cond.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    break
            if not self._stopping and len(self._queue) < self.max_queue_size:
                self._append(item)
                return True
        self.stats.dropped += 1
        self.stats.dirty = True
        self._log_dropped("ppp-otel: queue full (%d), record dropped", self.max_queue_size)
        return False

    # --------------------------------------------------------- flush/shutdown

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True once everything queued before this call is processed."""
        if self._stopped.is_set() or not self._thread.is_alive():
            return not self._queue
        self.when_done(done := threading.Event())
        finished = done.wait(timeout_millis / 1000)
        # The worker may have ended meanwhile (it releases every waiter): done only if nothing is left.
        return not self._queue if self._stopped.is_set() else finished

    def when_done(self, waiter: Any) -> None:
        """Call ``waiter.set()`` (from the worker) once everything queued so far is
        processed, as :meth:`force_flush` waits; for callers that must not block a thread
        (an event loop) or that acknowledge what they queued only once it is durable."""
        with self._cond:
            target = self.stats.enqueued
            if self._done >= target or self._stopped.is_set():
                self.flush_waiters.wake_one(waiter)
                return
            self.flush_waiters.add(target, waiter)
            self._cond.notify_all()

    def shutdown(self) -> None:
        """Process everything queued, then stop the worker. Idempotent."""
        with self._cond:
            if self._stopping:
                already = True
            else:
                already = False
                self._shutdown_deadline = time.monotonic() + self.shutdown_timeout_s
                self._stopping = True
                self._cond.notify_all()
        if not already and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.shutdown_timeout_s + 1)

    # ------------------------------------------------------ for the sink

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def giving_up(self) -> bool:
        """Shutting down and past its deadline: a sink retrying a write should stop."""
        return self._stopping and time.monotonic() > self._shutdown_deadline

    def discard_queued(self) -> int:
        """Empty the queue (counted as processed, so flushes are released); how many."""
        with self._cond:
            left, self._oldest = len(self._queue), None
            self._queue.clear()
            self._taken += left
        return left

    # ---------------------------------------------------------------- worker

    def _take(self) -> tuple[list, bool]:
        cond = self._cond
        pause = PauseWatch()
        with cond:
            while True:
                n = len(self._queue)
                if self._stopping or n >= max(BUSY_BATCH, self.buffer_size) or (
                        n and (self.flush_waiters or self._due)):
                    break
                if n:
                    remaining = pause.due_in(n, time.monotonic(), self._oldest, self._last_put,
                                             self.buffer_size, self.flush_interval_s)
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                else:
                    cond.wait(TICK_S if self.stats.dirty else None)
                    if self.stats.dirty and not self._queue and not self._stopping:
                        return [], False
            popleft = self._queue.popleft
            batch = [popleft() for _ in range(batch_size(n, self.buffer_size, self.max_queue_size))]
            self._taken += len(batch)
            self._due = False  # what stays behind is due anyway (below)
            self._fork.took(batch)  # a fork before it is processed still gives the child what it carries
            if self._queue:
                # Whatever stays behind a full batch is already due.
                self._oldest = time.monotonic() - self.flush_interval_s
            else:
                self._oldest = None
            stopping = self._stopping and not self._queue
            cond.notify_all()  # producers blocked on a full queue
        return batch, stopping

    def _release_flushes(self) -> None:
        with self._cond:
            self._done = self._taken
            self.flush_waiters.wake(self._done)

    def _run(self) -> None:
        stats = self.stats
        try:
            while True:
                batch, stopping = self._take()
                if batch:
                    try:
                        self.sink.process(batch, self)
                    except Exception as exc:
                        # A bug must not end recording: count the batch, keep the thread.
                        stats.internal_errors += 1
                        stats.rejected += len(batch)
                        stats.last_error = f"internal error: {exc!r}"
                        logger.exception("ppp-otel: a batch of %d records could not be written", len(batch))
                self._release_flushes()
                self.sink.tick(final=stopping)
                if stopping:
                    break
        except Exception:
            stats.internal_errors += 1
            logger.exception("ppp-otel: writer thread stopped unexpectedly")
        finally:
            self.sink.close()
            self._stopped.set()
            with self._cond:
                self.flush_waiters.wake(float("inf"))
