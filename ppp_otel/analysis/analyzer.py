"""Judging a turn off the app thread: its questions, their effort, its violations.

The recorder's judgment stage (:mod:`ppp_otel.analysis.judgment_stage`) runs a
:class:`TurnAnalyzer` on each batch after the writer has stored it, so agent
code that never calls ``question()`` or ``violation()`` still gets both tables
filled, and a slow judge never delays a write.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Protocol, Sequence

from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.lru import LRUMap
from ppp_otel.model import Question, TurnText, Violation
from ppp_otel.analysis.preferences import (
    JUDGMENT_PREFERENCES,
    detect_violations,
    parse_preference,
    detect_at_end,
)
from ppp_otel.analysis.llm_classifier import HeuristicEffortClassifier
from ppp_otel.analysis.effort import RULES_VERSION, classify_effort
from ppp_otel.analysis.questions import extract_questions
from ppp_otel.records import TrajectoryKey, TrajectoryRecord, TurnRecord

logger = logging.getLogger(__name__)


_RULES = HeuristicEffortClassifier()

#: The rules' name in the judge columns.
RULES_JUDGE = f"rules/{RULES_VERSION}"


class EffortClassifier(Protocol):
    def classify_many(self, questions: Sequence[str], contexts: Sequence[str | None] | None = None) -> list[str]: ...


class PreferenceJudge(Protocol):
    """Judges one preference on one turn; see :mod:`ppp_otel.analysis.preference_judge`."""

    judge: str

    def handles(self, name: str) -> bool: ...

    def judge_turn(self, specs: Sequence[str], turn: TurnText, history: Sequence[TurnText],
                   user_context: str | None) -> list: ...


def judge_name(classifier) -> str:
    """How a classifier signs its judgments: its ``judge`` attribute, else its class name."""
    name = getattr(classifier, "judge", None)
    if isinstance(name, str) and name:
        return name
    return f"custom/{type(classifier).__name__}"


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
        lookup: Callable[[TrajectoryKey], tuple | None] | None = None,
        preference_judge: PreferenceJudge | None = None,
    ):
        self.classifier = classifier or _RULES
        self.lookup = lookup
        self.preference_judge = preference_judge
        # key -> (checkable preference specs, earlier turns, what the user knows)
        self._open: LRUMap[TrajectoryKey, tuple[tuple[str, ...], list[TurnText], str | None]] = (
            LRUMap(MAX_TRACKED_TRAJECTORIES))
        self.unknown_preferences = 0
        self.classifier_failures = 0
        self.preference_judge_failures = 0
        #: Violations of whole-conversation preferences found when a trajectory ended:
        #: (trajectory, its last turn's number, violation); the caller stores and clears them.
        self.at_end: list[tuple[TrajectoryKey, int, Violation]] = []

    @property
    def judge(self) -> str:
        return judge_name(self.classifier)

    def _state(self, key: TrajectoryKey) -> tuple[tuple[str, ...], list[TurnText], str | None]:
        state = self._open.get(key)
        if state is None:
            state = self.lookup(key) if self.lookup else None
            if state is None:
                return (), [], None  # not readable now: asked again for the next turn
            state = self._remember(key, state)
        return state

    def _remember(self, key, state) -> tuple[tuple[str, ...], list[TurnText], str | None]:
        preferences, history, *rest = state
        # What is kept is what is used, even when the map is full and forgets it at once.
        kept = (self._checkable(key, preferences), history, rest[0] if rest else None)
        self._open.put(key, kept)
        return kept

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
            judged = self.preference_judge is not None and self.preference_judge.handles(name)
            if name not in JUDGMENT_PREFERENCES or judged:
                usable.append(spec)
        return tuple(usable)

    def analyze(self, records: Sequence[TrajectoryRecord | TurnRecord]) -> None:
        """Complete the turn records in place, in the order given."""
        # The questions to grade, in order, and what the user knows for each.
        texts: list[str] = []
        contexts: list[str | None] = []
        # Each trajectory's state looked up once a batch: a batch is mostly one trajectory's turns.
        states: dict[TrajectoryKey, tuple] = {}
        trajectories: list[TrajectoryRecord] = []
        # The rules' classify_many grades each question alone, at once and without failing:
        # a question the rules judge is graded where it is found, as they would grade it later
        # (the rules as they are: not a subclass, nothing of theirs replaced on the instance).
        at_once = type(self.classifier) is HeuristicEffortClassifier and not vars(self.classifier)
        for record in records:
            if isinstance(record, TrajectoryRecord):
                trajectories.append(record)
                # Over OTLP a trajectory arrives already ended, in the batch of its
                # turns: remember it either way; the last loop forgets ended ones.
                if record.key not in self._open:
                    states[record.key] = self._remember(
                        record.key, (tuple(record.preferences), [], record.user_context))
                continue
            if record.extract_questions and record.response:
                found = extract_questions(record.response)
                if found:
                    if record.questions:
                        # Questions asked through a tool (ask_user, ...) are already there; add the text's.
                        asked = {q.text for q in record.questions}
                        found = [text for text in found if text not in asked]
                    record.questions = list(record.questions) + (
                        [Question(text, classify_effort(text), None, RULES_JUDGE) for text in found] if at_once
                        else [Question(text) for text in found])
            if record.questions:
                state = states.get(record.trajectory)
                if state is None:
                    state = states[record.trajectory] = self._state(record.trajectory)
                for question in record.questions:
                    if question.effort is None:
                        texts.append(question.text)
                        contexts.append(state[2])
        graded = iter(self._classify(texts, contexts) if texts else [])
        for record in records:
            if isinstance(record, TurnRecord):
                if texts and record.questions:
                    questions = []
                    for q in record.questions:
                        if not q.effort:
                            effort, judge = next(graded)
                            q = Question(q.text, effort, q.source, judge)
                            # The rules stood in for a judge that gave no answer.
                            record.judgment_incomplete |= judge != self.judge
                        questions.append(q)
                    record.questions = questions
                state = states.get(record.trajectory)
                if state is None:
                    state = states[record.trajectory] = self._state(record.trajectory)
                if state[0]:  # preferences to check
                    self._detect(record, state)
        for record in trajectories:
            if record.ended_at is not None:
                self._check_at_end(record.key)
                self._open.pop(record.key)

    def _check_at_end(self, key: TrajectoryKey) -> None:
        preferences, history, _ = self._state(key)
        if not preferences or not history:
            return
        for violation in detect_at_end(preferences, history):
            self.at_end.append((key, history[-1].number, replace(violation, judge=RULES_JUDGE)))

    def _classify(self, questions: list[str], contexts: list[str | None]) -> list[tuple[str, str]]:
        """(effort, judge) of each question: the classifier's, or the rules' when it fails or
        answers out of range. An LLM classifier that falls back for a question names the
        rules as that question's judge (``grade_many``)."""
        grade_many = getattr(self.classifier, "grade_many", None)
        try:
            with_context = any(contexts) and getattr(self.classifier, "reads_context", False)
            if grade_many is not None:
                graded = list(grade_many(questions, contexts if with_context else None))
            else:
                efforts = (self.classifier.classify_many(questions, contexts) if with_context
                           else self.classifier.classify_many(questions))
                graded = [(effort, self.judge) for effort in efforts]
            if len(graded) == len(questions) and all(effort in EFFORT_LEVELS for effort, _ in graded):
                return graded
            problem = f"{len(graded)} answers for {len(questions)} questions, or a level outside {EFFORT_LEVELS}"
        except Exception as exc:
            problem = repr(exc)
        self.classifier_failures += 1
        logger.warning("ppp-otel: effort classifier failed (%s); the rules graded the questions", problem)
        return [(effort, RULES_JUDGE) for effort in _RULES.classify_many(questions)]

    def _detect(self, record: TurnRecord, state: tuple) -> None:
        preferences, history, context = state
        if not preferences:
            return
        text = TurnText(
            number=record.turn_number or len(history) + 1,
            prompt=record.prompt or "",
            response=record.response or "",
            questions=tuple(q.text for q in record.questions),
        )
        judged_by_llm = []
        by_rules = list(preferences)
        if self.preference_judge is not None:
            judged_by_llm = [s for s in preferences if self.preference_judge.handles(parse_preference(s)[0])]
            by_rules = [s for s in preferences if s not in judged_by_llm]
        found = {v.preference for v in record.violations}  # the agent's own report wins
        added: list[Violation] = []
        for message in asking_messages(text, record.questions):
            detected = [replace(v, source="detected", judge=RULES_JUDGE)
                        for v in detect_violations(by_rules, message, history)]
            if judged_by_llm:
                try:
                    with_gaps = getattr(self.preference_judge, "judge_turn_with_gaps", None)
                    if with_gaps is not None:
                        judged, unjudged = with_gaps(judged_by_llm, message, history, context)
                        record.judgment_incomplete |= bool(unjudged)
                    else:
                        judged = self.preference_judge.judge_turn(judged_by_llm, message, history, context)
                    detected += judged
                except Exception as exc:  # a judge must not cost the turn its other judgments
                    record.judgment_incomplete = True
                    self.preference_judge_failures += 1
                    logger.warning("ppp-otel: preference judge failed (%r); its preferences were not judged", exc)
            new = [v for v in detected if v.preference not in found]
            found.update(v.preference for v in new)  # a preference broken in two messages is one violation
            added += new
        record.violations = list(record.violations) + added
        history.append(text)


def asking_messages(turn: TurnText, questions: Sequence[Question]) -> list[TurnText]:
    """The messages of a turn that put questions to the user, each as the detectors see a turn.

    A question asked through a tool (``ask_question``, ...) is a message of its own,
    the one the user reads and answers, as the paper's simulator judges it; the reply
    is one when it asks too, or when the turn asks nothing else. Each carries all the
    turn's questions, so that counts per turn stay the turn's.
    """
    apart = [q.text for q in questions if q.source == "explicit" and q.text not in turn.response]
    if not apart:
        return [turn]
    messages = [replace(turn, response=question) for question in apart]
    if len(apart) < len(questions):  # the reply asks the others
        messages.append(turn)
    return messages
