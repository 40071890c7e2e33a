"""What every command prints: tables for people, JSON for programs, errors, progress.

Not a command module (the leading underscore keeps discovery away from it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from itertools import repeat
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
    return _one_line(text, max_width)


# Whitespace that would need folding: a run of two, or anything but a plain space.
_FOLD = re.compile(r"\s\s|[^\S ]")


def _one_line(text: str, max_width: int | None) -> str:
    # A newline in a prompt would break the row apart; most cells have none,
    # and one regex scan is cheaper than splitting and joining every cell.
    if _FOLD.search(text) or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.split())
    if max_width is not None and len(text) > max_width:
        text = text[: max(max_width - 1, 0)] + "…"
    return text


def _column(values: Sequence[Any], max_width: int | None) -> tuple[list[str], bool]:
    """A column's cells and whether it is numeric (right-aligned), typed once per column:
    a 100,000-row listing spends its time here, not in SQLite."""
    kinds = set(map(type, values))
    if kinds <= {int, type(None)}:
        if type(None) in kinds:
            return ["-" if v is None else str(v) for v in values], True
        return list(map(str, values)), True
    if kinds <= {str, type(None)}:
        texts = ["-" if v is None else v for v in values] if type(None) in kinds else list(values)
        # One scan of the whole column finds whether any cell needs folding at all.
        joined = "\0".join(texts)
        if _FOLD.search(joined) or " \0" in joined or "\0 " in joined or joined[:1] == " " or joined[-1:] == " ":
            return [_one_line(t, max_width) for t in texts], False
        if max_width is not None and max(map(len, texts)) > max_width:
            return [_one_line(t, max_width) for t in texts], False
        return texts, False
    if kinds <= {float, int, type(None)}:  # no bools: they print as words
        texts = ["-" if v is None else f"{v:.4g}" if type(v) is float else str(v) for v in values]
        if max_width is None or max(map(len, texts)) <= max_width:
            return texts, True
    numeric = all(isinstance(v, (int, float)) or v is None for v in values)
    return [cell(v, max_width) for v in values], numeric


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
    raw = rows if isinstance(rows, list) else list(rows)
    if not raw and empty is not None:
        print(empty, file=out)
        return
    columns = [_column(col, max_width) for col in zip(*raw)] if raw else [([], False) for _ in headers]
    widths = [max(len(h), max(map(len, texts), default=0)) for h, (texts, _) in zip(headers, columns)]
    numeric = [bool(raw) and right for _, right in columns]
    # Padded a column at a time with C-level maps: per-row Python would cost more
    # than SQLite spends finding 100,000 rows. The last column is not padded when
    # left-aligned, so lines need no stripping unless one of its cells is empty.
    padded = []
    last = len(headers) - 1
    for i, ((texts, _), width, right) in enumerate(zip(columns, widths, numeric)):
        texts = [headers[i].upper()] + texts
        if right:
            padded.append(list(map(str.rjust, texts, repeat(width))))
        elif i == last:
            padded.append(texts)
        else:
            padded.append(list(map(str.ljust, texts, repeat(width))))
    lines = list(map("  ".join, zip(*padded)))
    if not numeric[last] and "" in padded[last]:
        lines = [line.rstrip() for line in lines]
    out.write("\n".join(lines) + "\n")


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
