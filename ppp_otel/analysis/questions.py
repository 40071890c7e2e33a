"""Find the questions an agent puts to its user, and grade the effort they ask.

Both run off the application's thread on every recorded response, so they are
plain precompiled regular expressions: no tokenizer, no model, no I/O.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

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
    # The leading lookahead lets the engine skip plain letters at once.
    r"(?=[.!?…。！？\n])(?:"
    r"[.!?…]+[\"'”’»)\]]*(?=\s|$)"
    r"|[。！？]+[\"'”’»」』)\]）]*"
    r"|\?(?=[¿¡])"
    r"|\n[ \t]*\n\s*"
    r"|\n(?=[ \t]*(?:[-*+•>#|]|\d+[.)]|[A-Z¿¡]))"
    r")"
)

_LIST_MARKER = re.compile(
    r"^(?:[-*+•]\s+(?:\[[ xX]\]\s+)?|\(?\d{1,3}[.)]\s+|\(?[a-zA-Z][)]\s+|[a-zA-Z]\.\s+(?=\S))"
)
_HEADING_OR_QUOTE = re.compile(r"^(?:#{1,6}\s|>)")
_EMPHASIS_EDGES = re.compile(r"^[*_]{1,3}(?=\S)|(?<=\S)[*_]{1,3}$")
_ASKS = re.compile(r"[?？][!！]*\W*$")
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


_QUOTE_MARKS = frozenset("'\"“”‘’„«»‹›「」『』")


def _masked(text: str) -> str:
    # Each pass runs only when its trigger is present: most responses have no
    # code, no link and no quotation, and this runs on every recorded turn.
    if "`" in text or "~~~" in text:
        text = _FENCED_CODE.sub(_as_paragraph_break, text)
        text = _INLINE_CODE.sub(_blank, text)
    if "://" in text or "www." in text:
        text = _URL.sub(_blank, text)
    if not _QUOTE_MARKS.isdisjoint(text):
        text = _QUOTATION.sub(_blank, text)
    if "." in text:
        lowered = text.lower()
        if any(abbreviation in lowered for abbreviation in _ABBREVIATION_HINTS):
            text = _ABBREVIATION.sub(_blank, text)
    return text


def _sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, its masked copy) pairs, in order."""
    masked = _masked(text)
    sentences = []
    start = 0
    for boundary in _BOUNDARY.finditer(masked):
        end = boundary.end()
        # A fenced code block masks to blank lines: it is no sentence.
        if not masked[start:end].isspace() and start < end:
            sentences.append((text[start:end], masked[start:end]))
        start = end
    if start < len(text) and masked[start:].strip():
        sentences.append((text[start:], masked[start:]))
    return sentences


def _asks(masked: str) -> bool:
    return bool(_ASKS.search(masked.rstrip()))


def _tidy(sentence: str) -> tuple[str, bool]:
    """The sentence as a reader would quote it, and whether it is prose (not a heading or quote)."""
    sentence = sentence.strip()
    prose = not _HEADING_OR_QUOTE.match(sentence)
    sentence = _LIST_MARKER.sub("", sentence, count=1)
    sentence = _EMPHASIS_EDGES.sub("", sentence).strip()
    # A sentence wrapped over two lines reads as one line.
    sentence = _LINE_BREAK.sub(" ", sentence)
    sentence = _PARENTHESIZED.sub(r"\1", sentence)
    return sentence, prose and bool(_HAS_WORD.search(sentence))


# A question asked without its question mark: an inverted question ("Which file
# did you edit.") or a request for an answer ("Please tell me which version you
# run."), ending the sentence with a full stop or nothing.
_UNMARKED_QUESTION = re.compile(
    r"^(?:(?:so|and|also|then|ok|okay),? )?(?:"
    r"(?:what|which|who|whom|whose|where|when|why|how)(?: \w+){0,3}? (?:do|does|did|are|is|was|were|have|has|had"
    r"|can|could|would|will|should|shall)\b(?: \w+){0,2}? (?:you|your|i|we|it|they|the|this|that)\b"
    r"|(?:can|could|would|will|do|did|are|were|have|should|shall) you\b"
    r"|(?:please )?(?:tell me|let me know|remind me|confirm) (?:which|what|who|where|when|why|how|whether)\b"
    r")[^?]*[.]?\s*$",
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
        if _asks(masked):
            sentence, prose = _tidy(sentence)
        else:
            sentence, prose = _tidy(sentence)
            if not (prose and _UNMARKED_QUESTION.match(_tidy(masked)[0])):
                continue
        if not prose:
            continue
        if i + 1 < len(sentences) and _SELF_ANSWER.match(_tidy(sentences[i + 1][0])[0]):
            continue
        questions.extend(_split_joined(sentence))
    return questions


_UNMARKED_HINT = re.compile(
    r"(?:^|[.!\n]\s*)(?:(?:so|and|also|then|ok|okay),? )?(?:what|which|who|whom|whose|where|when|why|how|can|could|would|will|do|did|are|were"
    r"|have|should|shall|please|tell me|let me know|remind me|confirm)\b",
    re.IGNORECASE,
)


def _may_ask_unmarked(text: str) -> bool:
    return bool(_UNMARKED_HINT.search(text))


# ---------------------------------------------------------------------------
# Effort
#
# The levels are the PPP paper's (Sun et al. 2025, Section 4.3), as its user
# simulator grades an answer: low when the user can answer at once from what
# they asked for, did or saw; medium when they cannot really answer (they would
# say "I don't know" or give a general answer: speculation, an opinion on what
# they have not examined, a vague or open question, the agent's own design
# work); high when they must go and do work to answer (investigate the code,
# find a file or a document, run or measure something, look something up, ask
# someone else).
#
# Each cue is evidence for one level; a question's level is the one with the
# most evidence. Weighted evidence rather than first-match keywords, so a
# choice phrased around a design ("which of the two designs do you prefer?")
# stays a choice, and "which" alone decides nothing.


@dataclass(frozen=True)
class EffortCue:
    name: str
    effort: str
    weight: float
    pattern: re.Pattern[str]


#: Bumped whenever a cue changes what it grades: it names the judge in the database.
RULES_VERSION = 2

# Low is the default: a question with no other evidence asks about the user's
# own request, setup or experience, which they can answer at once.
_PRIOR = {"low": 1.0, "medium": 0.0, "high": 0.0}

# The ways of asking the user to do something: "could you ...", "would you be
# able to ...", "would it be possible to ...".
_FILLERS = r"(?:please |also |maybe |quickly |first |then |kindly |try and |try to )?"
_YOU_ASKED = (
    r"(?:(?:^|[,;:]\s*|\band\s+)(?:can|could|would|will|might) you(?: be able to)?"
    r"|would it be possible to)"
    r" " + _FILLERS
)
# The same asked less directly, anywhere in the question: "would it be possible for
# you to ...", "I'd need you to look at ...", "it would help if you could ...",
# "please ..." (also in a second sentence: "... Please check the logs.")
_YOU_ASKED_INDIRECTLY = r"(?:you (?:to|could)|please) " + _FILLERS
_WORK_VERBS = (
    r"run|rerun|try|test|retest|check|double-check|recheck|measure|time|benchmark|profile|find|look"
    r"|dig|go through|go over|review|audit|collect|gather|compile|pull|capture|record|reproduce"
    r"|bisect|trace|track down|figure out|work out|ask|contact|call|email|reach out|verify"
    r"|validate|cross-check|compare|inspect|scan|identify|monitor|explore|experiment|evaluate|estimate"
    r"|set up|install|deploy|configure|write|rewrite|draft|design|map out|inventory|survey"
    r"|interview|read|read through|read up|tag|label|fill in|sort out|dig up|hunt down|search|look up"
    r"|calculate|count|assess|diagnose|debug|troubleshoot|prototype|build|implement|prepare"
    r"|document|summarize|summarise|organize|organise|clean up|go and|grep|open|poll"
    r"|repro|get me|get us|get the|get hold|spend|talk to|talk with|speak to|speak with|consult"
    r"|follow up|sync with|loop in|sit down with|put together|pull together"
    r"|work through|take a look|have a look|dig out|chase"
)
# "Would you mind running ..." asks for the same work in the gerund.
_WORK_GERUNDS = (
    r"running|rerunning|trying|testing|checking|measuring|timing|benchmarking|profiling|finding"
    r"|looking|digging|going|reviewing|auditing|collecting|gathering|pulling|capturing|recording"
    r"|reproducing|tracing|asking|contacting|calling|verifying|validating|comparing|inspecting"
    r"|setting up|installing|deploying|writing|rewriting|drafting|designing|exploring|grepping|searching"
)
_DESIGN_NOUNS = (
    r"architecture|architect|design|designed|structure|structured|strategy|approach|schema|data model|api shape"
    r"|layout of|policy|roadmap|plan for|model for|workflow|process for|naming scheme|model the"
)
_OPINION = r"should|would|propose|recommend|suggest|pick|think|optimal|ideal|decide|adopt|best|right|want|like"

# The agent offers to do something: at the start, or where a new clause opens
# inside the question ("You mentioned X — should I ...?"). Two patterns, because
# one that is anchored lets the engine try only the start.
_AGENT_OFFERS = r"(?:should|shall|can|may|could) (?:i|we)\b"
_AGENT_OFFERS_FIRST = r"^(?:so,? |ok,? |okay,? )?" + _AGENT_OFFERS + r"|^(?:how about|what if) (?:i|we)\b"
_AGENT_OFFERS_LATER = r"[,;:—–-] ?(?:or |and |so,? |then,? |ok,? |okay,? )?" + _AGENT_OFFERS

# A verb the agent would carry out itself, put to the user as a bare proposal:
# "Keep the British spelling?", "Confirm: delete the 12 stale rows?". It must be
# followed by its object (a determiner, a pronoun, a number, code).
_AGENT_ACTIONS = (
    r"keep|delete|remove|drop|use|add|apply|merge|push|deploy|rename|skip|include|exclude|switch"
    r"|revert|roll back|restart|send|book|cancel|commit|update|upgrade|downgrade|enable|disable"
    r"|replace|overwrite|ship|publish|archive|retry|rerun|reformat|convert|move|leave|turn on"
    r"|turn off|split|squash|rebase|pin|bump|install|uninstall|create|close|reply|reserve|save"
    r"|export|translate|shorten|trim|clean up|tidy up|refactor|fix|mark|flag|stick with|go for"
    r"|go with|swap|lower|raise|increase|decrease|shrink|extend|make|set|change|schedule"
)
_OBJECT = (
    r"the|a|an|all|both|it|this|that|these|those|them|everything|each|every|my|our|its|any|some"
    r"|just|only|also|now|up|off|on|back|ahead|\d|[`\"']"
)

# Where the answer lives in the code or in a document: the paper's simulator
# prices an answer from the file or function to edit, or from the source
# document, as its costliest.
_CODE_PLACES = r"files?|modules?|functions?|class|classes|package|directory|folder|script|decorator|helper"
_DOCUMENT_PLACES = r"web ?pages?|pages?|documents?|docs?|articles?|sources?|websites?|site|url|urls|links?|reports?|tickets?|records? of"


def _cue(name: str, effort: str, weight: float, pattern: str) -> EffortCue:
    return EffortCue(name, effort, weight, re.compile(pattern))


EFFORT_CUES: tuple[EffortCue, ...] = (
    # low: the agent offers, proposes or confirms, and the user answers at once
    _cue("agent proposes", "low", 2.5, _AGENT_OFFERS_FIRST),
    _cue("agent proposes later", "low", 2.5, _AGENT_OFFERS_LATER),
    _cue("bare proposal", "low", 2.5,
         r"^(?:(?:just )?(?:to )?confirm\s*[:,—–-]\s*|so,? |also,? |just |then,? |now,? )?"
         r"(?:(?:" + _AGENT_ACTIONS + r") (?:" + _OBJECT + r")\b|(?:proceed|continue|go ahead|carry on)\b)"),
    _cue("tag question", "low", 2.0,
         r"[,—–-] ?(?:ok|okay|alright|all right|right|correct|yes or no|sound good|fine|agreed)\s*\W*$"),
    _cue("objection", "low", 2.0, r"objection"),
    _cue("should it", "low", 2.0, r"^(?:should|shall) (?:the|this|that|it|these|those|my|our|empty|negative|new)\b"),
    _cue("offer", "low", 2.5, r"(?:do|would) you (?:want|like|prefer|wish|rather)\b|want me to\b|^want\b"),
    _cue("preference", "low", 2.0, r"prefer|prefieres?\b|préf[eè]r|like best\b|rather\b"),
    _cue("choose", "low", 2.0, r"\b(?:choose|pick|select|opt for|go with)\b"),
    _cue("either or", "low", 1.5, r" (?:or|o|ou|oder)(?: (?=[\w\"'(])|\s*$)|either\b"),
    _cue("okay", "low", 2.0, r"^(?:is|are|does|do|would|will|okay|ok|alright|fine)\b.*\b(?:okay|ok|alright|all right|fine|acceptable|good|right|enough|work for you|work better|suit you|happy)\b"),
    _cue("ready", "low", 2.0, r"^(?:ready|okay|ok|alright|good to go|happy)\b"),
    _cue("what you want", "low", 2.0, r"you (?:wanted|had in mind|meant|expected|intended|described|mentioned|said)\b|what you (?:want|need)\b|did you (?:mean|say)\b|you mean\b|as you (?:recall|remember)|(?:do|can) you remember\b|by your description|as far as you (?:know|remember)"),
    _cue("you said you want", "low", 2.0, r"^(?:so,? |just to confirm,? )?you(?:'d| would)? (?:want|like|prefer|mean|need)\b"),
    _cue("confirm", "low", 1.5, r"confirm\b(?! with)"),
    _cue("mind if", "low", 2.0, r"mind if (?:i|we)\b"),
    _cue("sounds good", "low", 2.0, r"(?:sound|look)s? (?:good|right|ok|okay|fine|reasonable)\b|agree\b"),
    _cue("continue", "low", 1.0, r"(?:proceed|continue|go ahead|carry on)\b"),
    # medium: the user cannot really answer; speculation, a general answer, the agent's own job
    _cue("speculation", "medium", 3.0,
         r"\b(?:do|did|would) you (?:think|reckon|suppose|imagine|believe|guess|feel)\b|\byou (?:think|reckon|suppose)\b"
         r"|\bin your (?:opinion|view|experience)\b|\bif you had to guess\b|\bgut feeling\b|\bhunch\b|\bintuition\b"
         r"|\btheory\b|\bany (?:idea|ideas|thoughts|clue|clues|hints?|suggestions?|recommendations?|insight)\b"
         r"|\ba (?:guess|feeling)\b|\ban idea\b|\bfeeling for\b|\bwhy (?:do|would|might|could) (?:you think|it|the|this|that|they|he|she|someone)\b"
         r"|\bwhy might\b|\bwhy would\b|\bcould (?:there|it|this|that) be\b|\bmight (?:be|have)\b|\bbe referring\b"
         r"|\b(?:likeliest|most likely|likely candidate)\b"),
    _cue("beyond what the user knows", "medium", 3.0,
         r"\bdo you (?:happen to )?know (?:why|how|who|what|whether|if|anything|much|the history|roughly)\b"
         r"|\bknown (?:limitation|issue|bug|problem)\b|\bunder the hood\b|\binternally\b|\bunderlying\b"
         r"|^how does (?:the|this|that|it|your|our)\b.*\b(?:work|use|uses|handle|decide|build|builds)\b"
         r"|\bthe answer (?:to|is)\b|what(?:'s| is) the answer\b"),
    _cue("vague or open", "medium", 3.0,
         r"\btell me more\b|\bmore (?:context|information|info|details)\b|\banything else\b|\bsomething else\b"
         r"|\bwhat else\b|\bis there anything\b|\b(?:explain|put|phrase) (?:the|it|this) (?:question )?(?:in )?(?:a )?(?:different|another) way"
         r"|\bwhat should i do next\b|\bwhere (?:should|do|would) (?:i|we|you) (?:start|begin)\b|\bhow would you go about\b"),
    _cue("best way", "medium", 3.5, r"what(?:'s| is| would be) the (?:best|right|ideal|optimal|cleanest|safest|recommended|most efficient) (?:[\w/-]+ ){0,3}?(?:way|approach|method|strategy|option for|policy|architecture|design)\b"
         r"|\b(?:better|cleaner|ideal|sound|good) (?:approach|architecture|design|strategy|way)\b|\bbest for\b|\bhow reliable\b|\bmost trustworthy\b"),
    _cue("trade-offs", "medium", 3.0, r"trade-?offs?\b|pros and cons\b|weigh (?:up )?(?:the|both|all|them|these|those|your)\b"),
    _cue("how should", "medium", 3.5, r"^how (?:should|shall|would|could|might) (?:i|we|you|the|this|it|our)\b(?! (?:like|want|prefer))|^how should\b|^how do you (?:think|want)\b"),
    # Not when the user is asked to go and do the work ("could you look through ... how they structure").
    _cue("design decision", "medium", 4.0,
         r"^(?!(?:can|could|would|will) you (?:please )?(?:" + _WORK_VERBS + r")\b)"
         r"(?=.*\b(?:" + _DESIGN_NOUNS + r")\b)(?=.*\b(?:" + _OPINION + r")\b)"),
    _cue("what would you", "medium", 2.0, r"^what (?:\w+ ){0,2}would you (?:use|do|pick|choose|recommend|suggest|consider|propose)\b"),
    # high: the user has to go and find out, look it up, or do work
    _cue("spec keyword", "high", 3.5, r"\b(?:investigat|research|analy[sz]|determine\b|before proceeding)"),
    _cue("you do the work", "high", 3.5, _YOU_ASKED + r"(?:" + _WORK_VERBS + r")\b"),
    _cue("you do the work, asked indirectly", "high", 3.5, _YOU_ASKED_INDIRECTLY + r"(?:" + _WORK_VERBS + r")\b"),
    _cue("would you like to do the work", "high", 4.0, r"(?:would you like|do you want|would you want|are you able|are you willing) to (?:" + _WORK_VERBS + r")\b"),
    _cue("mind doing the work", "high", 3.5, r"mind (?:" + _WORK_GERUNDS + r")\b"),
    _cue("see whether", "high", 1.5, r"(?:and|to) see (?:whether|if|how|what)\b|spend (?:some |a bit of )?time\b"),
    _cue("find out", "high", 3.0, r"\b(?:find out|figure out|work out|look into|dig (?:through|into|up)|track down|bisect|benchmark|profile|reproduce|measure|audit|survey|interview|check with|confirm with|verify with|ask (?:your|the|around|a|someone)|reach out"
         r"|(?:talk|speak) (?:to|with) (?:your|the|a|an|someone)|look (?:at|through|over) (?:its|their|the) (?:[\w-]+ ){0,2}?(?:patterns?|history|trends?|logs|metrics))\b"),
    _cue("where in the code", "high", 3.5,
         r"^(?:which|what|in which|in what)(?: \w+)? (?:" + _CODE_PLACES + r")\b(?! (?:do|would) you (?:prefer|want|like))"
         r"|^(?:which|what|in which|in what) (?:methods?|lines?)\b"
         r"|\bwhere in (?:the|this|our|your) (?:code|codebase|repo|repository|project|source)\b"
         r"|^where (?:is|are) (?:the|this|that)\b.*\b(?:defined|set|configured|implemented|declared|raised|thrown|handled|located)\b"
         r"|\b(?:defined|implemented|declared) in\b|\bthe (?:function|method|class|file|module) (?:that|which|where)\b"
         r"|\bin (?:the|this) (?:repository|codebase)\b"),
    _cue("where the document is", "high", 3.5,
         r"^(?:which|what)(?: \w+)? (?:" + _DOCUMENT_PLACES + r")\b(?! (?:do|would) you (?:prefer|want|like))"
         r"|\bwhere (?:exactly )?(?:on the web|online)\b|^where can (?:the|i find)\b|\bcan (?:the|it) be found\b"
         r"|\b(?:source|original|ground-truth) (?:document|page|interview|report)\b|\bin the corpus\b"),
    _cue("state of a system", "high", 2.5, r"\bhow many (?:rows|records|instances|replicas)\b|\bcurrent value\b|\bset to right now\b"),
    # An offer by the agent to do the work is the agent's work, not the user's.
    _cue("agent does the work", "high", -3.0, r"^(?:so,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b|(?:want|like) me to\b"),
    _cue("agent does the work later", "high", -3.0, r"[,;:—–-] ?(?:or |and |so,? |then,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b"),
    _cue("agent does the design", "medium", -3.0, r"^(?:so,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b|(?:want|like) me to\b"),
    _cue("report back", "high", 1.0, r" and (?:send|tell|report|share|let me know|paste|note|list|flag|circulate|mark|quote|copy)\b"),
    _cue("breadth", "high", 1.0, r"\b(?:all (?:the|of)|every|each one|over (?:the )?(?:last|past)|for (?:an|a|one) (?:hour|day|week)|the full|across (?:all|the))\b"),
)


def _normalized(question: str) -> str:
    question = question.strip().lower().replace("’", "'").replace("‘", "'")
    question = _LIST_MARKER.sub("", question, count=1)
    return question.lstrip("¿¡*_ ").rstrip()


def effort_scores(question: str) -> dict[str, float]:
    """The evidence for each effort level; `classify_effort` picks the largest."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str; got {type(question).__name__}")
    text = _normalized(question)
    scores = dict(_PRIOR)
    for cue in EFFORT_CUES:
        if cue.pattern.search(text):
            scores[cue.effort] += cue.weight
    return scores


@functools.lru_cache(maxsize=4096)
def _classify(question: str) -> str:
    scores = effort_scores(question)
    # Low is looked at first so that it wins ties: the benefit of the doubt goes to the agent.
    best = "low"
    for level in ("medium", "high"):
        if scores[level] > scores[best]:
            best = level
    return best


def classify_effort(question: str) -> str:
    """'low', 'medium' or 'high': the effort a question asks of the user, as the PPP paper grades it.

    low: the user can answer at once from what they asked for, did or saw (a
    choice, a preference, a fact of their setup); medium: the user cannot really
    answer ("I don't know", a general answer: speculation, a design opinion, a
    vague question); high: the user must go and do work to answer (find where
    in the code, find a document, run or measure something, ask someone).
    Ties go to low, the default.
    """
    if not isinstance(question, str):
        raise TypeError(f"question must be a str; got {type(question).__name__}")
    # Agents ask the same questions again and again ("Shall I go ahead?").
    return _classify(question)
