"""An OpenAI-compatible chat-completions endpoint, as the LLM judges use it.

The effort classifier (:mod:`ppp_otel.analysis.llm_classifier`) and the
preference judge (:mod:`ppp_otel.analysis.preference_judge`) ask the same kind
of endpoint the same way: one system and one user message at temperature 0,
through the standard library only (recording never pulls in an HTTP client or
an SDK), with a cache of answers, a cap on requests in flight across every
caller, and a count of fallbacks by reason, each kind logged once.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Sequence, TypeVar

from ppp_otel.logs import LogLimiter
from ppp_otel.lru import LRUMap

T = TypeVar("T")
R = TypeVar("R")

# Why an answer came from the fallback instead of the endpoint.
HTTP_ERROR = "http_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
MALFORMED_RESPONSE = "malformed_response"
NONSENSE_ANSWER = "nonsense_answer"
FALLBACK_REASONS = (HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, MALFORMED_RESPONSE, NONSENSE_ANSWER)


#: Statuses worth asking again, as OpenAI's own clients do: a timeout on its side,
#: a conflict, a rate limit, an overloaded or failing server.
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: A Retry-After longer than this is not waited for: the answer falls back at once.
MAX_RETRY_AFTER_S = 60.0


class AnswerError(Exception):
    """The endpoint gave no usable answer; ``reason`` is one of :data:`FALLBACK_REASONS`.
    ``retry_after`` is how long the endpoint asked to wait before asking again (0 when it
    did not say), or None when asking again would not help."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.reason = reason
        self.retry_after = retry_after


def retry_after(headers: Any) -> float:
    """Seconds to wait by a response's ``retry-after-ms`` or ``Retry-After`` (seconds or an
    HTTP date); 0 when neither says."""
    for name, scale in (("retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name) if headers is not None else None
        if not value:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return 0.0


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


def post_chat(request: urllib.request.Request, url: str, timeout_s: float) -> bytes:
    """The response body of a chat-completions request; every failure as an AnswerError with its reason."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        wait = retry_after(error.headers) if error.code in RETRIED_STATUSES else None
        said = api_message(error)
        raise AnswerError(HTTP_ERROR, f"HTTP {error.code} from {url}" + (f": {said}" if said else ""),
                          wait) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            raise AnswerError(TIMEOUT, f"no answer from {url} within {timeout_s}s") from None
        raise AnswerError(CONNECTION_ERROR, f"cannot reach {url}: {error.reason}") from None
    except (TimeoutError, socket.timeout):
        raise AnswerError(TIMEOUT, f"no answer from {url} within {timeout_s}s") from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        # A reset connection, a truncated body, a URL urllib cannot use.
        raise AnswerError(CONNECTION_ERROR, f"cannot reach {url}: {error}") from None


def api_message(error: urllib.error.HTTPError) -> str:
    """What an error response says is wrong (OpenAI's ``{"error": {"message": ...}}``, a
    bare ``{"message": ...}`` or ``{"detail": ...}``), cut short; empty when it says nothing."""
    try:
        body = json.loads(error.read(16_384) or b"null")
    except (OSError, ValueError, http.client.HTTPException):
        return ""
    said = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(said, dict):
        said = said.get("message") or said.get("detail")
    return " ".join(said.split())[:200] if isinstance(said, str) else ""


def chat_content(raw: bytes, url: str) -> str:
    """The assistant message of a chat-completions response body."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise AnswerError(MALFORMED_RESPONSE, f"not a chat-completions response from {url}") from None
    if not isinstance(content, str):
        raise AnswerError(MALFORMED_RESPONSE, f"no message content in the response from {url}")
    # A reasoning model served as chat completions (DeepSeek-R1, Qwen3 through vLLM or
    # Ollama) may think aloud before answering: only what follows its thinking is the answer.
    return _THINKING.sub("", content, count=1)


_THINKING = re.compile(r"\A\s*<think>.*?</think>", re.DOTALL)


def endpoint_settings(
    base_url: str | None, model: str | None, api_key: str | None, *, needed_by: str
) -> tuple[str, str, str | None]:
    """The endpoint, model and key given, each left out taken from the environment
    (PPP_OTEL_LLM_BASE_URL or OPENAI_BASE_URL, PPP_OTEL_LLM_MODEL, PPP_OTEL_LLM_API_KEY
    or OPENAI_API_KEY); a ValueError naming what is missing and ``needed_by``
    when there is no endpoint or no model."""
    from ppp_otel.config.settings import llm_endpoint_from_env

    env_base_url, env_model, env_api_key = llm_endpoint_from_env()
    base_url, model, api_key = base_url or env_base_url, model or env_model, api_key or env_api_key
    missing = []
    if not base_url:
        missing.append("base_url (or PPP_OTEL_LLM_BASE_URL / OPENAI_BASE_URL)")
    if not model:
        missing.append("model (or PPP_OTEL_LLM_MODEL)")
    if missing:
        raise ValueError(f"{needed_by} needs {' and '.join(missing)}")
    return base_url, model, api_key


class ChatEndpoint:
    """One endpoint and model: the cache, the cap on requests in flight and the counters
    behind ``stats``. ``what`` names the user in error messages ("the LLM effort classifier")."""

    def __init__(
        self,
        what: str,
        base_url: str,
        model: str,
        api_key: str | None,
        *,
        timeout_s: float,
        max_concurrency: int,
        cache_size: int,
        logger: logging.Logger,
        max_retries: int = 2,
    ):
        if not base_url:
            raise ValueError(f"base_url is required for {what}")
        if not model:
            raise ValueError(f"model is required for {what}")
        if not timeout_s or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds; got {timeout_s!r}")
        if int(max_concurrency) < 1:
            raise ValueError(f"max_concurrency must be at least 1; got {max_concurrency!r}")
        if int(cache_size) < 0:
            raise ValueError(f"cache_size must not be negative; got {cache_size!r}")
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must not be negative; got {max_retries!r}")
        self.max_retries = int(max_retries)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.judge = f"llm/{model}"
        self.timeout_s = float(timeout_s)
        self.max_concurrency = int(max_concurrency)
        self._api_key = api_key
        self._cache: LRUMap[str, Any] = LRUMap(int(cache_size))
        # Caps requests in flight across every caller of this instance, not
        # only within one batch.
        self._in_flight = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._calls = 0
        self._cache_hits = 0
        self._fallbacks = {reason: 0 for reason in FALLBACK_REASONS}
        self._warned = LogLimiter.once(logger)

    def __repr__(self) -> str:
        # The key stays out of reprs, logs and tracebacks.
        return f"{type(self).__name__}(url={self.url!r}, model={self.model!r})"

    @property
    def stats(self) -> dict:
        """Requests sent, answers served from the cache, and fallbacks by reason."""
        with self._lock:
            return {"calls": self._calls, "cache_hits": self._cache_hits, "fallbacks": dict(self._fallbacks)}

    def _cached(self, key: str) -> Any:
        """The answer cached under ``key`` (counted as a hit), or None."""
        found = self._cache.get(key)
        if found is not None:
            with self._lock:
                self._cache_hits += 1
        return found

    def _chat(self, system: str, user: str) -> str:
        """The endpoint's answer to one exchange, asked again (up to max_retries times) after
        a rate limit or a server error; AnswerError when there is none."""
        request = chat_request(self.url, self.model, self._api_key, system, user)
        for attempt in range(self.max_retries + 1):
            with self._in_flight:
                with self._lock:
                    self._calls += 1
                try:
                    raw = post_chat(request, self.url, self.timeout_s)
                    break
                except AnswerError as error:
                    # The endpoint's wait, else OpenAI's clients' backoff (0.5 s, 1 s, ...).
                    wait = error.retry_after or 0.5 * 2 ** attempt
                    if error.retry_after is None or attempt == self.max_retries or wait > MAX_RETRY_AFTER_S:
                        raise
            time.sleep(wait)  # outside the cap: a waiting request holds no slot
        return chat_content(raw, self.url)

    def _map(self, ask: Callable[[T], R], items: Sequence[T], thread_name: str) -> list[R]:
        """``ask`` of each item, in order: at most max_concurrency at once, on threads of
        their own when there is more than one."""
        if len(items) <= 1:
            return [ask(item) for item in items]
        # Plain threads, not a ThreadPoolExecutor: the recorder's last judgments run while
        # the interpreter exits (its shutdown at exit), when executors refuse new work.
        results: list[Any] = [None] * len(items)
        errors: list[BaseException] = []
        indices = iter(range(len(items)))
        taking = threading.Lock()

        def work() -> None:
            while not errors:
                with taking:
                    i = next(indices, None)
                if i is None:
                    return
                try:
                    results[i] = ask(items[i])
                except BaseException as exc:  # raised in the caller's thread, as pool.map would
                    errors.append(exc)

        workers = [threading.Thread(target=work, name=f"{thread_name}-{n}", daemon=True)
                   for n in range(min(self.max_concurrency, len(items)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        return results

    def _count_fallback(self, error: AnswerError, message: str) -> None:
        """Count a fallback; the first of its kind is logged (``message % (reason, detail)``)."""
        with self._lock:
            self._fallbacks[error.reason] += 1
        self._warned(message, error.reason, str(error), key=error.reason)
