"""Judging a turn off the app thread: its questions, their effort, its violations.

The recorder's writer thread runs a :class:`TurnAnalyzer` on each batch before
writing it, so agent code that never calls ``question()`` or ``violation()``
still gets both tables filled.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Protocol, Sequence

from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.model import Question, TurnText
from ppp_otel.analysis.preferences import JUDGMENT_PREFERENCES, detect_violations, parse_preference
from ppp_otel.analysis.llm_classifier import HeuristicEffortClassifier
from ppp_otel.analysis.questions import extract_questions
from ppp_otel.records import TrajectoryKey, TrajectoryRecord, TurnRecord

logger = logging.getLogger(__name__)


_RULES = HeuristicEffortClassifier()


class EffortClassifier(Protocol):
    def classify_many(self, questions: Sequence[str]) -> list[str]: ...


#: Open trajectories whose preferences and history are kept in memory.
MAX_TRACKED_TRAJECTORIES = 10_000


class TurnAnalyzer:
    """Fills in extracted questions, effort levels and detected violations.

    ``lookup`` answers (preferences, earlier turns) for a trajectory this
    analyzer has not seen start, e.g. after a restart or from another process,
    or None when it cannot tell yet.
    """

    def __init__(
        self,
        classifier: EffortClassifier | None = None,
        lookup: Callable[[TrajectoryKey], tuple[tuple[str, ...], list[TurnText]] | None] | None = None,
    ):
        self.classifier = classifier or _RULES
        self.lookup = lookup
        self._open: OrderedDict[TrajectoryKey, tuple[tuple[str, ...], list[TurnText]]] = OrderedDict()
        self.unknown_preferences = 0
        self.classifier_failures = 0

    def _state(self, key: TrajectoryKey) -> tuple[tuple[str, ...], list[TurnText]]:
        state = self._open.get(key)
        if state is None:
            state = self.lookup(key) if self.lookup else None
            if state is None:
                return (), []  # not readable now: asked again for the next turn
            self._remember(key, state)
        return state

    def _remember(self, key, state) -> None:
        preferences, history = state
        state = (self._checkable(key, preferences), history)
        self._open[key] = state
        self._open.move_to_end(key)
        while len(self._open) > MAX_TRACKED_TRAJECTORIES:
            self._open.popitem(last=False)

    def _checkable(self, key: TrajectoryKey, preferences: tuple[str, ...]) -> tuple[str, ...]:
        """The preferences a detector can check; the others are logged and counted once.

        A preference this installation does not know (a typo, a detector
        registered only in another process) must not cost the trajectory's turns.
        """
        usable = []
        for spec in preferences:
            try:
                name, _ = parse_preference(spec)
            except ValueError as exc:
                self.unknown_preferences += 1
                logger.warning("ppp-otel: trajectory %s/%s: preference ignored: %s", *key, exc)
                continue
            if name not in JUDGMENT_PREFERENCES:
                usable.append(spec)
        return tuple(usable)

    def analyze(self, records: Sequence[TrajectoryRecord | TurnRecord]) -> None:
        """Complete the turn records in place, in the order given."""
        pending: list[Question] = []
        for record in records:
            if isinstance(record, TrajectoryRecord):
                # Over OTLP a trajectory arrives already ended, in the batch of its
                # turns: remember it either way; the last loop forgets ended ones.
                if record.key not in self._open:
                    self._remember(record.key, (tuple(record.preferences), []))
                continue
            if record.extract_questions and record.response:
                record.questions = [Question(text) for text in extract_questions(record.response)]
            pending.extend(q for q in record.questions if q.effort is None)
        efforts = iter(self._classify([q.text for q in pending]) if pending else [])
        for record in records:
            if isinstance(record, TurnRecord):
                record.questions = [q if q.effort else replace(q, effort=next(efforts)) for q in record.questions]
                self._detect(record)
        for record in records:
            if isinstance(record, TrajectoryRecord) and record.ended_at is not None:
                self._open.pop(record.key, None)

    def _classify(self, questions: list[str]) -> list[str]:
        """The classifier's efforts, or the rules' when it fails or answers out of range."""
        try:
            efforts = list(self.classifier.classify_many(questions))
            if len(efforts) == len(questions) and all(e in EFFORT_LEVELS for e in efforts):
                return efforts
            problem = f"{len(efforts)} answers for {len(questions)} questions, or a level outside {EFFORT_LEVELS}"
        except Exception as exc:
            problem = repr(exc)
        self.classifier_failures += 1
        logger.warning("ppp-otel: effort classifier failed (%s); the rules graded the questions", problem)
        return _RULES.classify_many(questions)

    def _detect(self, record: TurnRecord) -> None:
        preferences, history = self._state(record.trajectory)
        if not preferences:
            return
        text = TurnText(
            number=record.turn_number or len(history) + 1,
            prompt=record.prompt or "",
            response=record.response or "",
            questions=tuple(q.text for q in record.questions),
        )
        detected = detect_violations(preferences, text, history)
        explicit = {v.preference for v in record.violations}
        record.violations = list(record.violations) + [
            replace(v, source="detected")
            for v in detected
            if v.preference not in explicit  # the agent's own report wins
        ]
        history.append(text)
