"""Questions the agent asks the user through a tool, as the PPP paper's agents do.

A call of ``ask_question``, ``ask_user``, ``AskUserQuestion`` or
``request_user_input`` (or a name set in ``[ppp.trajectory] question_tools``)
is a question of its turn; its text comes from the call's arguments.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .messages import ToolCall, loads

DEFAULT_QUESTION_TOOLS = ("ask_question", "ask_user", "AskUserQuestion", "request_user_input")

_TEXT_KEYS = ("question", "questions", "text", "prompt", "message", "query", "content")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                found = _texts(value[key])
                if found:
                    return found
    return []


def question_texts(arguments: str) -> list[str]:
    """The question(s) in a tool call's arguments: JSON with a question field, or plain text."""
    parsed = loads(arguments)
    if parsed is None:
        return [arguments.strip()] if arguments and arguments.strip() else []
    found = _texts(parsed)
    if not found and isinstance(parsed, dict):
        strings = [v for v in parsed.values() if isinstance(v, str) and v.strip()]
        if len(strings) == 1:  # a tool whose one argument has another name
            found = [strings[0].strip()]
    return found


def questions_from_tool_calls(calls: Sequence[ToolCall], question_tools: Iterable[str]) -> list[str]:
    if not calls:
        return []
    names = {name.lower() for name in question_tools}
    if not names:
        return []
    return [text for call in calls if call.name.lower() in names for text in question_texts(call.arguments)]
