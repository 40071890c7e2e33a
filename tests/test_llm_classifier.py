"""The LLM effort classifier against a local chat-completions server."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from chat_server import ChatServer
from ppp_otel.analysis.llm_classifier import (
    HeuristicEffortClassifier,
    LLMEffortClassifier,
    make_effort_classifier,
)
from ppp_otel.analysis.questions import classify_effort

# The heuristic grades these differently from "medium", so a fallback to the
# heuristic cannot be mistaken for a silent default.
HIGH_BY_HEURISTIC = "Could you investigate why the nightly job hangs?"
LOW_BY_HEURISTIC = "Should I push the fix now?"


@pytest.fixture(autouse=True)
def no_proxies_or_ambient_settings(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("PPP_OTEL_LLM_BASE_URL", "OPENAI_BASE_URL", "PPP_OTEL_LLM_MODEL", "PPP_OTEL_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def answering(content):
    return lambda question: content


def classifier_for(server, **options):
    options.setdefault("timeout_s", 5.0)
    return LLMEffortClassifier(server.base_url, "grader", "sk-test", **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- answers -----------------------------------------------------------------


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_the_model_answer_is_the_effort_level(level):
    with ChatServer(answering(level)) as server:
        assert classifier_for(server).classify("What is your budget?") == level


@pytest.mark.parametrize("answer", ["High.", "  LOW\n", "Medium", "high."])
def test_case_whitespace_and_a_trailing_period_are_tolerated(answer):
    with ChatServer(answering(answer)) as server:
        assert classifier_for(server).classify("What is your budget?") == answer.strip().rstrip(".").lower()


def test_the_request_is_a_chat_completion_for_the_model_with_the_question():
    with ChatServer(answering("low")) as server:
        classifier_for(server).classify("Tabs or spaces?")
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "grader"
    assert request["body"]["messages"][-1] == {"role": "user", "content": "Tabs or spaces?"}
    system = request["body"]["messages"][0]["content"]
    assert all(level in system for level in ("low", "medium", "high"))


def test_the_api_key_is_sent_as_a_bearer_token():
    with ChatServer(answering("low")) as server:
        classifier_for(server).classify("Tabs or spaces?")
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_no_authorization_header_is_sent_without_a_key():
    with ChatServer(answering("low")) as server:
        LLMEffortClassifier(server.base_url, "grader").classify("Tabs or spaces?")
    assert "Authorization" not in server.requests[0]["headers"]


def test_the_key_does_not_appear_in_the_repr():
    assert "sk-test" not in repr(LLMEffortClassifier("http://127.0.0.1:1/v1", "grader", "sk-test"))


@pytest.mark.parametrize("answer, level", [("**High**", "high"), ("`low`", "low"), ('"medium"', "medium"),
                                           ("*Low.*", "low"), ("'high'.", "high")])
def test_a_level_in_markdown_or_quotes_is_the_level(answer, level):
    with ChatServer(answering(answer)) as server:
        assert classifier_for(server).classify("What is your budget?") == level


# -- fallbacks ---------------------------------------------------------------


@pytest.mark.parametrize("answer", ["I would say high", "very high", "", "3", "low or medium"])
def test_a_nonsense_answer_falls_back_to_the_heuristic(answer):
    with ChatServer(answering(answer)) as server:
        classifier = classifier_for(server)
        assert classifier.classify(HIGH_BY_HEURISTIC) == "high"
    assert classifier.stats["fallbacks"]["nonsense_answer"] == 1


def test_an_http_error_falls_back_to_the_heuristic():
    with ChatServer(answering((500, b'{"error": "boom"}'))) as server:
        classifier = classifier_for(server)
        assert classifier.classify(LOW_BY_HEURISTIC) == "low"
    assert classifier.stats["fallbacks"]["http_error"] == 1


def test_a_server_slower_than_the_timeout_falls_back_to_the_heuristic():
    with ChatServer(answering("medium"), delay_s=2.0) as server:
        classifier = classifier_for(server, timeout_s=0.2)
        assert classifier.classify(HIGH_BY_HEURISTIC) == "high"
    assert classifier.stats["fallbacks"]["timeout"] == 1


def test_malformed_json_falls_back_to_the_heuristic():
    with ChatServer(answering((200, b"{not json"))) as server:
        classifier = classifier_for(server)
        assert classifier.classify(LOW_BY_HEURISTIC) == "low"
    assert classifier.stats["fallbacks"]["malformed_response"] == 1


def test_json_that_is_not_a_completion_falls_back_to_the_heuristic():
    with ChatServer(answering((200, b'{"choices": []}'))) as server:
        classifier = classifier_for(server)
        assert classifier.classify(LOW_BY_HEURISTIC) == "low"
    assert classifier.stats["fallbacks"]["malformed_response"] == 1


def test_a_refused_connection_falls_back_to_the_heuristic():
    classifier = LLMEffortClassifier(f"http://127.0.0.1:{free_port()}/v1", "grader", timeout_s=5.0)
    assert classifier.classify(HIGH_BY_HEURISTIC) == "high"
    assert classifier.stats["fallbacks"]["connection_error"] == 1


def test_a_custom_fallback_is_used_instead_of_the_heuristic():
    classifier = LLMEffortClassifier(
        f"http://127.0.0.1:{free_port()}/v1", "grader", timeout_s=5.0, fallback=lambda question: "low"
    )
    assert classifier.classify(HIGH_BY_HEURISTIC) == "low"


def test_a_fallback_is_not_cached_so_a_recovered_endpoint_is_asked_again():
    answers = iter(["nonsense", "medium"])
    with ChatServer(lambda question: next(answers)) as server:
        classifier = classifier_for(server)
        classifier.classify(HIGH_BY_HEURISTIC)
        assert classifier.classify(HIGH_BY_HEURISTIC) == "medium"
    assert len(server.requests) == 2


def test_each_kind_of_failure_is_logged_once(caplog):
    with ChatServer(answering("nonsense")) as server:
        classifier = classifier_for(server)
        with caplog.at_level(logging.WARNING, logger="ppp_otel.analysis.llm_classifier"):
            for question in ("One?", "Two?", "Three?"):
                classifier.classify(question)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nonsense_answer" in warnings[0].getMessage()
    assert classifier.stats["fallbacks"]["nonsense_answer"] == 3


# -- cache -------------------------------------------------------------------


def test_a_cached_question_makes_no_second_request():
    with ChatServer(answering("low")) as server:
        classifier = classifier_for(server)
        assert classifier.classify("Tabs or spaces?") == "low"
        assert classifier.classify("Tabs or spaces?") == "low"
    assert len(server.requests) == 1
    assert classifier.stats["calls"] == 1
    assert classifier.stats["cache_hits"] == 1


def test_the_cache_forgets_the_least_recently_used_question_beyond_its_size():
    with ChatServer(answering("low")) as server:
        classifier = classifier_for(server, cache_size=2)
        for question in ("A?", "B?", "A?", "C?", "A?", "B?"):
            classifier.classify(question)
    # A stays warm; B was evicted by C and is asked again.
    assert [request["body"]["messages"][-1]["content"] for request in server.requests] == ["A?", "B?", "C?", "B?"]


def test_a_cache_size_of_zero_caches_nothing():
    with ChatServer(answering("low")) as server:
        classifier = classifier_for(server, cache_size=0)
        classifier.classify("Tabs or spaces?")
        classifier.classify("Tabs or spaces?")
    assert len(server.requests) == 2


# -- many at once ------------------------------------------------------------


def test_classify_many_keeps_the_order_of_the_questions():
    questions = [f"Question {i}?" for i in range(12)]
    levels = ("low", "medium", "high")
    with ChatServer(lambda question: levels[int(question.split()[1][:-1]) % 3], delay_s=0.02) as server:
        efforts = classifier_for(server, max_concurrency=4).classify_many(questions)
    assert efforts == [levels[i % 3] for i in range(12)]


def test_classify_many_never_has_more_requests_in_flight_than_the_cap():
    with ChatServer(answering("low"), delay_s=0.2) as server:
        classifier_for(server, max_concurrency=3).classify_many([f"Question {i}?" for i in range(12)])
    assert 1 < server.max_in_flight <= 3


def test_the_cap_holds_across_threads_sharing_one_classifier():
    with ChatServer(answering("low"), delay_s=0.1) as server:
        classifier = classifier_for(server, max_concurrency=2)
        threads = [
            threading.Thread(target=classifier.classify_many, args=([f"T{t} Q{i}?" for i in range(4)],))
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert server.max_in_flight <= 2


def test_a_question_repeated_in_one_batch_is_sent_once():
    with ChatServer(answering("low")) as server:
        efforts = classifier_for(server).classify_many(["Same?", "Same?", "Other?", "Same?"])
    assert efforts == ["low"] * 4
    assert len(server.requests) == 2


def test_classify_many_of_nothing_is_nothing():
    assert LLMEffortClassifier("http://127.0.0.1:1/v1", "grader").classify_many([]) == []


# -- settings and the factory -----------------------------------------------


@pytest.mark.parametrize(
    "options", [{"timeout_s": 0}, {"timeout_s": -1}, {"max_concurrency": 0}, {"cache_size": -1}]
)
def test_impossible_settings_are_refused(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        LLMEffortClassifier("http://127.0.0.1:1/v1", "grader", **options)


def test_the_default_method_is_the_heuristic():
    classifier = make_effort_classifier()
    assert isinstance(classifier, HeuristicEffortClassifier)
    questions = [HIGH_BY_HEURISTIC, LOW_BY_HEURISTIC]
    assert classifier.classify_many(questions) == [classify_effort(q) for q in questions]
    assert classifier.classify(LOW_BY_HEURISTIC) == "low"


def test_an_unknown_method_is_named_in_the_error():
    with pytest.raises(ValueError, match="'gpt-magic'"):
        make_effort_classifier("gpt-magic")


def test_the_llm_method_without_an_endpoint_names_base_url():
    with pytest.raises(ValueError, match="base_url"):
        make_effort_classifier("llm", model="grader")


def test_the_llm_method_without_a_model_names_model():
    with pytest.raises(ValueError, match="model") as raised:
        make_effort_classifier("llm", base_url="http://127.0.0.1:1/v1")
    assert "base_url" not in str(raised.value)


def test_the_llm_method_takes_its_settings_from_the_arguments():
    classifier = make_effort_classifier(
        "llm", base_url="http://127.0.0.1:1/v1/", model="grader", timeout_s=3.0, max_concurrency=2, cache_size=5
    )
    assert isinstance(classifier, LLMEffortClassifier)
    assert (classifier.url, classifier.model, classifier.timeout_s, classifier.max_concurrency) == (
        "http://127.0.0.1:1/v1/chat/completions",
        "grader",
        3.0,
        2,
    )


def test_the_ppp_environment_variables_come_before_the_openai_ones(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/openai")
    monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "grader")
    assert make_effort_classifier("llm").url == "http://127.0.0.1:1/openai/chat/completions"
    monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", "http://127.0.0.1:1/ppp")
    assert make_effort_classifier("llm").url == "http://127.0.0.1:1/ppp/chat/completions"


def test_the_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("PPP_OTEL_LLM_API_KEY", "sk-ppp")
    with ChatServer(answering("low")) as server:
        make_effort_classifier("llm", base_url=server.base_url, model="grader").classify("Tabs or spaces?")
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-ppp"


# -- in the recorder -----------------------------------------------------------

def test_a_configured_llm_classifier_grades_the_questions_of_recorded_turns(tmp_path):
    import sqlite3

    import ppp_otel

    db = tmp_path / "llm.db"
    config = tmp_path / "ppp.toml"
    with ChatServer(answering("high")) as server:
        config.write_text(
            '[ppp.question_classifier]\nmethod = "llm"\n'
            f'base_url = "{server.base_url}"\nmodel = "grader"\napi_key = "sk-test"\n'
        )
        provider = ppp_otel.register(db, config=config, phoenix=False, set_global=False, env={})
        with ppp_otel.trajectory("s", "a", tracer_provider=provider):
            with ppp_otel.turn("p", tracer_provider=provider) as t:
                t.respond(LOW_BY_HEURISTIC)  # extracted, then graded by the model, not the rules
        provider.shutdown()
        assert [r["body"]["model"] for r in server.requests] == ["grader"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT question_text, effort_level FROM trajectory_questions").fetchall() == [
            (LOW_BY_HEURISTIC, "high")
        ]


def test_the_llm_method_without_an_endpoint_names_the_setting_that_asked_for_it():
    with pytest.raises(ValueError, match=r'^\[ppp.question_classifier\] method = "llm" needs base_url'):
        make_effort_classifier("llm", model="grader")


def test_judge_llm_without_an_endpoint_says_where_the_endpoint_comes_from(tmp_path, capsys):
    from ppp_otel.cli import main

    assert main(["judge", "--db", str(tmp_path / "none.db"), "--judge", "llm"]) == 2
    assert capsys.readouterr().err.strip() == (
        'ppp-otel: error: --judge llm takes its endpoint from the config: [ppp.question_classifier] '
        'method = "llm" needs base_url (or PPP_OTEL_LLM_BASE_URL / OPENAI_BASE_URL) and model (or PPP_OTEL_LLM_MODEL)')
