"""Configuration: the TOML file, the environment and arguments, read and validated in one place."""

from ppp_otel.config.settings import *  # noqa: F401,F403
