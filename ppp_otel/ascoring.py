"""The awaited rewards under their earlier name: now :mod:`ppp_otel.scoring.arewards`."""

from ppp_otel.scoring.arewards import *  # noqa: F401,F403
