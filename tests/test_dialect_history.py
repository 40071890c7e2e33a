"""A request carries the whole conversation so far, and a turn takes only its end:
the readers look at the last messages first, and read exactly what reading every
message would (checked against that reading on generated conversations)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ppp_otel import conventions as c
from ppp_otel.dialects import genai, openinference
from ppp_otel.dialects.messages import loads, reply_text, reply_tool_calls, request_messages

ROLES = st.sampled_from(["user", "assistant", "tool", "system", "human", "function", ""])
TEXTS = st.sampled_from(["Fix the build.", "", "   ", "Which file?", "Thanks", "It fails on CI."])


def latest_user_text(messages):
    """The last user message with words, tool results left out: written out here, so that
    the reference does not share the code it checks."""
    for message in reversed(messages):
        if message.role in ("user", "human") and not message.tool_result and message.text.strip():
            return message.text
    return None


def _read_every_message_openinference(attrs):
    """openinference.read as it was when it read every message (the reference)."""
    inputs, outputs = openinference.messages(attrs)
    input_value = attrs.get(c.INPUT_VALUE)
    prompt = latest_user_text(inputs)
    if prompt is None and input_value is not None:
        body = loads(input_value)
        if isinstance(body, dict) and ("messages" in body or "input" in body):
            prompt = latest_user_text(request_messages(body))
        elif body is None or attrs.get(c.INPUT_MIME_TYPE) != "application/json":
            prompt = input_value
    if prompt is None and inputs and not any(m.tool_result for m in inputs):
        prompt = inputs[-1].text or None
    return prompt, reply_text(outputs) or None, reply_tool_calls(outputs)


@st.composite
def openinference_spans(draw):
    attrs = {c.SPAN_KIND: "LLM"}
    for side in ("input", "output"):
        for i in draw(st.lists(st.sampled_from(["0", "1", "2", "3", "01", "12", "x"]), max_size=6)):
            prefix = f"llm.{side}_messages.{i}.message"
            field = draw(st.sampled_from(["role", "content", "tool_call_id", "contents.0.message_content.text",
                                          "contents.1.message_content.type", "tool_calls.0.tool_call.function.name",
                                          "unknown"]))
            attrs[f"{prefix}.{field}"] = draw(ROLES) if field == "role" else draw(TEXTS)
    if draw(st.booleans()):
        attrs[c.INPUT_VALUE] = draw(st.sampled_from(["plain prompt", json.dumps({"messages": [
            {"role": "user", "content": "from the body"}]}), "{not json"]))
    if draw(st.booleans()):
        attrs[c.INPUT_MIME_TYPE] = "application/json"
    return attrs


@settings(max_examples=400, deadline=None)
@given(openinference_spans())
def test_openinference_reads_from_the_end_what_reading_every_message_reads(attrs):
    want = _read_every_message_openinference(attrs)
    short = openinference.READ_ALL_BELOW
    try:
        openinference.READ_ALL_BELOW = 0  # read from the end however short the span
        got = openinference.read(attrs)
    finally:
        openinference.READ_ALL_BELOW = short
    assert (got[0], got[1] or None, got[2]) == want
    assert openinference.read(attrs) == got  # and read in one pass, as a short span is


@st.composite
def genai_spans(draw):
    def messages(roles):
        part = st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_call_response"]), "content": TEXTS})
        return [{"role": role, "parts": draw(st.lists(part, min_size=1, max_size=2))} for role in roles]
    attrs = {"gen_ai.operation.name": "chat"}
    inputs = messages(draw(st.lists(ROLES, max_size=8)))
    if inputs or draw(st.booleans()):
        attrs[genai.INPUT_MESSAGES] = json.dumps(inputs)
    if draw(st.booleans()):
        attrs[genai.OUTPUT_MESSAGES] = json.dumps(messages(draw(st.lists(st.just("assistant"), max_size=2))))
    if draw(st.booleans()):
        attrs["gen_ai.prompt.0.role"] = "user"
        attrs["gen_ai.prompt.0.content"] = "indexed prompt"
    return attrs


@settings(max_examples=400, deadline=None)
@given(genai_spans())
def test_genai_reads_from_the_end_what_reading_every_message_reads(attrs):
    inputs = genai._json_messages(attrs.get(genai.INPUT_MESSAGES))
    outputs = genai._json_messages(attrs.get(genai.OUTPUT_MESSAGES))
    if not inputs and not outputs:
        inputs, outputs = genai._indexed(attrs)
    want = (latest_user_text(inputs), reply_text(outputs) or None, reply_tool_calls(outputs))
    assert genai.read(attrs) == want


def test_a_long_conversation_is_read_only_to_its_last_user_message():
    attrs = {c.SPAN_KIND: "LLM"}
    for i in range(200):
        attrs[f"llm.input_messages.{i}.message.role"] = "user" if i % 2 == 0 else "assistant"
        attrs[f"llm.input_messages.{i}.message.content"] = f"message {i}"
    attrs["llm.output_messages.0.message.role"] = "assistant"
    attrs["llm.output_messages.0.message.content"] = "Which one?"
    read = []
    real = openinference._read_message
    try:
        openinference._read_message = lambda a, keys: read.append(keys) or real(a, keys)
        assert openinference.read(attrs)[:2] == ("message 198", "Which one?")
    finally:
        openinference._read_message = real
    assert len(read) == 3  # the reply, then messages 199 and 198
