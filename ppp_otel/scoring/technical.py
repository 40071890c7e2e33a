"""What the judge is given: the weights and the agents' technical scores, read from
text (``--weights 0.7,0.3``, ``--technical alpha=0.9``), a JSON file or the
configuration, and checked (finite numbers; technical scores between 0 and 1).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ppp_otel.config.settings import check_weights, process_config


@dataclass(frozen=True)
class Weights:
    technical: float
    interaction: float

    def __post_init__(self) -> None:
        check_weights(self.technical, self.interaction)  # the config's rules; ConfigError is a ValueError

    def to_dict(self) -> dict[str, float]:
        return {"technical": float(self.technical), "interaction": float(self.interaction)}


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {text!r}")
    return value


def parse_weights(text: str) -> Weights:
    """``"T,I"``, e.g. ``"0.7,0.3"``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"weights must be TECHNICAL,INTERACTION (e.g. 0.7,0.3), got {text!r}")
    return Weights(_number(parts[0].strip(), "technical weight"),
                   _number(parts[1].strip(), "interaction weight"))


def parse_technical(items: Iterable[str]) -> dict[str, float]:
    """``["agent=score", ...]``; a later item for the same agent wins."""
    scores: dict[str, float] = {}
    for item in items:
        agent, sep, value = item.rpartition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise ValueError(f"technical score must be AGENT=SCORE (e.g. alpha=0.9), got {item!r}")
        scores[agent] = _number(value.strip(), f"technical score of {agent}")
    return scores


def load_technical_file(path: str | os.PathLike) -> dict[str, float]:
    """A JSON object ``{"agent": score, ...}``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"{os.fspath(path)}: cannot read technical scores: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{os.fspath(path)}: technical scores must be a JSON object of agent: score")
    return check_technical(data, source=os.fspath(path))


def check_technical(scores: Mapping[str, Any], *, source: str | None = None) -> dict[str, float]:
    """The scores as floats, each checked; ``source`` (a file) begins the error, when given."""
    where = f"{source}: " if source else ""
    checked = {}
    for agent, value in scores.items():
        if not isinstance(agent, str) or not agent.strip():
            raise ValueError(f"{where}agent names must be non-empty strings, got {agent!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}technical score of {agent} must be a finite number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}technical score of {agent} must be between 0 and 1, got {value!r}")
        checked[agent] = float(value)
    return checked


def resolve_weights(
    weights: Weights | Sequence[float] | Mapping[str, float] | str | None = None, *, config: Any = None
) -> Weights:
    """The weights given (a ``Weights``, a (technical, interaction) pair, a mapping of those
    two names, or ``"T,I"`` text as ``--weights`` takes it), else ``config``'s
    ``[ppp.weights]``; with neither, the process's configuration
    (:func:`ppp_otel.config.settings.process_config`)."""
    if isinstance(weights, Weights):
        return weights
    if isinstance(weights, str):
        return parse_weights(weights)
    if isinstance(weights, Mapping):
        if set(weights) != {"technical", "interaction"}:
            raise ValueError(f"weights must map technical and interaction to numbers, got keys {sorted(weights)}")
        return Weights(weights["technical"], weights["interaction"])
    if weights is not None:
        if not isinstance(weights, Sequence) or len(weights) != 2:
            raise ValueError(f"weights must be a pair of technical and interaction, e.g. (0.7, 0.3), got {weights!r}")
        technical, interaction = weights
        return Weights(technical, interaction)
    if config is None:
        config = process_config()
    return Weights(config.weights.technical, config.weights.interaction)
