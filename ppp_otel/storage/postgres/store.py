"""PostgresStore: the PostgreSQL implementation of :class:`ppp_otel.storage.base.TrajectoryBackend`.

A facade over one autocommit psycopg connection, as :class:`~ppp_otel.storage.sqlite.store.SQLiteStore`
is over one sqlite3 connection: the statements live in the modules beside it
(reader, writer, scoring, consensus, staging, retention, migrations), the rows
that cross the seam are SQLite's, and psycopg's exceptions leave as storage errors.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import psycopg
from psycopg import errors as pg_errors

from ppp_otel.storage.base import (
    RECORDER_COLUMNS,
    DatabaseError,
    ReadOnlyError,
    StorageError,
    WriteFailed,
    WriteOutcome,
    can_be_row_id,
)
from ppp_otel.storage.facade import StoreFacade, translated
from ppp_otel.storage.postgres import migrations as schema
from ppp_otel.storage.postgres import consensus, judgments, scoring, staging
from ppp_otel.storage.postgres.reader import SQL_HISTORY_TURNS, TrajectoryStore
from ppp_otel.storage.postgres.writer import TrajectoryWriter, save_recorder_stats

__all__ = ["PostgresStore", "translate"]


def translate(exc: psycopg.Error, default: type[StorageError] = StorageError, *, url: str = "") -> StorageError:
    """The storage error for a psycopg error, by its class (SQLSTATE), never its text."""
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        kind: type[StorageError] = ReadOnlyError
    elif isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        kind = WriteFailed  # the server is down, restarting, or the connection broke: retry
    else:
        kind = default
    text = schema.describe(exc)
    error = kind(f"{schema.redact(url)}: {text}" if url else text)
    error.__cause__ = exc
    return error


class PostgresStore(StoreFacade, TrajectoryStore):
    """One PostgreSQL trajectory store, read and written through one connection.

    Options are SQLite's where they mean something here (``must_exist``,
    ``migrate_schema``, ``read_only``, ``connection_hook``: called with the new
    psycopg connection); SQLite's own (``wal``, ``busy_timeout_ms``,
    ``check_same_thread``...) are accepted and ignored, so callers pass the
    same arguments to either backend.
    """

    driver_error = psycopg.Error
    history_turns_sql = SQL_HISTORY_TURNS
    judgments_sql, staging_sql, scoring_sql, consensus_sql = judgments, staging, scoring, consensus
    #: Ingest replicas may share this store's pending spans (see :mod:`.staging`).
    shares_pending = True

    def translate_error(self, exc: psycopg.Error, default: type[StorageError] = StorageError) -> StorageError:
        return translate(exc, default, url=self.path)

    def __init__(self, url: str, *, must_exist: bool = True, migrate_schema: bool = True,
                 read_only: bool = False, connection_hook: Callable[[Any], None] | None = None,
                 **_sqlite_only: Any):
        super().__init__(url, must_exist=must_exist, migrate_schema=migrate_schema, read_only=read_only)
        self._owned = True
        self._writer: TrajectoryWriter | None = None
        if connection_hook is not None:
            try:
                connection_hook(self.conn)
            except Exception as exc:
                self.conn.close()
                raise DatabaseError(f"connection_hook failed: {exc!r}") from exc

    @classmethod
    def from_connection(cls, conn: Any, url: str = "postgresql") -> PostgresStore:
        """A store over a connection the caller opened (and closes: :meth:`close` leaves it open)."""
        store = cls.__new__(cls)
        store.conn, store.path, store._owned, store._writer = conn, url, False, None
        return store

    def close(self) -> None:
        if self._owned:
            try:
                self.conn.close()
            except psycopg.Error:
                pass  # a broken connection closes as it can

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            raise translate(exc, url=self.path) from exc

    # --- reading (the statements are reader.py's, SQLite's in psycopg's dialect) ---------

    list_trajectories = translated(TrajectoryStore.list_trajectories)
    list_trajectory_rows = translated(TrajectoryStore.list_trajectory_rows)
    list_trajectory_columns = translated(TrajectoryStore.list_trajectory_columns)
    get_trajectory = translated(TrajectoryStore.get_trajectory)
    status = translated(TrajectoryStore.status)
    migrate = translated(TrajectoryStore.migrate)
    specs = translated(TrajectoryStore.specs)
    agents = translated(TrajectoryStore.agents)

    @translated
    def missing_ids(self, trajectory_ids: Sequence[int]) -> list[int]:
        wanted = list(dict.fromkeys(int(i) for i in trajectory_ids))
        found = {row[0] for row in self.conn.execute(
            "SELECT id FROM trajectories WHERE id = ANY(%s)", ([i for i in wanted if can_be_row_id(i)],))}
        return [i for i in wanted if i not in found]

    # --- recording ------------------------------------------------------------------------

    def write(self, records: Sequence[Any]) -> WriteOutcome:
        """Write a batch in one transaction. A wrong record is in ``rejected``; a server
        that cannot take the batch now (down, a lost race) is :class:`WriteFailed`."""
        if self._writer is None:
            self._writer = TrajectoryWriter(self.conn)
        try:
            return self._writer.write(records)
        except psycopg.Error as exc:
            raise translate(exc, WriteFailed, url=self.path) from exc

    @translated
    def save_recorder_stats(self, row: Sequence[Any]) -> None:
        save_recorder_stats(self.conn, tuple(row))

    @translated
    def recorders(self) -> list[dict[str, Any]]:
        return TrajectoryStore.recorders(self, RECORDER_COLUMNS)

    def check_writable(self) -> None:
        """StorageError (naming the store and the reason) unless a write could start now."""
        try:
            if self.conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on":
                raise ReadOnlyError(f"{schema.redact(self.path)}: opened read-only")
            self.conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise translate(exc, url=self.path) from exc

    # --- lookups, judgments, staging, scoring, consensus: StoreFacade's, on the modules above

    @translated
    def placement(self, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None:
        return staging.placement(self.conn, trace_id, span_id)

    @translated
    def claim_pending(self, limit: int = 1000, lease_s: float = staging.DEFAULT_LEASE_S) -> list[Any]:
        """Lease the waiting spans (of any replica) whose parent is now stored."""
        return staging.claim_ready(self.conn, limit=limit, lease_s=lease_s)

    # --- retention ----------------------------------------------------------------------

    def cleanup(self, **options: Any) -> Any:
        """:func:`ppp_otel.storage.postgres.retention.cleanup` on this store (its own connection)."""
        from ppp_otel.storage.postgres.retention import cleanup

        try:
            return cleanup(self.path, **options)
        except psycopg.Error as exc:
            raise translate(exc, url=self.path) from exc
