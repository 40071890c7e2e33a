"""Text SQLite cannot store, made storable: lone surrogates become U+FFFD.

An LLM stream cut in the middle of an emoji, or a JSON body with a ``\\ud83d``
escape and no partner, gives a Python string with a lone surrogate. SQLite's
UTF-8 encoder refuses it, which would cost the whole turn (or trajectory).
The text is kept instead, with each unencodable character replaced and counted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ppp_otel.records import TrajectoryRecord, TurnRecord

REPLACEMENT = "\ufffd"


def repair_text(text: str) -> tuple[str, int]:
    """``text`` with lone surrogates replaced by U+FFFD, and how many were replaced.

    A high and low surrogate that stand side by side are joined into the
    character they encode, as a UTF-16 decoder would."""
    if text.isascii():
        return text, 0
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        pass
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed, fixed.count(REPLACEMENT) - text.count(REPLACEMENT)


def _value(value: Any) -> tuple[Any, int]:
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, dict):
        total, out = 0, {}
        for k, v in value.items():
            k2, n1 = _value(k) if isinstance(k, str) else (k, 0)
            v2, n2 = _value(v)
            out[k2] = v2
            total += n1 + n2
        return (out, total) if total else (value, 0)
    if isinstance(value, (list, tuple)):
        items = [_value(v) for v in value]
        total = sum(n for _, n in items)
        return (type(value)(v for v, _ in items), total) if total else (value, 0)
    return value, 0


def _ascii(value: Any) -> bool:
    return value is None or (type(value) is str and value.isascii())


def _fixed(obj: Any, names: tuple[str, ...]) -> tuple[dict[str, Any], int]:
    """The repaired values of ``obj``'s fields that needed it, and how many characters were replaced."""
    changes, total = {}, 0
    for name in names:
        value, n = _value(getattr(obj, name))
        if n:
            changes[name] = value
            total += n
    return changes, total


def repair_record(record: TrajectoryRecord | TurnRecord) -> int:
    """Repair every text of a record in place; returns how many characters were replaced."""
    if isinstance(record, TurnRecord):
        # The common turn, asked here rather than in a call every turn would pay for: its
        # texts ASCII (str.isascii is C-fast), which has no surrogates, and nothing else
        # (extra, violations) to look through or copy.
        prompt, response = record.prompt, record.response
        if ((prompt is None or (type(prompt) is str and prompt.isascii()))
                and (response is None or (type(response) is str and response.isascii()))
                and not record.extra and not record.violations):
            for q in record.questions:
                if not (_ascii(q.text) and _ascii(q.effort)):
                    return _repair_turn(record)
            return 0
        return _repair_turn(record)
    if isinstance(record, TrajectoryRecord):
        changes, total = _fixed(record, ("spec_id", "agent_name", "run_id", "preferences"))
        for name, value in changes.items():
            setattr(record, name, value)
        return total
    return 0  # staged spans are stored as JSON, which escapes what UTF-8 cannot hold


def _repair_turn(record: TurnRecord) -> int:
    changes, total = _fixed(record, ("prompt", "response", "extra"))
    for name, value in changes.items():
        setattr(record, name, value)
    questions = []
    for q in record.questions:
        changes, n = _fixed(q, ("text", "effort"))
        total += n
        questions.append(replace(q, **changes) if changes else q)
    record.questions = questions
    violations = []
    for v in record.violations:
        changes, n = _fixed(v, ("preference", "expected", "actual", "severity"))
        total += n
        violations.append(replace(v, **changes) if changes else v)
    record.violations = violations
    return total


__all__ = ["REPLACEMENT", "repair_record", "repair_text"]
