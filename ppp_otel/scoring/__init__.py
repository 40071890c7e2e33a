"""Rewards (R_Proact, R_Pers) per trajectory and agent, and the weighted consensus between agents.

The rewards API is importable from here (``ppp_otel.scoring.score_spec`` ...);
:mod:`ppp_otel.scoring.arewards` is the same on aiosqlite and
:mod:`ppp_otel.scoring.consensus` picks the best agent.
"""

from ppp_otel.scoring.rewards import (
    AgentRewards,
    TrajectoryScore,
    agent_rewards,
    personalization_reward,
    proactivity_reward,
    score_agents,
    score_spec,
    score_trajectories,
    score_trajectory,
)

__all__ = [
    "AgentRewards",
    "TrajectoryScore",
    "agent_rewards",
    "personalization_reward",
    "proactivity_reward",
    "score_agents",
    "score_spec",
    "score_trajectories",
    "score_trajectory",
]
