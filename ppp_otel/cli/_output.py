"""What every command prints: tables for people, JSON for programs, errors, progress.

Not a command module (the leading underscore keeps discovery away from it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import re
import sys
import textwrap
import time
from contextlib import contextmanager
from itertools import islice
from operator import itemgetter
from typing import Any, Iterable, Iterator, Mapping, Sequence, TextIO

PROG = "ppp-otel"
EXIT_ERROR = 2

#: Cells longer than this are cut in tables; ``--json`` never cuts.
DEFAULT_MAX_WIDTH = 48


#: Scores and weights in tables: four digits after the point, the same in every row and
#: every table, so that a column reads down and lines up on its point (0.5573, 0.0075,
#: 0.5900; a consensus's final mixes weights and rewards into four places). ``--json``
#: keeps the values as computed.
SCORE_DECIMALS = 4


def score_decimals(*headers: str) -> dict[str, int]:
    """The ``decimals`` of :func:`print_table` for these score columns."""
    return dict.fromkeys(headers, SCORE_DECIMALS)


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
# The ASCII whitespace other than a space (what str.split() splits on): in ASCII
# text, a few substring searches find them faster than one regex scan.
_ASCII_FOLDED = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
_NONE = type(None)


def _one_line(text: str, max_width: int | None) -> str:
    # A newline in a prompt would break the row apart; most cells have none,
    # and one regex scan is cheaper than splitting and joining every cell.
    if _FOLD.search(text) or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.split())
    if max_width is not None and len(text) > max_width:
        text = text[: max(max_width - 1, 0)] + "…"
    return text


def _needs_folding(texts: Sequence[str]) -> bool:
    """Whether any cell of a column has whitespace to fold, found in one scan of the whole
    column (a 100,000-row listing would spend more on a scan per cell than SQLite spends)."""
    joined = "\0".join(texts)
    if joined[:1] == " " or joined[-1:] == " " or " \0" in joined or "\0 " in joined or "  " in joined:
        return True
    if joined.isascii():
        return any(c in joined for c in _ASCII_FOLDED)
    return _FOLD.search(joined) is not None


#: A long column whose first this many cells hold at most half as many distinct values is
#: measured on its distinct values: spec, agent and run ids repeat down a listing, times do not.
_SAMPLE = 4096


def _repeated(values: Sequence[Any]) -> set | None:
    """The distinct values of a long column that repeats its values, else None."""
    if not isinstance(values, (list, tuple)) or len(values) < 2 * _SAMPLE:
        return None
    if len(set(values[:_SAMPLE])) > _SAMPLE // 2:
        return None
    return set(values)


def _repeated_text(values: Sequence[str | None], distinct: set,
                   max_width: int | None) -> tuple[Sequence[Any], int, str, bool]:
    """:func:`_column` of a column of text and None with these distinct values: the width
    and the folding are a matter of each value, so they are found on the few distinct ones,
    and a cell that has to change is looked up, not made again for every row."""
    shown = {value: "-" if value is None else value for value in distinct}
    texts = ["-" if v is None else v for v in values] if None in shown else values
    width = max(map(len, shown.values()))
    if (max_width is not None and width > max_width) or _needs_folding(list(shown.values())):
        shown = {value: _one_line(text, max_width) for value, text in shown.items()}
        texts = list(map(shown.__getitem__, values))
        width = max(map(len, shown.values()))
    return texts, width, "s", False


def _float_width(values: Sequence[float]) -> int:
    """The widest ``.4g`` text of a column of floats, from its distinct values."""
    distinct = set(values)
    width = max(len(f"{v:.4g}") for v in distinct)
    # 0.0 and -0.0 are one member of a set, but print as "0" and "-0".
    if width < 2 and 0.0 in distinct and any(math.copysign(1.0, v) < 0 for v in values if v == 0.0):
        width = 2
    return width


def _column(values: Sequence[Any], max_width: int | None,
            decimals: int | None = None) -> tuple[Sequence[Any], int, str, bool]:
    """A column as the row format prints it: its cells, their width, their conversion
    (``s``, or ``d`` and ``.4g`` for whole numbers and floats the format turns into text
    itself) and whether it is numeric (right-aligned). Typed once per column, and the
    values themselves are the cells wherever the format prints them as the table shows
    them: a 100,000-row listing spends its time here, not in SQLite. ``decimals``: the
    column's numbers are shown with that many digits after the point, whatever their size
    (a measurement such as a latency reads best so, lined up on its point)."""
    kinds = set(map(type, values))
    if decimals is not None and values and kinds <= {float, int, _NONE}:
        fixed = f".{decimals}f"
        if _NONE in kinds:
            texts = ["-" if v is None else format(v, fixed) for v in values]
            return texts, max(map(len, texts)), "s", True
        return values, max(len(format(v, fixed)) for v in set(values)), fixed, True
    if kinds <= {int, _NONE}:
        if _NONE in kinds:
            texts = ["-" if v is None else str(v) for v in values]
            return texts, max(map(len, texts)), "s", True
        # The longest decimal is the smallest or the largest number's. `d` rather than
        # `s`: the format writes the digits itself instead of making a string of each.
        return values, max(len(str(min(values))), len(str(max(values)))), "d", True
    if kinds <= {str, _NONE}:
        distinct = _repeated(values)
        if distinct is not None:
            return _repeated_text(values, distinct, max_width)
        texts = ["-" if v is None else v for v in values] if _NONE in kinds else values
        width = max(map(len, texts))
        if (max_width is not None and width > max_width) or _needs_folding(texts):
            texts = [_one_line(t, max_width) for t in texts]
            width = max(map(len, texts))
        return texts, width, "s", False
    if kinds == {float}:
        width = _float_width(values)
        if max_width is None or width <= max_width:
            return values, width, ".4g", True
    if kinds <= {float, int, _NONE}:  # no bools: they print as words
        texts = ["-" if v is None else f"{v:.4g}" if type(v) is float else str(v) for v in values]
        width = max(map(len, texts))
        if max_width is None or width <= max_width:
            return texts, width, "s", True
    numeric = all(isinstance(v, (int, float)) or v is None for v in values)
    texts = [cell(v, max_width) for v in values]
    return texts, max(map(len, texts)), "s", numeric


def print_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], **options: Any) -> None:
    """Aligned columns under a header line; numbers are right-aligned. ``options``: those
    of :func:`print_columns`, which prints the table from its columns."""
    raw = rows if isinstance(rows, list) else list(rows)
    print_columns(columns_of(raw, min(map(len, raw))) if raw else [], headers, **options)


def columns_of(rows: Sequence[Sequence[Any]], picked: int | Sequence[int]) -> list[list[Any]]:
    """The columns of ``rows``: the first ``picked`` of them, or those at the indexes
    ``picked``. A map per column: ``zip(*rows)`` makes an iterator per row."""
    indexes = range(picked) if isinstance(picked, int) else picked
    return [list(map(itemgetter(i), rows)) for i in indexes]


def print_columns(
    columns: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    max_width: int | None = DEFAULT_MAX_WIDTH,
    file: TextIO | None = None,
    empty: str | None = None,
    decimals: Mapping[str, int] | None = None,
) -> None:
    """:func:`print_table` of a table given by its columns (equally long sequences), for a
    caller that has them: a large table is not turned into rows only to be turned back.

    ``max_width``: cells longer than this are cut (None: never). ``empty``: printed instead
    of a lone header line when there are no rows. ``decimals``: header -> how many digits
    after the point that column's numbers show (other numbers show four significant digits).
    """
    out = file or sys.stdout
    titles = [h.upper() for h in headers]
    last = len(headers) - 1
    if not columns or not len(columns[0]):
        if empty is not None:
            print(empty, file=out)
            return
        line = "  ".join(titles)
        out.write((line.rstrip() if titles and titles[last] == "" else line) + "\n")
        return
    # One format for the whole table, each line made by one `%` in C: per-cell
    # padding and joining in Python would cost more than SQLite spends finding
    # 100,000 rows. The last column is not padded when left-aligned, so lines
    # need no stripping unless one of its cells is empty.
    cells, title_specs, row_specs = [], [], []
    fixed = [None] * len(headers) if not decimals else [decimals.get(h) for h in headers]
    for i, (title, values) in enumerate(zip(titles, columns)):
        texts, width, conversion, right = _column(values, max_width, fixed[i])
        width = max(width, len(title))
        cells.append(texts)
        if right:
            title_specs.append(f"%{width}s")
            row_specs.append(f"%{width}{conversion}")
        elif i == last:
            title_specs.append("%s")
            row_specs.append(f"%{conversion}")
        else:
            title_specs.append(f"%-{width}s")
            row_specs.append(f"%-{width}{conversion}")
    strip = row_specs[last] == "%s" and (titles[last] == "" or "" in cells[last])
    header = "  ".join(title_specs) % tuple(titles)
    out.write((header.rstrip() if strip else header) + "\n")
    # Written a slice of lines at a time: the whole table as one string (and its
    # encoded copy) would be fresh memory the size of the output, paid for in page faults.
    row_line = "  ".join(row_specs).__mod__
    rows = zip(*cells)
    while lines := list(map(row_line, islice(rows, _LINES_PER_WRITE))):
        if strip:
            lines = [line.rstrip() for line in lines]
        out.write("\n".join(lines) + "\n")


#: How many table lines :func:`print_columns` writes at once.
_LINES_PER_WRITE = 4096


@contextmanager
def bulk() -> Iterator[None]:
    """No cycle collection while a command holds a large result: its hundreds of thousands
    of rows, cells and column lists are tuples and lists of plain values, never a cycle, and
    the collector, started every 700 new ones, would walk them all again and again (at
    100,000 trajectories, a tenth of the time SQLite takes to find them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def add_stage_column(columns: list[Sequence[Any]], headers: list[str], stages: Sequence[Any]) -> None:
    """Insert a STAGE column right after SPEC, where every table that shows a stage has it
    (a stage is a part of its spec), when some row has a stage: most stores have none."""
    if stages.count(None) != len(stages):
        at = headers.index("spec") + 1
        columns.insert(at, stages)
        headers.insert(at, "stage")


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


def limit_type(what: str):
    """``--limit N``: at most N ``what``, N >= 1; every one is --limit left out (a limit of 0
    would list nothing, which no one asks for)."""
    return int_at_least(1, f"leave --limit out for all {what}")


#: Wrapped text is no wider than this even in a wide terminal: longer lines are hard to read.
MAX_TEXT_WIDTH = 100


def text_width() -> int:
    """How wide wrapped text is: the terminal's width (80 when not a terminal), at most
    :data:`MAX_TEXT_WIDTH`."""
    import shutil  # with its archive modules: only `show --full` wraps text

    return min(shutil.get_terminal_size((80, 24)).columns, MAX_TEXT_WIDTH)


def print_wrapped(text: str | None, *, indent: int = 0, width: int | None = None,
                  file: TextIO | None = None) -> None:
    """``text`` whole, as paragraphs wrapped to ``width`` and indented by ``indent``.

    Its own line breaks are kept (code, lists and blank lines stay where they were);
    a long word such as a URL or a path is not broken, so that it can be copied.
    """
    out = file or sys.stdout
    pad = " " * indent
    if not text:
        print(f"{pad}-", file=out)
        return
    wrapper = textwrap.TextWrapper(width=max((width or text_width()), indent + 20), initial_indent=pad,
                                   subsequent_indent=pad, break_long_words=False, break_on_hyphens=False)
    for line in text.splitlines():
        print(wrapper.fill(line) if line.strip() else "", file=out)


def _to_json(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


def print_json(data: Any, *, file: TextIO | None = None) -> None:
    text = _indented_json(data)
    if text is None:
        # Dataclasses from the store carry to_dict(); anything else odd becomes text.
        text = json.dumps(data, indent=2, default=_to_json)
    print(text, file=file or sys.stdout)


class _NotPlain(Exception):
    """A value :func:`_indented_json` leaves to json.dumps."""


_ENCODE_TEXT = json.encoder.encode_basestring_ascii
_INT_TEXT = int.__repr__
_FLOAT_TEXT = float.__repr__
_INFINITY = float("inf")


def _float_json(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return _FLOAT_TEXT(value)


def _indented_json(data: Any) -> str | None:
    """``json.dumps(data, indent=2)``, character for character, for data of plain dicts
    (text keys), lists, tuples, text, numbers, booleans and None; None for anything
    else. json.dumps has no C encoder once it indents, and its Python one takes
    seconds over the 100,000 records of a ``--json`` listing: this writes the same
    text with a few calls per value."""
    keys: dict[str, str] = {}  # a listing repeats its few keys in every record

    def text(value: Any, pad: str) -> str:
        # pad: the newline and indentation of the line the value starts on.
        kind = type(value)
        if kind is str:
            return _ENCODE_TEXT(value)
        if kind is int:
            return _INT_TEXT(value)
        if value is None:
            return "null"
        if kind is float:
            return _float_json(value)
        if kind is bool:
            return "true" if value else "false"
        inner = pad + "  "
        if kind is dict:
            if not value:
                return "{}"
            pieces = []
            for key, item in value.items():
                if type(key) is not str:
                    raise _NotPlain  # json.dumps turns such keys into text its own way
                prefix = keys.get(key)
                if prefix is None:
                    prefix = keys[key] = _ENCODE_TEXT(key) + ": "
                pieces.append(prefix + text(item, inner))
            return "{" + inner + ("," + inner).join(pieces) + pad + "}"
        if kind is list or kind is tuple:
            if not value:
                return "[]"
            return "[" + inner + ("," + inner).join([text(item, inner) for item in value]) + pad + "]"
        raise _NotPlain

    try:
        return text(data, "\n")
    except (_NotPlain, RecursionError):
        return None


def url_problem(text: str) -> str | None:
    """What makes ``text`` no OTLP/HTTP URL (http:// or https:// and a host), or None."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not text[len(parts.scheme):].startswith("://"):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    try:
        parts.port  # raises for a port that is no number from 0 to 65535
    except ValueError:
        return "its port is not a number from 0 to 65535"
    return None


def http_url(text: str) -> str:
    """argparse type of a URL option (a Phoenix): refused on the command line, not after recording."""
    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL: {problem} (e.g. http://localhost:6006)")
    return text


#: Options whose value may begin with "-" (``--weights -1,2``): argparse takes such a word
#: for an option unless it is a lone negative number, so ``main()`` attaches it
#: (``--weights=-1,2``) and the value meets its own check.
VALUES_MAY_START_WITH_DASH: set[str] = set()


def value_may_start_with_dash(action: argparse.Action) -> argparse.Action:
    """Mark an option (what ``add_argument`` returned) whose value may look like an option."""
    VALUES_MAY_START_WITH_DASH.update(s for s in action.option_strings if s.startswith("--"))
    return action


def attach_dashed_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with each marked option and a following word that begins with "-" joined
    by "=" (from ``--`` on, the words are left as they are)."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            joined.extend(argv[i:])
            break
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if word in VALUES_MAY_START_WITH_DASH and value.startswith("-") and value != "--":
            joined.append(f"{word}={value}")
            i += 2
        else:
            joined.append(word)
            i += 1
    return joined


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 turn``, ``2 turns``; ``many`` for a word whose plural is not one more "s"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


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


def int_at_least(minimum: int, hint: str | None = None, maximum: int | None = None):
    """An argparse type: a whole number no smaller than ``minimum`` and no larger than
    ``maximum`` (default: the largest integer the store holds, so that no count reaches
    the driver as an OverflowError); ``hint`` ends the error (what to do instead)."""
    from ppp_otel.storage.base import LARGEST_INTEGER

    largest = LARGEST_INTEGER if maximum is None else maximum

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text}" + (f" ({hint})" if hint else ""))
        if value > largest:
            raise argparse.ArgumentTypeError(f"must be at most {largest}: {text}")
        return value

    return parse


def number_at_least(minimum: float, *, above: bool = False, hint: str | None = None):
    """An argparse type: a finite number no smaller than ``minimum`` (larger than it, when
    ``above``): NaN and infinity are no duration or retention anyone means."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text}")
        if value < minimum or (above and value == minimum):
            bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}: {text}" + (f" ({hint})" if hint else ""))
        return value

    return parse
