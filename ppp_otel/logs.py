"""Logging a recurring problem without flooding the log: one helper for every module.

``LogLimiter(logger)`` logs the first few occurrences of a problem, then every
1000th, each with its count. ``LogLimiter(logger, first=1, every=0)`` logs each
kind of problem (its ``key``) once: the count says the rest, where it is kept.
Thread-safe: producers and the writer thread share limiters.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Hashable

from ppp_otel.forksafe import renew_locks_in_child


class LogLimiter:
    """The first ``first`` occurrences of each kind of problem are logged, then every
    ``every``-th (never again when ``every`` is 0), or, with ``every_s``, at most one
    line every ``every_s`` seconds, each with the running count.

    A count-based rhythm (every 1000th) still writes hundreds of lines a second when
    a tight loop overflows the queue; a clock does not, so the recorder uses one.
    """

    def __init__(self, logger: logging.Logger, first: int = 10, every: int = 1000, *,
                 every_s: float | None = None, numbered: bool = True):
        self.logger, self.first, self.every, self.every_s = logger, first, every, every_s
        # Whether the message gets " (occurrence N)"; a log-once message has no N to tell.
        self.numbered = numbered
        self._counts: dict[Hashable, int] = {}
        self._logged_at: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        renew_locks_in_child(self)

    @classmethod
    def once(cls, logger: logging.Logger) -> LogLimiter:
        """A limiter that logs each key once."""
        return cls(logger, first=1, every=0, numbered=False)

    @property
    def count(self) -> int:
        """Occurrences of the problem without a key."""
        return self._counts.get(None, 0)

    def allows(self, key: Hashable = None) -> bool:
        """Count one occurrence of ``key``; whether it is one to log."""
        with self._lock:
            n = self._counts[key] = self._counts.get(key, 0) + 1
            if n <= self.first:
                return True
            if self.every_s is not None:
                now = time.monotonic()
                if now - self._logged_at.get(key, float("-inf")) < self.every_s:
                    return False
                self._logged_at[key] = now
                return True
        return self.every > 0 and n % self.every == 0

    def __call__(self, message: str, *args: Any, level: int = logging.WARNING,
                 key: Hashable = None, **kwargs: Any) -> bool:
        """Log ``message % args`` if this occurrence is one to log; whether it was."""
        if not self.allows(key):
            return False
        if self.numbered:
            self.logger.log(level, message + " (occurrence %d)", *args, self._counts[key], **kwargs)
        else:
            self.logger.log(level, message, *args, **kwargs)
        return True

    def forget(self, key: Hashable = None) -> None:
        """Start counting ``key`` afresh (a replaced detector is a new problem)."""
        with self._lock:
            self._counts.pop(key, None)
            self._logged_at.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._logged_at.clear()
