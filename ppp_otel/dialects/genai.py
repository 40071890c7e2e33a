"""OpenTelemetry GenAI semantic conventions, current and older.

Current (``gen_ai.input.messages`` / ``gen_ai.output.messages``): JSON lists of
``{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", "name",
"arguments"}, {"type": "tool_call_response", ...}]}``; the system prompt is in
``gen_ai.system_instructions`` and is not the user's.

Older releases (OpenLLMetry/Traceloop and others) index attributes:
``gen_ai.prompt.<i>.{role,content}``, ``gen_ai.completion.<i>.{role,content}``,
``gen_ai.completion.<i>.tool_calls.<k>.{name,arguments}``; or put the content
in span events ``gen_ai.{system,user,assistant,tool}.message`` and
``gen_ai.choice``, or ``gen_ai.content.prompt`` / ``gen_ai.content.completion``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .messages import (
    Message,
    ToolCall,
    _content_parts,
    _chat_tool_calls,
    arguments_text,
    body_message,
    latest_user_text,
    loads,
    reply_text,
    reply_tool_calls,
)

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
OPERATION = "gen_ai.operation.name"
#: Operations that are one model call producing a reply.
CHAT_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})

_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_INDEXED_CALL = re.compile(r"^tool_calls\.(\d+)\.(name|arguments|id)$")


def _parts_message(raw: Any) -> Message | None:
    if not isinstance(raw, dict):
        return None
    role = str(raw.get("role") or "")
    if "parts" not in raw:
        return body_message(raw)
    texts, calls, tool_result = _content_parts(raw.get("parts"))
    return Message(role, texts, calls, tool_result or role == "tool")


def _json_items(value: Any) -> list:
    parsed = loads(value)
    if isinstance(parsed, dict):
        return [parsed]
    return parsed if isinstance(parsed, list) else []


def _json_messages(value: Any) -> list[Message]:
    return [m for m in (_parts_message(item) for item in _json_items(value)) if m is not None]


def _indexed(attrs: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    found: dict[str, dict[int, dict]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        if not key.startswith(("gen_ai.prompt.", "gen_ai.completion.")):
            continue
        match = _INDEXED.match(key)
        if match is None:
            continue
        side, index, rest = match.groups()
        slot = found[side].setdefault(int(index), {"calls": {}})
        call = _INDEXED_CALL.match(rest)
        if call is not None:
            slot["calls"].setdefault(int(call.group(1)), {})[call.group(2)] = value
        else:
            slot[rest] = value
    result = []
    for side in ("prompt", "completion"):
        msgs = []
        for _, raw in sorted(found[side].items()):
            role = str(raw.get("role") or ("assistant" if side == "completion" else ""))
            content = raw.get("content")
            texts, calls, tool_result = _content_parts(loads(content) if isinstance(content, str) else content)
            if isinstance(content, str) and loads(content) is None:
                texts = [content]
            calls += [ToolCall(str(c.get("name") or ""), arguments_text(c.get("arguments")), c.get("id"))
                      for _, c in sorted(raw["calls"].items())]
            msgs.append(Message(role, texts, calls, tool_result or role == "tool" or "tool_call_id" in raw))
        result.append(msgs)
    return result[0], result[1]


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_message(role: str, attrs: Mapping[str, Any]) -> Message:
    content = attrs.get("content")
    if content is None and isinstance(attrs.get("message"), (dict, str)):
        inner = loads(attrs["message"]) if isinstance(attrs["message"], str) else attrs["message"]
        if isinstance(inner, dict):
            content = inner.get("content")
            attrs = {**attrs, "tool_calls": inner.get("tool_calls", attrs.get("tool_calls"))}
    texts, calls, tool_result = _content_parts(loads(content) if isinstance(content, str) and loads(content) else content)
    calls += _chat_tool_calls(loads(attrs.get("tool_calls")) if isinstance(attrs.get("tool_calls"), str)
                              else attrs.get("tool_calls"))
    return Message(role, texts, calls, tool_result or role == "tool")


def _events(events: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for name, attrs in events:
        attrs = attrs or {}
        if name in _EVENT_ROLES:
            inputs.append(_event_message(_EVENT_ROLES[name], attrs))
        elif name == "gen_ai.choice":
            outputs.append(_event_message("assistant", attrs))
        elif name == "gen_ai.content.prompt":
            inputs.extend(_json_messages(attrs.get("gen_ai.prompt")))
        elif name == "gen_ai.content.completion":
            outputs.extend(_json_messages(attrs.get("gen_ai.completion")))
    return inputs, outputs


def read(attrs: Mapping[str, Any], events: Sequence[tuple[str, Mapping[str, Any]]] = ()):
    """(prompt, response, tool calls) of a GenAI model-call span."""
    raw_inputs = _json_items(attrs.get(INPUT_MESSAGES))
    outputs = _json_messages(attrs.get(OUTPUT_MESSAGES))
    if outputs:
        # The input messages are the conversation so far: read from its end.
        prompt = latest_user_text(raw_inputs, _parts_message)
    else:
        inputs = [m for m in (_parts_message(item) for item in raw_inputs) if m is not None]
        if not inputs:
            inputs, outputs = _indexed(attrs)
        if not inputs and not outputs and events:
            inputs, outputs = _events(events)
        prompt = latest_user_text(inputs)
    response = reply_text(outputs)
    return prompt, response or None, reply_tool_calls(outputs)


_TOKEN_TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")
_TOKEN_IN = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_TOKEN_OUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")


def token_keys() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return _TOKEN_TOTAL, _TOKEN_IN, _TOKEN_OUT
