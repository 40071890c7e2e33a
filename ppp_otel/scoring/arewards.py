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
from ppp_otel.scoring.paper import check_profile, rewards_from_rows, turns_query
from ppp_otel.scoring.rewards import (
    AgentRewards,
    TrajectoryScore,
    agent_rewards,
    score_filter,
    score_from_row,
    score_sql,
    with_profile,
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
    stage: str | None = None,
    run_id: str | None = None,
    rewards: str = "spec",
) -> list[TrajectoryScore]:
    check_profile(rewards)
    where, params = score_filter(trajectory_id=trajectory_id, spec_id=spec_id, agent_name=agent_name,
                                 stage=stage, run_id=run_id)
    paper = None
    async with open_database(db) as conn:
        async with conn.execute(score_sql(where), params) as cursor:
            scores = [score_from_row(row) for row in await cursor.fetchall()]
        if rewards == "paper":
            async with conn.execute(turns_query(where), params) as cursor:
                paper = rewards_from_rows(await cursor.fetchall())
    return with_profile(scores, rewards, paper)


async def score_trajectory(db: AsyncDatabase, trajectory_id: int, *, rewards: str = "spec") -> TrajectoryScore | None:
    found = await score_trajectories(db, trajectory_id=trajectory_id, rewards=rewards)
    return found[0] if found else None


async def score_spec(
    db: AsyncDatabase, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> list[TrajectoryScore]:
    return await score_trajectories(db, spec_id=spec_id, stage=stage, run_id=run_id, rewards=rewards)


async def score_agents(
    db: AsyncDatabase, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> dict[str, AgentRewards]:
    return agent_rewards(await score_spec(db, spec_id, stage=stage, run_id=run_id, rewards=rewards))
