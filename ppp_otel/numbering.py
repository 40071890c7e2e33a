"""Turn numbers in start order: one counter per open trajectory.

``turn()`` and the TrajectorySpanProcessor draw from the same counter, so a
trajectory that mixes ``turn()`` calls with auto-instrumented LLM spans gets
one sequence, and a ``turn()`` span carries its number from its start (the
processor then has nothing to add to it on the app thread).
"""

from __future__ import annotations

import itertools

# Keyed by the trajectory span's id; itertools.count's next() is atomic under the GIL.
_counters: dict[int, itertools.count] = {}
# The numbers handed out, so the recorder can tell them from ones the agent
# code chose: after a fork, parent and child hand out the same ones, and the
# writer renumbers the second (it would reject a clash of chosen numbers).
_handed: dict[int, set[int]] = {}


def open_trajectory(span_id: int) -> None:
    _counters.setdefault(span_id, itertools.count(1))


def next_turn_number(span_id: int) -> int | None:
    """The next number in the trajectory, or None when it is not open here."""
    counter = _counters.get(span_id)
    if counter is None:
        return None
    number = next(counter)
    _handed.setdefault(span_id, set()).add(number)
    return number


def was_handed_out(span_id: int, number: object) -> bool:
    handed = _handed.get(span_id)
    return handed is not None and number in handed


def close_trajectory(span_id: int) -> None:
    _counters.pop(span_id, None)
    _handed.pop(span_id, None)
