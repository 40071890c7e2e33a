"""Reading ATIF documents and deciding whether they mean something.

ATIF (Agent Trajectory Interchange Format) is Harbor's RFC 0001; its reference
models are ``harbor.models.trajectories``. Reading is lenient where the format
is open (unknown fields, any ``ATIF-v1.x``, a missing ``agent``) and strict
where a wrong guess would change what a turn says: no ``steps`` list, step ids
that do not run 1, 2, 3..., a step from nobody we know, a major version this
reader was not written for. Every error names the file and the step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ppp_otel.records import utc_iso

#: The version :mod:`ppp_otel.interchange.atif.exporter` writes.
EXPORT_VERSION = "ATIF-v1.7"
SUPPORTED_MAJOR = 1
STEP_SOURCES = ("system", "user", "agent")

#: Fields the v1.x models define; anything else is kept but not interpreted.
ROOT_FIELDS = (
    "schema_version", "session_id", "trajectory_id", "agent", "steps", "notes",
    "final_metrics", "continued_trajectory_ref", "extra", "subagent_trajectories",
)
STEP_FIELDS = (
    "step_id", "timestamp", "source", "model_name", "reasoning_effort", "message",
    "reasoning_content", "tool_calls", "observation", "metrics", "is_copied_context",
    "llm_call_count", "extra",
)

#: The step metrics that count tokens: whole numbers, when given.
TOKEN_METRICS = ("prompt_tokens", "completion_tokens", "cached_tokens")

# Producers write "ATIF-v1.4"; a few write "1.4" or "v1.4". All say the same.
_VERSION = re.compile(r"^(?:ATIF-)?v?(\d+)(?:\.(\d+))?$", re.IGNORECASE)


class AtifError(ValueError):
    """A document that cannot be read as ATIF; the message names where."""


@dataclass
class Document:
    """One ATIF document and where it came from (``file`` or ``file line N``)."""

    origin: str
    data: dict[str, Any]


def looks_like_atif(data: Any) -> bool:
    """True for what claims to be ATIF, valid or not (used to pass over other JSON)."""
    if not isinstance(data, dict):
        return False
    version = data.get("schema_version")
    return (isinstance(version, str) and version.upper().startswith("ATIF")) or "steps" in data


def read_file(path: Path) -> Iterator[Document | AtifError]:
    """The documents in one file: a JSON object, a JSON array of them, or JSON lines.

    A line that does not parse spoils only itself, so a bad record in a long
    JSON-lines file costs one document, not the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield AtifError(f"{path}: cannot read: {exc}")
        return
    try:
        whole = json.loads(text)
    except RecursionError:
        yield AtifError(f"{path}: JSON nested too deeply")
        return
    except ValueError as exc:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or not all(line.lstrip().startswith("{") for _, line in lines):
            yield AtifError(f"{path}: not JSON: {exc}")
            return
        for number, line in lines:
            origin = f"{path} line {number}"
            try:
                document = Document(origin, json.loads(line))
            except ValueError as line_exc:
                document = AtifError(f"{origin}: not JSON: {line_exc}")
            except RecursionError:
                document = AtifError(f"{origin}: JSON nested too deeply")
            yield document
        return
    if isinstance(whole, list):
        for index, item in enumerate(whole):
            yield Document(f"{path} [{index}]", item)
    else:
        yield Document(str(path), whole)


def major_version(data: dict[str, Any], origin: str) -> int:
    version = data.get("schema_version")
    if version is None:
        return SUPPORTED_MAJOR  # older producers omit it; v1 is all there is
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise AtifError(f"{origin}: schema_version {version!r} is not an ATIF version (expected ATIF-v1.x)")
    major = int(match.group(1))
    if major != SUPPORTED_MAJOR:
        raise AtifError(
            f"{origin}: unknown major version {version!r}: this reader knows ATIF-v1.x only"
        )
    return major


def validate(data: Any, origin: str) -> None:
    """Raise :class:`AtifError` when the document breaks what ATIF means."""
    if not isinstance(data, dict):
        raise AtifError(f"{origin}: an ATIF document is a JSON object, got {type(data).__name__}")
    major_version(data, origin)
    agent = data.get("agent")
    if agent is not None and not isinstance(agent, dict):
        raise AtifError(f"{origin}: agent must be an object")
    steps = data.get("steps")
    if steps is None:
        raise AtifError(f"{origin}: no steps list")
    if not isinstance(steps, list):
        raise AtifError(f"{origin}: steps must be a list, got {type(steps).__name__}")
    if not steps:
        raise AtifError(f"{origin}: steps is empty (ATIF needs at least one step)")
    for index, step in enumerate(steps):
        _validate_step(step, index, origin)
    subagents = data.get("subagent_trajectories")
    if subagents is not None:
        if not isinstance(subagents, list):
            raise AtifError(f"{origin}: subagent_trajectories must be a list")
        for index, sub in enumerate(subagents):
            validate(sub, f"{origin}: subagent_trajectories[{index}]")


def _validate_step(step: Any, index: int, origin: str) -> None:
    where = f"{origin}: step {index + 1}"
    if not isinstance(step, dict):
        raise AtifError(f"{where}: a step is a JSON object, got {type(step).__name__}")
    step_id = step.get("step_id")
    if isinstance(step_id, bool) or not isinstance(step_id, int) or step_id != index + 1:
        raise AtifError(
            f"{where}: step_id is {step_id!r}, expected {index + 1} "
            "(step_ids must run 1, 2, 3, ... in order)"
        )
    source = step.get("source")
    if source not in STEP_SOURCES:
        raise AtifError(f"{where}: source is {source!r}, expected one of {', '.join(STEP_SOURCES)}")
    message = step.get("message", "")
    if not isinstance(message, (str, list)):
        raise AtifError(f"{where}: message must be a string or a list of content parts")
    for key, kind in (("tool_calls", list), ("observation", dict), ("metrics", dict), ("extra", dict)):
        value = step.get(key)
        if value is not None and not isinstance(value, kind):
            raise AtifError(f"{where}: {key} must be a{'n object' if kind is dict else ' list'}")
    for number, call in enumerate(step.get("tool_calls") or []):
        # A tool's name says whether the agent asked its user something (ask_user, ...).
        if not isinstance(call, dict):
            raise AtifError(f"{where}: tool_calls[{number}] must be an object, got {type(call).__name__}")
        name = call.get("function_name")
        if name is not None and not isinstance(name, str):
            raise AtifError(f"{where}: tool_calls[{number}].function_name must be a string, got {name!r:.60}")
    check_time(step.get("timestamp"), f"{where}: timestamp")
    for key, value in (step.get("metrics") or {}).items():
        if value is None:
            continue
        if key in TOKEN_METRICS and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise AtifError(f"{where}: metrics.{key} is {value!r}, expected a whole number of tokens (0 or more)")
        if key == "cost_usd" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise AtifError(f"{where}: metrics.cost_usd is {value!r}, expected a number")


def check_time(value: Any, what: str) -> str | None:
    """``value`` in the store's one form (:func:`ppp_otel.records.utc_iso`), or None for None.

    Raises :class:`AtifError` unless it is an ISO 8601 date and time (ATIF's
    timestamps): a text that is not one would be stored as the turn's time, shown
    as it is and never selected by ``cleanup --older-than``. ATIF gives no zone
    for a time without an offset; it is read as UTC (docs/atif.md).
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return utc_iso(value)
        except ValueError:
            pass
    raise AtifError(f"{what} is {value!r}, not an ISO 8601 time (e.g. 2025-10-16T14:30:00Z)")


def message_text(message: Any) -> str:
    """The text of a message: itself, or its text parts (v1.6 multimodal) joined."""
    if isinstance(message, str):
        return message
    if isinstance(message, list):
        return "\n".join(
            part["text"] for part in message
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""
