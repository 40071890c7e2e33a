"""The built-in preferences: the PPP paper's, and two plain limits, registered on import.

The paper's preferences are about how the agent *asks*: its user simulator only
ever sees the agent's questions. So every detector here looks only at turns
that ask at least one question, and format detectors (commas, JSON, capitals,
sentences, length) read the whole response of such a turn, since that is the
message the user reads. Severities follow the size of the paper's penalty
(see the package's docstring).
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from ppp_otel.analysis.preferences.registry import register_preference
from ppp_otel.analysis.preferences.text import (
    URL,
    languages_of,
    plural,
    prose,
    quote,
    reads_as,
    sentences_of,
    words_of,
)
from ppp_otel.model import TurnText


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
    return f"at least {plural(limit, 'asking turn')}", f"{plural(asks, 'asking turn')}"


@register_preference(
    "short_questions",
    "Very short questions: each at most max_words words",
    severity="minor",
    params={"max_words": 15},
)
def short_questions(turn: TurnText, history: Sequence[TurnText], max_words: int):
    long = [q for q in turn.questions if len(words_of(q)) > max_words]
    if not long:
        return None
    longest = max(long, key=lambda q: len(words_of(q)))
    return (
        f"questions of at most {plural(max_words, 'word')}",
        f"{plural(len(long), 'longer question')}, the longest {len(words_of(longest))} words",
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
        f"{plural(len(turn.questions), 'question')} in turn {turn.number}",
    )


@register_preference("no_questions", "The user does not want to be asked anything", severity="critical")
def no_questions(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    return "no questions", plural(len(turn.questions), "question")


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
    text = prose(turn.response)
    spans = _option_spans(text)
    if not spans:
        return (
            "questions that provide options (A, B, C...)",
            f"{plural(len(turn.questions), 'question')} without options",
        )
    # An open question besides the one the options answer does not comply: any
    # question after the options, or before the last one leading to them.
    first, last = spans[0][0], spans[-1][1]
    before = [q for q in turn.questions if 0 <= text.find(q.rstrip("?")[:40]) < first]
    after = [q for q in turn.questions if text.find(q.rstrip("?")[:40]) >= last]
    extra = before[:-1] + after
    if not extra:
        return None
    return "every question provides options", f"an open question besides the options: {quote(extra[0])}"


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
    return f"at most {plural(limit, 'question')} per turn", plural(len(turn.questions), "question")


@register_preference("italian_only", "Questions in Italian only")
def italian_only(turn: TurnText, history: Sequence[TurnText]):
    other = [q for q in turn.questions if not reads_as(q, "italian")]
    if not other:
        return None
    return (
        "questions in Italian only",
        f"{plural(len(other), 'question')} not in Italian, e.g. {quote(other[0])}",
    )


@register_preference(
    "multilingual",
    "Each message asking questions mixes at least min_languages languages",
    params={"min_languages": 5},
)
def multilingual(turn: TurnText, history: Sequence[TurnText], min_languages: int):
    if not turn.questions:
        return None
    found = languages_of(turn.response)
    if len(found) >= min_languages:
        return None
    seen = ", ".join(sorted(found)) if found else "none recognised"
    return (
        f"at least {min_languages} languages in the message",
        f"{plural(len(found), 'language')} ({seen})",
    )


@register_preference("english_all_caps", "Questions in English only and in capital letters only")
def english_all_caps(turn: TurnText, history: Sequence[TurnText]):
    if not turn.questions:
        return None
    problems = []
    lowercase = [w for w in words_of(prose(turn.response)) if any(c.islower() for c in w)]
    if lowercase:
        problems.append(f"{plural(len(lowercase), 'word')} in lowercase, e.g. {lowercase[0]!r}")
    other = [q for q in turn.questions if not reads_as(q, "english")]
    if other:
        problems.append(f"{plural(len(other), 'question')} not in English, e.g. {quote(other[0])}")
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
    return "no commas", plural(commas, "comma")


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
        missing.append(f"a snippet of {plural(lines, 'line')}, not {_SNIPPET_LINES}")
    if not (URL.search(turn.response) or _FILE_REFERENCE.search(turn.response)):
        missing.append("no file or URL reference")
    if not missing:
        return None
    return "a code or documentation snippet with its file or URL", "; ".join(missing)


@register_preference(
    "exact_sentences",
    "Each message asking questions has exactly count sentences (three by default)",
    params={"count": 3},
)
def exact_sentences(turn: TurnText, history: Sequence[TurnText], count: int):
    if not turn.questions:
        return None
    found = len(sentences_of(turn.response))
    if found == count:
        return None
    return f"exactly {plural(count, 'sentence')}", plural(found, "sentence")


# --- limits not in the paper --------------------------------------------------------


@register_preference(
    "max_words", "A message asking questions is at most limit words long", params={"limit": 150}
)
def max_words(turn: TurnText, history: Sequence[TurnText], limit: int):
    if not turn.questions:
        return None
    words = len(words_of(turn.response))
    if words <= limit:
        return None
    return f"at most {plural(limit, 'word')}", plural(words, "word")


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
        f"at most {plural(limit, 'question')} in the conversation",
        f"{plural(total, 'question')} by turn {turn.number}",
    )
