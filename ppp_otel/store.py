"""The sync read API under its earlier name: now :mod:`ppp_otel.storage` (``TrajectoryStore``)."""

from ppp_otel.storage.sqlite.reader import *  # noqa: F401,F403
from ppp_otel.storage.sqlite.reader import TrajectoryStore  # noqa: F401
