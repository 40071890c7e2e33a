"""Judgment as its own stage: turns are written first, judged after, and can be judged again."""

from __future__ import annotations

import json
import os
import sqlite3
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chat_server import ChatServer
import backends
from backends import run_sql
from support import wait_for
from ppp_otel import trajectory, turn
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.cli import main
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier
from ppp_otel.analysis.preference_judge import LLMPreferenceJudge, parse_reward
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.analysis.questions import RULES_VERSION
from ppp_otel.records import TurnRecord

RULES = f"rules/{RULES_VERSION}"


@pytest.fixture(autouse=True)
def no_proxies_or_ambient_settings(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "PPP_OTEL_LLM_BASE_URL", "OPENAI_BASE_URL", "PPP_OTEL_LLM_MODEL", "PPP_OTEL_LLM_API_KEY",
                 "OPENAI_API_KEY", "PPP_OTEL_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(store_url):
    """The judgment stage's tests run on a SQLite file and on a PostgreSQL store."""
    return store_url


def rows(db_path, sql, params=()):
    return [tuple(row) for row in run_sql(str(db_path), sql, params)]


def pipeline(db_path, **options):
    options.setdefault("flush_interval_ms", 20)
    processor = TrajectorySpanProcessor(db_path, **options)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider, processor


def record(provider, responses, *, preferences=None, user_context=None, spec="spec"):
    with trajectory(spec, "agent", preferences=preferences, user_context=user_context,
                    tracer_provider=provider):
        for response in responses:
            with turn("prompt", tracer_provider=provider) as t:
                t.respond(response)


# --- the stage ---------------------------------------------------------------------------

def test_a_question_records_which_judge_graded_it(db_path):
    provider, processor = pipeline(db_path)
    record(provider, ["Which Python version were you running?"])
    assert processor.force_flush(10_000) and processor.last_flush == "done"
    provider.shutdown()
    assert rows(db_path, "SELECT question_text, effort_level, source, judge FROM trajectory_questions") == [
        ("Which Python version were you running?", "low", "extracted", RULES)]
    assert rows(db_path, "SELECT judged_by FROM trajectory_turns") == [(RULES,)]


def test_a_question_the_agent_graded_itself_names_no_judge(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("prompt", tracer_provider=provider) as t:
            t.respond("Where in the code is the retry set?")
            t.question("Where in the code is the retry set?", effort="medium")
            t.question("Should I push the fix?")
    provider.shutdown()
    assert rows(db_path, "SELECT question_text, effort_level, judge FROM trajectory_questions ORDER BY id") == [
        ("Where in the code is the retry set?", "medium", None),
        ("Should I push the fix?", "low", RULES),
    ]


def test_a_detected_violation_records_its_judge_and_a_reported_one_none(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", preferences=["no_questions", "no_commas"], tracer_provider=provider):
        with turn("prompt", tracer_provider=provider) as t:
            t.respond("Which file, please?")
            t.violation("no_commas", "no commas", "one comma", "major")
    provider.shutdown()
    assert sorted(rows(db_path, "SELECT preference_name, source, judge FROM trajectory_violations")) == [
        ("no_commas", "explicit", None), ("no_questions", "detected", RULES)]


def test_with_the_rules_a_turn_is_judged_in_the_transaction_that_writes_it(db_path):
    provider, processor = pipeline(db_path, flush_interval_ms=5, buffer_size=3)
    unjudged_seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            unjudged_seen.append(rows(db_path, "SELECT count(*) FROM trajectory_turns WHERE judged_by IS NULL")[0][0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        record(provider, [f"Which file holds setting {i}?" for i in range(30)])
        assert processor.force_flush(10_000)
    finally:
        done.set()
        watcher.join()
        provider.shutdown()
    assert rows(db_path, "SELECT count(*) FROM trajectory_questions WHERE judge = ?", (RULES,)) == [(30,)]
    assert set(unjudged_seen) == {0}
    assert processor.stats["judged_turns"] == 30


def test_a_turn_whose_judgment_fails_is_written_as_reported_and_left_pending(db_path):
    provider, processor = pipeline(db_path)

    def broken(records):
        raise RuntimeError("a detector broke")

    processor.sink.judgment.analyzer.analyze = broken
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("prompt", tracer_provider=provider) as t:
            t.respond("Should I push the fix?")
            t.question("Should I push the fix?")
    provider.shutdown()
    assert rows(db_path, "SELECT judged_by FROM trajectory_turns") == [(None,)]
    assert rows(db_path, "SELECT question_text, effort_level, judge FROM trajectory_questions") == [
        ("Should I push the fix?", "low", RULES)]
    assert processor.stats["judge_errors"] >= 1


def test_a_stalled_llm_endpoint_does_not_delay_a_single_write(db_path):
    release = threading.Event()

    def stalled(question):
        release.wait(60)
        return "high"

    with ChatServer(stalled) as server:
        classifier = LLMEffortClassifier(server.base_url, "slow-judge", timeout_s=60)
        provider, processor = pipeline(db_path, classifier=classifier)
        record(provider, ["Should I push the fix?"])
        # The judge is now inside its request, which does not come back.
        assert wait_for(lambda: server.requests)
        record(provider, [f"Question {i}: which branch were you on?" for i in range(20)], spec="later")

        assert processor.force_flush(2_000) is False
        assert processor.last_flush == "judgment"  # every write is done; only judgment waits
        assert rows(db_path, "SELECT count(*) FROM trajectory_turns") == [(21,)]
        assert rows(db_path, "SELECT count(*) FROM trajectory_turns WHERE judged_by IS NULL") == [(21,)]
        assert processor.stats["judgment_queued"] >= 1

        release.set()
        assert processor.force_flush(30_000) and processor.last_flush == "done"
        provider.shutdown()
    assert rows(db_path, "SELECT DISTINCT judged_by FROM trajectory_turns") == [("llm/slow-judge",)]
    assert rows(db_path, "SELECT DISTINCT effort_level, judge FROM trajectory_questions") == [
        ("high", "llm/slow-judge")]


def test_the_llm_judge_is_shown_what_the_user_knows(db_path):
    with ChatServer(lambda message: "low") as server:
        provider, processor = pipeline(db_path, classifier=LLMEffortClassifier(server.base_url, "judge"))
        record(provider, ["Should the column stay 'time'?"], user_context="Removing a column from a TimeSeries "
               "raises a misleading error; keep 'time' first.")
        provider.shutdown()
        [request] = server.requests
    content = request["body"]["messages"][-1]["content"]
    assert content.startswith("What you know (your full request):\nRemoving a column")
    assert content.endswith("The agent asks: Should the column stay 'time'?")
    assert rows(db_path, "SELECT user_context IS NOT NULL FROM trajectories") == [(1,)]


def test_an_endpoint_that_fails_leaves_the_rules_grade_and_counts_it(db_path):
    with ChatServer(lambda message: (500, b"{}")) as server:
        classifier = LLMEffortClassifier(server.base_url, "judge", timeout_s=5)
        provider, processor = pipeline(db_path, classifier=classifier)
        record(provider, ["Could you grep the server logs for this request id?"])
        provider.shutdown()
    assert rows(db_path, "SELECT effort_level FROM trajectory_questions") == [("high",)]
    assert classifier.stats["fallbacks"]["http_error"] == 1


def test_a_trajectory_delivered_twice_counts_its_conversation_violation_once(db_path):
    from ppp_otel.recorder import Recorder
    from ppp_otel.records import TrajectoryRecord

    recorder = Recorder(str(db_path), flush_interval_ms=20)
    ended = TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent", preferences=("min_questions",),
                             ended_at="2026-01-01T00:00:01.000Z")
    turns = [TurnRecord("a" * 32, f"{n:016x}", ended.key, n, "prompt", text)
             for n, text in ((1, "Which branch?"), (2, "Done."))]
    for _ in range(2):  # an OTLP retry
        recorder.submit([ended, *turns])
        assert recorder.force_flush(10_000)
    recorder.shutdown()
    assert rows(db_path, "SELECT preference_name FROM trajectory_violations") == [("min_questions",)]


def test_min_questions_is_judged_when_the_trajectory_ends(db_path):
    provider, processor = pipeline(db_path)
    record(provider, ["Which branch?", "Done."], preferences=["min_questions"])
    provider.shutdown()
    assert rows(db_path, """SELECT t.turn_number, v.preference_name, v.actual FROM trajectory_violations v
                            JOIN trajectory_turns t ON t.id = v.turn_id""") == [
        (2, "min_questions", "1 asking turn")]



def test_a_conversation_violation_the_agent_reported_on_the_last_turn_is_not_found_again(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", preferences=["min_questions"], tracer_provider=provider):
        with turn("prompt", tracer_provider=provider) as t:
            t.respond("Done.")
            t.violation("min_questions", "at least 3 asks", "none", "critical")
    provider.shutdown()
    assert rows(db_path, "SELECT preference_name, source FROM trajectory_violations") == [
        ("min_questions", "explicit")]

# --- the LLM preference judge ----------------------------------------------------------

def test_the_preference_judge_flags_what_it_tags_reward_0_and_names_itself(db_path):
    def judge(message):
        now = message.split("The agent's message to you now:\n")[-1]
        return "[Reward 1]" if "cache" in now else "[Reward 0]\nno joke anywhere"

    with ChatServer(judge) as server:
        preference_judge = LLMPreferenceJudge(server.base_url, "pref-judge")
        provider, processor = pipeline(db_path, preference_judge=preference_judge)
        record(provider, ["Which shell were you in?", "Why did the developer go broke? He used up all "
                          "his cache. Which shell were you in, by the way?"],
               preferences=["question_with_joke", "no_commas"])
        provider.shutdown()
        system = server.requests[0]["body"]["messages"][0]["content"]
    assert "The user loves jokes, so the question must include a humorous joke." in system
    assert "If the question includes a humorous joke, tag [Reward 1]" in system
    found = rows(db_path, """SELECT t.turn_number, v.preference_name, v.actual, v.judge FROM trajectory_violations v
                             JOIN trajectory_turns t ON t.id = v.turn_id ORDER BY t.turn_number, v.id""")
    assert found == [(1, "question_with_joke", "no joke anywhere", "llm/pref-judge"),
                     (2, "no_commas", "1 comma", RULES)]


def test_a_preference_judge_that_cannot_answer_invents_no_violation(db_path):
    with ChatServer(lambda message: "I think the joke is mediocre") as server:
        preference_judge = LLMPreferenceJudge(server.base_url, "pref-judge")
        provider, processor = pipeline(db_path, preference_judge=preference_judge)
        record(provider, ["Which shell were you in?"], preferences=["question_with_joke"])
        provider.shutdown()
    assert rows(db_path, "SELECT count(*) FROM trajectory_violations") == [(0,)]
    assert preference_judge.stats["fallbacks"]["nonsense_answer"] == 1


@pytest.mark.parametrize("answer, verdict", [
    ("[Reward 1]", (1, "")), ("[Reward 0]\ntoo long", (0, "too long")), ("[Reward 0].", (0, "")),
    ("Reward 0", None), ("yes", None), ("", None), ("[Recompensa 0]", None),
])
def test_an_answer_without_a_reward_tag_is_no_verdict(answer, verdict):
    assert parse_reward(answer) == verdict


@pytest.mark.parametrize("answer, verdict", [
    ("Nah, that question gives me no context at all.\n[Cost 3]\n[Reward 0]",
     (0, "Nah, that question gives me no context at all.")),
    ("Sure, it's main. [Reward 1]", (1, "Sure, it's main.")),
    ("[Reward 1]\n[Reward 0]", (0, "")),
])
def test_a_reward_tag_anywhere_in_the_answer_counts_as_the_papers_simulator_counts_it(answer, verdict):
    assert parse_reward(answer) == verdict


def test_the_preference_judge_refuses_a_preference_without_a_criterion():
    with pytest.raises(ValueError, match="no judging criterion for max_words"):
        LLMPreferenceJudge("http://127.0.0.1:9/v1", "m", preferences=["max_words"])


# --- ppp-otel judge ----------------------------------------------------------------------

def old_rules_database(path) -> None:
    """A database as the recorder wrote it before judgment was a stage (schema 4, the old rules)."""
    conn = sqlite3.connect(path)
    for migration in schema.MIGRATIONS[:4]:
        migration(conn)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("""INSERT INTO trajectories (id, spec_id, agent_name, created_at, trace_id, span_id, preferences)
                    VALUES (1, 'spec', 'agent', '2026-11-01T00:00:00Z', 'aa', 'bb', '["no_questions"]')""")
    conn.execute("""INSERT INTO trajectories (id, spec_id, agent_name, created_at, trace_id, span_id)
                    VALUES (2, 'other', 'agent', '2026-11-20T00:00:00Z', 'cc', 'dd')""")
    conn.execute("""INSERT INTO trajectory_turns (id, trajectory_id, turn_number, prompt, response, trace_id, span_id)
                    VALUES (1, 1, 1, 'p', 'Which Python version were you running? Where in the code is the retry set?',
                            'aa', 't1')""")
    conn.execute("""INSERT INTO trajectory_turns (id, trajectory_id, turn_number, prompt, response, trace_id, span_id)
                    VALUES (2, 1, 2, 'p', 'Done.', 'aa', 't2')""")
    conn.execute("""INSERT INTO trajectory_turns (id, trajectory_id, turn_number, prompt, response, trace_id, span_id)
                    VALUES (3, 2, 1, 'p', 'What error message do you get?', 'cc', 't3')""")
    # The old rules: a fact the user has not said was medium; where in the code, medium too.
    conn.executemany(
        "INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source) VALUES (?, ?, ?, ?)",
        [(1, "Which Python version were you running?", "medium", "extracted"),
         (1, "Where in the code is the retry set?", "medium", "extracted"),
         (2, "Shall I close the ticket?", "low", "explicit"),
         (3, "What error message do you get?", "medium", "extracted")])
    conn.executemany(
        "INSERT INTO trajectory_violations (turn_id, preference_name, expected, actual, severity, source)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(1, "no_questions", "no questions", "2 questions", "critical", "detected"),
         (2, "no_questions", "no questions", "asked by hand", "critical", "explicit")])
    conn.commit()
    conn.close()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_judge_brings_a_database_recorded_with_the_old_rules_up_to_the_current_ones(tmp_path, capsys):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    code, out, _ = run(capsys, "judge", "--db", db, "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["judge"], summary["trajectories"], summary["turns"]) == (RULES, 2, 3)
    assert summary["changed"] == {"medium->low": 2, "medium->high": 1}
    assert rows(db, "SELECT turn_id, question_text, effort_level, source, judge FROM trajectory_questions "
                    "ORDER BY turn_id, question_text") == [
        (1, "Where in the code is the retry set?", "high", "extracted", RULES),
        (1, "Which Python version were you running?", "low", "extracted", RULES),
        (2, "Shall I close the ticket?", "low", "explicit", None),  # the agent's own: kept as it was
        (3, "What error message do you get?", "low", "extracted", RULES),
    ]
    assert sorted(rows(db, "SELECT turn_id, source, actual, judge FROM trajectory_violations")) == [
        (1, "detected", "2 questions", RULES), (2, "explicit", "asked by hand", None)]
    assert rows(db, "SELECT DISTINCT judged_by FROM trajectory_turns") == [(RULES,)]


def test_judge_takes_a_spec_and_a_date(tmp_path, capsys):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    _, out, _ = run(capsys, "judge", "--db", db, "--spec", "spec", "--json")
    assert json.loads(out)["trajectories"] == 1
    _, out, _ = run(capsys, "judge", "--db", db, "--since", "2026-11-10", "--json")
    assert json.loads(out)["trajectories"] == 1
    _, out, _ = run(capsys, "judge", "--db", db, "--since", "2027-01-01")
    assert "trajectories" in out and " 0" in out


def test_judging_twice_changes_nothing_the_second_time(tmp_path, capsys):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    run(capsys, "judge", "--db", db)
    before = rows(db, "SELECT turn_id, question_text, effort_level, judge FROM trajectory_questions ORDER BY 1, 2")
    _, out, _ = run(capsys, "judge", "--db", db, "--json")
    assert json.loads(out)["changed"] == {}
    assert rows(db, "SELECT turn_id, question_text, effort_level, judge FROM trajectory_questions ORDER BY 1, 2") == before


def test_judging_again_reads_a_question_asked_through_a_tool_as_recording_did(db_path, capsys):
    provider, processor = pipeline(db_path)
    tracer = provider.get_tracer("agent")
    call = {"openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Removing a column fails."}
    with trajectory("spec", "agent", preferences=["no_commas"], tracer_provider=provider):
        with tracer.start_as_current_span("ChatCompletion", attributes={
                **call, "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "ask_question",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments":
                    json.dumps({"query": "Which column, time, or flux?"})}):
            pass
        with tracer.start_as_current_span("ChatCompletion", attributes={
                **call, "llm.output_messages.0.message.content": "Fixed, and tested."}):
            pass
    provider.shutdown()
    recorded = rows(db_path, "SELECT preference_name, actual FROM trajectory_violations")
    assert recorded == [("no_commas", "2 commas")]  # the question's, not the reply's one
    run(capsys, "judge", "--db", str(db_path))
    assert rows(db_path, "SELECT preference_name, actual FROM trajectory_violations") == recorded


def test_judge_llm_uses_the_configured_endpoint(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    with ChatServer(lambda message: "medium") as server:
        monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "judge-model")
        code, out, _ = run(capsys, "judge", "--db", db, "--judge", "llm", "--json")
    assert code == 0 and json.loads(out)["judge"] == "llm/judge-model"
    assert rows(db, "SELECT DISTINCT effort_level, judge FROM trajectory_questions WHERE source = 'extracted'") == [
        ("medium", "llm/judge-model")]


def test_judge_pending_judges_only_turns_left_unjudged(tmp_path, capsys):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    schema.connect(db).close()  # migrated: the old turns count as judged by the old rules
    conn = sqlite3.connect(db)
    conn.execute("UPDATE trajectory_turns SET judged_by = NULL WHERE id = 3")
    conn.commit()
    conn.close()
    _, out, _ = run(capsys, "judge", "--db", db, "--pending", "--json")
    assert json.loads(out)["trajectories"] == 1
    assert rows(db, "SELECT effort_level FROM trajectory_questions WHERE turn_id = 3") == [("low",)]
    assert rows(db, "SELECT effort_level FROM trajectory_questions WHERE turn_id = 1 ORDER BY id") == [
        ("medium",), ("medium",)]


def test_the_preference_judge_caches_and_bounds_its_requests():
    from ppp_otel.model import TurnText

    with ChatServer(lambda message: "[Reward 1]", delay_s=0.05) as server:
        judge = LLMPreferenceJudge(server.base_url, "pref-judge", preferences="all", max_concurrency=2)
        asking = TurnText(1, "p", "Which file, please?", ("Which file, please?",))
        specs = ["question_with_joke", "no_commas", "json_only", "detailed_questions", "simple_questions"]
        assert judge.judge_turn(specs, asking, [], None) == []
        assert judge.judge_turn(specs, asking, [], None) == []
        assert server.max_in_flight <= 2
    assert judge.stats["calls"] == 5 and judge.stats["cache_hits"] == 5


def test_a_turn_that_asks_nothing_is_not_sent_to_the_preference_judge():
    from ppp_otel.model import TurnText

    judge = LLMPreferenceJudge("http://127.0.0.1:9/v1", "pref-judge")
    assert judge.judge_turn(["question_with_joke"], TurnText(1, "p", "Done.", ()), [], None) == []
    assert judge.stats["calls"] == 0


def test_judgment_far_behind_leaves_later_turns_pending_and_judge_pending_catches_up(db_path):
    from ppp_otel.analysis.judgment_stage import JudgmentStage, as_written, rejudge
    from ppp_otel.records import TrajectoryRecord, TurnRecord
    release = threading.Event()

    class Held:
        """An effort classifier that answers only when the test lets it."""

        judge = "held/1"

        def classify_many(self, questions, contexts=None):
            release.wait(30)
            return ["low"] * len(questions)

    conn = backends.connect(db_path)
    trajectory_record = TrajectoryRecord("t" * 32, "s" * 16, "spec", "agent")
    turns = [TurnRecord("t" * 32, f"{i:016x}", trajectory_record.key, i + 1, "p", f"Which branch {i}?")
             for i in range(3)]
    backends.write_all(conn, as_written([trajectory_record, *turns]))
    stage = JudgmentStage(str(db_path), Held(), max_pending_turns=2)
    for record in turns:
        stage.submit([record])
    assert stage.stats["judgment_deferred"] == 1
    release.set()
    assert stage.flush(30)
    stage.shutdown(5)
    assert rows(db_path, "SELECT turn_number, judged_by FROM trajectory_turns ORDER BY turn_number") == [
        (1, "held/1"), (2, "held/1"), (3, None)]
    summary = rejudge(conn, pending_only=True)
    conn.close()
    assert summary.trajectories == 1
    assert rows(db_path, "SELECT count(*) FROM trajectory_turns WHERE judged_by IS NULL") == [(0,)]


def test_judge_on_a_postgresql_store_judges_its_trajectories_and_changes_nothing_the_second_time(
        postgres_url, capsys):
    provider, processor = pipeline(postgres_url)
    record(provider, ["Done. Which Python version were you running?", "Fixed it."])
    provider.shutdown()
    code, out, _ = run(capsys, "judge", "--db", postgres_url, "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["judge"], summary["trajectories"], summary["turns"]) == (RULES, 1, 2)
    before = rows(postgres_url, "SELECT question_text, effort_level, judge FROM trajectory_questions ORDER BY 1")
    assert before == [("Which Python version were you running?", "low", RULES)]
    _, out, _ = run(capsys, "judge", "--db", postgres_url, "--json")
    assert json.loads(out)["changed"] == {}
    assert rows(postgres_url, "SELECT question_text, effort_level, judge FROM trajectory_questions ORDER BY 1") == before


def _open_files(prefix: str) -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            names.append(target)
    return names


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_judging_in_the_writers_batch_leaves_no_file_open_after_shutdown(tmp_path):
    db = str(tmp_path / "runs.db")
    provider, processor = pipeline(db)
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("prompt", tracer_provider=provider) as t:
            t.respond("Which branch?")
    provider.shutdown()
    # A new recorder meets the stored trajectory's turns: the judge reads the trajectory back.
    processor = TrajectorySpanProcessor(db, flush_interval_ms=20)
    key = rows(db, "SELECT trace_id, span_id FROM trajectories")[0]
    processor.submit([TurnRecord(key[0], "f" * 16, key, 2, "prompt", "And which file?")])
    processor.shutdown()
    assert rows(db, "SELECT judged_by FROM trajectory_turns WHERE turn_number = 2") == [(RULES,)]
    assert _open_files(db) == []


def test_judge_says_how_many_questions_fell_back_to_the_rules_when_the_llm_is_unreachable(tmp_path, capsys,
                                                                                            monkeypatch):
    db = str(tmp_path / "old.db")
    old_rules_database(db)
    monkeypatch.setenv("PPP_OTEL_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # the discard port: refused
    monkeypatch.setenv("PPP_OTEL_LLM_MODEL", "judge")
    code, out, _ = run(capsys, "judge", "--db", db, "--judge", "llm")
    assert code == 1  # its turns are left pending
    line = next(line for line in out.splitlines() if line.startswith("fell back to rules"))
    assert line.split(None, 4)[4] == "3 questions (connection_error 3)"


class _CleanupMeanwhile:
    """A judge slow enough that a cleanup deletes every trajectory while it grades the first."""

    judge = "custom/cleanup-meanwhile"

    def __init__(self, db: str):
        self.db = db

    def classify_many(self, questions, contexts=None):
        from ppp_otel.storage.sqlite.retention import cleanup

        cleanup(self.db, older_than_days=0)
        return ["low"] * len(questions)


def test_trajectories_a_cleanup_deletes_while_they_are_judged_again_are_skipped(tmp_path):
    from ppp_otel.analysis.judgment_stage import rejudge

    db = str(tmp_path / "old.db")
    old_rules_database(db)
    summary = rejudge(db, classifier=_CleanupMeanwhile(db))
    assert (summary.trajectories, summary.turns) == (0, 0)
    assert rows(db, "SELECT count(*) FROM trajectory_questions") == [(0,)]
