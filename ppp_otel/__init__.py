"""ppp-otel: agent conversations as OpenTelemetry spans, kept in SQLite, scored.

    import ppp_otel

    ppp_otel.register()                      # SQLite at ./ppp_trajectories.db
    with ppp_otel.trajectory("spec-1", "agent-a") as traj:
        with ppp_otel.turn("Fix the failing test") as t:
            t.respond("Which test runner do you use, pytest or unittest?")
"""

__version__ = "0.1.0"

# Imported on first use, not with the package: the CLI's read-only commands
# (listing, scoring) need none of the OpenTelemetry SDK, whose import would
# be a tenth of a listing's time.
_LAZY = {
    "Trajectory": "instrument",
    "Turn": "instrument",
    "trajectory": "instrument",
    "turn": "instrument",
    "TrajectorySpanProcessor": "processor",
    "classify_effort": "questions",
    "extract_questions": "questions",
    "register": "setup",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Trajectory",
    "TrajectorySpanProcessor",
    "Turn",
    "__version__",
    "classify_effort",
    "extract_questions",
    "register",
    "trajectory",
    "turn",
]
