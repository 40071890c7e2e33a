"""Grade question effort with an LLM behind any OpenAI-compatible endpoint.

Optional: the heuristic in `ppp_otel.analysis.questions` is the default and the
fallback. Only the standard library is used, so that recording never pulls in
an HTTP client or an SDK. Every failure of the endpoint falls back to the
heuristic (never to a silent "medium"), is counted in `stats`, and is logged
once per kind so that a dead endpoint does not flood the log.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ppp_otel.conventions import EFFORT_LEVELS
from ppp_otel.analysis.questions import RULES_VERSION, classify_effort
from ppp_otel.logs import LogLimiter
from ppp_otel.lru import LRUMap

__all__ = [
    "FALLBACK_REASONS",
    "HeuristicEffortClassifier",
    "LLMEffortClassifier",
    "make_effort_classifier",
]

logger = logging.getLogger(__name__)

METHODS = ("heuristic", "llm")

# Why an answer came from the fallback instead of the endpoint.
HTTP_ERROR = "http_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
MALFORMED_RESPONSE = "malformed_response"
NONSENSE_ANSWER = "nonsense_answer"
FALLBACK_REASONS = (HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, MALFORMED_RESPONSE, NONSENSE_ANSWER)

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


class _AnswerError(Exception):
    """The endpoint answered, but not with an effort level."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def parse_effort(answer: str) -> str | None:
    """The effort level an answer names, or None when it names none.

    Strict on purpose: "High." is high, but "I'd say high" is not an answer.
    """
    word = answer.strip().rstrip(".").strip().lower()
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


class LLMEffortClassifier:
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
        fallback: Callable[[str], str] = classify_effort,
    ):
        if not base_url:
            raise ValueError("base_url is required for the LLM effort classifier")
        if not model:
            raise ValueError("model is required for the LLM effort classifier")
        if not timeout_s or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds; got {timeout_s!r}")
        if int(max_concurrency) < 1:
            raise ValueError(f"max_concurrency must be at least 1; got {max_concurrency!r}")
        if int(cache_size) < 0:
            raise ValueError(f"cache_size must not be negative; got {cache_size!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.judge = f"llm/{model}"
        self.timeout_s = float(timeout_s)
        self.max_concurrency = int(max_concurrency)
        self._api_key = api_key
        self._fallback = fallback
        self._cache: LRUMap[str, str] = LRUMap(int(cache_size))  # question -> effort
        # Caps requests in flight across every caller of this instance, not
        # only within one classify_many.
        self._in_flight = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._calls = 0
        self._cache_hits = 0
        self._fallbacks = {reason: 0 for reason in FALLBACK_REASONS}
        self._warned = LogLimiter.once(logger)

    def __repr__(self) -> str:
        # The key stays out of reprs, logs and tracebacks.
        return f"LLMEffortClassifier(url={self.url!r}, model={self.model!r})"

    @property
    def stats(self) -> dict:
        """Requests sent, answers served from the cache, and fallbacks by reason."""
        with self._lock:
            return {"calls": self._calls, "cache_hits": self._cache_hits, "fallbacks": dict(self._fallbacks)}

    def classify(self, question: str, context: str | None = None) -> str:
        """The question's level; ``context`` is what the user knows (their full request)."""
        if not isinstance(question, str):
            raise TypeError(f"question must be a str; got {type(question).__name__}")
        if context is not None and not isinstance(context, str):
            raise TypeError(f"context must be a str or None; got {type(context).__name__}")
        message = user_message(question, context)
        cached = self._cache.get(message)
        if cached is not None:
            with self._lock:
                self._cache_hits += 1
            return cached
        try:
            effort = self._ask(message)
        except _AnswerError as error:
            return self._fall_back(question, error.reason, str(error))
        self._cache.put(message, effort)
        return effort

    def classify_many(self, questions: Iterable[str], contexts: Iterable[str | None] | None = None) -> list[str]:
        """Each question's level, in order; at most max_concurrency requests at once.

        ``contexts``, when given, holds what the user knows for each question.
        """
        questions = list(questions)
        for question in questions:
            if not isinstance(question, str):
                raise TypeError(f"questions must be str; got {type(question).__name__}")
        contexts = list(contexts) if contexts is not None else [None] * len(questions)
        if len(contexts) != len(questions):
            raise ValueError(f"{len(contexts)} contexts for {len(questions)} questions")
        # A question asked twice in one batch (with the same context) is sent once.
        unique = list(dict.fromkeys(zip(questions, contexts)))
        if len(unique) <= 1:
            efforts = [self.classify(q, ctx) for q, ctx in unique]
        else:
            with ThreadPoolExecutor(
                max_workers=min(self.max_concurrency, len(unique)), thread_name_prefix="ppp-effort"
            ) as pool:
                efforts = list(pool.map(lambda pair: self.classify(*pair), unique))
        by_pair = dict(zip(unique, efforts))
        return [by_pair[pair] for pair in zip(questions, contexts)]

    # -- the endpoint ----------------------------------------------------------

    def _ask(self, question: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": question},
                ],
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with self._in_flight:
            with self._lock:
                self._calls += 1
            raw = self._post(request)
        return self._effort_from(raw)

    def _post(self, request: urllib.request.Request) -> bytes:
        return post_chat(request, self.url, self.timeout_s)

    def _effort_from(self, raw: bytes) -> str:
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _AnswerError(MALFORMED_RESPONSE, f"not a chat-completions response from {self.url}") from None
        if not isinstance(content, str):
            raise _AnswerError(MALFORMED_RESPONSE, f"no message content in the response from {self.url}")
        effort = parse_effort(content)
        if effort is None:
            raise _AnswerError(NONSENSE_ANSWER, f"{self.model} answered {content[:80]!r}, not low, medium or high")
        return effort

    def _fall_back(self, question: str, reason: str, detail: str) -> str:
        with self._lock:
            self._fallbacks[reason] += 1
        self._warned(
            "LLM effort classifier fell back to the heuristic (%s): %s; "
            "further fallbacks of this kind are counted in stats, not logged",
            reason,
            detail,
            key=reason,
        )
        return self._fallback(question)


def post_chat(request: urllib.request.Request, url: str, timeout_s: float) -> bytes:
    """The response body of a chat-completions request; every failure as an _AnswerError with its reason."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise _AnswerError(HTTP_ERROR, f"HTTP {error.code} from {url}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            raise _AnswerError(TIMEOUT, f"no answer from {url} within {timeout_s}s") from None
        raise _AnswerError(CONNECTION_ERROR, f"cannot reach {url}: {error.reason}") from None
    except (TimeoutError, socket.timeout):
        raise _AnswerError(TIMEOUT, f"no answer from {url} within {timeout_s}s") from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        # A reset connection, a truncated body, a URL urllib cannot use.
        raise _AnswerError(CONNECTION_ERROR, f"cannot reach {url}: {error}") from None


def chat_request(url: str, model: str, api_key: str | None, system: str, user: str) -> urllib.request.Request:
    body = json.dumps({
        "model": model,
        "temperature": 0,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def chat_content(raw: bytes, url: str) -> str:
    """The assistant message of a chat-completions response body."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise _AnswerError(MALFORMED_RESPONSE, f"not a chat-completions response from {url}") from None
    if not isinstance(content, str):
        raise _AnswerError(MALFORMED_RESPONSE, f"no message content in the response from {url}")
    return content


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
    from ppp_otel.config.settings import llm_endpoint_from_env

    env_base_url, env_model, env_api_key = llm_endpoint_from_env()
    base_url = base_url or env_base_url
    model = model or env_model
    api_key = api_key or env_api_key
    missing = []
    if not base_url:
        missing.append("base_url (or PPP_OTEL_LLM_BASE_URL / OPENAI_BASE_URL)")
    if not model:
        missing.append("model (or PPP_OTEL_LLM_MODEL)")
    if missing:
        raise ValueError(f"question classifier method 'llm' needs {' and '.join(missing)}")
    return LLMEffortClassifier(
        base_url,
        model,
        api_key,
        timeout_s=timeout_s,
        max_concurrency=max_concurrency,
        cache_size=cache_size,
    )
