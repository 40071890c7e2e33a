"""Find the questions an agent puts to its user (the grading of their effort is
:mod:`ppp_otel.analysis.effort`'s, importable from here too).

Both run off the application's thread on every recorded response, so they are
plain precompiled regular expressions: no tokenizer, no model, no I/O.
"""

from __future__ import annotations

import json
import re

from ppp_otel.analysis.effort import (  # the grading, importable from here as before
    EFFORT_CUES,
    RULES_VERSION,
    EffortCue,
    classify_effort,
    effort_scores,
    without_list_marker,
)

__all__ = ["extract_questions", "classify_effort", "effort_scores", "EffortCue", "EFFORT_CUES", "RULES_VERSION"]

# ---------------------------------------------------------------------------
# Extraction
#
# The text is first *masked*: code, URLs, quotations and abbreviations keep
# their length but lose their sentence punctuation, so that the sentence
# boundaries found on the masked copy can slice the original text unchanged
# (a question keeps its inline code and its links).

_MASK = "_"

_FENCED_CODE = re.compile(
    # The lookahead takes the fence atomically: a line of a thousand backticks
    # must not be re-tried at every length.
    r"^[ \t]*(?=(?P<fence>`{3,}|~{3,}))(?P=fence)[^\n]*\n.*?(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
# Runs of backticks are bounded so that a pathological run stays linear.
_INLINE_CODE = re.compile(r"(?<!`)(?P<ticks>`{1,3})(?!`)[^`\n]+(?P=ticks)(?!`)")
# A URL does not take the sentence's own closing punctuation with it, so that
# "Did you mean https://x.com/docs?" is still a question.
_URL = re.compile(
    r"\b(?:[a-z][a-z0-9+.-]{0,15}://|www\.)[^\s<>\"'`]*[^\s<>\"'`?.!,;:)\]}]", re.IGNORECASE
)
# An apostrophe inside a word ("don't") never opens or closes a quotation.
_QUOTATION = re.compile(
    r"(?<!\w)'[^'\n]+'(?!\w)"
    r"|\"[^\"\n]+\""
    r"|“[^”\n]+”|‘[^’\n]+’|„[^“”\n]+[“”]|«[^»\n]+»|‹[^›\n]+›|「[^」\n]+」|『[^』\n]+』"
)
_ABBREVIATION = re.compile(
    r"(?<!\w)(?:e\.g\.|i\.e\.|cf\.|vs\.|approx\.|mr\.|mrs\.|ms\.|dr\.|prof\.|st\.|no\.(?=\s*\d))",
    re.IGNORECASE,
)

_ABBREVIATION_HINTS = ("e.g.", "i.e.", "cf.", "vs.", "approx.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "no.")

_SENTENCE_PUNCTUATION = re.compile(r"[.!?？！。…]")

# Where a sentence ends: Latin punctuation before whitespace or the end, CJK
# punctuation anywhere (those scripts put no space after it), a paragraph break,
# or a line break that starts something new (a capital, a list item, a heading).
_BOUNDARY = re.compile(
    # It starts with a character class so that the engine scans for those characters
    # in C; each branch then checks by lookbehind which of them it began with.
    r"[.!?…。！？\n](?:"
    r"(?<=[.!?…])[.!?…]*[\"'”’»)\]]*(?=\s|$)"
    r"|(?<=[。！？])[。！？]*[\"'”’»」』)\]）]*"
    r"|(?<=\?)(?=[¿¡])"
    r"|(?<=\n)[ \t]*\n\s*"
    r"|(?<=\n)(?=[ \t]*(?:[-*+•>#|]|\d+[.)]|[A-Z¿¡]))"
    r")"
)

_HEADING_OR_QUOTE = re.compile(r"^(?:#{1,6}\s|>)")
_EMPHASIS_EDGES = re.compile(r"^[*_]{1,3}(?=\S)|(?<=\S)[*_]{1,3}$")
_HAS_WORD = re.compile(r"\w")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")
_PARENTHESIZED = re.compile(r"^\((.*[?？])\)$", re.DOTALL)

# The agent answers its own question when the next sentence opens like this.
_SELF_ANSWER = re.compile(
    r"^(?:because|that'?s because|this is because|it'?s because|mostly because|partly because"
    r"|probably because|simply because|the (?:short )?answer|short answer|answer:|simple:|easy:"
    r"|the (?:reason|culprit|cause|trick|catch) (?:is|was)|the reason|here'?s (?:why|how|what)|here is (?:why|how|what)|it turns out|turns out"
    r"|not really|not quite|not necessarily|nope|of course|yep|porque|parce que|weil)\b"
    r"|^(?:yes|no)[,.!:]",
    re.IGNORECASE,
)


def _blank(match: re.Match[str]) -> str:
    return _SENTENCE_PUNCTUATION.sub(_MASK, match.group(0))


def _as_paragraph_break(match: re.Match[str]) -> str:
    return "\n" * len(match.group(0))


# A character class, so that the absence of every mark is found by one scan in C.
_QUOTE_MARK = re.compile("['\"“”‘’„«»‹›「」『』]")


def _quoting(text: str) -> bool:
    """Whether the text has a quotation mark of any script."""
    if text.isascii():  # a flag of the string: its only quotation marks are these two
        return "'" in text or '"' in text
    return _QUOTE_MARK.search(text) is not None


def _masked(text: str) -> str:
    # Each pass runs only when its trigger is present: most responses have no
    # code, no link and no quotation, and this runs on every recorded turn.
    if "`" in text or "~~~" in text:
        text = _FENCED_CODE.sub(_as_paragraph_break, text)
        text = _INLINE_CODE.sub(_blank, text)
    if "://" in text or "www." in text:
        text = _URL.sub(_blank, text)
    if _quoting(text):
        text = _QUOTATION.sub(_blank, text)
    if "." in text:
        # Every abbreviation ends with a full stop: ask at each one whether the
        # text up to it ends with one (a response has a few full stops).
        lowered = text.lower()
        end = lowered.find(".")
        while end != -1:
            if lowered.endswith(_ABBREVIATION_HINTS, 0, end + 1):
                text = _ABBREVIATION.sub(_blank, text)
                break
            end = lowered.find(".", end + 1)
    return text


def _sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, its masked copy) pairs, in order."""
    masked = _masked(text)
    # Most texts have nothing to mask: each sentence is then its own masked copy.
    unmasked = masked is text
    sentences = []
    start = 0
    for boundary in _BOUNDARY.finditer(masked):
        end = boundary.end()
        piece = masked[start:end]
        # A fenced code block masks to blank lines: it is no sentence.
        if not piece.isspace() and start < end:
            sentences.append((piece if unmasked else text[start:end], piece))
        start = end
    if start < len(text) and masked[start:].strip():
        sentences.append((text[start:], masked[start:]))
    return sentences


def _asks(masked: str) -> bool:
    """Whether a question mark ends the sentence: only marks and spaces ("?!", "?)") after its last one."""
    # A scan from the end in C, not a pattern tried at every question mark; an ASCII
    # sentence (a flag of the string) has no full-width mark to look for, and this
    # runs for every sentence of every asking response.
    last = masked.rfind("?")
    if not masked.isascii():
        last = max(last, masked.rfind("？"))
    return last >= 0 and _HAS_WORD.search(masked, last + 1) is None


def _tidy(sentence: str) -> tuple[str, bool]:
    """The sentence as a reader would quote it, and whether it is prose (not a heading or quote)."""
    sentence = sentence.strip()
    if not sentence:
        return sentence, False
    # Each pattern runs only when the characters it needs are there: this runs
    # for every asking sentence of every recorded turn.
    first = sentence[0]
    prose = not (first == ">" or (first == "#" and _HEADING_OR_QUOTE.match(sentence)))
    bare = without_list_marker(sentence)
    if bare and (bare[0] in "*_" or bare[-1] in "*_"):
        bare = _EMPHASIS_EDGES.sub("", bare)
    # The sentence is stripped already: only what was taken off it can leave spaces at an edge.
    if bare is not sentence:
        sentence = bare.strip()
    # A sentence wrapped over two lines reads as one line.
    if "\n" in sentence:
        sentence = _LINE_BREAK.sub(" ", sentence)
    if sentence[:1] == "(" and sentence[-1:] == ")":
        inner = _PARENTHESIZED.match(sentence)
        if inner:
            sentence = inner.group(1)
    return sentence, prose and _HAS_WORD.search(sentence) is not None


# A question asked without its question mark: an inverted question ("Which file
# did you edit.", "Should I add tests") or a request for an answer ("Please tell
# me which version you run."), ending the sentence with a full stop or nothing.
# "Should you need more, ask." is a condition, not a question: a clause after its
# comma (other than "or ..." and "and ...", which go on asking) says so.
_UNMARKED_QUESTION = re.compile(
    r"^(?:(?:so|and|also|then|ok|okay),? )?(?!should (?:you|i|we)\b[^,]*, (?!or\b|and\b)\w)(?:"
    r"(?:what|which|who|whom|whose|where|when|why|how)(?: \w+){0,3}? (?:do|does|did|are|is|was|were|have|has|had"
    r"|can|could|would|will|should|shall)\b(?: \w+){0,2}? (?:you|your|i|we|it|they|the|this|that)\b"
    r"|(?:can|could|would|will|do|did|are|were|have|should|shall) you\b"
    r"|(?:should|shall|can|do) (?:i|we)\b"
    r"|(?:please )?(?:tell me|let me know|remind me|confirm) (?:which|what|who|where|when|why|how|whether)\b"
    r")[^?]*[.]?\s*$",
    re.IGNORECASE,
)
# What every sentence _UNMARKED_QUESTION takes begins with before it is tidied
# (a list marker, emphasis, a line break), so that most sentences are passed
# over without tidying them: a loose superset, matched at the start only.
_UNMARKED_LEAD = re.compile(
    # (?=(?P<x>...))(?P=x) takes a run atomically (Python 3.10 has no possessive
    # quantifiers): what follows each run begins with a letter or a digit, so giving
    # characters back could never make a match, only retry it at every shorter length.
    r"(?=(?P<lead>[\W_]*))(?P=lead)(?:(?:\d{1,3}|[a-zA-Z])[.)]\s+|[xX]\]\s+)?(?=(?P<gap>[\W_]*))(?P=gap)"
    r"(?:(?:so|a(?:nd|lso)|then|ok(?:ay)?),?\s+)?"
    # what|which|who|whom|whose|where|when|why|how|can|could|would|will|do|did|are|were|have
    # |should|shall|please|tell|let|remind|confirm, by shared beginnings.
    r"(?:wh(?:at|ich|o(?:m|se)?|ere|en|y)|how|c(?:an|ould|onfirm)|w(?:ould|ill|ere)|d(?:o|id)|are|have|sh(?:ould|all)"
    r"|please|tell|let|remind)\b",
    re.IGNORECASE,
)
# Two questions in one sentence: a new interrogative clause after ", and" or ";".
_JOINED_QUESTION = re.compile(
    r"(?:,\s*(?:and|also|plus)\s+|;\s*(?:and\s+)?|\s+and\s+(?:also\s+)?)"
    r"(?=(?:what|which|who|where|when|why|how|is|are|do|does|did|can|could|would|should|shall|will|have)\b"
    r"(?:\s+\w+){0,3}?\s+(?:you|your|i|we|it|they|the|this|that|there)\b)",
    re.IGNORECASE,
)
_JSON_FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)


def _as_json(text: str):
    """The JSON value the whole text is (also fenced, or as a quoted JSON string), or None."""
    stripped = text.strip()
    fenced = _JSON_FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if not stripped or stripped[0] not in "{[\"":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        return _as_json(value)
    return value if isinstance(value, (dict, list)) else None


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _split_joined(question: str) -> list[str]:
    # _JOINED_QUESTION needs a ";" or an "and", "also" or "plus": most questions have none.
    if ";" not in question:
        lowered = question.lower()
        if "and" not in lowered and "also" not in lowered and "plus" not in lowered:
            part = question.strip(" ,;")
            return [part] if part else []
    parts = [p.strip(" ,;") for p in _JOINED_QUESTION.split(question) if p.strip(" ,;")]
    if len(parts) == 1:
        return parts
    mark = "?" if question.rstrip().endswith("?") else ""
    return [(p if p.endswith("?") else p + mark)[:1].upper() + (p if p.endswith("?") else p + mark)[1:]
            for p in parts]


def extract_questions(text: str) -> list[str]:
    """The questions a response puts to the user, in order, one question each.

    Code, URLs, quotations, headings and block quotes ask nothing of the user,
    and neither does a question the agent answers itself in the next sentence.
    A message that is all JSON (also fenced) asks the questions in its strings.
    Two questions joined in one sentence ("..., and which OS are you on?") are
    two, and a question asked without its question mark still counts.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    if "{" in text or "[" in text:
        value = _as_json(text)
        if value is not None:
            return [q for string in _strings(value) for q in extract_questions(string)]
    marked = "?" in text or "？" in text
    if not marked and not _may_ask_unmarked(text):
        return []
    sentences = _sentences(text)
    questions = []
    # Only asking sentences (and the one after each) are tidied: it is the costly part.
    for i, (sentence, masked) in enumerate(sentences):
        if not _asks(masked) and not (_UNMARKED_LEAD.match(masked)
                                      and _UNMARKED_QUESTION.match(_tidy(masked)[0])):
            continue
        sentence, prose = _tidy(sentence)
        if not prose:
            continue
        if i + 1 < len(sentences) and _SELF_ANSWER.match(_tidy(sentences[i + 1][0])[0]):
            continue
        questions.extend(_split_joined(sentence))
    return questions


_UNMARKED_WORDS = (
    r"(?:(?:so|and|also|then|ok|okay),? )?(?:what|which|who|whom|whose|where|when|why|how|can|could|would|will|do|did"
    r"|are|were|have|should|shall|please|tell me|let me know|remind me|confirm)\b"
)
# At the start of the text, or after a sentence's end: two patterns, so that the
# second begins with a character class the engine scans for in C.
_UNMARKED_AT_START = re.compile(_UNMARKED_WORDS, re.IGNORECASE)
_UNMARKED_AFTER_END = re.compile(r"[.!\n]\s*" + _UNMARKED_WORDS, re.IGNORECASE)
# The same for a lowered ASCII text, case-sensitive: the engine then passes over an
# alternative by its first letter in one comparison (most responses are ASCII, and
# every response without a question mark is asked this). Lowering an ASCII text keeps
# its length and matches a letter of it where ignoring case would.
_UNMARKED_AT_START_LOWERED = re.compile(_UNMARKED_WORDS)
_UNMARKED_AFTER_END_LOWERED = re.compile(r"[.!\n]\s*" + _UNMARKED_WORDS)


def _may_ask_unmarked(text: str) -> bool:
    if text.isascii():
        lowered = text.lower()
        return (_UNMARKED_AT_START_LOWERED.match(lowered) is not None
                or _UNMARKED_AFTER_END_LOWERED.search(lowered) is not None)
    return _UNMARKED_AT_START.match(text) is not None or _UNMARKED_AFTER_END.search(text) is not None
