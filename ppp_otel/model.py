"""Domain values shared by the recorder, the detectors and scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

from ppp_otel.conventions import EFFORT_LEVELS, SEVERITIES


def check_effort(effort: str, *, name: str = "effort") -> str:
    if effort not in EFFORT_LEVELS:
        raise ValueError(f"{name} must be one of {', '.join(EFFORT_LEVELS)}; got {effort!r}")
    return effort


def check_severity(severity: str, *, name: str = "severity") -> str:
    if severity not in SEVERITIES:
        raise ValueError(f"{name} must be one of {', '.join(SEVERITIES)}; got {severity!r}")
    return severity


@dataclass(frozen=True)
class Question:
    """A question the agent put to the user, with the effort it asks of them."""

    text: str
    effort: str | None = None  # None: to be classified off the app thread
    # "explicit" or "extracted"; None: as the turn says (extracted unless the agent code gave questions)
    source: str | None = None
    # Which judge graded it: None when the agent code gave its effort, else
    # "rules/<version>" or "llm/<model>".
    judge: str | None = None


@dataclass(frozen=True)
class Violation:
    """A turn that went against one of the user's interaction preferences."""

    preference: str
    expected: str
    actual: str
    severity: str
    # "explicit" when agent code reported it, "detected" when a detector found it
    source: str = "explicit"
    judge: str | None = None  # of a detected one: "rules/<version>" or "llm/<model>"


@dataclass(frozen=True)
class TurnText:
    """What preference detectors see of a turn: its text and its questions."""

    number: int
    prompt: str
    response: str
    questions: tuple[str, ...] = field(default_factory=tuple)
