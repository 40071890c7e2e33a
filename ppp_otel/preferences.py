"""Preferences and their detectors under their earlier name: now :mod:`ppp_otel.analysis.preferences`."""

from ppp_otel.analysis.preferences import *  # noqa: F401,F403
