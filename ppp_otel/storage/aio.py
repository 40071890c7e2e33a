"""The async read API: :class:`AsyncTrajectoryStore`, on aiosqlite.

Same methods and results as :class:`ppp_otel.storage.sqlite.reader.TrajectoryStore`, running
the same SQL through the same mappers (imported from :mod:`ppp_otel.storage.sqlite.reader`).
Opening, and so creating and migrating, goes through the sync
:func:`ppp_otel.storage.sqlite.migrations.connect` in a thread: the migration code exists once and
its ``BEGIN IMMEDIATE`` discipline does not have to be re-proved over aiosqlite.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiosqlite

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.storage.sqlite.reader import (
    SQL_AGENTS,
    SQL_AGENTS_OF_SPEC,
    SQL_EXISTING_TABLES,
    SQL_GET_SUMMARY,
    SQL_JOURNAL_MODE,
    SQL_QUESTIONS,
    SQL_SCHEMA_VERSION,
    SQL_SPECS,
    SQL_TURNS,
    SQL_VIOLATIONS,
    TABLES,
    Trajectory,
    TrajectorySummary,
    count_sql,
    list_query,
    status_dict,
    summary_from_row,
    trajectory_from_rows,
)

__all__ = ["AsyncTrajectoryStore"]


def _prepare(path: str, must_exist: bool, migrate_schema: bool, read_only: bool) -> None:
    # Raises the same DatabaseError / SchemaTooNewError as the sync store.
    schema.connect(
        path, must_exist=must_exist, migrate_schema=migrate_schema, read_only=read_only
    ).close()


def _migrate(path: str) -> list[int]:
    conn = schema.connect(path, must_exist=True, migrate_schema=False)
    try:
        return schema.migrate(conn, path=path)
    finally:
        conn.close()


class AsyncTrajectoryStore:
    """Async read access to a trajectory database.

    Use ``async with AsyncTrajectoryStore(path) as store:`` or
    ``store = await AsyncTrajectoryStore(path).open()`` and ``await store.close()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        must_exist: bool = True,
        migrate_schema: bool = True,
        read_only: bool = False,
        busy_timeout_ms: int = schema.DEFAULT_BUSY_TIMEOUT_MS,
    ):
        self.path = os.fspath(path)
        self._must_exist = must_exist
        self._migrate_schema = migrate_schema
        self._read_only = read_only
        self._busy_timeout_ms = int(busy_timeout_ms)
        self.conn: aiosqlite.Connection | None = None

    async def open(self) -> AsyncTrajectoryStore:
        await asyncio.to_thread(
            _prepare, self.path, self._must_exist, self._migrate_schema, self._read_only
        )
        if self._read_only:
            conn = await aiosqlite.connect(
                f"file:{self.path}?mode=ro", uri=True, isolation_level=None
            )
        else:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            await conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        return self

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def __aenter__(self) -> AsyncTrajectoryStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _db(self) -> aiosqlite.Connection:
        if self.conn is None:
            raise RuntimeError("AsyncTrajectoryStore is not open; use 'async with' or await open()")
        return self.conn

    async def _all(self, sql: str, params: Any = ()) -> list[Any]:
        async with self._db().execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _one(self, sql: str, params: Any = ()) -> Any:
        async with self._db().execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def list_trajectories(
        self,
        *,
        spec_id: str | None = None,
        agent_name: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TrajectorySummary]:
        sql, params = list_query(
            spec_id=spec_id, agent_name=agent_name, run_id=run_id, stage=stage, limit=limit,
            offset=offset,
        )
        return [summary_from_row(row) for row in await self._all(sql, params)]

    async def get_trajectory(self, trajectory_id: int) -> Trajectory | None:
        # One read transaction, as in the sync store.
        await self._db().execute("BEGIN")
        try:
            summary = await self._one(SQL_GET_SUMMARY, (trajectory_id,))
            if summary is None:
                return None
            turns = await self._all(SQL_TURNS, (trajectory_id,))
            questions = await self._all(SQL_QUESTIONS, (trajectory_id,))
            violations = await self._all(SQL_VIOLATIONS, (trajectory_id,))
        finally:
            await self._db().execute("COMMIT")
        return trajectory_from_rows(summary, turns, questions, violations)

    async def status(self) -> dict[str, Any]:
        existing = {row[0] for row in await self._all(SQL_EXISTING_TABLES, TABLES)}
        counts = {}
        for table in TABLES:
            counts[table] = (await self._one(count_sql(table)))[0] if table in existing else None
        version = (await self._one(SQL_SCHEMA_VERSION))[0]
        mode = (await self._one(SQL_JOURNAL_MODE))[0]
        return status_dict(self.path, version, counts, mode)

    async def migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied (empty when up to date)."""
        # On its own sync connection: schema.migrate is the one migration code path.
        return await asyncio.to_thread(_migrate, self.path)

    async def specs(self) -> list[str]:
        return [row[0] for row in await self._all(SQL_SPECS)]

    async def agents(self, spec_id: str | None = None) -> list[str]:
        if spec_id is None:
            return [row[0] for row in await self._all(SQL_AGENTS)]
        return [row[0] for row in await self._all(SQL_AGENTS_OF_SPEC, (spec_id,))]
