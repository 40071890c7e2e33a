"""Turns decided at span end, by the same reading in process and over ``ppp-otel ingest``:
late span kinds, GenAI spans, configured question tools, sub-agents, turn order."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel import conventions as c
from ppp_otel.interchange.atif.exporter import export_atif
from ppp_otel.config.settings import ConfigError, load_config
from ppp_otel.ingest.server import IngestServer
from ppp_otel.storage.sqlite.reader import TrajectoryStore

from ingest_process import IngestProcess


class Pipeline:
    def __init__(self, db: Path, **register_args):
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        ppp_otel.register(db, phoenix=False, set_global=False, tracer_provider=self.provider, env={},
                          **register_args)
        self.tracer = self.provider.get_tracer("test-instrumentation")

    def spans(self):
        self.provider.shutdown()
        return list(self.memory.get_finished_spans())


def ingest(spans, db: Path, batches: int = 1) -> None:
    server = IngestServer(db, port=0).start()
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
    try:
        size = max(1, -(-len(spans) // batches))
        for i in range(0, len(spans), size):
            assert exporter.export(spans[i:i + size]).name == "SUCCESS"
    finally:
        exporter.shutdown()  # closes its keep-alive connection, which stop() would wait for
        server.stop()


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


TURNS = "SELECT turn_number, prompt, response FROM trajectory_turns ORDER BY turn_number"


def chat(tracer, prompt: str, reply: str | None = None, *, tool: tuple[str, dict] | None = None, kind_at_end=False):
    """A GenAI chat span, or (kind_at_end) an OpenInference one whose kind is set only when it ends."""
    output = [{"type": "text", "content": reply}] if reply else [
        {"type": "tool_call", "id": "c1", "name": tool[0], "arguments": tool[1]}]
    with tracer.start_as_current_span("llm call") as span:
        if kind_at_end:
            span.set_attribute(c.INPUT_VALUE, prompt)
            span.set_attribute(c.OUTPUT_VALUE, reply)
            span.set_attribute(c.SPAN_KIND, c.KIND_LLM)
        else:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.input.messages", json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]))
            span.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": output}]))


def test_a_span_whose_kind_is_set_only_at_its_end_is_a_turn(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", "Which file?", kind_at_end=True)
    pipe.spans()
    assert rows(db_path, TURNS) == [(1, "Fix it", "Which file?")]


def test_spans_that_are_no_model_call_are_not_turns(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        with pipe.tracer.start_as_current_span("embed", attributes={c.SPAN_KIND: "EMBEDDING"}):
            pass
        with pipe.tracer.start_as_current_span("tool", attributes={"gen_ai.operation.name": "execute_tool"}):
            pass
        chat(pipe.tracer, "Fix it", "Done.")
    spans = pipe.spans()
    assert rows(db_path, TURNS) == [(1, "Fix it", "Done.")]
    ingest(spans, db_path.with_name("ingest.db"))
    assert rows(db_path.with_name("ingest.db"), TURNS) == [(1, "Fix it", "Done.")]


def test_a_configured_question_tool_asks_the_user(db_path, tmp_path):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.trajectory]\nquestion_tools = ["consult_human"]\n')
    pipe = Pipeline(db_path, config=config)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", tool=("consult_human", {"text": "Which branch?"}))
        chat(pipe.tracer, "Fix it", "Fixed on main.")
    pipe.spans()
    assert rows(db_path, "SELECT question_text, source FROM trajectory_questions") == [("Which branch?", "explicit")]
    assert [json.loads(e)["tool_calls"][0]["name"] for (e,) in rows(db_path, "SELECT extra FROM trajectory_turns")] \
        == ["consult_human"]


def test_a_configured_question_tool_asks_the_user_over_ingest(db_path, tmp_path, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.trajectory]\nquestion_tools = ["consult_human"]\n')
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", tool=("consult_human", {"text": "Which branch?"}))
        chat(pipe.tracer, "Fix it", "Fixed on main.")
    spans = pipe.spans()
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))  # read by the real `ppp-otel ingest`
    received = tmp_path / "ingest.db"
    process = IngestProcess(received).start()
    exporter = OTLPSpanExporter(endpoint=f"{process.url}/v1/traces", timeout=10)
    try:
        assert exporter.export(spans).name == "SUCCESS"
    finally:
        exporter.shutdown()
        assert process.stop() == 0
    assert rows(received, "SELECT question_text, source FROM trajectory_questions") == [("Which branch?", "explicit")]


def test_question_tools_must_be_a_list_of_names(tmp_path):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.trajectory]\nquestion_tools = "ask_user"\n')
    with pytest.raises(ConfigError, match="ppp.trajectory.question_tools must be a list of non-empty strings"):
        load_config(config, env={})


def test_turns_that_start_together_keep_their_arrival_order_over_ingest(tmp_path):
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with ppp_otel.trajectory("s", "a", tracer_provider=provider) as t:
        start = t.span.start_time + 1000
        for prompt in ("one", "two", "three"):
            span = tracer.start_span(c.TURN_SPAN, attributes={c.INPUT_VALUE: prompt}, start_time=start)
            span.end(end_time=start + 10)
    provider.shutdown()
    db = tmp_path / "ingest.db"
    ingest(list(memory.get_finished_spans()), db)
    assert rows(db, "SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number") == [
        (1, "one"), (2, "two"), (3, "three")]


def nested_agents(provider) -> None:
    tracer = provider.get_tracer("agent")
    with ppp_otel.trajectory("spec-1", "lead", tracer_provider=provider):
        with ppp_otel.turn("Plan the fix", tracer_provider=provider) as turn:
            turn.respond("Asking a scout.")
        with tracer.start_as_current_span("delegate to scout"):
            with ppp_otel.trajectory("spec-1", "scout", tracer_provider=provider):
                with ppp_otel.turn("Find the locale code", tracer_provider=provider) as turn:
                    turn.respond("It is in dates.py.")


SUBAGENTS = """SELECT child.agent_name, parent.agent_name FROM trajectories child
               LEFT JOIN trajectories parent ON parent.id = child.parent_trajectory_id ORDER BY child.id"""


def test_a_trajectory_inside_another_records_its_parent_in_process(db_path, tmp_path):
    pipe = Pipeline(db_path)
    nested_agents(pipe.provider)
    pipe.spans()
    assert rows(db_path, SUBAGENTS) == [("lead", None), ("scout", "lead")]
    [document] = [json.loads(p.read_text()) for p in export_atif(db_path, tmp_path / "atif")]
    assert [s["agent"]["name"] for s in document["subagent_trajectories"]] == ["scout"]


@pytest.mark.parametrize("batches", [1, 3])
def test_a_trajectory_inside_another_records_its_parent_over_ingest(tmp_path, batches):
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    nested_agents(provider)
    provider.shutdown()
    db = tmp_path / "ingest.db"
    ingest(list(memory.get_finished_spans()), db, batches=batches)  # the scout's spans arrive first
    assert sorted(rows(db, SUBAGENTS)) == [("lead", None), ("scout", "lead")]


def test_a_question_asked_through_a_tool_survives_an_atif_round_trip(db_path, tmp_path):
    from ppp_otel.interchange.atif.importer import import_paths

    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", tool=("ask_user", {"question": "Which branch?"}))
        chat(pipe.tracer, "Fix it", "Fixed on main. Anything else?")
    pipe.spans()
    copy = tmp_path / "copy.db"
    import_paths(export_atif(db_path, tmp_path / "atif"), copy)
    questions = "SELECT question_text, source FROM trajectory_questions ORDER BY question_text"
    assert rows(copy, questions) == rows(db_path, questions) == [
        ("Anything else?", "extracted"), ("Which branch?", "explicit")]


def test_turn_calls_and_instrumented_calls_share_one_sequence(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        with ppp_otel.turn("one", tracer_provider=pipe.provider) as t:
            t.respond("first")
        chat(pipe.tracer, "two", "second")
        with ppp_otel.turn("three", tracer_provider=pipe.provider) as t:
            t.respond("third")
    pipe.spans()
    assert rows(db_path, TURNS) == [(1, "one", "first"), (2, "two", "second"), (3, "three", "third")]


def _model_calls(tmp_path, caplog, monkeypatch, *contents: dict) -> list[str]:
    import logging

    from ppp_otel.capture import processor

    caplog.set_level(logging.WARNING, logger=processor.logger.name)
    pipeline = Pipeline(tmp_path / "t.db")
    with ppp_otel.trajectory("s", "a", tracer_provider=pipeline.provider):
        for content in contents:
            with pipeline.tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat",
                                                                          **content}):
                pass
    pipeline.spans()
    return [r.getMessage() for r in caplog.records if "carry no message content" in r.getMessage()]


def test_model_calls_recorded_without_message_content_are_warned_about_once_naming_the_instrumentation(
        tmp_path, caplog, monkeypatch):
    warned = _model_calls(tmp_path, caplog, monkeypatch, {}, {})
    assert len(warned) == 1 and "traced by test-instrumentation" in warned[0]
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in warned[0]


def test_model_calls_with_their_content_are_not_warned_about(tmp_path, caplog, monkeypatch):
    messages = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}])}
    assert _model_calls(tmp_path, caplog, monkeypatch, messages) == []


def test_model_calls_recorded_without_message_content_are_counted_by_instrumentation_in_the_stats(tmp_path):
    pipeline = Pipeline(tmp_path / "t.db")
    (recorder,) = [p for p in pipeline.provider._active_span_processor._span_processors
                   if isinstance(p, ppp_otel.TrajectorySpanProcessor)]
    with ppp_otel.trajectory("s", "a", tracer_provider=pipeline.provider):
        for _ in range(2):
            with pipeline.tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat"}):
                pass
    pipeline.spans()
    assert recorder.stats["turns_without_content"] == 2
    assert recorder.stats["turns_without_content_by_instrumentation"] == {"test-instrumentation": 2}


def test_a_turn_after_a_tool_call_only_model_call_carries_its_tool_calls_and_question(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", tool=("ask_user", {"question": "Which branch?"}))
        with ppp_otel.turn("Fix it", tracer_provider=pipe.provider) as t:
            t.respond("Fixed on main.")
    pipe.spans()
    assert rows(db_path, TURNS) == [(1, "Fix it", "Fixed on main.")]
    assert [json.loads(e)["tool_calls"][0]["name"] for (e,) in rows(db_path, "SELECT extra FROM trajectory_turns")] \
        == ["ask_user"]
    assert rows(db_path, "SELECT question_text, source FROM trajectory_questions") == [("Which branch?", "explicit")]


def _timed_chat(tracer, start_ms: int, end_ms: int, tokens: int, *, reply: str | None = None) -> None:
    """A GenAI chat span at fixed times (ms after a fixed instant), with its token usage."""
    base = 1_700_000_000_000_000_000
    output = [{"type": "text", "content": reply}] if reply else [
        {"type": "tool_call", "id": f"c{start_ms}", "name": "run_tests", "arguments": {}}]
    span = tracer.start_span("chat m", start_time=base + start_ms * 1_000_000, attributes={
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Fix it"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": output}]),
        "gen_ai.usage.input_tokens": tokens - 2, "gen_ai.usage.output_tokens": 2})
    span.end(end_time=base + end_ms * 1_000_000)


def test_a_turn_that_tool_calls_led_to_counts_the_tokens_and_time_of_every_model_call(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        _timed_chat(pipe.tracer, 0, 100, 17)          # calls run_tests
        _timed_chat(pipe.tracer, 300, 400, 17)        # calls it again
        _timed_chat(pipe.tracer, 700, 900, 17, reply="Fixed: the test passes now.")
    pipe.spans()
    assert rows(db_path, "SELECT token_count, latency_ms FROM trajectory_turns") == [(51, 900.0)]


def test_a_turn_of_one_model_call_keeps_its_own_tokens_and_time(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        _timed_chat(pipe.tracer, 0, 250, 17, reply="Which file?")
        _timed_chat(pipe.tracer, 500, 600, 9, reply="Done.")
    pipe.spans()
    assert rows(db_path, "SELECT token_count, latency_ms FROM trajectory_turns ORDER BY turn_number") == [
        (17, 250.0), (9, 100.0)]


def test_over_ingest_a_turn_that_tool_calls_led_to_counts_every_model_call_too(db_path, tmp_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        _timed_chat(pipe.tracer, 0, 100, 17)
        _timed_chat(pipe.tracer, 700, 900, 17, reply="Fixed: the test passes now.")
    spans = pipe.spans()
    received = tmp_path / "ingest.db"
    with IngestServer(received, port=0) as server:
        exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
        try:
            assert exporter.export(spans).name == "SUCCESS"
        finally:
            exporter.shutdown()
    assert rows(received, "SELECT token_count, latency_ms FROM trajectory_turns") == [(34, 900.0)]


def test_the_read_api_gives_a_turn_the_tool_calls_of_the_model_calls_folded_into_it(db_path):
    pipe = Pipeline(db_path)
    with ppp_otel.trajectory("s", "a", tracer_provider=pipe.provider):
        chat(pipe.tracer, "Fix it", tool=("run_tests", {"path": "tests"}))
        chat(pipe.tracer, "Fix it", "All green.")
    spans = pipe.spans()
    ingest(spans, db_path.with_name("ingest.db"))
    for db in (db_path, db_path.with_name("ingest.db")):
        with TrajectoryStore(db) as store:
            (turn,) = store.get_trajectory(1).turns
        assert (turn.response, turn.tool_calls) == (
            "All green.", [{"name": "run_tests", "arguments": '{"path": "tests"}', "id": "c1"}])
