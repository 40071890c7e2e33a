"""The rewards, awaited: the names and results of :mod:`ppp_otel.scoring.rewards`.

Each function is the sync one run on an :class:`~ppp_otel.storage.aio.AsyncTrajectoryStore`'s
thread, so the two cannot disagree. ``db`` is an open async store (used as
given) or a path (opened, and closed afterwards; it must exist).
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

from ppp_otel.scoring import rewards as sync
from ppp_otel.scoring.rewards import AgentRewards, TrajectoryScore
from ppp_otel.storage.aio import AsyncTrajectoryStore

__all__ = ["score_agents", "score_spec", "score_trajectories", "score_trajectory"]

AsyncDatabase = AsyncTrajectoryStore | str | os.PathLike
T = TypeVar("T")


async def _on_store(db: AsyncDatabase, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    if isinstance(db, AsyncTrajectoryStore):
        return await db.run(fn, *args, **kwargs)
    if not isinstance(db, (str, os.PathLike)):
        raise TypeError(f"db must be an open AsyncTrajectoryStore or a database path or URL, got {type(db).__name__}"
                        " (a sync store or connection goes to ppp_otel.scoring.rewards)")
    async with AsyncTrajectoryStore(db) as store:
        return await store.run(fn, *args, **kwargs)


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
    return await _on_store(db, sync.score_trajectories, spec_id=spec_id, agent_name=agent_name,
                           trajectory_id=trajectory_id, stage=stage, run_id=run_id, rewards=rewards)


async def score_trajectory(db: AsyncDatabase, trajectory_id: int, *, rewards: str = "spec") -> TrajectoryScore | None:
    return await _on_store(db, sync.score_trajectory, trajectory_id, rewards=rewards)


async def score_spec(
    db: AsyncDatabase, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> list[TrajectoryScore]:
    return await _on_store(db, sync.score_spec, spec_id, stage=stage, run_id=run_id, rewards=rewards)


async def score_agents(
    db: AsyncDatabase, spec_id: str, *, stage: str | None = None, run_id: str | None = None,
    rewards: str = "spec",
) -> dict[str, AgentRewards]:
    return await _on_store(db, sync.score_agents, spec_id, stage=stage, run_id=run_id, rewards=rewards)
