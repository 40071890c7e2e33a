"""Turn numbers in start order: one counter per open trajectory.

``turn()`` and the TrajectorySpanProcessor draw from the same counter, so a
trajectory that mixes ``turn()`` calls with auto-instrumented LLM spans gets
one sequence, and a ``turn()`` span carries its number from its start (the
processor then has nothing to add to it on the app thread).
"""

from __future__ import annotations

import itertools
import sys
import threading

from ppp_otel.forksafe import renew_locks_in_child

# Keyed by the trajectory span's id; itertools.count's next() is atomic under the GIL.
_counters: dict[int, itertools.count] = {}
# The highest number handed out (they go 1, 2, 3, ...), so the recorder can
# tell them from ones the agent code chose: after a fork, parent and child hand
# out the same ones, and the writer renumbers the second (it would reject a
# clash of chosen numbers).
_highest: dict[int, int] = {}
_lock = threading.Lock()
renew_locks_in_child(sys.modules[__name__])


def open_trajectory(span_id: int) -> None:
    _counters.setdefault(span_id, itertools.count(1))


def next_turn_number(span_id: int) -> int | None:
    """The next number in the trajectory, or None when it is not open here."""
    counter = _counters.get(span_id)
    if counter is None:
        return None
    # Threads of one trajectory: keep the highest, not the last written. acquire/try/finally
    # rather than ``with``: the same lock, at half the cost, on the app thread for every turn.
    _lock.acquire()
    try:
        number = next(counter)
        _highest[span_id] = number
    finally:
        _lock.release()
    return number


def was_handed_out(span_id: int, number: object) -> bool:
    return isinstance(number, int) and 1 <= number <= _highest.get(span_id, 0)


def close_trajectory(span_id: int) -> None:
    _counters.pop(span_id, None)
    _highest.pop(span_id, None)
