"""What every command prints: tables for people, JSON for programs, errors, progress.

Not a command module (the leading underscore keeps discovery away from it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Iterable, Mapping, Sequence, TextIO

PROG = "ppp-otel"
EXIT_ERROR = 2

#: Cells longer than this are cut in tables; ``--json`` never cuts.
DEFAULT_MAX_WIDTH = 48


def cell(value: Any, max_width: int | None = DEFAULT_MAX_WIDTH) -> str:
    """One table cell: on one line, cut to ``max_width`` with an ellipsis."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(cell(v, None) for v in value) or "-"
    else:
        text = str(value)
    # A newline in a prompt would break the row apart.
    text = " ".join(text.split())
    if max_width is not None and len(text) > max_width:
        text = text[: max(max_width - 1, 0)] + "…"
    return text


def print_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    *,
    max_width: int | None = DEFAULT_MAX_WIDTH,
    file: TextIO | None = None,
    empty: str | None = None,
) -> None:
    """Aligned columns under a header line; numbers are right-aligned.

    ``empty``: printed instead of a lone header line when there are no rows.
    """
    out = file or sys.stdout
    raw = [list(row) for row in rows]
    if not raw and empty is not None:
        print(empty, file=out)
        return
    cells = [[cell(v, max_width) for v in row] for row in raw]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        bool(raw) and all(isinstance(row[i], (int, float)) or row[i] is None for row in raw)
        for i in range(len(headers))
    ]

    def line(texts: Sequence[str], align: Sequence[bool]) -> str:
        parts = [t.rjust(w) if right else t.ljust(w) for t, w, right in zip(texts, widths, align)]
        return "  ".join(parts).rstrip()

    print(line([h.upper() for h in headers], numeric), file=out)
    for row in cells:
        print(line(row, numeric), file=out)


def print_fields(fields: Mapping[str, Any], *, file: TextIO | None = None, indent: int = 0) -> None:
    """``key: value`` lines, keys aligned; a nested mapping becomes an indented block."""
    out = file or sys.stdout
    width = max((len(str(k)) for k in fields), default=0)
    pad = " " * indent
    for key, value in fields.items():
        if isinstance(value, Mapping):
            print(f"{pad}{key}:", file=out)
            print_fields(value, file=out, indent=indent + 2)
        else:
            print(f"{pad}{str(key).ljust(width)}  {cell(value, None)}", file=out)


def _to_json(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


def print_json(data: Any, *, file: TextIO | None = None) -> None:
    # Dataclasses from the store carry to_dict(); anything else odd becomes text.
    print(json.dumps(data, indent=2, default=_to_json), file=file or sys.stdout)


def fail(message: Any) -> int:
    """Print ``ppp-otel: error: <message>`` on one line to stderr; return the exit code."""
    text = " ".join(str(message).split())
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return EXIT_ERROR


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class Progress:
    """One self-rewriting stderr line (``label: 1200/5000``) for long work.

    Silent when stderr is not a terminal or the command prints JSON, so logs
    and pipes never fill with carriage returns. Redraws at most ~10 times a second.
    """

    def __init__(self, label: str, total: int | None = None, *, enabled: bool = True):
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = enabled and sys.stderr.isatty()
        self._drawn_at = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._drawn_at >= 0.1:
            self._draw()

    def _draw(self) -> None:
        self._drawn_at = time.monotonic()
        of = f"/{self.total}" if self.total is not None else ""
        sys.stderr.write(f"\r{self.label}: {self.done}{of}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(label: str, total: int | None = None, *, json_output: bool = False) -> Progress:
    """A :class:`Progress` line, off under ``--json`` (pass ``args.json``)."""
    return Progress(label, total, enabled=not json_output)


def int_at_least(minimum: int):
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text}")
        return value

    return parse
