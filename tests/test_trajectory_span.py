"""What the trajectory span carries for Phoenix: the conversation, the agent, the tokens."""

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ppp_otel import trajectory, turn
from ppp_otel.records import format_trace_id


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def roots(exporter):
    (root,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    return root


def spans_named(exporter, name):
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_the_trajectory_span_shows_the_first_prompt_and_the_last_response(exported):
    provider, exporter = exported
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("Fix the flaky test", tracer_provider=provider) as t:
            t.respond("Retry or readiness wait?")
        with turn("A readiness wait.", tracer_provider=provider) as t:
            t.respond("Done; the suite is green.")
    root = roots(exporter)
    assert root.attributes["input.value"] == "Fix the flaky test"
    assert root.attributes["output.value"] == "Done; the suite is green."


def test_a_trajectory_with_no_turns_shows_its_spec_as_input(exported):
    provider, exporter = exported
    with trajectory("spec-7", "agent", tracer_provider=provider):
        pass
    root = roots(exporter)
    assert root.attributes["input.value"] == "spec-7"
    assert "output.value" not in root.attributes


def test_the_agent_name_is_in_the_metadata_and_tags_phoenix_lists(exported):
    provider, exporter = exported
    with trajectory("spec", "careful-agent", "run-1", tracer_provider=provider):
        pass
    root = roots(exporter)
    assert json.loads(root.attributes["metadata"]) == {"agent": "careful-agent", "spec": "spec", "run": "run-1"}
    assert list(root.attributes["tag.tags"]) == ["careful-agent"]


def test_the_span_name_starts_with_the_agent_as_phoenix_lists_it(exported):
    provider, exporter = exported
    with trajectory("spec", "careful-agent", tracer_provider=provider):
        pass
    assert roots(exporter).name == "careful-agent (ppp.trajectory)"


def test_the_stage_follows_the_agent_in_the_span_name_and_is_in_the_metadata(exported):
    provider, exporter = exported
    with trajectory("spec", "careful-agent", "run-1", stage="plan", tracer_provider=provider):
        pass
    root = roots(exporter)
    assert root.name == "careful-agent: plan (ppp.trajectory)"
    assert json.loads(root.attributes["metadata"])["stage"] == "plan"


def test_the_default_session_id_is_the_agent_and_the_trace_id(exported):
    provider, exporter = exported
    with trajectory("spec", "agent", tracer_provider=provider) as traj:
        pass
    root = roots(exporter)
    expected = f"agent-{format_trace_id(root.context.trace_id)}"
    assert root.attributes["session.id"] == expected == traj.session_id


def test_a_given_session_id_is_kept(exported):
    provider, exporter = exported
    with trajectory("spec", "agent", session_id="chat-9", tracer_provider=provider):
        pass
    root = roots(exporter)
    assert root.attributes["session.id"] == "chat-9"


def test_a_bare_token_count_is_also_counted_as_completion_tokens_as_phoenix_sums_them(exported):
    provider, exporter = exported
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("r", token_count=12)
    (span,) = spans_named(exporter, "ppp.turn")
    assert span.attributes["llm.token_count.total"] == 12
    assert span.attributes["llm.token_count.completion"] == 12
    assert "llm.token_count.prompt" not in span.attributes


def test_prompt_and_completion_tokens_give_the_total(exported):
    provider, exporter = exported
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            t.respond("r", prompt_tokens=30, completion_tokens=12)
    (span,) = spans_named(exporter, "ppp.turn")
    assert (span.attributes["llm.token_count.prompt"], span.attributes["llm.token_count.completion"],
            span.attributes["llm.token_count.total"]) == (30, 12, 42)


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens"])
def test_a_negative_token_split_is_a_value_error_naming_it(exported, field):
    provider, _ = exported
    with trajectory("spec", "agent", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            with pytest.raises(ValueError, match=field):
                t.respond("r", **{field: -1})


@pytest.mark.parametrize("score", [1.5, -0.01])
def test_a_technical_score_outside_zero_to_one_is_a_value_error(exported, score):
    provider, _ = exported
    with trajectory("spec", "agent", tracer_provider=provider) as traj:
        with pytest.raises(ValueError, match="between 0 and 1"):
            traj.set_technical_score(score)


def test_llm_spans_of_other_instrumentations_give_the_trajectory_span_its_conversation(db_path):
    from ppp_otel import TrajectorySpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TrajectorySpanProcessor(db_path))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("an-instrumentation")
    with trajectory("spec", "gpt-agent", tracer_provider=provider):
        for question, answer in (("Why does CI fail?", "Which job fails?"), ("The lint job.", "Fixed the lint.")):
            with tracer.start_as_current_span("ChatCompletion", attributes={
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "You are helpful.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": question,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": answer,
            }):
                pass
    provider.shutdown()
    root = roots(exporter)
    assert root.attributes["input.value"] == "Why does CI fail?"
    assert root.attributes["output.value"] == "Fixed the lint."


def test_the_trajectory_turn_and_event_attributes_are_the_ones_design_names(exported):
    provider, exporter = exported
    with trajectory("spec-1", "agent-a", "run-1", preferences=["no_commas"], stage="plan",
                    user_context="the issue text", tracer_provider=provider):
        with turn("Fix it", tracer_provider=provider) as t:
            t.respond("Which shell?", token_count=7)
            t.question("Which shell?", "low")
            t.violation("no_commas", "no commas", "a, b", "minor")
    root = roots(exporter)
    assert {key: root.attributes[key] for key in (
        "openinference.span.kind", "ppp.spec_id", "ppp.agent_name", "ppp.run_id", "ppp.stage",
        "ppp.user_context", "input.value", "output.value")} == {
        "openinference.span.kind": "AGENT", "ppp.spec_id": "spec-1", "ppp.agent_name": "agent-a",
        "ppp.run_id": "run-1", "ppp.stage": "plan", "ppp.user_context": "the issue text",
        "input.value": "Fix it", "output.value": "Which shell?"}
    assert tuple(root.attributes["ppp.preferences"]) == ("no_commas",)
    assert root.attributes["session.id"]
    (span,) = spans_named(exporter, "ppp.turn")
    assert {key: span.attributes[key] for key in (
        "openinference.span.kind", "ppp.turn.number", "input.value", "output.value", "llm.token_count.total")} == {
        "openinference.span.kind": "LLM", "ppp.turn.number": 1, "input.value": "Fix it",
        "output.value": "Which shell?", "llm.token_count.total": 7}
    assert [(e.name, dict(e.attributes)) for e in span.events] == [
        ("ppp.question", {"text": "Which shell?", "effort": "low"}),
        ("ppp.violation", {"preference": "no_commas", "expected": "no commas", "actual": "a, b", "severity": "minor"}),
    ]
