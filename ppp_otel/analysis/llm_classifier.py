"""Grade question effort with an LLM behind any OpenAI-compatible endpoint.

Optional: the heuristic in `ppp_otel.analysis.effort` is the default and the
fallback. Only the standard library is used, so that recording never pulls in
an HTTP client or an SDK. Every failure of the endpoint falls back to the
heuristic (never to a silent "medium"), is counted in `stats`, and is logged
once per kind so that a dead endpoint does not flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ppp_otel.analysis.llm_endpoint import (
    FALLBACK_REASONS,
    NONSENSE_ANSWER,
    AnswerError,
    ChatEndpoint,
    endpoint_settings,
)
from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.analysis.effort import RULES_VERSION, classify_effort

__all__ = [
    "FALLBACK_REASONS",
    "HeuristicEffortClassifier",
    "LLMEffortClassifier",
    "make_effort_classifier",
]

logger = logging.getLogger(__name__)

METHODS = ("heuristic", "llm")

# The PPP paper's effort levels (Section 4.3), worded as its user simulator is
# told to grade its own answer (UserVille's cost tags: "used only the full
# request" / "refused, said I don't know, or gave a general answer" / "used
# information beyond the request: the file or function to edit, the source
# document").
SYSTEM_PROMPT = """\
You play the role of a human user answering an AI agent's question, and you \
grade how much effort answering it takes you. Answer with exactly one word: \
low, medium or high.

low: you can answer at once from what you already know: your own request \
(what you want, a choice, a preference), what you did or saw, your own setup \
("Which shell were you in when it failed?", "Keep the current names or \
rename them?", "Which Python version are you on?", "Should I push the fix?").
medium: you cannot really answer: you would say "I don't know" or give a \
general answer. Speculation, opinions on what you have not examined, vague or \
open questions, the agent's own job ("Do you have a feeling for why it \
broke?", "How would you design this module?", "Any other details?").
high: you would have to go and do work to answer: investigate the code, find \
where in the code something is, find a file or a document, run or measure \
something, look up documentation, ask someone else ("Where in the code is \
the retry set?", "Could you grep the server logs for this request id?", \
"Which page of the website mentions the ceremony?").

When you are told what you know (your full request), a question answered by \
it is low, one it does not answer and you could only guess at is medium, and \
one that needs information you would have to go and find is high.

Answer with the one word only."""


def user_message(question: str, context: str | None = None) -> str:
    """The question as the judge is shown it, after what the user knows when that is given."""
    if not context:
        return question
    return f"What you know (your full request):\n{context}\n\nThe agent asks: {question}"


def parse_effort(answer: str) -> str | None:
    """The effort level an answer names, or None when it names none.

    Strict on purpose: "High.", "**high**" and "`high`" are high, but "I'd say high" is
    not an answer.
    """
    word = answer.strip().rstrip(".").strip().strip("*_`'\"").strip().rstrip(".").lower()
    return word if word in EFFORT_LEVELS else None


class HeuristicEffortClassifier:
    """The rule-based grading, behind the same interface as the LLM one.

    The rules read the question alone; what the user knows is not used.
    """

    judge = f"rules/{RULES_VERSION}"

    def classify(self, question: str, context: str | None = None) -> str:
        return classify_effort(question)

    def classify_many(self, questions: Iterable[str], contexts: Iterable[str | None] | None = None) -> list[str]:
        return [classify_effort(question) for question in questions]

    @property
    def stats(self) -> dict:
        return {"calls": 0, "cache_hits": 0, "fallbacks": {reason: 0 for reason in FALLBACK_REASONS}}


class LLMEffortClassifier(ChatEndpoint):
    """Effort levels from a chat-completions endpoint, with a heuristic fallback."""

    #: classify_many takes what the user knows for each question.
    reads_context = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 10.0,
        max_concurrency: int = 4,
        cache_size: int = 10000,
        max_retries: int = 2,
        fallback: Callable[[str], str] = classify_effort,
    ):
        super().__init__(
            "the LLM effort classifier", base_url, model, api_key, timeout_s=timeout_s,
            max_concurrency=max_concurrency, cache_size=cache_size, logger=logger, max_retries=max_retries,
        )
        self._fallback = fallback
        self._fallback_judge = (HeuristicEffortClassifier.judge if fallback is classify_effort
                                else f"custom/{getattr(fallback, '__name__', type(fallback).__name__)}")

    def classify(self, question: str, context: str | None = None) -> str:
        """The question's level; ``context`` is what the user knows (their full request)."""
        return self._grade(question, context)[0]

    def classify_many(self, questions: Iterable[str], contexts: Iterable[str | None] | None = None) -> list[str]:
        """Each question's level, in order; at most max_concurrency requests at once.

        ``contexts``, when given, holds what the user knows for each question.
        """
        return [effort for effort, _ in self.grade_many(questions, contexts)]

    def grade_many(self, questions: Iterable[str],
                   contexts: Iterable[str | None] | None = None) -> list[tuple[str, str]]:
        """(level, the judge that gave it) of each question, as :meth:`classify_many`: the
        judge is this model's name, or the fallback's where the endpoint gave no answer."""
        questions = list(questions)
        for question in questions:
            if not isinstance(question, str):
                raise TypeError(f"questions must be str; got {type(question).__name__}")
        contexts = list(contexts) if contexts is not None else [None] * len(questions)
        if len(contexts) != len(questions):
            raise ValueError(f"{len(contexts)} contexts for {len(questions)} questions")
        # A question asked twice in one batch (with the same context) is sent once.
        unique = list(dict.fromkeys(zip(questions, contexts)))
        grades = self._map(lambda pair: self._grade(*pair), unique, "ppp-effort")
        by_pair = dict(zip(unique, grades))
        return [by_pair[pair] for pair in zip(questions, contexts)]

    def _grade(self, question: str, context: str | None) -> tuple[str, str]:
        if not isinstance(question, str):
            raise TypeError(f"question must be a str; got {type(question).__name__}")
        if context is not None and not isinstance(context, str):
            raise TypeError(f"context must be a str or None; got {type(context).__name__}")
        message = user_message(question, context)
        cached = self._cached(message)
        if cached is not None:
            return cached, self.judge
        try:
            effort = self._effort_from(self._chat(SYSTEM_PROMPT, message))
        except AnswerError as error:
            self._count_fallback(
                error,
                "LLM effort classifier fell back to the heuristic (%s): %s; "
                "further fallbacks of this kind are counted in stats, not logged",
            )
            return self._fallback(question), self._fallback_judge
        self._cache.put(message, effort)
        return effort, self.judge

    def _effort_from(self, content: str) -> str:
        effort = parse_effort(content)
        if effort is None:
            raise AnswerError(NONSENSE_ANSWER, f"{self.model} answered {content[:80]!r}, not low, medium or high")
        return effort


def make_effort_classifier(
    method: str = "heuristic",
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 10.0,
    max_concurrency: int = 4,
    cache_size: int = 10000,
):
    """The effort classifier named by `[ppp.question_classifier]`.

    For "llm", what is not given comes from the environment: the endpoint from
    PPP_OTEL_LLM_BASE_URL or OPENAI_BASE_URL, the model from PPP_OTEL_LLM_MODEL,
    the key from PPP_OTEL_LLM_API_KEY or OPENAI_API_KEY.
    """
    if method == "heuristic":
        return HeuristicEffortClassifier()
    if method != "llm":
        raise ValueError(f"unknown question classifier method {method!r}; expected one of {', '.join(METHODS)}")
    base_url, model, api_key = endpoint_settings(
        base_url, model, api_key, needed_by='[ppp.question_classifier] method = "llm"'
    )
    return LLMEffortClassifier(
        base_url,
        model,
        api_key,
        timeout_s=timeout_s,
        max_concurrency=max_concurrency,
        cache_size=cache_size,
    )
