"""Text helpers of the built-in detectors: prose without code and links, words,
sentences (pysbd) and languages (lingua), and the wording of what a detector found.

Language identification is lingua's (the ``languages`` extra), a model made
for short and mixed-language text, over twenty languages; a question too short
for it to tell (one word, "Ok?") is given the benefit of the doubt, and a
mixed message is told phrase by phrase. Sentence boundaries are pysbd's
(abbreviations, "e.g.", version numbers), with a wrapped line joined first.
Both are built once, on first use, off the app thread (detection runs in the
judgment stage).
"""

from __future__ import annotations

import functools
import re
import sys
import threading

from ppp_otel.forksafe import renew_locks_in_child

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")


def prose(text: str) -> str:
    """The text without code and links, which follow no natural language."""
    text = _FENCE.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    return URL.sub(" ", text)


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def quote(text: str, width: int = 60) -> str:
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


def reads_as(text: str, language: str) -> bool:
    """Whether ``text`` reads as ``language``; text too short to tell passes."""
    found = _language_of(" ".join(prose(text).split()))
    return found is None or found == language


# Where one language gives way to the next in a mixed message: sentence ends,
# inverted marks that open a Spanish question, line breaks.
_SEGMENT = re.compile(r"(?<=[.!?…。！？])\s+|(?=[¿¡])|\n+")


def languages_of(text: str) -> set[str]:
    """The languages of a message, told phrase by phrase (each phrase of two words or more,
    or of a script with its own language)."""
    found = set()
    for segment in _SEGMENT.split(prose(text)):
        segment = " ".join(segment.split())
        if len(words_of(segment)) < 2 and not _NON_LATIN.search(segment):
            continue
        language = _language_of(segment)
        if language is not None:
            found.add(language)
    return found


_NON_LATIN = re.compile(r"[\u0370-\u03FF\u0400-\u04FF\u0590-\u06FF\u0900-\u097F\u0E00-\u0E7F"
                        r"\u3040-\u30FF\u4E00-\u9FFF\uAC00-\uD7AF]")


# A line break inside a paragraph only wraps the text; a blank line, a list item
# or a heading starts a new sentence.
_WRAPPED_LINE = re.compile(r"(?<=\S)[ \t]*\n(?![ \t]*(?:\n|[-*+•>#|]|\d+[.)]\s))[ \t]*")
_segmenter_lock = threading.Lock()
_segmenter = None


def sentences_of(text: str) -> list[str]:
    """The sentences of a message by pysbd's rules (abbreviations, "e.g.", numbers);
    code and links are left out, since their dots end no sentence."""
    global _segmenter
    if _segmenter is None:
        with _segmenter_lock:
            if _segmenter is None:
                import pysbd

                _segmenter = pysbd.Segmenter(language="en", clean=False)
    joined = _WRAPPED_LINE.sub(" ", prose(text))
    sentences = []
    for paragraph in re.split(r"\n\s*\n|\n(?=[ \t]*(?:[-*+•>#|]|\d+[.)]\s))", joined):
        if words_of(paragraph):
            sentences += [part for part in _segmenter.segment(paragraph) if words_of(part)]
    return sentences


# The judgment thread may hold one of these when another thread forks.
renew_locks_in_child(sys.modules[__name__], "_detector_lock", "_segmenter_lock")
