"""The async read API under its earlier name: now :mod:`ppp_otel.storage.aio`."""

from ppp_otel.storage.aio import *  # noqa: F401,F403
from ppp_otel.storage.aio import AsyncTrajectoryStore  # noqa: F401
