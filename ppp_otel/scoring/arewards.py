"""The rewards over aiosqlite: the names and results of :mod:`ppp_otel.scoring.rewards`.

The statements and the row mapper are imported from :mod:`ppp_otel.scoring.rewards`;
only the waiting differs. A path is opened through
:class:`ppp_otel.storage.aio.AsyncTrajectoryStore`, so opening and migrating are
the sync code's.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiosqlite

from ppp_otel.storage.aio import AsyncTrajectoryStore
from ppp_otel.storage.sqlite.scoring import score_query
from ppp_otel.scoring.rewards import (
    AgentRewards,
    TrajectoryScore,
    agent_rewards,
    score_from_row,

)

__all__ = ["score_agents", "score_spec", "score_trajectories", "score_trajectory"]

AsyncDatabase = aiosqlite.Connection | AsyncTrajectoryStore | str | os.PathLike


@asynccontextmanager
async def open_database(db: AsyncDatabase) -> AsyncIterator[aiosqlite.Connection]:
    """Use an open connection or store as given, or open (and afterwards close) a path."""
    if isinstance(db, aiosqlite.Connection):
        yield db
        return
    if isinstance(db, AsyncTrajectoryStore):
        yield db._db()
        return
    async with AsyncTrajectoryStore(db) as store:
        yield store._db()


async def score_trajectories(
    db: AsyncDatabase,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    trajectory_id: int | None = None,
) -> list[TrajectoryScore]:
    sql, params = score_query(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name)
    async with open_database(db) as conn:
        async with conn.execute(sql, params) as cursor:
            return [score_from_row(row) for row in await cursor.fetchall()]


async def score_trajectory(db: AsyncDatabase, trajectory_id: int) -> TrajectoryScore | None:
    found = await score_trajectories(db, trajectory_id=trajectory_id)
    return found[0] if found else None


async def score_spec(db: AsyncDatabase, spec_id: str) -> list[TrajectoryScore]:
    return await score_trajectories(db, spec_id=spec_id)


async def score_agents(db: AsyncDatabase, spec_id: str) -> dict[str, AgentRewards]:
    return agent_rewards(await score_spec(db, spec_id))
