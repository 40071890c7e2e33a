"""Grade the effort a question asks of the user, by weighted cues.

The levels are the PPP paper's (Sun et al. 2025, Section 4.3), as its user
simulator grades an answer: low when the user can answer at once from what
they asked for, did or saw; medium when they cannot really answer (they would
say "I don't know" or give a general answer: speculation, an opinion on what
they have not examined, a vague or open question, the agent's own design
work); high when they must go and do work to answer (investigate the code,
find a file or a document, run or measure something, look something up, ask
someone else).

Each cue is evidence for one level; a question's level is the one with the
most evidence. Weighted evidence rather than first-match keywords, so a
choice phrased around a design ("which of the two designs do you prefer?")
stays a choice, and "which" alone decides nothing. Plain precompiled regular
expressions, like the extraction in :mod:`ppp_otel.analysis.questions`: both
run on every recorded response. A cue is searched as its alternatives, each
on its own (a branch that opens with its literal or its anchor is found
faster than an alternation is tried at every position), and a question
contains the literals of a few of them only: :mod:`ppp_otel.analysis.cue_gate`
finds which in one pass, and only those are searched (the scores are those of
searching every cue's whole pattern).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ppp_otel.analysis.cue_gate import CueGate

__all__ = ["classify_effort", "effort_scores", "EffortCue", "EFFORT_CUES", "RULES_VERSION"]

#: The marker of a list item ("- ", "1. ", "a) ", "- [x] "), left out of a question.
LIST_MARKER = re.compile(
    r"^(?:[-*+•]\s+(?:\[[ xX]\]\s+)?|\(?\d{1,3}[.)]\s+|\(?[a-zA-Z][)]\s+|[a-zA-Z]\.\s+(?=\S))"
)



def without_list_marker(text: str) -> str:
    """The text without the list marker it opens with, if any."""
    # What LIST_MARKER's branches open with (a dash, a bullet, a parenthesis, a digit; a
    # letter before ")" or "."): most questions and sentences open otherwise, and are
    # passed over without the pattern.
    if text[:1] in "-*+•(" or text[:1].isdigit() or text[1:2] in (")", "."):
        return LIST_MARKER.sub("", text, count=1)
    return text


@dataclass(frozen=True)
class EffortCue:
    name: str
    effort: str
    weight: float
    pattern: re.Pattern[str]


#: Bumped whenever a cue changes what it grades: it names the judge in the database.
RULES_VERSION = 3

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
_DOCUMENTS = (
    r"docs?|documentation|readme|manual|reference|spec|specification|changelog|release notes|wiki"
    r"|web ?pages?|pages?|documents?|articles?|papers?|reports?|guides?|faq|man page|sources?|site|website"
)
_DOCUMENT_PLACES = r"web ?pages?|pages?|documents?|docs?|articles?|sources?|websites?|site|url|urls|links?|reports?|tickets?|records? of"


def _structure(pattern: str, start: int = 0):
    """(index, character, depth after it) of each character of ``pattern`` from ``start``
    outside escapes and character classes: the parentheses and bars that shape it."""
    depth, i = 0, start
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i += 2 if pattern[i + 1:i + 2] == "]" else 1
            while pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif ch in "()|":
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth
        i += 1


def _branches(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern (outside groups and character classes)."""
    out, start = [], 0
    for i, ch, depth in _structure(pattern):
        if ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
    out.append(pattern[start:])
    return out


def _word_start_first(pattern: str) -> str:
    r"""The same pattern with each branch ``\bword...`` written ``w(?<!\w.)ord...``.

    Both match where the other does; the second starts with a literal, which
    the engine finds by scanning for it rather than trying every position (a
    question is searched for some forty cues).
    """
    return "|".join(_word_start_branch(branch) for branch in _branches(pattern))


def _letter_first(branch: str) -> str | None:
    if len(branch) > 1 and "a" <= branch[0] <= "z" and branch[1] not in "?*+{":
        return branch[0] + r"(?<!\w.)" + branch[1:]
    return None


def _word_start_branch(branch: str) -> str:
    if branch[:2] != "\\b":
        return branch
    word = _letter_first(branch[2:])
    if word is not None:
        return word
    if branch[2:5] == "(?:":  # \b(?:one|two)rest: each alternative led by its own letter
        end = _group_end(branch, 2)
        if end is not None and branch[end + 1:end + 2] not in ("?", "*", "+", "{"):
            inner = [_letter_first(alternative) for alternative in _branches(branch[5:end])]
            if all(inner):
                return "(?:" + "|".join(inner) + ")" + branch[end + 1:]
    return branch


# A branch that opens with a group of at most this many alternatives is searched as one
# branch for each of them.
_DISTRIBUTED = 8


def _alternatives(pattern: str) -> list[str]:
    """Patterns one of which matches a text exactly when ``pattern`` does: its top-level
    branches, a branch that opens with a group of a few alternatives written once for each
    ("(?:do|would) you" as "do you" and "would you"), so that each opens with its own
    literal, which the engine scans for, or its own anchor."""
    return [alternative for branch in _branches(pattern) for alternative in _distributed(branch)]


def _distributed(branch: str) -> list[str]:
    if branch[:3] == "(?:":
        end = _group_end(branch, 0)
        if end is not None and branch[end + 1:end + 2] not in ("?", "*", "+", "{"):
            inner = _branches(branch[3:end])
            if len(inner) <= _DISTRIBUTED:
                return [alternative for each in inner for alternative in _distributed(each + branch[end + 1:])]
    return [_word_start_branch(branch)]


def _group_end(pattern: str, start: int) -> int | None:
    """The index of the parenthesis closing the group opened at ``start``."""
    return next((i for i, ch, depth in _structure(pattern, start) if ch == ")" and depth == 0), None)


def _cue(name: str, effort: str, weight: float, pattern: str) -> EffortCue:
    return EffortCue(name, effort, weight, re.compile(_word_start_first(pattern)))


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
    # What a document says, or where it is: the user has to open it and read, as for the file to edit.
    _cue("what the document says", "high", 3.5,
         r"\bwhat (?:does|do|did) (?:the|its|their|your|our|this|that) (?:[\w-]+ ){0,2}?(?:" + _DOCUMENTS + r")"
         r" (?:say|state|mention|list|recommend|specify|suggest)\b"
         r"|\b(?:link|links|url|urls) (?:to|of|for) (?:the|a|an|that|this|those|these) (?:[\w-]+ ){0,3}?"
         r"(?:docs?|documentation|readme|manual|reference|spec|specification|pages?|documents?|articles?"
         r"|papers?|reports?|sources?)\b"),
    _cue("state of a system", "high", 2.5, r"\bhow many (?:rows|records|instances|replicas)\b|\bcurrent value\b|\bset to right now\b"),
    # An offer by the agent to do the work is the agent's work, not the user's.
    _cue("agent does the work", "high", -3.0, r"^(?:so,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b|(?:want|like) me to\b"),
    _cue("agent does the work later", "high", -3.0, r"[,;:—–-] ?(?:or |and |so,? |then,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b"),
    _cue("agent does the design", "medium", -3.0, r"^(?:so,? |ok,? |okay,? )?(?:should|shall|can|may) (?:i|we)\b|(?:want|like) me to\b"),
    _cue("report back", "high", 1.0, r" and (?:send|tell|report|share|let me know|paste|note|list|flag|circulate|mark|quote|copy)\b"),
    _cue("breadth", "high", 1.0, r"\b(?:all (?:the|of)|every|each one|over (?:the )?(?:last|past)|for (?:an|a|one) (?:hour|day|week)|the full|across (?:all|the))\b"),
)


@dataclass(frozen=True)
class _CueBranch:
    """One top-level alternative of a cue's pattern: the cue matches where any of them does."""

    cue: EffortCue
    pattern: re.Pattern[str]


# A cue is searched branch by branch (see _alternatives): a branch with its own literals is
# gated by them alone, and a pattern that is one alternation, some branches anchored at the
# start, is tried at every position of the question, where each branch on its own is found
# by the engine's scan for its first characters or tried at the start only.
_BRANCHES: tuple[_CueBranch, ...] = tuple(
    _CueBranch(cue, re.compile(branch)) for cue in EFFORT_CUES for branch in _alternatives(cue.pattern.pattern)
)

# Most branches cannot match a given question: the gate finds in one pass which can.
_GATE = CueGate(_BRANCHES, pattern=lambda branch: branch.pattern)


def _normalized(question: str) -> str:
    question = question.strip().lower()
    if not question.isascii():  # a flag of the string: only then can it have curly quotes
        question = question.replace("’", "'").replace("‘", "'")
    question = without_list_marker(question)
    return question.lstrip("¿¡*_ ").rstrip()


def effort_scores(question: str) -> dict[str, float]:
    """The evidence for each effort level; `classify_effort` picks the largest."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str; got {type(question).__name__}")
    text = _normalized(question)
    scores = dict(_PRIOR)
    matched = None
    # In the order of EFFORT_CUES, a cue's branches together: the sums are the same, and a
    # cue's later branches are not searched once one has matched.
    for branch in _GATE.possible(text):
        cue = branch.cue
        if cue is not matched and branch.pattern.search(text):
            scores[cue.effort] += cue.weight
            matched = cue
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
