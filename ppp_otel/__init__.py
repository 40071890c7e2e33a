"""ppp-otel: agent conversations as OpenTelemetry spans, kept in SQLite, scored.

    import ppp_otel

    ppp_otel.register()                      # SQLite at ./ppp_trajectories.db
    with ppp_otel.trajectory("spec-1", "agent-a") as traj:
        with ppp_otel.turn("Fix the failing test") as t:
            t.respond("Which test runner do you use, pytest or unittest?")
"""

__version__ = "0.1.0"

# Where each public name lives. They load on first use, not on ``import
# ppp_otel``: the recorder pulls in the OpenTelemetry SDK and the analysis
# modules (about 0.2 s), which a command that only reads the database, or a
# program that imports one submodule, has no use for.
_PUBLIC = {
    "Trajectory": "ppp_otel.capture.api",
    "Turn": "ppp_otel.capture.api",
    "trajectory": "ppp_otel.capture.api",
    "turn": "ppp_otel.capture.api",
    "TrajectorySpanProcessor": "ppp_otel.capture.processor",
    "classify_effort": "ppp_otel.analysis.questions",
    "extract_questions": "ppp_otel.analysis.questions",
    "register": "ppp_otel.capture.register",
}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


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
