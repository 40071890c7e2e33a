"""Logging a recurring problem without flooding the log."""

from __future__ import annotations

import logging
import time
from typing import Any


class LogLimiter:
    """The first few occurrences of a problem are logged, then at most one line
    every ``every_s`` seconds, each with the running count.

    A count-based rhythm (every 1000th) still writes hundreds of lines a
    second when a tight loop overflows the queue; a clock does not.
    """

    def __init__(self, logger: logging.Logger, first: int = 10, every_s: float = 10.0):
        self.logger, self.first, self.every_s, self.count = logger, first, every_s, 0
        self._logged_at = float("-inf")

    def __call__(self, message: str, *args: Any, level: int = logging.WARNING) -> None:
        self.count += 1
        if self.count > self.first:
            now = time.monotonic()
            if now - self._logged_at < self.every_s:
                return
            self._logged_at = now
        self.logger.log(level, message + " (occurrence %d)", *args, self.count)
