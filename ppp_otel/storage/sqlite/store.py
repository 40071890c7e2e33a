"""SQLiteStore: the SQLite implementation of :class:`ppp_otel.storage.base.TrajectoryBackend`.

A facade over one connection. The statements live in the modules beside it
(reader, writer, scoring, consensus, recording, retention, migrations); this
class gives them the interface's names and turns sqlite3's exceptions into
storage errors (:mod:`ppp_otel.storage.sqlite.errors`).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ppp_otel.storage.base import DatabaseError, StorageError, WriteFailed, WriteOutcome
from ppp_otel.storage.facade import StoreFacade, translated
from ppp_otel.storage.sqlite import consensus, judgments, lookups, recorders as recorder_table, scoring, staging
from ppp_otel.storage.sqlite.errors import storage_errors, translate
from ppp_otel.storage.sqlite.reader import TrajectoryStore
from ppp_otel.storage.sqlite.transaction import transaction

if TYPE_CHECKING:
    from ppp_otel.storage.sqlite.writer import TrajectoryWriter


class SQLiteStore(StoreFacade, TrajectoryStore):
    """One SQLite trajectory database, read and written through one connection.

    Beyond :class:`TrajectoryStore`'s options, :func:`~ppp_otel.storage.sqlite.migrations.connect`'s
    (``wal``, ``busy_timeout_ms``, ``check_same_thread``: False for a store used
    from several threads under the caller's lock) and ``connection_hook``
    (called with the new connection: site pragmas).
    """

    driver_error = sqlite3.Error
    judgments_sql, staging_sql, scoring_sql, consensus_sql = judgments, staging, scoring, consensus
    #: One SQLite ingest process holds what waits: no replicas share this store's pending spans.
    shares_pending = False

    def translate_error(self, exc: sqlite3.Error, default: type[StorageError] = StorageError) -> StorageError:
        return translate(exc, default)

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

    list_trajectories = translated(TrajectoryStore.list_trajectories)
    get_trajectory = translated(TrajectoryStore.get_trajectory)
    missing_ids = translated(TrajectoryStore.missing_ids)
    status = translated(TrajectoryStore.status)

    migrate = translated(TrajectoryStore.migrate)
    specs = translated(TrajectoryStore.specs)
    agents = translated(TrajectoryStore.agents)

    # --- recording ------------------------------------------------------------------------

    def write(self, records: Sequence[Any]) -> WriteOutcome:
        """Write a batch in one transaction. A wrong record is in ``rejected``; a
        database that cannot take the batch now (locked, full) is :class:`WriteFailed`."""
        if self._writer is None:
            # Imported on the first write: a store that only reads needs no record types.
            from ppp_otel.storage.sqlite.writer import TrajectoryWriter

            self._writer = TrajectoryWriter(self.conn)
        with storage_errors(WriteFailed):
            return self._writer.write(records)

    @translated
    def save_recorder_stats(self, row: Sequence[Any]) -> None:
        recorder_table.save_recorder_stats(self.conn, row)

    @translated
    def recorders(self) -> list[dict[str, Any]]:
        return recorder_table.recorders(self.conn)

    def check_writable(self) -> None:
        """StorageError (naming the file and the reason) unless a write could start now."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise type(translate(exc))(f"{self.path}: {exc}") from exc

    # --- lookups, judgments, staging, scoring, consensus: StoreFacade's, on the modules above

    @translated
    def placement(self, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None:
        return lookups.placement(self.conn, trace_id, span_id)

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
