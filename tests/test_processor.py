"""TrajectorySpanProcessor: spans in, SQLite rows out, off the app thread."""

import asyncio
import sqlite3
import threading
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ppp_otel import TrajectorySpanProcessor, conventions as c, trajectory, turn
from support import wait_for
from ppp_otel.records import TrajectoryRecord, TurnRecord


def pipeline(db_path, **options):
    processor = TrajectorySpanProcessor(db_path, **options)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider, processor


def rows(db_path, sql):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def count(db_path, table):
    return rows(db_path, f"SELECT count(*) FROM {table}")[0][0]


def test_a_trajectory_and_its_turns_land_in_sqlite(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("spec-1", "agent-a", "run-1", tracer_provider=provider):
        with turn("fix the bug", tracer_provider=provider) as t:
            t.respond("done", token_count=7)
    provider.shutdown()
    assert rows(db_path, "SELECT spec_id, agent_name, run_id FROM trajectories") == [("spec-1", "agent-a", "run-1")]
    assert rows(db_path, "SELECT turn_number, prompt, response, token_count FROM trajectory_turns") == [
        (1, "fix the bug", "done", 7)
    ]


def test_stats_count_one_written_trajectory_for_one_recorded_trajectory(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec-1", "agent-a", tracer_provider=provider):
        with turn("fix the bug", tracer_provider=provider) as t:
            t.respond("done")
    provider.shutdown()
    assert processor.stats["written_trajectories"] == 1 == count(db_path, "trajectories")


def test_stats_count_a_trajectorys_end_as_an_update_of_its_start(db_path):
    provider, processor = pipeline(db_path)
    for agent in ("agent-a", "agent-b"):
        with trajectory("spec-1", agent, tracer_provider=provider):
            pass
    provider.shutdown()
    assert (processor.stats["written_trajectories"], processor.stats["trajectory_updates"]) == (2, 2)


def test_turn_latency_is_the_span_duration(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider):
            time.sleep(0.05)
    provider.shutdown()
    (latency,), = rows(db_path, "SELECT latency_ms FROM trajectory_turns")
    assert latency >= 50


def test_turns_at_any_depth_below_the_trajectory_belong_to_it(db_path):
    provider, _ = pipeline(db_path)
    tracer = provider.get_tracer("agent")
    with trajectory("s", "a", tracer_provider=provider):
        with tracer.start_as_current_span("plan"):
            with tracer.start_as_current_span("tool-call"):
                with turn("deep", tracer_provider=provider):
                    pass
    provider.shutdown()
    assert rows(db_path, "SELECT t.prompt, j.spec_id FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id") == [
        ("deep", "s")
    ]


def test_spans_outside_any_trajectory_are_not_recorded(db_path):
    provider, processor = pipeline(db_path)
    with turn("stray", tracer_provider=provider):
        pass
    provider.shutdown()
    assert count(db_path, "trajectory_turns") == 0
    assert processor.stats["rejected"] == 0


def test_turns_are_numbered_in_start_order_even_when_they_end_out_of_order(db_path):
    provider, _ = pipeline(db_path)
    tracer = provider.get_tracer("agent")
    with trajectory("s", "a", tracer_provider=provider):
        first = tracer.start_span("ppp.turn", attributes={c.INPUT_VALUE: "first"})
        second = tracer.start_span("ppp.turn", attributes={c.INPUT_VALUE: "second"})
        second.end()
        first.end()
    provider.shutdown()
    assert rows(db_path, "SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number") == [
        (1, "first"), (2, "second")
    ]


def test_an_explicit_turn_number_is_kept(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", number=7, tracer_provider=provider):
            pass
    provider.shutdown()
    assert rows(db_path, "SELECT turn_number FROM trajectory_turns") == [(7,)]


def test_a_span_carrying_a_spec_id_opens_a_trajectory(db_path):
    provider, _ = pipeline(db_path)
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("my-agent-run", attributes={c.SPEC_ID: "s9", c.AGENT_NAME: "x"}):
        with turn("p", tracer_provider=provider):
            pass
    provider.shutdown()
    assert rows(db_path, "SELECT spec_id, agent_name FROM trajectories") == [("s9", "x")]
    assert count(db_path, "trajectory_turns") == 1


def test_an_openinference_llm_span_inside_a_trajectory_is_a_turn(db_path):
    provider, _ = pipeline(db_path)
    tracer = provider.get_tracer("openinference")
    with trajectory("s", "a", tracer_provider=provider):
        with tracer.start_as_current_span("ChatCompletion", attributes={c.SPAN_KIND: "LLM"}) as span:
            span.set_attribute("llm.input_messages.0.message.role", "system")
            span.set_attribute("llm.input_messages.0.message.content", "be brief")
            span.set_attribute("llm.input_messages.1.message.role", "user")
            span.set_attribute("llm.input_messages.1.message.content", "what is 2+2")
            span.set_attribute("llm.output_messages.0.message.role", "assistant")
            span.set_attribute("llm.output_messages.0.message.content", "4")
            span.set_attribute("llm.token_count.prompt", 10)
            span.set_attribute("llm.token_count.completion", 1)
    provider.shutdown()
    assert rows(db_path, "SELECT turn_number, prompt, response, token_count FROM trajectory_turns") == [
        (1, "what is 2+2", "4", 11)
    ]


def test_an_llm_span_inside_a_turn_is_part_of_that_turn_not_another(db_path):
    provider, _ = pipeline(db_path)
    tracer = provider.get_tracer("openinference")
    with trajectory("s", "a", tracer_provider=provider):
        with turn("outer", tracer_provider=provider):
            with tracer.start_as_current_span("ChatCompletion", attributes={c.SPAN_KIND: "LLM"}):
                pass
    provider.shutdown()
    assert rows(db_path, "SELECT prompt FROM trajectory_turns") == [("outer",)]


def test_questions_and_violations_are_rows_of_their_turn(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("ok")
            t.question("Which branch?", "low")
            t.violation("no_commas", "no commas", "2 commas", "major")
    provider.shutdown()
    assert rows(db_path, "SELECT q.question_text, q.effort_level, t.prompt FROM trajectory_questions q "
                "JOIN trajectory_turns t ON t.id = q.turn_id") == [("Which branch?", "low", "p")]
    assert rows(db_path, "SELECT preference_name, expected, actual, severity FROM trajectory_violations") == [
        ("no_commas", "no commas", "2 commas", "major")
    ]


def test_questions_are_extracted_and_classified_when_none_were_given(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("I can do that. Do you prefer JSON or YAML? Could you investigate why the cache misses?")
    provider.shutdown()
    assert rows(db_path, "SELECT question_text, effort_level, source FROM trajectory_questions ORDER BY id") == [
        ("Do you prefer JSON or YAML?", "low", "extracted"),
        ("Could you investigate why the cache misses?", "high", "extracted"),
    ]


def test_a_question_without_effort_is_classified(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.question("Would you like me to continue?")
    provider.shutdown()
    assert rows(db_path, "SELECT effort_level, source FROM trajectory_questions") == [("low", "explicit")]


def test_preference_violations_are_detected_for_an_unannotated_agent(db_path):
    provider, _ = pipeline(db_path)
    with trajectory("s", "a", preferences=["no_questions"], tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("Should I proceed?")
    provider.shutdown()
    assert rows(db_path, "SELECT preference_name, source FROM trajectory_violations") == [("no_questions", "detected")]


def test_a_lone_turn_is_written_within_the_flush_interval_without_shutdown(db_path):
    provider, processor = pipeline(db_path, buffer_size=100, flush_interval_ms=100)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("only one", tracer_provider=provider):
            pass
        deadline = time.monotonic() + 10
        while count(db_path, "trajectory_turns") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count(db_path, "trajectory_turns") == 1  # the trajectory is still open
    provider.shutdown()


def test_force_flush_returns_once_everything_queued_before_it_is_committed(db_path):
    provider, processor = pipeline(db_path, buffer_size=1000, flush_interval_ms=60_000)
    with trajectory("s", "a", tracer_provider=provider):
        for i in range(25):
            with turn(f"p{i}", tracer_provider=provider):
                pass
        assert processor.force_flush(10_000)
        assert count(db_path, "trajectory_turns") == 25
    provider.shutdown()


def test_shutdown_writes_everything_queued(db_path):
    provider, processor = pipeline(db_path, buffer_size=1000, flush_interval_ms=60_000)
    for n in range(20):
        with trajectory("s", f"agent-{n}", tracer_provider=provider):
            for i in range(10):
                with turn(f"p{i}", tracer_provider=provider):
                    pass
    provider.shutdown()
    assert count(db_path, "trajectories") == 20
    assert count(db_path, "trajectory_turns") == 200
    assert processor.stats["written_turns"] == 200


def test_shutdown_twice_is_harmless_and_later_spans_are_ignored(db_path):
    provider, processor = pipeline(db_path)
    processor.shutdown()
    processor.shutdown()
    with trajectory("s", "a", tracer_provider=provider):
        with turn("late", tracer_provider=provider):
            pass
    assert processor.force_flush(100) in (True, False)


def test_one_bad_record_is_counted_and_the_rest_of_its_batch_is_written(db_path):
    provider, processor = pipeline(db_path, buffer_size=100, flush_interval_ms=60_000)
    tracer = provider.get_tracer("agent")
    with trajectory("s", "a", tracer_provider=provider):
        with turn("good 1", tracer_provider=provider):
            pass
        with tracer.start_as_current_span("ppp.turn", attributes={c.TURN_NUMBER: "not a number"}):
            pass
        with turn("good 2", tracer_provider=provider):
            pass
    provider.shutdown()
    assert rows(db_path, "SELECT prompt FROM trajectory_turns ORDER BY turn_number") == [("good 1",), ("good 2",)]
    assert processor.stats["rejected"] == 1
    assert "ppp.turn.number" in processor.stats["last_error"]


def test_two_turns_with_the_same_number_keep_the_first_and_count_the_second(db_path):
    provider, processor = pipeline(db_path, buffer_size=100, flush_interval_ms=60_000)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("first", number=1, tracer_provider=provider):
            pass
        with turn("clash", number=1, tracer_provider=provider):
            pass
        with turn("third", number=3, tracer_provider=provider):
            pass
    provider.shutdown()
    assert rows(db_path, "SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number") == [
        (1, "first"), (3, "third")
    ]
    assert processor.stats["rejected"] == 1


def test_the_same_span_delivered_twice_is_stored_once(db_path):
    processor = TrajectorySpanProcessor(db_path)
    trajectory_record = TrajectoryRecord("a" * 32, "b" * 16, "s", "agent")
    turn_record = TurnRecord("a" * 32, "c" * 16, trajectory_record.key, 1, "p", "r")
    processor.submit([trajectory_record, turn_record])
    processor.force_flush()
    processor.submit([trajectory_record, TurnRecord("a" * 32, "c" * 16, trajectory_record.key, 1, "p", "r")])
    processor.shutdown()
    assert count(db_path, "trajectories") == 1
    assert count(db_path, "trajectory_turns") == 1
    assert processor.stats["duplicates"] == 1


def test_a_full_queue_drops_the_newest_and_counts_every_drop(db_path):
    # Another connection holds the write lock, so the writer cannot drain the queue.
    provider, processor = pipeline(db_path, buffer_size=5, max_queue_size=20, busy_timeout_ms=10, on_full="drop")
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with trajectory("s", "a", tracer_provider=provider):
        for i in range(100):
            with turn(f"p{i}", tracer_provider=provider):
                pass
    dropped_while_locked = processor.stats["dropped"]
    blocker.execute("COMMIT")
    blocker.close()
    provider.shutdown()
    stats = processor.stats
    # The queue, and at most two takes in the writer's hands (behind a backlog a take is up to the whole queue).
    assert dropped_while_locked >= 100 + 2 - 20 - 20 * 2
    assert stats["dropped"] == dropped_while_locked
    # Every record (100 turns, the trajectory's start and its end) is written or counted as dropped.
    assert stats["enqueued"] + stats["dropped"] == 102
    assert stats["written_turns"] + stats["written_trajectories"] + stats["trajectory_updates"] == stats["enqueued"]
    assert count(db_path, "trajectory_turns") == stats["written_turns"]


# 1e300 ms: longer than a thread can wait, which is forever all the same.
@pytest.mark.parametrize("block_timeout_ms", [10_000, 1e300])
def test_on_full_block_waits_for_room_instead_of_dropping(db_path, block_timeout_ms):
    provider, processor = pipeline(db_path, buffer_size=5, max_queue_size=5, on_full="block",
                                   block_timeout_ms=block_timeout_ms)
    with trajectory("s", "a", tracer_provider=provider):
        for i in range(200):
            with turn(f"p{i}", tracer_provider=provider):
                pass
    provider.shutdown()
    assert (processor.stats["dropped"], processor.stats["internal_errors"]) == (0, 0)
    assert count(db_path, "trajectory_turns") == 200


def test_a_full_queue_waits_for_room_by_default(db_path):
    processor = TrajectorySpanProcessor(db_path)
    assert (processor.on_full, processor.block_timeout_s) == ("block", 0.05)
    processor.shutdown()


def test_a_writer_that_cannot_write_is_not_waited_for(db_path):
    # Were every span to wait its full timeout while the file is locked, these
    # 100 turns would take well over an hour instead of dropping at once.
    provider, processor = pipeline(db_path, buffer_size=5, max_queue_size=20, busy_timeout_ms=10,
                                   on_full="block", block_timeout_ms=60_000)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with trajectory("s", "a", tracer_provider=provider):
            with turn("first", tracer_provider=provider):
                pass
            assert processor.force_flush(100) is False  # the writer is now retrying the locked file
            for i in range(100):
                with turn(f"p{i}", tracer_provider=provider):
                    pass
        assert processor.stats["write_errors"] > 0 and processor.stats["dropped"] > 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        provider.shutdown()
    stats = processor.stats
    assert stats["enqueued"] + stats["dropped"] == 103


def test_the_writer_survives_a_locked_database_and_writes_once_it_is_free(db_path):
    provider, processor = pipeline(db_path, flush_interval_ms=50, busy_timeout_ms=10)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with trajectory("s", "a", tracer_provider=provider):
        with turn("waits", tracer_provider=provider):
            pass
    assert not processor.force_flush(300)
    assert "locked" in processor.stats["last_error"]
    blocker.execute("COMMIT")
    assert processor.force_flush(10_000)
    provider.shutdown()
    assert count(db_path, "trajectory_turns") == 1


def test_other_processors_see_the_same_spans_with_the_conventions(db_path):
    exporter = InMemorySpanExporter()
    provider, _ = pipeline(db_path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with trajectory("s", "a", "r", tracer_provider=provider) as traj:
        with turn("p", tracer_provider=provider) as t:
            t.respond("r", token_count=3)
    provider.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["a (ppp.trajectory)"].attributes[c.SPAN_KIND] == "AGENT"
    assert spans["a (ppp.trajectory)"].attributes[c.SESSION_ID] == traj.session_id
    assert spans["ppp.turn"].attributes[c.SPAN_KIND] == "LLM"
    assert spans["ppp.turn"].attributes[c.TURN_NUMBER] == 1
    assert spans["ppp.turn"].attributes[c.OUTPUT_VALUE] == "r"
    assert spans["ppp.turn"].parent.span_id == spans["a (ppp.trajectory)"].context.span_id


def test_turns_recorded_from_many_threads_at_once_all_land_numbered(db_path):
    provider, processor = pipeline(db_path, buffer_size=50, flush_interval_ms=50)

    def agent(n):
        with trajectory("s", f"agent-{n}", tracer_provider=provider):
            for i in range(40):
                with turn(f"p{i}", tracer_provider=provider):
                    pass

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    assert processor.stats["dropped"] == processor.stats["rejected"] == 0
    assert rows(db_path, "SELECT count(*), min(turn_number), max(turn_number) FROM trajectory_turns GROUP BY trajectory_id") == [
        (40, 1, 40)
    ] * 8


def test_turns_recorded_from_asyncio_tasks_at_once_all_land_in_their_trajectory(db_path):
    provider, processor = pipeline(db_path)

    async def agent(n):
        with trajectory("s", f"agent-{n}", tracer_provider=provider):
            for i in range(10):
                with turn(f"agent-{n} turn {i}", tracer_provider=provider):
                    await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(agent(n) for n in range(10)))

    asyncio.run(main())
    provider.shutdown()
    mismatched = rows(
        db_path,
        "SELECT count(*) FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id "
        "WHERE t.prompt NOT LIKE j.agent_name || ' turn %'",
    )
    assert mismatched == [(0,)]
    assert count(db_path, "trajectory_turns") == 100


def test_an_unusable_database_file_is_refused_at_setup(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not sqlite\n" * 100)
    with pytest.raises(Exception, match="not a SQLite database"):
        TrajectorySpanProcessor(path)


@pytest.mark.parametrize(
    "option, value",
    [("buffer_size", 0), ("flush_interval_ms", 0), ("max_queue_size", 0), ("on_full", "explode")],
)
def test_bad_options_name_the_option(db_path, option, value):
    with pytest.raises(ValueError, match=option):
        TrajectorySpanProcessor(db_path, **{option: value})


def test_an_unknown_preference_from_another_sdk_is_ignored_and_counted_not_fatal_to_turns(db_path):
    # Spans from other languages bypass trajectory()'s argument check.
    provider, processor = pipeline(db_path)
    tracer = provider.get_tracer("other-sdk")
    attributes = {c.SPEC_ID: "s", c.AGENT_NAME: "a", c.PREFERENCES: ["no_such_thing", "no_questions"]}
    with tracer.start_as_current_span("ppp.trajectory", attributes=attributes):
        with turn("p", tracer_provider=provider) as t:
            t.respond("Shall I go on?")
    provider.shutdown()
    assert count(db_path, "trajectory_turns") == 1
    assert rows(db_path, "SELECT preference_name FROM trajectory_violations") == [("no_questions",)]
    assert processor.stats["unknown_preferences"] == 1
    assert processor.stats["rejected"] == 0


def test_turn_calls_and_instrumented_llm_spans_share_one_sequence_of_numbers(db_path):
    provider, processor = pipeline(db_path)
    tracer = provider.get_tracer("openinference")
    with trajectory("s", "a", tracer_provider=provider):
        with turn("by hand", tracer_provider=provider):
            pass
        with tracer.start_as_current_span("ChatCompletion", attributes={c.SPAN_KIND: "LLM", c.INPUT_VALUE: "auto"}):
            pass
        with turn("by hand again", tracer_provider=provider):
            pass
    provider.shutdown()
    assert rows(db_path, "SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number") == [
        (1, "by hand"), (2, "auto"), (3, "by hand again")
    ]
    assert processor.stats["rejected"] == 0


def test_a_full_queue_still_takes_the_trajectory_records_so_queued_turns_are_not_orphans(db_path):
    provider, processor = pipeline(db_path, buffer_size=5, max_queue_size=3, busy_timeout_ms=10)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for n in range(3):
        with trajectory("s", f"agent-{n}", tracer_provider=provider):
            for i in range(5):
                with turn(f"p{i}", tracer_provider=provider):
                    pass
    blocker.execute("COMMIT")
    blocker.close()
    provider.shutdown()
    assert count(db_path, "trajectories") == 3
    assert processor.stats["rejected"] == 0
    assert count(db_path, "trajectory_turns") == processor.stats["written_turns"] > 0


def test_a_child_process_forked_inside_a_trajectory_records_its_turns_into_it(db_path):
    import os

    provider, processor = pipeline(db_path, flush_interval_ms=60_000, buffer_size=1000)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("before the fork", tracer_provider=provider):
            pass
        pid = os.fork()
        if pid == 0:  # the child: its turn must land even if the parent has written nothing yet
            try:
                with turn("in the child", tracer_provider=provider):
                    pass
                ok = processor.force_flush(10_000) and processor.stats["rejected"] == 0
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        with turn("after the fork", tracer_provider=provider):
            pass
    provider.shutdown()
    assert sorted(p for (p,) in rows(db_path, "SELECT prompt FROM trajectory_turns")) == [
        "after the fork", "before the fork", "in the child"
    ]
    numbers = [n for (n,) in rows(db_path, "SELECT turn_number FROM trajectory_turns")]
    assert len(set(numbers)) == 3
    assert processor.stats["rejected"] == 0


def test_preferences_of_a_trajectory_arriving_ended_with_its_turns_are_checked(db_path):
    # What OTLP ingest delivers: the trajectory span, already ended, in its turns' batch.
    processor = TrajectorySpanProcessor(db_path)
    trajectory_record = TrajectoryRecord("a" * 32, "b" * 16, "s", "agent", preferences=("no_questions",),
                                         ended_at="2026-01-01T00:00:00.000Z")
    processor.submit([trajectory_record, TurnRecord("a" * 32, "c" * 16, trajectory_record.key, 1, "p", "Shall I?")])
    processor.shutdown()
    assert rows(db_path, "SELECT preference_name FROM trajectory_violations") == [("no_questions",)]


class _BrokenClassifier:
    def __init__(self, answer):
        self.answer = answer

    def classify_many(self, questions):
        if isinstance(self.answer, Exception):
            raise self.answer
        return [self.answer for _ in questions]


@pytest.mark.parametrize("answer", [RuntimeError("model down"), "MEDIUM", "extreme"])
def test_a_failing_classifier_falls_back_to_the_rules_and_the_turn_is_kept(db_path, answer):
    processor = TrajectorySpanProcessor(db_path, classifier=_BrokenClassifier(answer))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("Do you prefer tabs or spaces?")
    provider.shutdown()
    assert rows(db_path, "SELECT effort_level FROM trajectory_questions") == [("low",)]
    assert processor.stats["classifier_failures"] == 1 and processor.stats["rejected"] == 0


def test_the_writer_thread_survives_an_unexpected_error_in_one_batch(db_path, monkeypatch):
    provider, processor = pipeline(db_path)
    sink = processor.sink
    real = sink._write
    calls = []

    def flaky(records, engine):
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("a bug in one batch")
        return real(records, engine)

    monkeypatch.setattr(sink, "_write", flaky)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("lost with its batch", tracer_provider=provider):
            pass
    assert processor.force_flush(10_000)
    with trajectory("s", "b", tracer_provider=provider):
        with turn("written", tracer_provider=provider):
            pass
    provider.shutdown()
    assert ("written",) in rows(db_path, "SELECT prompt FROM trajectory_turns")
    assert processor.stats["internal_errors"] == 1


def test_spans_ending_after_shutdown_are_counted_as_dropped(db_path):
    provider, processor = pipeline(db_path)
    tracer = provider.get_tracer("agent")
    with trajectory("s", "a", tracer_provider=provider):
        late = tracer.start_span("ppp.turn")
        processor.shutdown()
        late.end()
    assert processor.stats["dropped"] >= 1


def test_an_oversized_response_is_cut_counted_and_the_turn_kept(db_path):
    from ppp_otel.records import MAX_TEXT_CHARS

    provider, processor = pipeline(db_path)
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("x" * (MAX_TEXT_CHARS + 10))
    provider.shutdown()
    assert rows(db_path, "SELECT length(response) FROM trajectory_turns") == [(MAX_TEXT_CHARS,)]
    assert processor.stats["truncated"] == 1


def test_force_flush_returns_under_steady_load_once_its_own_records_are_written(db_path):
    provider, processor = pipeline(db_path, flush_interval_ms=20)
    stop = threading.Event()

    def steady():
        with trajectory("s", "steady", tracer_provider=provider):
            while not stop.is_set():
                with turn("more", tracer_provider=provider):
                    pass
                time.sleep(0.0005)

    producer = threading.Thread(target=steady)
    producer.start()
    try:
        time.sleep(0.1)
        assert processor.force_flush(10_000)
    finally:
        stop.set()
        producer.join()
        provider.shutdown()


def test_trajectory_records_use_only_a_bounded_headroom_when_the_writer_is_stuck(db_path):
    provider, processor = pipeline(db_path, buffer_size=5, max_queue_size=100, busy_timeout_ms=10)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for n in range(300):  # trajectories with no turns: only records that may use the headroom
            with trajectory("s", f"agent-{n}", tracer_provider=provider):
                pass
        assert processor.stats["queued"] <= 110
        assert processor.stats["dropped"] > 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        provider.shutdown()


def test_a_value_sqlite_cannot_store_rejects_its_record_and_the_rest_are_written(db_path):
    processor = TrajectorySpanProcessor(db_path)
    trajectory_record = TrajectoryRecord("a" * 32, "b" * 16, "s", "agent")
    processor.submit([
        trajectory_record,
        TurnRecord("a" * 32, "1" * 16, trajectory_record.key, 1, "p", "r", token_count=[7]),
        TurnRecord("a" * 32, "2" * 16, trajectory_record.key, 2, "p", "r"),
    ])
    assert processor.force_flush(10_000)
    processor.shutdown()
    assert rows(db_path, "SELECT span_id FROM trajectory_turns") == [("2" * 16,)]
    assert processor.stats["rejected"] == 1 and processor.stats["write_errors"] == 0


def test_blocking_producers_with_a_queue_smaller_than_a_batch_all_get_written(db_path):
    provider, processor = pipeline(db_path, buffer_size=10, max_queue_size=3, on_full="block",
                                   block_timeout_ms=10_000, flush_interval_ms=20)
    with trajectory("s", "a", tracer_provider=provider):
        for i in range(7):
            with turn(f"p{i}", tracer_provider=provider):
                pass
    assert processor.force_flush(10_000)
    provider.shutdown()
    assert count(db_path, "trajectory_turns") == 7
    assert processor.stats["internal_errors"] == 0


def test_records_still_queued_when_shutdown_gives_up_on_a_locked_file_are_counted(db_path):
    processor = TrajectorySpanProcessor(db_path, busy_timeout_ms=10, shutdown_timeout_ms=200, buffer_size=2)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        trajectory_record = TrajectoryRecord("a" * 32, "b" * 16, "s", "agent")
        turns = [TurnRecord("a" * 32, f"{i:016x}", trajectory_record.key, i, "p", "r") for i in range(1, 10)]
        processor.submit([trajectory_record, *turns])
        processor.shutdown()
        stats = processor.stats
        assert stats["queued"] == 0
        assert stats["lost_at_shutdown"] == 10 and stats["written_turns"] == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_a_trajectory_is_in_storage_once_it_ends_without_waiting_for_the_flush_interval(db_path):
    provider, processor = pipeline(db_path, flush_interval_ms=60_000, buffer_size=1000)
    with trajectory("spec", "agent", tracer_provider=provider):
        for i in range(3):
            with turn(f"prompt {i}", tracer_provider=provider) as t:
                t.respond("Done.")
    assert wait_for(lambda: count(db_path, "trajectory_turns") == 3, timeout_s=10)
    provider.shutdown()


class _PublicOnly:
    """A span seen only through the public API: none of the SDK span's private fields."""

    _PUBLIC = ("name", "parent", "context", "attributes", "events", "start_time", "end_time",
               "instrumentation_scope", "get_span_context")

    def __init__(self, span):
        self._wrapped = span

    def __getattr__(self, name):
        if name not in self._PUBLIC:
            raise AttributeError(name)
        return getattr(self._wrapped, name)


def test_a_span_without_the_sdks_private_fields_is_recorded_as_one_with_them(db_path):
    provider, processor = pipeline(db_path)
    bare = TracerProvider().get_tracer("elsewhere")  # makes the spans; the processor is handed them by hand
    with trajectory("s", "a", tracer_provider=provider):
        for prompt in ("sdk span", "public only"):
            span = bare.start_span(c.TURN_SPAN, attributes={c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: prompt})
            processor.on_start(span if prompt == "sdk span" else _PublicOnly(span))
            span.set_attribute(c.OUTPUT_VALUE, f"reply to {prompt}")
            span.end()
            ended = span._readable_span()
            processor.on_end(ended if prompt == "sdk span" else _PublicOnly(ended))
    provider.shutdown()
    assert processor.stats["internal_errors"] == 0
    assert rows(db_path, "SELECT turn_number, prompt, response FROM trajectory_turns ORDER BY turn_number") == [
        (1, "sdk span", "reply to sdk span"), (2, "public only", "reply to public only")
    ]


@pytest.mark.parametrize("layout", [(1, 0, 2), (0, 2, 1)])
def test_span_ids_are_read_through_the_properties_when_the_context_is_laid_out_otherwise(monkeypatch, layout):
    from ppp_otel.capture import processor as module
    trace_at, span_at, remote_at = layout

    class OtherLayout(tuple):
        def __new__(cls, trace_id, span_id, is_remote):
            items = [None] * 3
            items[trace_at], items[span_at], items[remote_at] = trace_id, span_id, is_remote
            return tuple.__new__(cls, items)

        trace_id = property(lambda self: self[trace_at])
        span_id = property(lambda self: self[span_at])

    monkeypatch.setattr(module, "SpanContext", OtherLayout)
    span_id, ids = module._context_readers()
    context = OtherLayout(0x1, 0x2, False)
    assert span_id(context) == 0x2 and ids(context) == (0x1, 0x2)


def test_a_queue_smaller_than_a_batch_is_written_as_soon_as_a_turn_waits_for_room(db_path):
    # The batch never fills, and the flush interval is long: a producer waiting makes it due at once,
    # or every producer waits out its block timeout and drops its record.
    provider, processor = pipeline(db_path, buffer_size=10, max_queue_size=5, flush_interval_ms=60_000,
                                   on_full="block", block_timeout_ms=2_000)
    with trajectory("s", "a", tracer_provider=provider):
        for i in range(20):
            with turn(f"p{i}", tracer_provider=provider):
                pass
    provider.shutdown()
    assert processor.stats["dropped"] == 0
    assert count(db_path, "trajectory_turns") == 20
