"""ppp-otel: agent conversations as OpenTelemetry spans, kept in SQLite, scored.

    import ppp_otel

    ppp_otel.register()                      # SQLite at ./ppp_trajectories.db
    with ppp_otel.trajectory("spec-1", "agent-a") as traj:
        with ppp_otel.turn("Fix the failing test") as t:
            t.respond("Which test runner do you use, pytest or unittest?")
"""

__version__ = "0.1.0"

from .instrument import Trajectory, Turn, trajectory, turn  # noqa: E402
from .processor import TrajectorySpanProcessor  # noqa: E402
from .questions import classify_effort, extract_questions  # noqa: E402
from .setup import register  # noqa: E402

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
