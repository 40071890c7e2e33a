"""What an LLM judge that gives no answer leaves behind: the rules' grade under the rules' name,
the turn pending, and `ppp-otel judge --pending` judging it again once the judge answers."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chat_server import ChatServer
from support import clear_llm_ambient
from ppp_otel import trajectory, turn
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier
from ppp_otel.analysis.preference_judge import LLMPreferenceJudge
from ppp_otel.analysis.questions import RULES_VERSION
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.cli import main

RULES = f"rules/{RULES_VERSION}"
DOWN = (500, b'{"error": {"message": "overloaded"}}')


@pytest.fixture(autouse=True)
def no_proxies_or_ambient_settings(monkeypatch):
    clear_llm_ambient(monkeypatch)


def record(db, **judges):
    processor = TrajectorySpanProcessor(db, flush_interval_ms=20, **judges)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with trajectory("spec", "agent", preferences=["question_with_joke"], tracer_provider=provider):
        with turn("The tests fail.", tracer_provider=provider) as t:
            t.respond("Which shell were you in?")
    provider.shutdown()


def rows(db, sql):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_an_effort_the_rules_gave_for_a_failing_llm_names_the_rules_and_leaves_the_turn_pending(tmp_path):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        record(db, classifier=LLMEffortClassifier(server.base_url, "judge"))
    assert rows(db, "SELECT effort_level, judge FROM trajectory_questions") == [("low", RULES)]
    assert rows(db, "SELECT judged_by FROM trajectory_turns") == [(None,)]


def test_a_preference_the_llm_judge_could_not_judge_leaves_the_turn_pending(tmp_path):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        record(db, preference_judge=LLMPreferenceJudge(server.base_url, "judge"))
    assert rows(db, "SELECT judged_by FROM trajectory_turns") == [(None,)]


def answering_once_up(answers):
    """The judges' answers: the endpoint down until ``answers["up"]`` is set."""
    def reply(message):
        if not answers.get("up"):
            return DOWN
        return "[Reward 0]\nno joke" if "The agent's message to you now" in message else "medium"
    return reply


def test_judge_pending_grades_again_the_questions_the_rules_graded_for_a_failing_llm(
        tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "runs.db")
    answers = {}
    with ChatServer(answering_once_up(answers)) as server:
        record(db, classifier=LLMEffortClassifier(server.base_url, "judge"))
        answers["up"] = True
        monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "judge")
        code = main(["judge", "--db", db, "--pending", "--judge", "llm", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["trajectories"] == 1 and summary["left_pending"] == 0
    assert rows(db, "SELECT effort_level, judge FROM trajectory_questions") == [("medium", "llm/judge")]
    assert rows(db, "SELECT judged_by FROM trajectory_turns") == [("llm/judge",)]


def judge_against(server, db, monkeypatch, capsys, *argv):
    monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "judge")
    code = main(["judge", "--db", db, "--judge", "llm", *argv])
    # "name   value" lines, the name of one or more words.
    return code, dict(re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines())


def test_judge_says_how_many_turns_it_left_pending_while_the_llm_gives_no_answer(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        record(db)
        _, fields = judge_against(server, db, monkeypatch, capsys)
    assert fields["left pending"].startswith("1 turns")
    assert rows(db, "SELECT judged_by FROM trajectory_turns") == [(None,)]


def test_judge_exits_with_status_1_when_it_left_turns_pending(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        record(db)
        code, _ = judge_against(server, db, monkeypatch, capsys)
    assert code == 1


def test_judge_says_how_many_requests_it_sent_and_what_the_preference_judge_left_unjudged(
        tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: (401, b'{"error": {"message": "Incorrect API key"}}')) as server:
        record(db)
        _, fields = judge_against(server, db, monkeypatch, capsys)
    assert fields["preferences unjudged"] == "1 (http_error 1)"
    assert fields["LLM requests"] == "2 sent (effort 1, preferences 1); 0 answered from the cache"


def test_judge_pending_marks_a_turn_judged_once_every_judgment_is_the_llms(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "runs.db")
    answers = {}
    with ChatServer(answering_once_up(answers)) as server:
        record(db, classifier=LLMEffortClassifier(server.base_url, "judge"),
               preference_judge=LLMPreferenceJudge(server.base_url, "judge"))
        answers["up"] = True
        monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "judge")
        monkeypatch.setenv("PPP_OTEL_CONFIG", str(tmp_path / "ppp.toml"))
        (tmp_path / "ppp.toml").write_text('[ppp.question_classifier]\nmethod = "llm"\npreference_judge = "llm"\n')
        assert main(["judge", "--db", db, "--pending"]) == 0
    assert rows(db, "SELECT judged_by FROM trajectory_turns") == [("llm/judge",)]
    assert rows(db, "SELECT effort_level, judge FROM trajectory_questions") == [("medium", "llm/judge")]
    assert rows(db, "SELECT preference_name, actual, judge FROM trajectory_violations") == [
        ("question_with_joke", "no joke", "llm/judge")]


def test_score_says_which_of_its_trajectories_have_turns_not_judged_yet(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        record(db, classifier=LLMEffortClassifier(server.base_url, "judge"))
    assert main(["score", "--db", db]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        "1 of these trajectories have turns not judged yet, so their scores may lack questions or violations: "
        "ppp-otel judge --pending judges them")


def test_a_pending_turn_delivered_again_keeps_one_copy_of_its_judgments(tmp_path):
    from ppp_otel.recorder import Recorder
    from ppp_otel.records import TrajectoryRecord, TurnRecord

    db = str(tmp_path / "runs.db")
    with ChatServer(lambda message: DOWN) as server:
        recorder = Recorder(db, flush_interval_ms=20, classifier=LLMEffortClassifier(server.base_url, "judge"))
        started = TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent", preferences=("no_commas",))
        asked = TurnRecord("a" * 32, "c" * 16, started.key, 1, "prompt", "Which shell, bash or zsh?")
        for _ in range(2):  # an OTLP retry, after the first judgment was left pending
            recorder.submit([started, asked])
            assert recorder.force_flush(30_000)
        recorder.shutdown()
    assert rows(db, "SELECT question_text, judge FROM trajectory_questions") == [("Which shell, bash or zsh?", RULES)]
    assert rows(db, "SELECT preference_name FROM trajectory_violations") == [("no_commas",)]
