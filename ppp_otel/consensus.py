"""Weighted consensus under its earlier name: now :mod:`ppp_otel.scoring.consensus`."""

from ppp_otel.scoring.consensus import *  # noqa: F401,F403
