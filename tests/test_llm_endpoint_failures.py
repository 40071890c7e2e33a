"""A failing endpoint as the LLM judges meet it: a rate limit or a server error asked again, as
OpenAI's own clients do, before a judge falls back; an error named as the endpoint names it."""

from __future__ import annotations

import time

import pytest

from chat_server import ChatServer
from support import clear_llm_ambient
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier
from ppp_otel.analysis.preference_judge import LLMPreferenceJudge
from ppp_otel.model import TurnText

RATE_LIMITED = (429, b'{"error": {"message": "Rate limit reached", "type": "requests"}}', {"Retry-After": "1"})


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    clear_llm_ambient(monkeypatch)


def failing_first(times, failure, then):
    left = {"n": times}

    def reply(message):
        if left["n"]:
            left["n"] -= 1
            return failure
        return then
    return reply


def test_a_rate_limited_question_is_asked_again_after_the_retry_after_the_endpoint_gives():
    with ChatServer(failing_first(1, RATE_LIMITED, "high")) as server:
        classifier = LLMEffortClassifier(server.base_url, "judge")
        started = time.monotonic()
        assert classifier.classify("Could you grep the logs for this id?") == "high"
        waited = time.monotonic() - started
        assert len(server.requests) == 2
    assert waited >= 1.0  # never sooner than the endpoint asked
    assert classifier.stats["calls"] == 2 and sum(classifier.stats["fallbacks"].values()) == 0


def test_a_server_error_is_asked_again_before_the_preference_judge_gives_up():
    with ChatServer(failing_first(2, (503, b'{"error": {"message": "overloaded"}}'), "[Reward 0]\nno joke")) as server:
        judge = LLMPreferenceJudge(server.base_url, "judge")
        turn = TurnText(number=1, prompt="p", response="Which shell?", questions=("Which shell?",))
        [violation] = judge.judge_turn(["question_with_joke"], turn, [], None)
        assert len(server.requests) == 3
    assert violation.actual == "no joke"


def test_an_endpoint_still_failing_after_the_retries_falls_back_and_counts_every_request():
    with ChatServer(lambda message: (500, b"{}", {"Retry-After": "0"})) as server:
        classifier = LLMEffortClassifier(server.base_url, "judge", max_retries=1)
        assert classifier.classify("Could you grep the logs for this id?") == "high"  # the rules' grade
        assert len(server.requests) == 2
    assert classifier.stats["calls"] == 2 and classifier.stats["fallbacks"]["http_error"] == 1


def test_a_client_error_is_not_asked_again():
    with ChatServer(lambda message: (401, b'{"error": {"message": "Incorrect API key provided"}}')) as server:
        LLMEffortClassifier(server.base_url, "judge").classify("Which shell were you in?")
        assert len(server.requests) == 1


def test_a_retry_after_longer_than_a_minute_is_not_waited_for():
    with ChatServer(lambda message: (429, b"{}", {"Retry-After": "3600"})) as server:
        LLMEffortClassifier(server.base_url, "judge").classify("Which shell were you in?")
        assert len(server.requests) == 1


def test_max_retries_must_not_be_negative():
    with pytest.raises(ValueError, match="max_retries must not be negative"):
        LLMEffortClassifier("http://127.0.0.1:9/v1", "judge", max_retries=-1)


def test_an_http_error_names_what_the_endpoint_said_is_wrong(caplog):
    body = b'{"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}'
    with ChatServer(lambda message: (404, body)) as server:
        classifier = LLMEffortClassifier(server.base_url, "gpt-9")
        classifier.classify("Which shell were you in?")
    assert "HTTP 404 from " in caplog.text
    assert "/chat/completions: The model `gpt-9` does not exist" in caplog.text


def test_what_a_reasoning_model_thinks_before_it_answers_is_not_read_as_its_answer():
    thinking = "<think>\nIs it detailed? I could tag [Reward 0], but it names the file.\n</think>\n\n[Reward 1]"
    with ChatServer(lambda message: thinking) as server:
        judge = LLMPreferenceJudge(server.base_url, "judge")
        turn = TurnText(number=1, prompt="p", response="In tests/test_io.py, which shell?", questions=("Which?",))
        assert judge.judge_turn(["detailed_questions"], turn, [], None) == []
    assert sum(judge.stats["fallbacks"].values()) == 0


def test_a_reasoning_model_that_thinks_before_the_level_is_read_for_the_level():
    with ChatServer(lambda message: "<think>They know their shell.</think>\nlow") as server:
        classifier = LLMEffortClassifier(server.base_url, "judge")
        assert classifier.classify("Could you grep the logs for this id?") == "low"
    assert sum(classifier.stats["fallbacks"].values()) == 0
