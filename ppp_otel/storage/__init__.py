"""The trajectory store: everything that reads or writes trajectories goes through here.

    from ppp_otel.storage import TrajectoryStore, AsyncTrajectoryStore
"""

from ppp_otel.storage.aio import AsyncTrajectoryStore
from ppp_otel.storage.sqlite.reader import TrajectoryStore

__all__ = ["AsyncTrajectoryStore", "TrajectoryStore"]
