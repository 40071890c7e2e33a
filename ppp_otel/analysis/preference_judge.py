"""Judge interaction preferences with an LLM behind any OpenAI-compatible endpoint.

The PPP paper's user simulator judges most preferences itself: shown the
agent's question, it tags its answer ``[Reward 1]`` (the question follows the
preference) or ``[Reward 0]`` by a preference-specific criterion (the paper's
Table 4). :class:`LLMPreferenceJudge` asks an LLM the same thing, with the
same criteria, for the preferences that need judgment (is the question
detailed, simple, a real blocker, funny) and, optionally, for the ones rules
check too.

Like the LLM effort classifier, it is a
:class:`~ppp_otel.analysis.llm_endpoint.ChatEndpoint`: the standard library only,
a cache of answers, a cap on requests in flight, and a fallback when the
endpoint fails: a preference it cannot judge is left unjudged (no violation is
invented), and each fallback is counted in ``stats`` by reason and logged once
per kind.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from ppp_otel.analysis.llm_endpoint import NONSENSE_ANSWER, AnswerError, ChatEndpoint, endpoint_settings
from ppp_otel.model import TurnText, Violation
from ppp_otel.analysis.preferences import get_preference, parse_preference

__all__ = ["CRITERIA", "LLM_JUDGED", "LLMPreferenceJudge", "make_preference_judge", "parse_reward"]

logger = logging.getLogger(__name__)

#: (what the user prefers, the reward rule) per preference, from the paper's Table 4,
#: in the words its user simulator is given.
CRITERIA: dict[str, tuple[str, str]] = {
    "short_questions": (
        "The user prefers concise questions; very short and to the point.",
        "If the question is one short sentence, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "detailed_questions": (
        "The user prefers detailed questions with sufficient context and explanation.",
        "If the question is detailed and well contextualized, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "multiple_choice": (
        "The user only answers selection questions (A/B/C). If not a selection question, "
        "they respond with \"I don't know.\"",
        "If the question provides options, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "simple_questions": (
        "The user is an amateur and only answers simple, general questions. If a question is "
        "professional, they respond \"I don't know.\"",
        "If the question is simple/common-sense, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "max_questions_per_turn": (
        "The user prefers only one question at a time.",
        "If only one question is asked, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "ask_only_on_blockers": (
        "The agent should first try solving on its own and only ask when facing a real blocker.",
        "If the question shows prior effort and identifies a real blocker, tag [Reward 1]; "
        "otherwise, [Reward 0].",
    ),
    "italian_only": (
        "The user can only speak Italian, so the agent question must be in Italian.",
        "If the agent question is Italian, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "multilingual": (
        "The user likes multi-language questions using at least five different languages.",
        "If the question uses at least five different languages, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "english_all_caps": (
        "The entire question should be in English capital letters only.",
        "If the question is in English and all capitalized, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "no_commas": (
        "The question must avoid the use of any commas.",
        "If the question has no commas, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "json_only": (
        "The question must be fully wrapped in JSON format.",
        "If the question is wrapped in JSON format, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "question_with_joke": (
        "The user loves jokes, so the question must include a humorous joke.",
        "If the question includes a humorous joke, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "code_snippet_with_reference": (
        "The question must include at least three lines of code or document snippets, with file or "
        "webpage references marked.",
        "If snippets with references are included, tag [Reward 1]; otherwise, [Reward 0].",
    ),
    "exact_sentences": (
        "The question must contain exactly three sentences.",
        "If the question has three sentences, tag [Reward 1]; otherwise, [Reward 0].",
    ),
}

#: The preferences only a judge can check; the judge takes them by default.
LLM_JUDGED = frozenset({"detailed_questions", "simple_questions", "ask_only_on_blockers", "question_with_joke"})

SYSTEM_PROMPT = """\
You play the role of a human user reading an AI agent's message that asks you \
questions. Your behavior is dictated by a specific user preference, and you \
evaluate the agent's message by a reward rule.

Your preference: {preference}
Reward rule: {rule}

Answer with exactly one line: [Reward 1] when the message follows the rule, \
[Reward 0] when it does not. You may add a reason of at most twelve words on \
a second line. Nothing else."""

_REWARD_TAG = re.compile(r"\[Reward ([01])\]")
_TAGS = re.compile(r"\[(?:Reward [01]|Cost \d)\]")
_HISTORY_TURNS = 3
_MAX_CHARS = 4000


def parse_reward(answer: str) -> tuple[int, str] | None:
    """(1 or 0, the reason given) from an answer, or None when it names neither tag.

    Read as the paper's UserVille reads its simulator's answers: a ``[Reward 0]``
    anywhere in the answer counts (after prose, beside a ``[Cost N]`` tag, even next
    to a ``[Reward 1]``); otherwise a ``[Reward 1]`` anywhere.
    """
    tags = set(_REWARD_TAG.findall(answer))
    if not tags:
        return None
    said = [line.strip() for line in _TAGS.sub("", answer).splitlines()]
    return (0 if "0" in tags else 1), " ".join(line for line in said if line.strip(" .")).strip()[:120]


def _cut(text: str, limit: int = _MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def user_message(turn: TurnText, history: Sequence[TurnText], user_context: str | None) -> str:
    parts = []
    if user_context:
        parts.append(f"What you asked the agent for:\n{_cut(user_context)}")
    earlier = list(history)[-_HISTORY_TURNS:]
    if earlier:
        parts.append("The agent's earlier messages:\n" + "\n---\n".join(_cut(t.response, 1000) for t in earlier))
    parts.append(f"The agent's message to you now:\n{_cut(turn.response)}")
    return "\n\n".join(parts)


class LLMPreferenceJudge(ChatEndpoint):
    """Preference judgments from a chat-completions endpoint; see the module docstring.

    ``preferences`` are the names it judges: by default the four only a judge
    can check; ``"all"`` adds every preference that has a paper criterion.
    """

    reads_context = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        preferences: Iterable[str] | str = LLM_JUDGED,
        timeout_s: float = 10.0,
        max_concurrency: int = 4,
        cache_size: int = 10000,
        max_retries: int = 2,
    ):
        super().__init__(
            "the LLM preference judge", base_url, model, api_key, timeout_s=timeout_s,
            max_concurrency=max_concurrency, cache_size=cache_size, logger=logger, max_retries=max_retries,
        )
        names = set(CRITERIA) if preferences == "all" else set(preferences)
        unknown = names - set(CRITERIA)
        if unknown:
            raise ValueError(f"no judging criterion for {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(CRITERIA))}")
        self.preferences = frozenset(names)

    def handles(self, name: str) -> bool:
        return name in self.preferences

    def judge_turn(
        self, specs: Sequence[str], turn: TurnText, history: Sequence[TurnText], user_context: str | None
    ) -> list[Violation]:
        """The violations of ``specs`` (those this judge handles) in a turn that asks questions."""
        return self.judge_turn_with_gaps(specs, turn, history, user_context)[0]

    def judge_turn_with_gaps(
        self, specs: Sequence[str], turn: TurnText, history: Sequence[TurnText], user_context: str | None
    ) -> tuple[list[Violation], list[str]]:
        """As :meth:`judge_turn`, and the names it could not judge (the endpoint gave no answer)."""
        if not turn.questions:
            return [], []  # the paper judges asks only
        names = [parse_preference(spec)[0] for spec in specs]
        names = [name for name in dict.fromkeys(names) if self.handles(name)]
        message = user_message(turn, history, user_context)
        verdicts = self._map(lambda name: self._verdict(name, message), names, "ppp-preference")
        violations, unjudged = [], []
        for name, verdict in zip(names, verdicts):
            if verdict is None:
                unjudged.append(name)
            if verdict is None or verdict[0] == 1:
                continue
            preference, rule = CRITERIA[name]
            violations.append(Violation(
                name, preference, verdict[1] or "the judge tagged [Reward 0]",
                _severity(name), source="detected", judge=self.judge,
            ))
        return violations, unjudged

    def _verdict(self, name: str, message: str) -> tuple[int, str] | None:
        preference, rule = CRITERIA[name]
        key = f"{name}\x00{message}"
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            content = self._chat(SYSTEM_PROMPT.format(preference=preference, rule=rule), message)
            verdict = parse_reward(content)
            if verdict is None:
                raise AnswerError(NONSENSE_ANSWER, f"{self.model} answered {content[:80]!r}, not [Reward 1] or [Reward 0]")
        except AnswerError as error:
            self._count_fallback(
                error,
                "LLM preference judge could not judge (%s): %s; the preference is left unjudged; "
                "further failures of this kind are counted in stats, not logged",
            )
            return None
        self._cache.put(key, verdict)
        return verdict


def _severity(name: str) -> str:
    try:
        return get_preference(name).severity
    except KeyError:
        # The judgment-only preferences: the paper's -0.1 per rejected ask is a minor one,
        # its -0.5 a major one.
        return "major" if name == "question_with_joke" else "minor"


def make_preference_judge(
    method: str = "rules",
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 10.0,
    max_concurrency: int = 4,
    cache_size: int = 10000,
) -> LLMPreferenceJudge | None:
    """The preference judge ``[ppp.question_classifier] preference_judge`` names: ``rules``
    (None: the rules alone), ``llm`` (the four judgment preferences) or ``llm_all``
    (every preference with a paper criterion). The endpoint, model and key come
    from the arguments or the same environment variables as the effort classifier."""
    if method == "rules":
        return None
    if method not in ("llm", "llm_all"):
        raise ValueError(f"unknown preference judge {method!r}; expected rules, llm or llm_all")
    base_url, model, api_key = endpoint_settings(
        base_url, model, api_key, needed_by=f'[ppp.question_classifier] preference_judge = "{method}"')
    return LLMPreferenceJudge(
        base_url, model, api_key, preferences="all" if method == "llm_all" else LLM_JUDGED,
        timeout_s=timeout_s, max_concurrency=max_concurrency, cache_size=cache_size,
    )

