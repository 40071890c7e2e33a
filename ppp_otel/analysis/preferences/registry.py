"""The preference registry: specs and their parsing, registering and looking up
detectors, and running the detectors of a turn's preferences.

The built-in detectors register themselves here on import
(:mod:`ppp_otel.analysis.preferences.builtin`); the package's ``__init__``
describes specs, detectors and severities.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from ppp_otel.forksafe import renew_locks_in_child
from ppp_otel.logs import LogLimiter
from ppp_otel.model import TurnText, Violation, check_severity

logger = logging.getLogger(__name__)
Detector = Callable[..., "tuple[str, str] | None"]

#: Failures per preference name of detectors that raised or returned something
#: other than ``None`` or an ``(expected, actual)`` pair.
detector_errors: Counter[str] = Counter()

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SPEC = re.compile(r"\s*([^\s(]+)\s*(?:\((.*)\))?\s*\Z", re.DOTALL)
_PARAM_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Preference:
    """One interaction preference a user can have, and how to detect a breach."""

    name: str
    description: str
    check: Detector
    severity: str = "major"
    params: Mapping[str, object] = field(default_factory=dict)
    # Checked once, when the trajectory ends, on its last turn and all before it.
    at_end: bool = False


_registry: dict[str, Preference] = {}
_lock = threading.Lock()
# The judgment thread may hold it when another thread forks.
renew_locks_in_child(sys.modules[__name__])
_reported_failures = LogLimiter.once(logger)


#: Preferences of the paper that need judgment rather than rules, with why; the
#: LLM preference judge (:mod:`ppp_otel.analysis.preference_judge`) checks them.
JUDGMENT_PREFERENCES: Mapping[str, str] = MappingProxyType({
    "detailed_questions": (
        "whether a question gives enough context is a judgment of its content, not its length"
    ),
    "simple_questions": (
        "whether a question needs expertise or only common sense is a judgment about the user"
    ),
    "ask_only_on_blockers": (
        "whether the agent tried first and the question targets a real blocker "
        "depends on the state of the task"
    ),
    "question_with_joke": "whether a question carries a clearly humorous joke needs judgment",
})


# --- registry ---------------------------------------------------------------------


def register_preference(
    name: str,
    description: str,
    *,
    severity: str = "major",
    params: Mapping[str, object] | None = None,
    replace: bool = False,
    at_end: bool = False,
) -> Callable[[Detector], Detector]:
    """Register a detector under ``name``; use as a decorator on the check function.

    ``params`` maps each parameter the detector takes to its default; the
    default's type (bool, int, float or str) is how a spec's value is read.
    Registering a name that is already taken raises ValueError unless
    ``replace`` is true. A name from :data:`JUDGMENT_PREFERENCES` may be
    registered: the detector then runs for it like for any other. With
    ``at_end`` the detector runs once, when the trajectory ends, on its last
    turn and the turns before it (a preference about the whole conversation).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"preference name must be lowercase snake_case; got {name!r}")
    check_severity(severity)
    defaults = dict(params or {})
    for key, default in defaults.items():
        if not isinstance(key, str) or not _PARAM_NAME.match(key):
            raise ValueError(f"preference {name}: parameter name {key!r} is not an identifier")
        if type(default) not in _PARAM_TYPES:
            raise ValueError(
                f"preference {name}: default of parameter {key!r} must be "
                f"bool, int, float or str; got {type(default).__name__}"
            )

    def decorate(check: Detector) -> Detector:
        preference = Preference(name, description, check, severity, MappingProxyType(defaults), at_end)
        with _lock:
            if name in _registry and not replace:
                raise ValueError(
                    f"preference {name!r} is already registered; pass replace=True to replace it"
                )
            _registry[name] = preference
            _reported_failures.forget(name)
        _parse.cache_clear()
        return check

    return decorate


def unregister_preference(name: str) -> None:
    """Remove a registered detector; its name becomes unknown (or judgment-only again)."""
    with _lock:
        if _registry.pop(name, None) is None:
            raise KeyError(f"no preference named {name!r} is registered")
    _parse.cache_clear()


def get_preference(name: str) -> Preference:
    """The registered preference called ``name``."""
    try:
        return _registry[name]
    except KeyError:
        if name in JUDGMENT_PREFERENCES:
            raise KeyError(
                f"{name!r} needs judgment and has no detector; report it with turn.violation()"
            ) from None
        raise KeyError(f"unknown preference {name!r}") from None


def list_preferences() -> list[Preference]:
    """Every registered preference, in the order they were registered."""
    return list(_registry.values())


# --- specs ------------------------------------------------------------------------


def parse_preference(spec: str) -> tuple[str, dict[str, object]]:
    """Read a spec such as ``"max_words(limit=150)"`` into its name and parameters.

    The parameters come back complete: the spec's values over the defaults.
    Raises ValueError, naming the spec, for a malformed spec, an unknown name,
    an unknown or repeated parameter, or a value of the wrong type.
    """
    name, params = _parse(_as_spec(spec))
    return name, dict(params)


def _as_spec(spec: object) -> str:
    if not isinstance(spec, str):
        raise ValueError(f"preference spec must be a string; got {spec!r}")
    return spec


@functools.lru_cache(maxsize=256)
def _parse(spec: str) -> tuple[str, tuple[tuple[str, object], ...]]:
    # Cached because the same few specs are parsed for every turn of a
    # trajectory; registering or removing a preference clears the cache.
    match = _SPEC.match(spec)
    if match is None or not _NAME.match(match.group(1)):
        raise ValueError(
            f"preference spec {spec!r} is malformed; "
            "expected a snake_case name, optionally followed by (key=value, ...)"
        )
    name, arguments = match.group(1), match.group(2)
    preference = _registry.get(name)
    if preference is None and name not in JUDGMENT_PREFERENCES:
        known = ", ".join(sorted({*_registry, *JUDGMENT_PREFERENCES}))
        raise ValueError(f"preference spec {spec!r}: unknown preference {name!r}; known: {known}")
    defaults = preference.params if preference is not None else {}
    values = dict(defaults)
    given: set[str] = set()
    for argument in _split_arguments(arguments):
        key, equals, raw = argument.partition("=")
        key, raw = key.strip(), raw.strip()
        if not equals or not key:
            raise ValueError(
                f"preference spec {spec!r}: parameter {argument.strip()!r} must be written key=value"
            )
        if key not in defaults:
            takes = ", ".join(defaults) if defaults else "no parameters"
            raise ValueError(
                f"preference spec {spec!r}: unknown parameter {key!r} for {name}; it takes {takes}"
            )
        if key in given:
            raise ValueError(f"preference spec {spec!r}: parameter {key!r} is given twice")
        given.add(key)
        values[key] = _read_value(spec, key, raw, defaults[key])
    return name, tuple(values.items())


def _split_arguments(arguments: str | None) -> list[str]:
    if arguments is None or not arguments.strip():
        return []
    return arguments.split(",")


def _read_value(spec: str, key: str, raw: str, default: object) -> object:
    kind = type(default)
    if kind is bool:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(
            f"preference spec {spec!r}: parameter {key!r} takes true or false; got {raw!r}"
        )
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(
                f"preference spec {spec!r}: parameter {key!r} takes an integer; got {raw!r}"
            ) from None
        if value < 0:
            raise ValueError(
                f"preference spec {spec!r}: parameter {key!r} is a count "
                f"and cannot be negative; got {value}"
            )
        return value
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(
                f"preference spec {spec!r}: parameter {key!r} takes a number; got {raw!r}"
            ) from None
    if not raw:
        raise ValueError(f"preference spec {spec!r}: parameter {key!r} is empty")
    return raw


# --- detection --------------------------------------------------------------------


def detect_violations(
    preferences: Sequence[str], turn: TurnText, history: Sequence[TurnText] = ()
) -> list[Violation]:
    """Run the detectors of ``preferences`` on ``turn``, given the earlier turns in order.

    Every spec is validated before any detector runs (ValueError on the first
    bad one). Judgment-only preferences are skipped. A detector that fails is
    logged, counted in :data:`detector_errors` and skipped.
    """
    return _detect(preferences, turn, history, at_end=False)


def detect_at_end(preferences: Sequence[str], turns: Sequence[TurnText]) -> list[Violation]:
    """Run the detectors that judge a whole conversation (``at_end``) on its turns, in order."""
    if not turns:
        return []
    return _detect(preferences, turns[-1], turns[:-1], at_end=True)


def _detect(preferences, turn, history, *, at_end: bool) -> list[Violation]:
    selected = [_parse(_as_spec(spec)) for spec in preferences]
    violations = []
    for name, params in dict.fromkeys(selected):  # the same spec twice is one preference
        preference = _registry.get(name)
        if preference is None or preference.at_end != at_end:
            continue
        try:
            found = preference.check(turn, history, **dict(params))
            if found is None:
                continue
            expected, actual = found
            if not isinstance(expected, str) or not isinstance(actual, str):
                raise TypeError("expected and actual must be strings")
        except Exception:
            _count_failure(name)
            continue
        violations.append(Violation(name, expected, actual, preference.severity, source="detected"))
    return violations


def _count_failure(name: str) -> None:
    with _lock:
        detector_errors[name] += 1
    # A broken detector fails on every turn; one traceback says it, the count keeps the rest.
    if not _reported_failures("preference detector %r failed; skipping it", name, key=name, exc_info=True):
        logger.debug("preference detector %r failed again", name, exc_info=True)
