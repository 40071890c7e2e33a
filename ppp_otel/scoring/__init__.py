"""Rewards (R_Proact, R_Pers) per trajectory and agent, and the weighted consensus between agents.

The rewards API is importable from here (``ppp_otel.scoring.score_spec`` ...);
:mod:`ppp_otel.scoring.arewards` is the same awaited and
:mod:`ppp_otel.scoring.consensus` picks the best agent.
"""

from ppp_otel.scoring.rewards import *  # noqa: F401,F403  (its __all__ is the package's)
from ppp_otel.scoring.rewards import __all__  # noqa: F401
