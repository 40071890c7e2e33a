"""OpenInference: ``openinference.span.kind = LLM`` and ``llm.*_messages`` attributes.

Messages are flattened as ``llm.input_messages.<i>.message.<field>``, with the
text either in ``.content`` or in parts ``.contents.<j>.message_content.text``,
and tool calls in ``.tool_calls.<k>.tool_call.function.{name,arguments}``.
Indexes need not start at 0 (the Responses API instrumentation starts at 1).
``input.value`` / ``output.value`` hold the raw request and response (or, for
``ppp.turn`` spans, the plain prompt and reply); they are read when the
messages say nothing.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .. import conventions as c
from .messages import (
    Message,
    ToolCall,
    dedupe,
    latest_user_text,
    loads,
    reply_text,
    reply_tool_calls,
    request_messages,
    response_messages,
    user_words,
)

_KEY = re.compile(
    r"^llm\.(input|output)_messages\.(\d+)\.message\."
    r"(?:(role|content|tool_call_id)"
    r"|contents\.(\d+)\.message_content\.(type|text)"
    r"|(?:tool_calls\.(\d+)|contents\.(\d+))\.tool_call\.(id|function\.name|function\.arguments))$"
)


def _add_field(found: dict[str, dict[int, dict]], key: str, value: Any) -> None:
    """File one flattened attribute under its side and message in ``found`` (a key that is
    no message field is passed over)."""
    match = _KEY.match(key)
    if match is None:
        return
    side, index, field, part, part_field, call, part_call, call_field = match.groups()
    message = found[side].setdefault(int(index), {"parts": {}, "calls": {}})
    if field is not None:
        message[field] = value
    elif part is not None:
        message["parts"].setdefault(int(part), {})[part_field] = value
    else:
        # Anthropic's instrumentation writes a call both as tool_calls.K and as contents.M.
        slot = ("t", int(call)) if call is not None else ("c", int(part_call))
        message["calls"].setdefault(slot, {})[call_field] = value


def messages(attrs: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    """(input messages, output messages) from the flattened attributes."""
    found: dict[str, dict[int, dict]] = {"input": {}, "output": {}}
    for key, value in attrs.items():
        if key.startswith("llm.") and "_messages." in key:
            _add_field(found, key, value)
    return [_message(m) for _, m in sorted(found["input"].items())], [_message(m) for _, m in sorted(found["output"].items())]


_INPUT_PREFIX, _OUTPUT_PREFIX = c.LLM_INPUT_MESSAGES + ".", c.LLM_OUTPUT_MESSAGES + "."


def _keys_by_message(attrs: Mapping[str, Any]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Each side's message keys (in the span's order) by message index, found by string
    tests alone: a request's attributes spell out the whole conversation so far, and a
    turn reads only its end, so this loop is all most keys cost."""
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    for key in attrs:
        if key.startswith(_INPUT_PREFIX):
            index, dot, _ = key[19:].partition(".")
            group = inputs
        elif key.startswith(_OUTPUT_PREFIX):
            index, dot, _ = key[20:].partition(".")
            group = outputs
        else:
            continue
        if dot and index.isdecimal():  # what \d+ takes
            keys = group.get(index)
            if keys is None:
                group[index] = [key]
            else:
                keys.append(key)
    return _by_number(attrs, inputs), _by_number(attrs, outputs)


def _by_number(attrs: Mapping[str, Any], groups: dict[str, list[str]]) -> dict[int, list[str]]:
    numbered: dict[int, list[str]] = {}
    for index, keys in groups.items():
        n = int(index)
        if n in numbered:  # "01" and "1": one message, its keys in the span's order
            order = {key: i for i, key in enumerate(attrs)}
            numbered[n] = sorted(numbered[n] + keys, key=order.__getitem__)
        else:
            numbered[n] = keys
    return numbered


def _read_message(attrs: Mapping[str, Any], keys: list[str]) -> Message | None:
    """One message from its keys, as :func:`messages` reads it; None when none of them is a message field."""
    one: dict[str, dict[int, dict]] = {"input": {}, "output": {}}
    for key in keys:
        _add_field(one, key, attrs[key])
    raw = one["input"] or one["output"]
    return _message(next(iter(raw.values()))) if raw else None


def _message(raw: dict) -> Message:
    role = raw.get("role") if isinstance(raw.get("role"), str) else ""
    texts = []
    if isinstance(raw.get("content"), str):
        texts.append(raw["content"])
    for _, part in sorted(raw["parts"].items()):
        if part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
    calls = dedupe(
        ToolCall(str(call.get("function.name") or ""), str(call.get("function.arguments") or ""),
                 str(call["id"]) if call.get("id") is not None else None)
        for _, call in sorted(raw["calls"].items())
    )
    return Message(role, texts, calls, tool_result=role in ("tool", "function") or "tool_call_id" in raw)


def _value(attrs: Mapping[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return None


#: Spans with fewer attributes are read in one pass over them all; longer ones, which
#: spell out a long conversation, from its end.
READ_ALL_BELOW = 40


def _read_from_the_end(attrs: Mapping[str, Any]) -> tuple[list[Message], list[Message], str | None]:
    """(the input messages read, every output message, the latest user text): the input
    messages are read from the last, all of them only when no user message has words."""
    input_keys, output_keys = _keys_by_message(attrs)
    outputs = [m for m in (_read_message(attrs, output_keys[i]) for i in sorted(output_keys)) if m is not None]
    inputs: list[Message] = []
    prompt = None
    for i in sorted(input_keys, reverse=True):
        message = _read_message(attrs, input_keys[i])
        if message is None:
            continue
        inputs.append(message)
        prompt = user_words(message)
        if prompt is not None:
            break
    inputs.reverse()
    return inputs, outputs, prompt


def read(attrs: Mapping[str, Any], *, scan_messages: bool = True):
    """(prompt, response, tool calls) of an OpenInference LLM span."""
    input_value, output_value = _value(attrs, c.INPUT_VALUE), _value(attrs, c.OUTPUT_VALUE)
    json_in = attrs.get(c.INPUT_MIME_TYPE) == "application/json"
    json_out = attrs.get(c.OUTPUT_MIME_TYPE) == "application/json"

    if not scan_messages:
        inputs, outputs, prompt = [], [], None
    elif len(attrs) < READ_ALL_BELOW:
        inputs, outputs = messages(attrs)  # a short conversation: one pass reads it all
        prompt = latest_user_text(inputs)
    else:
        inputs, outputs, prompt = _read_from_the_end(attrs)
    if prompt is None and input_value is not None:
        body = loads(input_value)
        if isinstance(body, dict) and ("messages" in body or "input" in body):
            prompt = latest_user_text(request_messages(body))
        elif body is None or not json_in:
            prompt = input_value  # a plain prompt (ppp.turn, or text an agent put there)
    if prompt is None and inputs and not any(m.tool_result for m in inputs):
        prompt = inputs[-1].text or None

    response = reply_text(outputs)
    calls = reply_tool_calls(outputs)
    if not response and output_value is not None:
        body = loads(output_value)
        replies = response_messages(body) if isinstance(body, dict) else []
        if replies:
            response = reply_text(replies)
            calls = calls or reply_tool_calls(replies)
        elif body is None or not json_out:
            response = output_value
    return prompt, response or None, calls
