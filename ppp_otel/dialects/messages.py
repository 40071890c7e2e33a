"""The conversation inside an LLM span, whatever dialect spelled it.

Every dialect reads its span into :class:`Message` lists; what a turn is made
of (the user's latest words, the reply, the tool calls) is decided here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence


class SpanContentError(ValueError):
    """A span attribute has a value no dialect can read (names the attribute)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str = ""  # as the model sent them: JSON text, usually
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.id:
            found["id"] = self.id
        return found


@dataclass(slots=True)
class Message:
    role: str = ""
    texts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Tool output sent back to the model (role "tool", or Anthropic's tool_result
    # blocks sent with role "user"): never the user's own words.
    tool_result: bool = False

    @property
    def text(self) -> str:
        return "\n".join(filter(None, self.texts))  # its texts are str: the empty ones are left out


_USER_ROLES = ("user", "human")


def user_words(message: Message | None) -> str | None:
    """The message's text when it is the user's own words (not a tool result) and says something."""
    if message is None or message.role not in _USER_ROLES or message.tool_result:
        return None
    text = message.text
    return text if text.strip() else None


def latest_user_text(messages: Sequence[Any], to_message: Callable[[Any], Message | None] | None = None) -> str | None:
    """The text of the last message the user wrote; tool results do not count.

    With ``to_message``, ``messages`` are raw items made into messages from the end and
    only until it is found: a request carries the whole conversation so far, and its
    last user message is all a turn takes of it."""
    for item in reversed(messages):
        text = user_words(to_message(item) if to_message is not None else item)
        if text is not None:
            return text
    return None


def reply_text(messages: Sequence[Message]) -> str:
    return "\n".join(filter(None, [m.text for m in messages]))  # each message's text made once


def reply_tool_calls(messages: Sequence[Message]) -> list[ToolCall]:
    return dedupe([call for m in messages for call in m.tool_calls])


def dedupe(calls: Iterable[ToolCall]) -> list[ToolCall]:
    seen: set = set()
    kept = []
    for call in calls:
        key = call.id or (call.name, call.arguments)
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


def arguments_text(value: Any) -> str:
    """Tool arguments as JSON text (some dialects send an object, some a string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


# What json.loads calls for a str with no options, without its checks of them.
_decode = json.JSONDecoder().decode


def loads(value: Any) -> Any:
    """A JSON attribute's value, or None when it is not JSON."""
    if isinstance(value, (list, dict)):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return _decode(text)
    except ValueError:
        return None


# --- provider request/response bodies (OpenAI Chat and Responses, Anthropic, LangChain)
# OpenInference keeps the raw body in input.value / output.value; when it has no
# messages attributes these are where the conversation is.

def _content_parts(content: Any) -> tuple[list[str], list[ToolCall], bool]:
    """Text parts, tool calls and whether the content is tool output."""
    if isinstance(content, str):
        return [content], [], False
    texts: list[str] = []
    calls: list[ToolCall] = []
    tool_result = False
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in (None, "text", "input_text", "output_text"):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(part.get("content"), str):  # GenAI parts
                    texts.append(part["content"])
            elif kind in ("tool_use", "tool_call", "function_call"):
                calls.append(ToolCall(str(part.get("name") or ""), arguments_text(part.get("input", part.get("arguments"))),
                                      part.get("id") or part.get("call_id")))
            elif kind in ("tool_result", "tool_call_response", "function_call_output"):
                tool_result = True
    return texts, calls, tool_result


def _chat_tool_calls(raw: Any) -> list[ToolCall]:
    calls = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        function = item.get("function") if isinstance(item.get("function"), dict) else item
        calls.append(ToolCall(str(function.get("name") or ""),
                              arguments_text(function.get("arguments", function.get("args"))), item.get("id")))
    return calls


def body_message(raw: Any) -> Message | None:
    """One message of a provider request/response body."""
    if not isinstance(raw, dict):
        return None
    if raw.get("lc") == 1 and isinstance(raw.get("kwargs"), dict):  # a serialized LangChain message
        kwargs = raw["kwargs"]
        role = {"human": "user", "ai": "assistant"}.get(kwargs.get("type"), kwargs.get("type") or "")
        texts, calls, tool_result = _content_parts(kwargs.get("content"))
        calls += _chat_tool_calls(kwargs.get("tool_calls"))
        return Message(role, texts, calls, tool_result or role == "tool")
    kind = raw.get("type")
    if kind in ("function_call", "tool_call"):  # Responses API output and input items
        return Message("assistant", [], [ToolCall(str(raw.get("name") or ""), arguments_text(raw.get("arguments")),
                                                  raw.get("call_id") or raw.get("id"))])
    if kind == "function_call_output":
        return Message("tool", [], [], True)
    role = str(raw.get("role") or "")
    texts, calls, tool_result = _content_parts(raw.get("content"))
    calls += _chat_tool_calls(raw.get("tool_calls"))
    return Message(role, texts, calls, tool_result or role in ("tool", "function"))


def request_messages(body: Any) -> list[Message]:
    """The conversation of a request body (chat ``messages``, Responses ``input``, LangChain)."""
    if not isinstance(body, dict):
        return []
    raw = body.get("messages")
    if raw is None and "input" in body:
        raw = body["input"]
        if isinstance(raw, str):
            return [Message("user", [raw])]
    if isinstance(raw, list) and raw and isinstance(raw[0], list):  # LangChain: a batch of conversations
        raw = raw[-1]
    return [m for m in (body_message(item) for item in raw or []) if m is not None] if isinstance(raw, list) else []


def response_messages(body: Any) -> list[Message]:
    """The reply in a response body (chat ``choices``, Responses ``output``, Anthropic, LangChain)."""
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("choices"), list):
        found = []
        for choice in body["choices"]:
            if isinstance(choice, dict):
                message = body_message(choice.get("message") or choice.get("delta") or {})
                if message is None and isinstance(choice.get("text"), str):
                    message = Message("assistant", [choice["text"]])
                if message is not None:
                    found.append(message)
        return found
    if isinstance(body.get("output"), list):
        return [m for m in (body_message(item) for item in body["output"]) if m is not None]
    if body.get("type") == "message" and "content" in body:
        texts, calls, _ = _content_parts(body["content"])
        return [Message("assistant", texts, calls)]
    if isinstance(body.get("generations"), list):
        found = []
        for batch in body["generations"]:
            for generation in batch if isinstance(batch, list) else [batch]:
                if not isinstance(generation, dict):
                    continue
                message = body_message(generation.get("message")) if generation.get("message") else None
                if message is None or not (message.texts or message.tool_calls):
                    message = Message("assistant", [generation.get("text") or ""])
                found.append(message)
        return found
    return []
