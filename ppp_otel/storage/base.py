"""The storage seam: what every backend of the trajectory store offers, and its errors.

Everything above storage (the recorder, ingest, scoring, consensus, the CLI,
exports) talks to a :class:`TrajectoryBackend` and catches :class:`StorageError`;
no SQL and no driver exception crosses this line. ``storage/sqlite/`` is one
implementation (:class:`ppp_otel.storage.sqlite.store.SQLiteStore`); a second
backend implements the same methods in its own package and is picked by
:func:`ppp_otel.storage.open_store` from the URL.

Rows cross the seam as the dataclasses of :mod:`ppp_otel.storage.sqlite.reader`
(``TrajectorySummary``, ``Trajectory``...) and plain tuples whose order is
given below, so the mappers are written once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from ppp_otel.model import TurnText
    from ppp_otel.records import TrajectoryRecord, TurnRecord

    Record = TrajectoryRecord | TurnRecord


# --- naming a store to a person -------------------------------------------------

_NETLOC = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:?//?)([^/?#]*)(.*)$", re.S)
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.I)


def redact_url(url: str) -> str:
    """The URL without its password, for messages, logs and ``status``: the one in
    ``user:password@`` and a ``password=`` parameter (libpq takes either). Also
    masks them in what is almost a URL (``postgresql//user:pw@host``,
    ``postgresql:/user:pw@host``), since that is what a typo's error prints back."""
    found = _NETLOC.match(url)
    if found:
        prefix, netloc, rest = found.groups()
        userinfo, at, host = netloc.rpartition("@")
        if at and ":" in userinfo:
            url = f"{prefix}{userinfo.split(':', 1)[0]}:***@{host}{rest}"
    return _PASSWORD_PARAM.sub(r"\1***", url)


# --- a file path that names a directory ---------------------------------------------

#: The file a directory named as the database is told to hold instead.
SUGGESTED_FILE_NAME = "ppp_trajectories.db"


def directory_named(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a SQLite file because it names a directory (it is one, or it
    ends in a separator, where SQLite would make a file of the name without it), with the
    file to name instead; None otherwise. Every command, ``register()`` and the reader
    refuse such a path with these words before SQLite sees it."""
    path = os.fspath(path)
    if path == ":memory:" or "://" in path:
        return None
    instead = os.path.join(path, SUGGESTED_FILE_NAME)
    if os.path.isdir(path):
        return f"it is a directory; name a database file, e.g. {instead}"
    if path.endswith((os.sep, os.altsep or os.sep)):
        return (f"it ends in {path[-1]}, so it names a directory, and there is no such directory; "
                f"name a database file, e.g. {instead} once the directory exists")
    return None


# --- integers the store can hold -------------------------------------------------

#: The range of SQLite's INTEGER and PostgreSQL's BIGINT: every row id, limit and offset
#: lies in it, and the drivers raise OverflowError for a Python int outside it.
SMALLEST_INTEGER, LARGEST_INTEGER = -(2**63), 2**63 - 1


def can_be_row_id(value: int) -> bool:
    """Whether ``value`` could name a row: an id outside the store's integers names none,
    so a lookup of it finds nothing (rather than the driver's OverflowError)."""
    return SMALLEST_INTEGER <= value <= LARGEST_INTEGER


def check_row_count(name: str, value: int | None) -> None:
    """ValueError for a ``limit`` or ``offset`` that is negative or larger than the store's
    integers; None (no limit) passes."""
    if value is None:
        return
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    if value > LARGEST_INTEGER:
        raise ValueError(f"{name} must be at most {LARGEST_INTEGER}, got {value}")


# --- errors -------------------------------------------------------------------

class StorageError(Exception):
    """The store could not do what was asked; the message says why and names the database."""


class DatabaseError(StorageError):
    """The database cannot be used (missing, not a database, unreadable); names it."""


class NoSuchDatabase(DatabaseError):
    """A database that must exist (it is only read) does not."""


class NotADatabaseError(DatabaseError):
    """The file or server is not a database of this backend."""


class DatabaseNewerError(DatabaseError):
    """The database was written by a newer ppp-otel; it is refused, never touched."""


class ReadOnlyError(DatabaseError):
    """A write was asked of a store opened read-only, or of a file that cannot be written."""


class WriteFailed(StorageError):
    """A write failed for a reason about the database, not the records (locked, full):
    worth retrying; nothing of the failed transaction was kept."""


class TurnNumberClash(StorageError):
    """Another turn of the trajectory already has this turn number.

    Backends raise it from the unique constraint on (trajectory_id, turn_number),
    recognised by the constraint, never by the driver's message text."""

    def __init__(self, turn_number: int | None):
        super().__init__(f"turn number {turn_number} is already taken by another turn")
        self.turn_number = turn_number


class BackendNotInstalled(StorageError):
    """The URL names a backend whose package or driver is not installed."""


# --- what crosses the seam ----------------------------------------------------

@dataclass
class WriteOutcome:
    trajectories: int = 0
    turns: int = 0
    duplicates: int = 0
    rejected: list[tuple[Any, str]] = field(default_factory=list)

    def add(self, other: "WriteOutcome") -> None:
        self.trajectories += other.trajectories
        self.turns += other.turns
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)


#: The columns of ``recorder_stats`` in the order :meth:`TrajectoryBackend.save_recorder_stats`
#: takes them and :meth:`TrajectoryBackend.recorders` returns them (as dict keys).
#: The times the store compares and orders as text. Each is kept in one form,
#: UTC with milliseconds and "Z" (:data:`ppp_otel.records.CANONICAL_TIME`), so
#: that text order is time order; schema version 8 rewrote rows in others.
TIME_COLUMNS = (("trajectories", "created_at"), ("trajectories", "ended_at"),
                ("trajectory_turns", "timestamp"), ("consensus_runs", "created_at"))


def utc_rewrites(rows: Iterable[tuple[Any, Any]]) -> list[tuple[str, Any]]:
    """``(time in the store's form, row id)`` for each ``(row id, stored time)`` that
    reads as an ISO 8601 time in another form. A text that is no time at all is
    left as it is: nothing could say which instant it meant."""
    from ppp_otel.records import utc_iso

    rewrites = []
    for row_id, stored in rows:
        if not isinstance(stored, str):
            continue
        try:
            canonical = utc_iso(stored)
        except ValueError:
            continue
        if canonical != stored:
            rewrites.append((canonical, row_id))
    return rewrites


RECORDER_COLUMNS = ("recorder_id", "pid", "started_at", "updated_at", "enqueued", "written_turns",
                    "duplicates", "dropped", "rejected", "write_errors", "last_error")

#: One row of :meth:`TrajectoryBackend.score_counts`: a trajectory and its
#: question counts by effort and violation counts by severity.
SCORE_COLUMNS = ("id", "spec_id", "agent_name", "run_id", "technical_score", "trace_id", "span_id",
                 "low", "medium", "high", "minor", "major", "critical", "stage", "created_at")


def cursor_columns(cursor: Any, picked: Sequence[int], batch: int = 2048) -> list[list[Any]]:
    """The columns at the indexes ``picked`` of a cursor's rows, fetched ``batch`` rows at a
    time: a caller that prints a hundred thousand rows by column never holds them all as
    rows, nor the cells it does not show (fresh memory, paid for in page faults)."""
    columns: list[list[Any]] = [[] for _ in picked]
    getters = [(column.extend, itemgetter(i)) for column, i in zip(columns, picked)]
    while rows := cursor.fetchmany(batch):
        for extend, cell in getters:
            extend(map(cell, rows))
    return columns


#: One row of :meth:`TrajectoryBackend.paper_turn_rows`: a turn of a chosen trajectory,
#: its costliest question (1 low .. 3 high, None) and its violated preferences (JSON).
PAPER_TURN_COLUMNS = ("trajectory_id", "preferences", "turn_number", "costliest", "violated")


@runtime_checkable
class TrajectoryBackend(Protocol):
    """A trajectory store. Methods raise :class:`StorageError` subclasses only."""

    path: str  # what the store was opened from (a file path, a URL), for messages

    # lifecycle
    def close(self) -> None: ...
    def __enter__(self) -> "TrajectoryBackend": ...
    def __exit__(self, *exc: object) -> None: ...
    def migrate(self) -> list[int]: ...
    def transaction(self) -> ContextManager[None]:
        """One write transaction; joins the caller's when one is open."""

    # reading (ppp-otel trajectories/show/status, exports, the async store)
    def list_trajectories(self, *, spec_id: str | None = None, agent_name: str | None = None,
                          run_id: str | None = None, limit: int | None = None,
                          offset: int = 0) -> list[Any]: ...
    def list_trajectory_rows(self, *, spec_id: str | None = None, agent_name: str | None = None,
                             run_id: str | None = None, stage: str | None = None,
                             limit: int | None = None, offset: int = 0) -> list[tuple]: ...
    def list_trajectory_columns(self, picked: Sequence[int], *, spec_id: str | None = None,
                                agent_name: str | None = None, run_id: str | None = None,
                                stage: str | None = None, limit: int | None = None,
                                offset: int = 0) -> list[list[Any]]: ...
    def get_trajectory(self, trajectory_id: int) -> Any | None: ...
    def missing_ids(self, trajectory_ids: Sequence[int]) -> list[int]: ...
    def specs(self) -> list[str]: ...
    def agents(self, spec_id: str | None = None) -> list[str]: ...
    def status(self) -> dict[str, Any]: ...
    def trajectory_parents(self) -> dict[int, int | None]: ...
    def turn_extras(self, trajectory_id: int) -> dict[int, dict[str, Any]]: ...
    def children_of(self, trajectory_id: int) -> list[int]: ...

    # recording (the recorder's sink, ingest)
    def write(self, records: Sequence["Record"]) -> WriteOutcome: ...
    def save_recorder_stats(self, row: Sequence[Any]) -> None: ...
    def recorders(self) -> list[dict[str, Any]]: ...
    def trajectory_history(
        self, key: tuple[str, str]
    ) -> tuple[tuple[str, ...], list["TurnText"], str | None] | None: ...
    def placement(self, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None: ...
    def pending_summary(self) -> dict[str, Any]: ...
    def check_writable(self) -> None: ...
    # Judgments: the judgment stage and `ppp-otel judge`.
    def store_judged(self, turns: Sequence["Record"], at_end: list, judge: str) -> int: ...
    def to_rejudge(self, *, spec_id: str | None = None, since: str | None = None,
                   pending: bool = False) -> list[int]: ...
    def as_reported(self, trajectory_id: int) -> tuple | None: ...
    def replace_judgments(self, turns: list, at_end: list, judge: str) -> int: ...

    # spans ingest acknowledged before their parent (``pending_spans``)
    shares_pending: bool  # True: ingest replicas share them, and claim_pending() is there
    def waiting_parents(self) -> list[tuple[str, str]]: ...
    def stored_waiting_parents(self) -> list[tuple[str, str]]: ...
    def staged_children(self, parent: tuple[str, str]) -> list[Any]: ...
    def purge_pending(self, retention_s: float) -> int: ...
    def pending_summary(self) -> dict[str, Any]: ...

    # scoring and consensus
    def score_counts(self, *, trajectory_id: int | None = None, spec_id: str | None = None,
                     agent_name: str | None = None, stage: str | None = None,
                     run_id: str | None = None) -> list[tuple]: ...
    def score_count_columns(self, picked: Sequence[int], *, trajectory_id: int | None = None,
                            spec_id: str | None = None, agent_name: str | None = None,
                            stage: str | None = None, run_id: str | None = None) -> list[list[Any]]: ...
    def paper_turn_rows(self, *, trajectory_id: int | None = None, spec_id: str | None = None,
                        agent_name: str | None = None, stage: str | None = None,
                        run_id: str | None = None) -> list[tuple]: ...
    def violations_by_preference(self, **filters: Any) -> list[tuple]: ...
    def store_consensus(self, result: Any) -> int: ...
    def record_consensus_span(self, consensus_id: int, trace_id: str, span_id: str) -> None: ...
    def consensus_history_rows(self, spec_id: str, limit: int | None, *, stage: str | None = None,
                               run_id: str | None = None) -> list[tuple]: ...

    # retention
    def cleanup(self, **options: Any) -> Any: ...


#: What opens a store: ``opener(url_or_path, **options)``.
Opener = Callable[..., TrajectoryBackend]
Rows = Iterable[Sequence[Any]]
