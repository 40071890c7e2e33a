"""Values SQLite cannot store, or the schema does not have, cost the value, never the turn or trajectory."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from opentelemetry.sdk.trace import TracerProvider

from ppp_otel import TrajectorySpanProcessor, conventions as c, trajectory
from ppp_otel.textrepair import repair_text


def pipeline(db_path):
    provider = TracerProvider()
    processor = TrajectorySpanProcessor(db_path, buffer_size=1, flush_interval_ms=10)
    provider.add_span_processor(processor)
    return provider, processor


def rows(db_path, sql):
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql).fetchall()


def llm_turn(provider, **attributes):
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("llm", attributes={c.SPAN_KIND: c.KIND_LLM, **attributes}):
        pass


def test_a_lone_surrogate_becomes_a_replacement_character_and_is_counted(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", tracer_provider=provider):
        llm_turn(provider, **{c.INPUT_VALUE: "show me", c.OUTPUT_VALUE: "here it is \ud83d"})
    provider.shutdown()
    assert rows(db_path, "SELECT prompt, response FROM trajectory_turns") == [("show me", "here it is \ufffd")]
    assert processor.stats["repaired_text"] == 1 and processor.stats["rejected"] == 0


def test_a_lone_surrogate_in_a_spec_id_keeps_the_trajectory(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec-\udc80", "agent", tracer_provider=provider):
        llm_turn(provider, **{c.INPUT_VALUE: "hi", c.OUTPUT_VALUE: "hello"})
    provider.shutdown()
    assert rows(db_path, "SELECT spec_id FROM trajectories") == [("spec-\ufffd",)]
    assert rows(db_path, "SELECT count(*) FROM trajectory_turns") == [(1,)]


def test_a_surrogate_pair_split_across_code_points_is_joined_not_replaced():
    assert repair_text("smile \ud83d\ude00") == ("smile \U0001f600", 0)


def test_a_token_count_past_64_bits_is_dropped_from_its_turn_not_the_turn(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", tracer_provider=provider):
        llm_turn(provider, **{c.INPUT_VALUE: "hi", c.OUTPUT_VALUE: "hello", c.TOKEN_COUNT_TOTAL: str(2**70)})
    provider.shutdown()
    assert rows(db_path, "SELECT prompt, token_count FROM trajectory_turns") == [("hi", None)]
    assert processor.stats["dropped_values"] == 1 and processor.stats["rejected"] == 0


def turn_with_events(provider, events):
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(c.TURN_SPAN, attributes={
            c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: "fix it", c.OUTPUT_VALUE: "Which shell were you in?"}) as span:
        for name, attributes in events:
            span.add_event(name, attributes)


def test_an_unknown_effort_costs_the_question_its_effort_not_the_turn(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", tracer_provider=provider):
        turn_with_events(provider, [
            (c.QUESTION_EVENT, {c.QUESTION_TEXT: "Which shell were you in?", c.QUESTION_EFFORT: "extreme"}),
            (c.QUESTION_EVENT, {c.QUESTION_TEXT: "Keep the names?", c.QUESTION_EFFORT: "low"}),
        ])
    provider.shutdown()
    assert rows(db_path, "SELECT prompt, response FROM trajectory_turns") == [("fix it", "Which shell were you in?")]
    # The classifier grades the one whose effort was dropped, as a question given without one.
    assert rows(db_path, "SELECT question_text, effort_level, judge IS NOT NULL FROM trajectory_questions "
                         "ORDER BY id") == [("Which shell were you in?", "low", 1), ("Keep the names?", "low", 0)]
    assert processor.stats["dropped_values"] == 1 and processor.stats["rejected"] == 0


def test_an_unknown_severity_costs_the_violation_not_the_turn(db_path):
    provider, processor = pipeline(db_path)
    with trajectory("spec", "agent", tracer_provider=provider):
        turn_with_events(provider, [
            (c.VIOLATION_EVENT, {c.VIOLATION_PREFERENCE: "no_commas", c.VIOLATION_SEVERITY: "fatal"}),
            (c.VIOLATION_EVENT, {c.VIOLATION_PREFERENCE: "json_only", c.VIOLATION_SEVERITY: "major"}),
        ])
    provider.shutdown()
    assert rows(db_path, "SELECT count(*) FROM trajectory_turns") == [(1,)]
    assert rows(db_path, "SELECT preference_name, severity FROM trajectory_violations") == [("json_only", "major")]
    assert processor.stats["dropped_values"] == 1 and processor.stats["rejected"] == 0
