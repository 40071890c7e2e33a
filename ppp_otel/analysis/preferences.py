"""Interaction preferences and the detectors that find a turn going against them.

A trajectory names its user's preferences in the span attribute
``ppp.preferences``, a list of *preference specs*. A spec is a preference name,
optionally followed by parameters in parentheses::

    no_questions
    max_questions_per_turn(limit=2)
    short_questions(max_words=10)
    max_words(limit=150)

Names are lowercase ``snake_case``. Parameters are ``key=value`` pairs separated
by commas; a value is read as the type of the parameter's default (an integer,
a number, ``true``/``false`` or bare text), and a parameter left out keeps its
default. Integer parameters are counts and limits, so they may not be negative.

The built-in preferences are the twenty of the PPP paper's user simulator
(UserVille, Sun et al. 2025, arXiv 2511.02208, Section 4.2), plus two plain
limits (``max_words`` and ``max_questions``). Sixteen of the paper's
preferences can be checked from the text and the turn history and have a
detector here (``min_questions`` when the trajectory ends, by counting its
asking turns; ``expert_questions`` is never violated, as the paper gives it no
penalty); the other four need judgment (is a question detailed enough, simple
enough, a real blocker, funny) and are listed in :data:`JUDGMENT_PREFERENCES`.
The LLM preference judge (:mod:`ppp_otel.analysis.preference_judge`) checks those, by
the paper's own criteria; without it, report their violations by hand with
``turn.violation(...)``, or register a detector of your own under that name.

The paper's preferences are about how the agent *asks*: its user simulator only
ever sees the agent's questions. So every detector here looks only at turns
that ask at least one question, and format detectors (commas, JSON, capitals,
sentences, length) read the whole response of such a turn, since that is the
message the user reads.

Severities follow the size of the penalty the paper's reward gives each
preference: a penalty of 1 (asking at all when the user wants no questions,
asking after the first turn, spreading questions over turns) is ``critical``,
0.5 (one question per turn, multiple choice, language and format rules) is
``major``, and 0.1 (very short questions) is ``minor``. The two limits that are
not in the paper are ``major``, like the paper's other format rules.

Language identification is lingua's (the ``languages`` extra), a model made
for short and mixed-language text, over twenty languages; a question too short
for it to tell (one word, "Ok?") is given the benefit of the doubt, and a
mixed message is told phrase by phrase. Sentence boundaries are pysbd's
(abbreviations, "e.g.", version numbers), with a wrapped line joined first.

A detector is a function ``check(turn, history, **params)`` that returns
``None`` when the turn follows the preference, or a pair ``(expected, actual)``
of short human-readable texts: what the preference asks ("at most 1 question
per turn") and what the turn did ("3 questions"). Register one with::

    @register_preference("no_emoji", "Questions without emoji", severity="minor")
    def no_emoji(turn, history):
        ...

A detector that raises is logged, counted in :data:`detector_errors` and
skipped; the other detectors of the turn still run.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

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


# --- text helpers -----------------------------------------------------------------

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")


def _prose(text: str) -> str:
    """The text without code and links, which follow no natural language."""
    text = _FENCE.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    return _URL.sub(" ", text)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _quote(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


# Language identification is lingua's (lingua-language-detector), made for short
# and mixed-language text: a statistical model per language, no stopword lists.
# The detector is built once, on first use (off the app thread: detection runs
# in the judgment stage), for the languages below; its models load lazily.
_LANGUAGES = (
    "ENGLISH", "ITALIAN", "SPANISH", "FRENCH", "GERMAN", "PORTUGUESE", "DUTCH", "RUSSIAN",
    "JAPANESE", "CHINESE", "KOREAN", "ARABIC", "GREEK", "HEBREW", "HINDI", "THAI", "POLISH",
    "SWEDISH", "TURKISH", "CATALAN",
)
# A language is told when it leads the next one by this much confidence; a
# question too short to tell (one word) is given the benefit of the doubt.
_MARGIN = 0.1
_detector_lock = threading.Lock()
_detector = None


def _language_detector():
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                try:
                    from lingua import Language, LanguageDetectorBuilder
                except ImportError:
                    raise RuntimeError(
                        "the language preferences (italian_only, multilingual, english_all_caps) need "
                        "lingua-language-detector: pip install 'ppp-otel[languages]'"
                    ) from None

                _detector = LanguageDetectorBuilder.from_languages(
                    *(getattr(Language, name) for name in _LANGUAGES)
                ).build()
    return _detector


@functools.lru_cache(maxsize=4096)
def _language_of(text: str) -> str | None:
    """The language ``text`` is written in (lowercase English name), or None when it cannot tell."""
    if not _LETTERS.search(text):
        return None
    # Capitals are a style here (english_all_caps), not a clue to the language.
    values = _language_detector().compute_language_confidence_values(text.lower())
    if not values:
        return None
    top = values[0]
    runner_up = values[1].value if len(values) > 1 else 0.0
    if top.value - runner_up < _MARGIN:
        return None
    return top.language.name.lower()


def _reads_as(text: str, language: str) -> bool:
    """Whether ``text`` reads as ``language``; text too short to tell passes."""
    found = _language_of(" ".join(_prose(text).split()))
    return found is None or found == language


# Where one language gives way to the next in a mixed message: sentence ends,
# inverted marks that open a Spanish question, line breaks.
_SEGMENT = re.compile(r"(?<=[.!?…。！？])\s+|(?=[¿¡])|\n+")


def _languages(text: str) -> set[str]:
    """The languages of a message, told phrase by phrase (each phrase of two words or more,
    or of a script with its own language)."""
    found = set()
    for segment in _SEGMENT.split(_prose(text)):
        segment = " ".join(segment.split())
        if len(_words(segment)) < 2 and not _NON_LATIN.search(segment):
            continue
        language = _language_of(segment)
        if language is not None:
            found.add(language)
    return found


_NON_LATIN = re.compile(r"[\u0370-\u03FF\u0400-\u04FF\u0590-\u06FF\u0900-\u097F\u0E00-\u0E7F"
                        r"\u3040-\u30FF\u4E00-\u9FFF\uAC00-\uD7AF]")


# --- the paper's preferences ------------------------------------------------------


@register_preference(
    "no_preference", "No specific interaction preference (never violated)", severity="minor"
)
def no_preference(turn: TurnText, history: Sequence[TurnText]):
    return None


@register_preference(
    "expert_questions",
    "The user can answer expert-level questions (never violated: the paper gives it no penalty)",
    severity="minor",
)
def expert_questions(turn: TurnText, history: Sequence[TurnText]):
    return None


@register_preference(
    "min_questions",
    "The user expects at least limit questions over the conversation (three by default), "
    "checked when the trajectory ends",
    severity="critical",
    params={"limit": 3},
    at_end=True,
)
def min_questions(turn: TurnText, history: Sequence[TurnText], limit: int):
    # The paper counts asks (asking turns), not sentences: answer_more is min(ask_turn - 3, 0).
    asks = sum(1 for t in [*history, turn] if t.questions)
    if asks >= limit:
        return None
    return f"at least {_plural(limit, 'asking turn')}", f"{_plural(asks, 'asking turn')}"


@register_preference(
    "short_questions",
    "Very short questions: each at most max_words words",
    severity="minor",
    params={"max_words": 15},
)
def short_questions(turn: TurnText, history: Sequence[TurnText], max_words: int):
    long = [q for q in turn.questions if len(_words(q)) > max_words]
    if not long:
        return None
    longest = max(long, key=lambda q: len(_words(q)))
    return (
        f"questions of at most {_plural(max_words, 'word')}",
        f"{_plural(len(long), 'longer question')}, the longest {len(_words(longest))} words",
    )


@register_preference(
    "questions_only_at_start",
    "The user answers questions only at the beginning: questions in the first turn only",
    severity="critical",
)
def questions_only_at_start(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions or not history:
        return None
    return (
        "questions only in the first turn",
        f"{_plural(len(turn.questions), 'question')} in turn {turn.number}",
    )


@register_preference("no_questions", "The user does not want to be asked anything", severity="critical")
def no_questions(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    return "no questions", _plural(len(turn.questions), "question")


# Options a selection question offers: lettered (A) / a. / (b)), numbered (1. / 2)),
# or a bulleted list; at least two of one kind.
_LETTERED = re.compile(r"(?:^|[\s(\[])\(?([A-Ha-h])[).:\]](?=\s)", re.MULTILINE)
_NUMBERED = re.compile(r"^[ \t]*\(?([1-9])[.)](?=\s)", re.MULTILINE)
_BULLETED = re.compile(r"^[ \t]*[-*•][ \t]+\S", re.MULTILINE)


def _option_spans(text: str) -> list[tuple[int, int]]:
    """Where the options of a selection question are, as (start, end) offsets; [] when none."""
    for pattern, first in ((_LETTERED, "a"), (_NUMBERED, "1")):
        found = list(pattern.finditer(text))
        labels = [m.group(1).lower() for m in found]
        if first in labels and len(set(labels)) >= 2:
            return [m.span() for m in found]
    bullets = list(_BULLETED.finditer(text))
    return [m.span() for m in bullets] if len(bullets) >= 2 else []


@register_preference(
    "multiple_choice",
    "The user answers only selection questions: the question provides options "
    "(lettered A, B, C, numbered, or listed)",
)
def multiple_choice(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    text = _prose(turn.response)
    spans = _option_spans(text)
    if not spans:
        return (
            "questions that provide options (A, B, C...)",
            f"{_plural(len(turn.questions), 'question')} without options",
        )
    # An open question besides the one the options answer does not comply: any
    # question after the options, or before the last one leading to them.
    first, last = spans[0][0], spans[-1][1]
    before = [q for q in turn.questions if 0 <= text.find(q.rstrip("?")[:40]) < first]
    after = [q for q in turn.questions if text.find(q.rstrip("?")[:40]) >= last]
    extra = before[:-1] + after
    if not extra:
        return None
    return "every question provides options", f"an open question besides the options: {_quote(extra[0])}"


@register_preference(
    "all_questions_in_one_turn",
    "All questions asked together in a single turn",
    severity="critical",
)
def all_questions_in_one_turn(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    earlier = [t.number for t in history if t.questions]
    if not earlier:
        return None
    return (
        "all questions in one turn",
        f"questions in turn {turn.number} after questions in turn {earlier[0]}",
    )


@register_preference(
    "max_questions_per_turn",
    "At most limit questions per turn (one question per turn by default)",
    params={"limit": 1},
)
def max_questions_per_turn(turn: TurnText, history: Sequence[TurnText], limit: int):
    if len(turn.questions) <= limit:
        return None
    return f"at most {_plural(limit, 'question')} per turn", _plural(len(turn.questions), "question")


@register_preference("italian_only", "Questions in Italian only")
def italian_only(turn: TurnText, history: Sequence[TurnText]):
    other = [q for q in turn.questions if not _reads_as(q, "italian")]
    if not other:
        return None
    return (
        "questions in Italian only",
        f"{_plural(len(other), 'question')} not in Italian, e.g. {_quote(other[0])}",
    )


@register_preference(
    "multilingual",
    "Each message asking questions mixes at least min_languages languages",
    params={"min_languages": 5},
)
def multilingual(turn: TurnText, history: Sequence[TurnText], min_languages: int):
    if not turn.questions:
        return None
    found = _languages(turn.response)
    if len(found) >= min_languages:
        return None
    seen = ", ".join(sorted(found)) if found else "none recognised"
    return (
        f"at least {min_languages} languages in the message",
        f"{_plural(len(found), 'language')} ({seen})",
    )


@register_preference("english_all_caps", "Questions in English only and in capital letters only")
def english_all_caps(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    problems = []
    lowercase = [w for w in _words(_prose(turn.response)) if any(c.islower() for c in w)]
    if lowercase:
        problems.append(f"{_plural(len(lowercase), 'word')} in lowercase, e.g. {lowercase[0]!r}")
    other = [q for q in turn.questions if not _reads_as(q, "english")]
    if other:
        problems.append(f"{_plural(len(other), 'question')} not in English, e.g. {_quote(other[0])}")
    if not problems:
        return None
    return "English only, in all caps", "; ".join(problems)


_COMMAS = re.compile(r"[,，、]")


@register_preference("no_commas", "No commas anywhere in a message that asks questions")
def no_commas(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    commas = len(_COMMAS.findall(turn.response))
    if not commas:
        return None
    return "no commas", _plural(commas, "comma")


_JSON_FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)


@register_preference(
    "json_only",
    "A message that asks questions is entirely valid JSON (an object or array, also in a "
    "json fence or as one quoted JSON string), no extra text",
)
def json_only(turn: TurnText, history: Sequence[TurnText]):
    # A question inside a JSON string is masked as a quotation, so a message that
    # only quotes its question still counts as asking here.
    if not turn.questions and "?" not in turn.response:
        return None
    text = turn.response.strip()
    fenced = _JSON_FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            value = json.loads(value)
    except ValueError as error:
        return "the whole message as valid JSON", f"not valid JSON ({error})"
    if not isinstance(value, (dict, list)):
        kind = {str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
        return "the whole message as valid JSON", f"a bare JSON {kind}, not an object or array"
    return None


_SNIPPET_LINES = 3  # the paper: "at least three lines of code or document snippets"
_FENCED_BLOCK = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_QUOTE_RUN = re.compile(r"(?:^[ \t]*>[^\n]*(?:\n|$))+", re.MULTILINE)


def _snippet_lines(text: str) -> int:
    """The most lines of any one code block or block quote in the text."""
    longest = 0
    for block in _FENCED_BLOCK.finditer(text):
        longest = max(longest, sum(1 for line in block.group(2).splitlines() if line.strip()))
    for run in _QUOTE_RUN.finditer(text):
        longest = max(longest, sum(1 for line in run.group(0).splitlines() if line.strip(" \t>")))
    return longest
_EXTENSIONS = (
    "py|pyi|ipynb|js|jsx|ts|tsx|mjs|java|kt|scala|go|rs|c|h|cc|cpp|hpp|cs|rb|php|swift|m|sh|bash"
    "|sql|html|css|scss|md|rst|txt|json|yaml|yml|toml|ini|cfg|conf|xml|csv|lock|gradle|proto"
)
_FILE_REFERENCE = re.compile(
    rf"(?<![\w/.-])(?:[\w.-]+/)+[\w.-]+\.[A-Za-z]\w*\b"  # a path with a directory
    # or a file with a known extension
    rf"|(?<![\w/.-])[\w-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})\b(?!\.\w)"
    r"|\b(?:Makefile|Dockerfile)\b"
)


@register_preference(
    "code_snippet_with_reference",
    "Each message asking questions quotes a code or documentation snippet of at least three "
    "lines and names its file or URL",
)
def code_snippet_with_reference(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    missing = []
    lines = _snippet_lines(turn.response)
    if lines == 0:
        missing.append("no code or documentation snippet")
    elif lines < _SNIPPET_LINES:
        missing.append(f"a snippet of {_plural(lines, 'line')}, not {_SNIPPET_LINES}")
    if not (_URL.search(turn.response) or _FILE_REFERENCE.search(turn.response)):
        missing.append("no file or URL reference")
    if not missing:
        return None
    return "a code or documentation snippet with its file or URL", "; ".join(missing)


# A line break inside a paragraph only wraps the text; a blank line, a list item
# or a heading starts a new sentence.
_WRAPPED_LINE = re.compile(r"(?<=\S)[ \t]*\n(?![ \t]*(?:\n|[-*+•>#|]|\d+[.)]\s))[ \t]*")
_segmenter_lock = threading.Lock()
_segmenter = None


def _sentences(text: str) -> list[str]:
    """The sentences of a message by pysbd's rules (abbreviations, "e.g.", numbers);
    code and links are left out, since their dots end no sentence."""
    global _segmenter
    if _segmenter is None:
        with _segmenter_lock:
            if _segmenter is None:
                import pysbd

                _segmenter = pysbd.Segmenter(language="en", clean=False)
    prose = _WRAPPED_LINE.sub(" ", _prose(text))
    sentences = []
    for paragraph in re.split(r"\n\s*\n|\n(?=[ \t]*(?:[-*+•>#|]|\d+[.)]\s))", prose):
        if _words(paragraph):
            sentences += [part for part in _segmenter.segment(paragraph) if _words(part)]
    return sentences


@register_preference(
    "exact_sentences",
    "Each message asking questions has exactly count sentences (three by default)",
    params={"count": 3},
)
def exact_sentences(turn: TurnText, history: Sequence[TurnText], count: int):
    if not turn.questions:
        return None
    found = len(_sentences(turn.response))
    if found == count:
        return None
    return f"exactly {_plural(count, 'sentence')}", _plural(found, "sentence")


# --- limits not in the paper --------------------------------------------------------


@register_preference(
    "max_words", "A message asking questions is at most limit words long", params={"limit": 150}
)
def max_words(turn: TurnText, history: Sequence[TurnText], limit: int):
    if not turn.questions:
        return None
    words = len(_words(turn.response))
    if words <= limit:
        return None
    return f"at most {_plural(limit, 'word')}", _plural(words, "word")


@register_preference(
    "max_questions", "At most limit questions over the whole conversation", params={"limit": 3}
)
def max_questions(turn: TurnText, history: Sequence[TurnText], limit: int):
    if not turn.questions:
        return None
    total = sum(len(t.questions) for t in history) + len(turn.questions)
    if total <= limit:
        return None
    return (
        f"at most {_plural(limit, 'question')} in the conversation",
        f"{_plural(total, 'question')} by turn {turn.number}",
    )


def _relock_in_child() -> None:
    # The judgment thread may hold one of these when another thread forks.
    global _lock, _detector_lock, _segmenter_lock
    _lock, _detector_lock, _segmenter_lock = threading.Lock(), threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_relock_in_child)
