"""From model calls to turns: one call traced twice is one turn, and a step
that only calls tools is folded into the turn it leads to.

The recorder and ``ppp-otel ingest`` feed every candidate of a trajectory
through one :class:`TurnResolver`, in start order where they can (ingest) or
in end order (in process, where calls of one conversation do not overlap).

- Two candidates whose time spans nest, in one trajectory, that say the same
  thing (same reply, same tool calls, or one of them says nothing) are one
  model call traced by two instrumentations (a framework span around a client
  span, two instrumentors on one client): the first seen is kept.
- A candidate whose output is only tool calls waits; its tool calls (and the
  questions asked through them) go with the next turn of the trajectory, in
  its ``extra["tool_calls"]``, and its tokens and time count in the turn's
  (the turn is the whole exchange). When the trajectory ends with such steps
  waiting, the last of them becomes a turn only if it asked the user
  something, so no question is lost.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Hashable

from . import TurnCandidate

#: Trajectories whose recent calls are remembered; the least recently used is forgotten.
MAX_TRAJECTORIES = 10_000
#: Calls remembered per trajectory to recognise the second trace of one call.
RECENT_CALLS = 8


@dataclass(slots=True)
class Step:
    """One candidate model call and what the caller makes a turn of."""

    trajectory: Hashable
    start_ns: int | None
    end_ns: int | None
    candidate: TurnCandidate
    record: Any = None  # the caller's turn record; its tool calls and questions are filled in


@dataclass(frozen=True, slots=True)
class _Seen:
    """What is kept of a call already seen: enough to recognise a second trace of it,
    not its text (a trajectory's recent calls are kept for as long as it is open)."""

    start_ns: int | None
    end_ns: int | None
    empty: bool
    prompt: int | None  # hashes of the stripped texts
    response: int
    calls: int | None

    @classmethod
    def of(cls, step: "Step") -> "_Seen":
        c = step.candidate
        return cls(step.start_ns, step.end_ns, _empty(c), hash(c.prompt.strip()) if c.prompt else None,
                   hash((c.response or "").strip()), hash(tuple(_calls(c))) if c.tool_calls else None)


@dataclass(slots=True)
class _Trajectory:
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECENT_CALLS))
    waiting: list[Step] = field(default_factory=list)
    # The latest time any call remembered started or ended at: a call that starts
    # after it (and ends after it starts) nests in none of them; an agent's calls
    # mostly follow each other.
    horizon: int | None = None


@dataclass(slots=True)
class Resolved:
    """A step that is a turn, with the tool calls and tool questions it carries."""

    step: Step
    tool_calls: list[dict]
    questions: list[str]
    # The tool-call-only steps folded into it, in order: the exchange began with the first.
    folded: list[Step] = field(default_factory=list)


def _nested(a, b) -> bool:
    if None in (a.start_ns, a.end_ns, b.start_ns, b.end_ns):
        return False
    return (a.start_ns <= b.start_ns and b.end_ns <= a.end_ns) or (b.start_ns <= a.start_ns and a.end_ns <= b.end_ns)


def _empty(c: TurnCandidate) -> bool:
    return not (c.prompt or c.response or c.tool_calls)


def _calls(c: TurnCandidate) -> list[tuple[str, str]]:
    return [(call.name, "".join(call.arguments.split())) for call in c.tool_calls]


def same_call(a: Step, b: Step) -> bool:
    """Whether two candidates are one model call seen by two instrumentations."""
    if a.candidate.dialect == "ppp" or b.candidate.dialect == "ppp":
        return False  # turn() spans are turns because the agent code says so
    return _same(_Seen.of(a), _Seen.of(b))


def _same(x: _Seen, y: _Seen) -> bool:
    if not _nested(x, y):
        return False
    if x.empty or y.empty:
        return True
    if x.response != y.response:
        return False
    if x.prompt is not None and y.prompt is not None and x.prompt != y.prompt:
        return False
    return x.calls == y.calls if (x.calls is not None and y.calls is not None) else True


class TurnResolver:
    """Not thread-safe: the recorder's writer thread, or ingest under its lock, owns one."""

    def __init__(self, max_trajectories: int = MAX_TRAJECTORIES):
        self.max_trajectories = max_trajectories
        self._open: collections.OrderedDict[Hashable, _Trajectory] = collections.OrderedDict()
        self.duplicates = 0  # second traces of a call already seen
        self.folded = 0  # tool-call-only steps carried into a later turn
        self.unanswered = 0  # tool-call-only steps a trajectory ended on, with no question

    def _state(self, key: Hashable) -> _Trajectory:
        state = self._open.get(key)
        if state is None:
            state = self._open[key] = _Trajectory()
            while len(self._open) > self.max_trajectories:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(key)
        return state

    def add(self, step: Step) -> Resolved | None:
        """The turn this step is, or None (a second trace of a call, or a tool-call-only step)."""
        if step.candidate.dialect == "ppp":
            return Resolved(step, *self.declared(step.trajectory, step.candidate))
        state = self._state(step.trajectory)
        seen = _Seen.of(step)
        horizon = state.horizon
        start, end = seen.start_ns, seen.end_ns
        after = horizon is not None and start is not None and end is not None and horizon < start <= end
        if not after and any(_same(earlier, seen) for earlier in state.recent):
            self.duplicates += 1
            return None
        state.recent.append(seen)
        if start is not None and end is not None:
            latest = max(start, end)
            if horizon is None or latest > horizon:
                state.horizon = latest
        if step.candidate.tool_calls_only:
            state.waiting.append(step)
            return None
        return self._resolve(step, state)

    def declared(self, trajectory: Hashable, candidate: TurnCandidate) -> tuple[list[dict], list[str]]:
        """A turn() span's candidate (dialect ``ppp``): a turn, because the agent code says so.
        What :meth:`add` does with its step, without one: the tool calls and questions it carries."""
        return self._carried(self._state(trajectory), candidate)

    def _resolve(self, step: Step, state: _Trajectory) -> Resolved:
        folded = state.waiting  # _carried hands them on and empties the list
        return Resolved(step, *self._carried(state, step.candidate), folded)

    def _carried(self, state: _Trajectory, candidate: TurnCandidate) -> tuple[list[dict], list[str]]:
        """The tool calls and questions of the steps waiting in ``state`` and of ``candidate``,
        which they lead to."""
        waiting = state.waiting
        if not waiting:  # most turns: no tool-call-only step before them
            calls = candidate.tool_calls
            return [call.as_dict() for call in calls] if calls else [], list(candidate.questions)
        self.folded += len(waiting)
        state.waiting = []
        carried = [s.candidate for s in waiting] + [candidate]
        return [call.as_dict() for c in carried for call in c.tool_calls], [q for c in carried for q in c.questions]

    def close(self, trajectory: Hashable) -> Resolved | None:
        """The trajectory ended: what its waiting tool-call-only steps still have to say."""
        state = self._open.pop(trajectory, None)
        if state is None or not state.waiting:
            return None
        if not any(s.candidate.questions for s in state.waiting):
            self.unanswered += len(state.waiting)
            return None
        last = state.waiting.pop()
        return self._resolve(last, state)
