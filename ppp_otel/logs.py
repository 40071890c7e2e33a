"""Logging a recurring problem without flooding the log."""

from __future__ import annotations

import logging
from typing import Any


class LogLimiter:
    """The first few occurrences of a problem are logged, then every 1000th, each with its count."""

    def __init__(self, logger: logging.Logger, first: int = 10, every: int = 1000):
        self.logger, self.first, self.every, self.count = logger, first, every, 0

    def __call__(self, message: str, *args: Any, level: int = logging.WARNING) -> None:
        self.count += 1
        if self.count <= self.first or self.count % self.every == 0:
            self.logger.log(level, message + " (occurrence %d)", *args, self.count)
