"""``ppp-otel export``'s hold on the OpenTelemetry SDK's export log: the lines kept from the
terminal, and the reason for a failure read from them.

Apart from the command module so that every command's start, which imports the command
modules to build the parser, does not import :mod:`logging` for this one.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Iterator

#: The OpenTelemetry SDK's OTLP exporters log every retry; export says why it failed once, at the end.
_SDK_LOGGER = "opentelemetry.exporter.otlp"


class _KeptBack(logging.Handler):
    """The SDK's export log lines, held back from the terminal; the last one gives the reason."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reason(self) -> str | None:
        """Why the last failed attempt failed, in few words: the status the endpoint answered
        with, or the OS's reason for a connection refused or unreachable."""
        for record in reversed(self.records):
            args, msg = (record.args if isinstance(record.args, tuple) else ()), str(record.msg)
            if msg.startswith("Failed to export") and "code:" in msg and len(args) == 3:
                status, why = args[1], args[2]
                return f"{status} {why}" if status else _short(why)
            if msg.startswith("Transient error") and args:
                return _short(args[0])
        return None


def _short(error: object) -> str:
    text = " ".join(str(error).split())
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return errno.group(1).strip() if errno else text


@contextmanager
def sdk_log_kept_back() -> Iterator[_KeptBack]:
    logger = logging.getLogger(_SDK_LOGGER)
    handler, propagate = _KeptBack(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
