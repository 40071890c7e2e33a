"""SQLiteStore: the SQLite implementation of :class:`ppp_otel.storage.base.TrajectoryBackend`.

A facade over one connection. The statements live in the modules beside it
(reader, writer, scoring, consensus, recording, retention, migrations); this
class gives them the interface's names and turns sqlite3's exceptions into
storage errors (:mod:`ppp_otel.storage.sqlite.errors`).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ppp_otel.storage.base import DatabaseError, StorageError, WriteFailed, WriteOutcome
from ppp_otel.storage.sqlite import consensus as consensus_sql
from ppp_otel.storage.sqlite import judgments, lookups, recorders as recorder_table, staging
from ppp_otel.storage.sqlite.errors import storage_errors, translate
from ppp_otel.storage.sqlite.reader import TrajectoryStore
from ppp_otel.storage.sqlite.scoring import paper_turn_rows, score_counts, violations_by_preference
from ppp_otel.storage.sqlite.transaction import transaction
from ppp_otel.storage.sqlite.writer import TrajectoryWriter


def _translated(method: Callable) -> Callable:
    # try/except rather than storage_errors(): scoring calls these in loops.
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
    return wrapper


class SQLiteStore(TrajectoryStore):
    """One SQLite trajectory database, read and written through one connection.

    Beyond :class:`TrajectoryStore`'s options, :func:`~ppp_otel.storage.sqlite.migrations.connect`'s
    (``wal``, ``busy_timeout_ms``, ``check_same_thread``: False for a store used
    from several threads under the caller's lock) and ``connection_hook``
    (called with the new connection: site pragmas).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        connection_hook: Callable[[sqlite3.Connection], None] | None = None,
        **options: Any,
    ):
        # must_exist, migrate_schema, read_only, and migrations.connect()'s own options.
        self._path = None
        super().__init__(path, **options)
        self._owned = True
        if connection_hook is not None:
            try:
                connection_hook(self.conn)
            except Exception as exc:
                self.conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise WriteFailed(str(exc)) from exc
                raise DatabaseError(f"connection_hook failed: {exc!r}") from exc
        self._writer: TrajectoryWriter | None = None

    @classmethod
    def from_connection(cls, conn: sqlite3.Connection, path: str | None = None) -> SQLiteStore:
        """A store over a connection the caller opened (and closes: :meth:`close` leaves it open)."""
        store = cls.__new__(cls)
        store.conn = conn
        store._path = path  # looked up when first asked for: wrapping stays cheap
        store._owned = False
        store._writer = None
        return store

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = _connection_path(self.conn)
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        self._path = value

    def close(self) -> None:
        if self._owned:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with storage_errors(), transaction(self.conn):
            yield

    # --- reading (the SQL is reader.py's) -----------------------------------------------

    list_trajectories = _translated(TrajectoryStore.list_trajectories)
    get_trajectory = _translated(TrajectoryStore.get_trajectory)
    missing_ids = _translated(TrajectoryStore.missing_ids)
    status = _translated(TrajectoryStore.status)

    migrate = _translated(TrajectoryStore.migrate)
    specs = _translated(TrajectoryStore.specs)
    agents = _translated(TrajectoryStore.agents)

    @_translated
    def trajectory_parents(self) -> dict[int, int | None]:
        return lookups.trajectory_parents(self.conn)

    @_translated
    def children_of(self, trajectory_id: int) -> list[int]:
        return lookups.children_of(self.conn, trajectory_id)

    @_translated
    def turn_extras(self, trajectory_id: int) -> dict[int, dict[str, Any]]:
        return lookups.turn_extras(self.conn, trajectory_id)

    # --- recording ------------------------------------------------------------------------

    def write(self, records: Sequence[Any]) -> WriteOutcome:
        """Write a batch in one transaction. A wrong record is in ``rejected``; a
        database that cannot take the batch now (locked, full) is :class:`WriteFailed`."""
        if self._writer is None:
            self._writer = TrajectoryWriter(self.conn)
        with storage_errors(WriteFailed):
            return self._writer.write(records)

    @_translated
    def save_recorder_stats(self, row: Sequence[Any]) -> None:
        recorder_table.save_recorder_stats(self.conn, row)

    @_translated
    def recorders(self) -> list[dict[str, Any]]:
        return recorder_table.recorders(self.conn)

    @_translated
    def trajectory_history(self, key: tuple[str, str]) -> Any:
        return lookups.trajectory_history(self.conn, key)

    def check_writable(self) -> None:
        """StorageError (naming the file and the reason) unless a write could start now."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise type(translate(exc))(f"{self.path}: {exc}") from exc

    @_translated
    def pending_summary(self) -> dict[str, Any]:
        """Turns ingest acknowledged whose trajectory span has not come (yet)."""
        return staging.summary(self.conn)

    # --- judgments ---------------------------------------------------------------------

    @_translated
    def store_judged(self, turns: Sequence[Any], at_end: list, judge: str) -> int:
        return judgments.store_judged(self.conn, turns, at_end, judge)

    @_translated
    def to_rejudge(self, *, spec_id: str | None = None, since: str | None = None,
                   pending: bool = False) -> list[int]:
        return judgments.to_rejudge(self.conn, spec_id=spec_id, since=since, pending=pending)

    @_translated
    def as_reported(self, trajectory_id: int) -> tuple:
        return judgments.as_reported(self.conn, trajectory_id)

    @_translated
    def replace_judgments(self, turns: list, at_end: list, judge: str) -> None:
        judgments.replace_judgments(self.conn, turns, at_end, judge)

    @_translated
    def placement(self, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None:
        return lookups.placement(self.conn, trace_id, span_id)

    # --- spans waiting for their parent (ingest; see staging.py) --------------------------

    #: One SQLite ingest process holds what waits: no replicas share this store's pending spans.
    shares_pending = False

    @_translated
    def waiting_parents(self) -> list[tuple[str, str]]:
        return staging.waiting_parents(self.conn)

    @_translated
    def staged_children(self, parent: tuple[str, str]) -> list[Any]:
        return staging.load_children(self.conn, parent)

    @_translated
    def purge_pending(self, retention_s: float) -> int:
        return staging.purge(self.conn, retention_s)

    # --- scoring and consensus ------------------------------------------------------------

    @_translated
    def score_counts(self, **filters: Any) -> list[tuple]:
        return score_counts(self.conn, **filters)

    @_translated
    def paper_turn_rows(self, **filters: Any) -> list[tuple]:
        return paper_turn_rows(self.conn, **filters)

    @_translated
    def violations_by_preference(self, **filters: Any) -> list[tuple]:
        return violations_by_preference(self.conn, **filters)

    @_translated
    def store_consensus(self, result: Any) -> int:
        return consensus_sql.store_consensus(self.conn, result)

    @_translated
    def record_consensus_span(self, consensus_id: int, trace_id: str, span_id: str) -> None:
        consensus_sql.record_consensus_span(self.conn, consensus_id, trace_id, span_id)

    @_translated
    def consensus_history_rows(self, spec_id: str, limit: int | None, *, stage: str | None = None,
                               run_id: str | None = None) -> list[tuple]:
        return consensus_sql.history_rows(self.conn, spec_id, limit, stage=stage, run_id=run_id)

    # --- retention ----------------------------------------------------------------------

    def cleanup(self, **options: Any) -> Any:
        """:func:`ppp_otel.storage.sqlite.retention.cleanup` on this store's file (its own connection)."""
        from ppp_otel.storage.sqlite.retention import cleanup

        return cleanup(self.path, **options)


def _connection_path(conn: sqlite3.Connection) -> str:
    try:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return file or ":memory:"
    except sqlite3.Error:
        pass
    return "database"


__all__ = ["SQLiteStore", "StorageError"]
