"""Each span dialect read into one turn: prompt, response, tokens, tool calls, questions.

The attribute shapes here are the ones the real instrumentations write (the
conformance suite in tests/conformance drives the libraries themselves).
"""

from __future__ import annotations

import json

import pytest

from ppp_otel import conventions as c
from ppp_otel.dialects import SpanContentError, read_turn
from ppp_otel.dialects.resolve import Step, TurnResolver

OI_LLM = {c.SPAN_KIND: "LLM"}


def oi_message(side: str, i: int, role: str, content: str | None = None, parts: list[str] = ()) -> dict:
    prefix = f"llm.{side}_messages.{i}.message"
    attrs = {f"{prefix}.role": role}
    if content is not None:
        attrs[f"{prefix}.content"] = content
    for j, text in enumerate(parts):
        attrs[f"{prefix}.contents.{j}.message_content.type"] = "text"
        attrs[f"{prefix}.contents.{j}.message_content.text"] = text
    return attrs


# --- OpenInference -------------------------------------------------------------------

def test_openinference_flat_messages_give_the_last_user_message_and_the_reply():
    turn = read_turn("ChatCompletion", {
        **OI_LLM, **oi_message("input", 0, "system", "be brief"), **oi_message("input", 1, "user", "first"),
        **oi_message("input", 2, "assistant", "ok"), **oi_message("input", 3, "user", "what is 2+2"),
        **oi_message("output", 0, "assistant", "4"), c.TOKEN_COUNT_TOTAL: 15,
    })
    assert (turn.prompt, turn.response, turn.token_count) == ("what is 2+2", "4", 15)


def test_openinference_content_parts_are_joined():
    turn = read_turn("ChatCompletion", {
        **OI_LLM, **oi_message("input", 0, "user", parts=["Fix the", "failing test"]),
        **oi_message("output", 0, "assistant", parts=["Done."]),
    })
    assert (turn.prompt, turn.response) == ("Fix the\nfailing test", "Done.")


def test_openinference_messages_need_not_start_at_index_zero():
    # The Responses API instrumentation numbers input messages from 1.
    turn = read_turn("Response", {**OI_LLM, **oi_message("input", 1, "user", "again"),
                                  **oi_message("output", 0, "assistant", parts=["Sure."])})
    assert (turn.prompt, turn.response) == ("again", "Sure.")


def test_openinference_raw_bodies_are_read_when_there_are_no_messages():
    turn = read_turn("Response", {
        **OI_LLM, c.INPUT_MIME_TYPE: "application/json", c.OUTPUT_MIME_TYPE: "application/json",
        c.INPUT_VALUE: json.dumps({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "Fix it"}]}]}),
        c.OUTPUT_VALUE: json.dumps({"object": "response", "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Which file?"}]}]}),
    })
    assert (turn.prompt, turn.response) == ("Fix it", "Which file?")


def test_an_empty_message_text_never_hides_the_output_value():
    turn = read_turn("messages.create", {
        **OI_LLM, c.OUTPUT_MIME_TYPE: "application/json",
        **oi_message("input", 0, "user", "Fix it"), **oi_message("output", 0, "assistant", ""),
        c.OUTPUT_VALUE: json.dumps({"type": "message", "role": "assistant",
                                    "content": [{"type": "text", "text": "Which file?"}]}),
    })
    assert turn.response == "Which file?"


def test_a_json_request_body_is_never_the_prompt():
    turn = read_turn("ChatCompletion", {**OI_LLM, c.INPUT_MIME_TYPE: "application/json",
                                        c.INPUT_VALUE: json.dumps({"model": "m", "temperature": 0})})
    assert turn.prompt is None


def test_a_tool_result_sent_as_the_last_message_is_not_the_users_words():
    turn = read_turn("ChatCompletion", {
        **OI_LLM, **oi_message("input", 0, "user", "Run the tests"),
        **oi_message("input", 1, "assistant", ""), **oi_message("input", 2, "tool", "3 passed"),
        **oi_message("output", 0, "assistant", "All 3 pass."),
    })
    assert turn.prompt == "Run the tests"


def test_openinference_tool_calls_are_read_and_a_tool_call_only_step_is_marked():
    prefix = "llm.output_messages.0.message.tool_calls.0.tool_call"
    turn = read_turn("ChatCompletion", {
        **OI_LLM, **oi_message("input", 0, "user", "Fix it"), "llm.output_messages.0.message.role": "assistant",
        f"{prefix}.id": "call_1", f"{prefix}.function.name": "run_tests", f"{prefix}.function.arguments": "{}",
    })
    assert [(t.name, t.id) for t in turn.tool_calls] == [("run_tests", "call_1")]
    assert turn.tool_calls_only


def test_a_ppp_turn_span_is_read_from_its_plain_input_and_output():
    turn = read_turn(c.TURN_SPAN, {c.SPAN_KIND: "LLM", c.INPUT_VALUE: '{"looks": "like json"}',
                                   c.OUTPUT_VALUE: "ok"})
    assert (turn.prompt, turn.response) == ('{"looks": "like json"}', "ok")


@pytest.mark.parametrize("kind", ["EMBEDDING", "TOOL", "RETRIEVER", "CHAIN", "AGENT", "RERANKER"])
def test_openinference_spans_other_than_llm_are_never_turns(kind):
    assert read_turn("x", {c.SPAN_KIND: kind, c.INPUT_VALUE: "hi", c.OUTPUT_VALUE: "there"}) is None


def test_a_span_with_no_model_call_attributes_is_not_a_turn():
    assert read_turn("GET /", {"http.method": "GET"}) is None


# --- OpenTelemetry GenAI ---------------------------------------------------------------

def genai(**extra) -> dict:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", **extra}


def test_genai_current_messages_with_parts():
    turn = read_turn("chat m", genai(**{
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "be brief"}]),
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "Fix"}, {"type": "text", "content": "it"}]}]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "Which file?"}], "finish_reason": "stop"}]),
        "gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 4,
    }))
    assert (turn.prompt, turn.response, turn.token_count) == ("Fix\nit", "Which file?", 15)


def test_genai_tool_call_responses_sent_with_role_user_are_not_the_prompt():
    turn = read_turn("anthropic.chat", genai(**{"gen_ai.input.messages": json.dumps([
        {"role": "user", "parts": [{"type": "text", "content": "Fix"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "ls", "arguments": {}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "t1", "response": "a.py"}]},
    ]), "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Done."}]}])}))
    assert (turn.prompt, turn.response) == ("Fix", "Done.")


def test_a_tool_result_sent_with_role_user_is_not_the_prompt_even_with_text_beside_it():
    turn = read_turn("anthropic.chat", genai(**{"gen_ai.input.messages": json.dumps([
        {"role": "user", "parts": [{"type": "text", "content": "Fix"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "ls", "arguments": {}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "t1", "response": "a.py"},
                                   {"type": "text", "content": "(tool output above)"}]},
    ]), "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Done."}]}])}))
    assert turn.prompt == "Fix"


def test_genai_tool_call_arguments_as_an_object_or_a_string():
    for arguments in ({"question": "Which shell?"}, json.dumps({"question": "Which shell?"})):
        turn = read_turn("chat m", genai(**{"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "tool_call", "id": "c1", "name": "ask_user", "arguments": arguments}]}])}))
        assert turn.questions == ["Which shell?"] and turn.tool_calls_only


def test_genai_older_indexed_attributes():
    turn = read_turn("openai.chat", {
        "llm.request.type": "chat", "gen_ai.system": "OpenAI",
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "be brief",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Fix it",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Which file?",
        "gen_ai.usage.prompt_tokens": 9, "gen_ai.usage.completion_tokens": 3, "llm.usage.total_tokens": 12,
    })
    assert (turn.prompt, turn.response, turn.token_count) == ("Fix it", "Which file?", 12)


def test_genai_older_indexed_tool_calls():
    turn = read_turn("openai.chat", {
        "llm.request.type": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Fix it",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.tool_calls.0.name": "ask_question",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"question": "Which file?"}',
    })
    assert turn.questions == ["Which file?"] and turn.tool_calls_only


def test_genai_span_events():
    turn = read_turn("chat m", genai(), [
        ("gen_ai.system.message", {"content": "be brief"}),
        ("gen_ai.user.message", {"content": "Fix it"}),
        ("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                           "message": json.dumps({"role": "assistant", "content": "Which file?"})}),
    ])
    assert (turn.prompt, turn.response) == ("Fix it", "Which file?")


@pytest.mark.parametrize("operation", ["embeddings", "execute_tool", "invoke_agent", "create_agent"])
def test_genai_operations_other_than_a_model_call_are_never_turns(operation):
    assert read_turn("x", {"gen_ai.operation.name": operation, "gen_ai.system": "openai"}) is None


def test_a_token_count_that_is_not_a_number_names_the_attribute():
    with pytest.raises(SpanContentError, match="gen_ai.usage.input_tokens"):
        read_turn("chat m", genai(**{"gen_ai.usage.input_tokens": "lots"}))


# --- questions asked through tools ------------------------------------------------------

def asking(name: str, arguments: dict) -> dict:
    return genai(**{"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "id": "c1", "name": name, "arguments": arguments}]}])})


@pytest.mark.parametrize("name", ["ask_question", "ask_user", "AskUserQuestion", "request_user_input"])
def test_the_question_tools_ask_questions(name):
    assert read_turn("chat m", asking(name, {"question": "Keep the old names?"})).questions == ["Keep the old names?"]


def test_ask_user_question_with_several_questions():
    arguments = {"questions": [{"question": "Which shell?", "header": "Shell", "options": []},
                               {"question": "Which OS?", "header": "OS", "options": []}]}
    assert read_turn("chat m", asking("AskUserQuestion", arguments)).questions == ["Which shell?", "Which OS?"]


def test_a_configured_question_tool_asks_and_the_defaults_are_replaced():
    attrs = asking("consult_human", {"text": "Which branch?"})
    assert read_turn("chat m", attrs).questions == []
    assert read_turn("chat m", attrs, question_tools=["consult_human"]).questions == ["Which branch?"]


def test_other_tools_ask_nothing():
    assert read_turn("chat m", asking("run_tests", {"query": "all"})).questions == []


# --- one call, one turn ----------------------------------------------------------------

def step(start, end, prompt="Fix it", response="Which file?", name=None, trajectory="t"):
    attrs = genai(**{
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": (
            [{"type": "tool_call", "id": "c1", "name": name, "arguments": {"question": "Which OS?"}}] if name
            else [{"type": "text", "content": response}])}]),
    })
    return Step(trajectory, start, end, read_turn("chat", attrs), record=(start, end))


def test_a_call_traced_twice_nested_is_one_turn():
    resolver = TurnResolver()
    assert resolver.add(step(2, 8)) is not None
    assert resolver.add(step(1, 9)) is None
    assert resolver.duplicates == 1


def test_two_calls_one_after_the_other_are_two_turns_even_when_they_say_the_same():
    resolver = TurnResolver()
    assert resolver.add(step(1, 2)) is not None
    assert resolver.add(step(3, 4)) is not None


def test_a_call_traced_twice_is_one_turn_after_many_calls_one_after_the_other():
    resolver = TurnResolver()
    for k in range(20):
        assert resolver.add(step(10 * k, 10 * k + 5, response=f"Reply {k}")) is not None
    assert resolver.add(step(190, 196, response="Reply 19")) is None  # around the last call, starting with it
    assert resolver.add(step(191, 194, response="Reply 19")) is None  # inside it
    assert resolver.duplicates == 2


def test_a_tool_call_only_step_goes_with_the_turn_it_leads_to():
    resolver = TurnResolver()
    assert resolver.add(step(1, 2, name="ask_user")) is None
    resolved = resolver.add(step(3, 4, response="Thanks, done."))
    assert resolved.questions == ["Which OS?"]
    assert [call["name"] for call in resolved.tool_calls] == ["ask_user"]


def test_a_trajectory_ending_on_a_question_asked_through_a_tool_keeps_it():
    resolver = TurnResolver()
    resolver.add(step(1, 2, name="ask_user"))
    resolved = resolver.close("t")
    assert resolved is not None and resolved.questions == ["Which OS?"]


def turn_span_step(start, end, response="Done.", trajectory="t"):
    candidate = read_turn(c.TURN_SPAN, {c.SPAN_KIND: "LLM", c.INPUT_VALUE: "Fix it", c.OUTPUT_VALUE: response})
    return Step(trajectory, start, end, candidate, record=(start, end))


def test_a_turn_span_carries_the_tool_call_only_step_before_it():
    resolver = TurnResolver()
    assert resolver.add(step(1, 2, name="ask_user")) is None
    resolved = resolver.add(turn_span_step(3, 4))
    assert resolved.questions == ["Which OS?"]
    assert [call["name"] for call in resolved.tool_calls] == ["ask_user"]
    assert resolver.folded == 1


def test_a_turn_span_declared_without_a_step_carries_what_add_would():
    by_add, by_declared = TurnResolver(), TurnResolver()
    for resolver in (by_add, by_declared):
        resolver.add(step(1, 2, name="ask_user"))
    resolved = by_add.add(turn_span_step(3, 4))
    assert by_declared.declared("t", turn_span_step(3, 4).candidate) == (resolved.tool_calls, resolved.questions)
    assert (by_declared.folded, by_declared.close("t")) == (by_add.folded, by_add.close("t"))


def test_a_turn_span_inside_a_model_call_is_a_turn_of_its_own():
    resolver = TurnResolver()
    assert resolver.add(step(1, 9, response="Done.")) is not None
    assert resolver.add(turn_span_step(2, 8)) is not None
    assert resolver.duplicates == 0


@pytest.mark.parametrize("value, expected", [
    (120, 120), (2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)), (3.0, 3), ("42", 42), (" 7 ", 7)])
def test_a_token_count_in_range_is_read_as_it_is(value, expected):
    assert read_turn(c.TURN_SPAN, {c.INPUT_VALUE: "a", c.OUTPUT_VALUE: "b", c.TOKEN_COUNT_TOTAL: value}
                     ).token_count == expected


def test_a_token_count_past_64_bits_is_dropped_and_counted():
    turn = read_turn(c.TURN_SPAN, {c.INPUT_VALUE: "a", c.OUTPUT_VALUE: "b", c.TOKEN_COUNT_TOTAL: 2**63})
    assert (turn.token_count, turn.dropped_values) == (None, 1)


def test_a_bool_token_count_is_an_error_not_a_number():
    with pytest.raises(SpanContentError, match="got a bool"):
        read_turn(c.TURN_SPAN, {c.INPUT_VALUE: "a", c.OUTPUT_VALUE: "b", c.TOKEN_COUNT_TOTAL: True})


def test_an_int_subclass_token_count_is_read_as_its_value():
    import enum

    class Count(enum.IntEnum):
        SOME = 12

    assert read_turn(c.TURN_SPAN, {c.INPUT_VALUE: "a", c.OUTPUT_VALUE: "b", c.TOKEN_COUNT_TOTAL: Count.SOME}
                     ).token_count == 12


def test_empty_texts_and_empty_messages_are_left_out_of_the_reply():
    attrs = genai(**{"gen_ai.output.messages": json.dumps([
        {"role": "assistant", "parts": [{"type": "text", "content": "One"}, {"type": "text", "content": ""},
                                        {"type": "text", "content": "two"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": ""}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Three"}]}])})
    assert read_turn("chat m", attrs).response == "One\ntwo\nThree"


def test_json_followed_by_more_text_is_not_a_json_body():
    attrs = genai(**{"gen_ai.output.messages": '[{"role": "assistant", "parts": []}] and more'})
    assert read_turn("chat m", attrs).response is None
