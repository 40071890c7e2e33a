"""The ``paper`` reward profile: R_Proact and R_Pers as the PPP paper's own code computes them.

The paper (Sun et al. 2025, arXiv 2511.02208) scores a trajectory with the
reward functions of its UserVille environment (``envs/userville.py`` in the
authors' repository sunnweiwei/PPP-Agent). Its unit is not a question but an
*ask*: one call of the agent's ``ask_question`` tool, answered by the user
simulator, which tags the answer with one cost and, for a preference judged by
the simulator, with ``[Reward 1]`` (complied) or ``[Reward 0]`` (rejected).
Here an ask is one turn that asks at least one question:

- its cost is the costliest effort among its questions;
- it is rejected for a preference when the turn carries a violation of it.

R_Proact (Section 5.1): nothing asked -> 0; every ask low -> +0.05; otherwise
-0.1 per medium ask and -0.5 per high ask.

R_Pers: for each of the trajectory's preferences, the paper's
``REWARD_FUNCTIONS`` entry applied to these counts (``reward_0`` = rejected
asks, ``ask_turn`` = asks), plus +0.05 when the agent asked and the function
gave 0 (``calculate_preference_reward`` with ``is_vague``, the paper's
default). The functions that count asks (answer_more, only_begin, no_ask,
ask_many) read the asks, not violations. ``no_preference`` and
``professional`` have no function and give 0, and so does a trajectory with no
preferences and any preference the paper does not have (``max_words``,
``max_questions``, one registered locally).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

__all__ = [
    "PAPER_NAMES",
    "PROFILES",
    "Ask",
    "check_profile",
    "paper_personalization",
    "paper_proactivity",
    "paper_rewards_by_trajectory",
]

#: The reward profiles; ``spec`` (SPEC-PPP-004) is the default.
PROFILES = ("spec", "paper")

#: ppp-otel's preference names -> the names in the paper's REWARD_FUNCTIONS.
PAPER_NAMES: Mapping[str, str] = {
    "no_preference": "no_preference",
    "short_questions": "concise_question",
    "detailed_questions": "detail_question",
    "min_questions": "answer_more",
    "questions_only_at_start": "only_begin",
    "no_questions": "no_ask",
    "multiple_choice": "do_selection",
    "expert_questions": "professional",
    "simple_questions": "amateur",
    "all_questions_in_one_turn": "ask_many",
    "max_questions_per_turn": "one_question",
    "ask_only_on_blockers": "first_try",
    "italian_only": "lang_ita",
    "multilingual": "lang_multi",
    "english_all_caps": "capital",
    "no_commas": "commas",
    "json_only": "json",
    "question_with_joke": "joke",
    "code_snippet_with_reference": "snippet",
    "exact_sentences": "length",
}

# The penalty per rejected ask of the preferences the user simulator judges, in
# thousandths (-0.1 * stats['reward_0'] is -100 per rejected ask).
_PER_REJECTED_ASK = {
    "concise_question": -100, "detail_question": -100, "amateur": -100, "first_try": -100,
    "do_selection": -500, "one_question": -500, "lang_ita": -500, "lang_multi": -500,
    "capital": -500, "commas": -500, "json": -500, "joke": -500, "snippet": -500, "length": -500,
}
_NO_FUNCTION = ("no_preference", "professional")

_SCALE = 1000
_BONUS = 50
_ASK_COST = {"low": 0, "medium": -100, "high": -500}
_RANK = {"low": 1, "medium": 2, "high": 3}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown reward profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return profile


@dataclass(frozen=True)
class Ask:
    """One asking turn: its number, its costliest effort, the preferences it went against."""

    turn_number: int
    cost: str
    rejected_for: frozenset[str] = frozenset()


def paper_proactivity(asks: Sequence[Ask]) -> float:
    """R_Proact of the paper from the trajectory's asks."""
    if not asks:
        return 0.0
    if all(ask.cost == "low" for ask in asks):
        return _BONUS / _SCALE
    return sum(_ASK_COST[ask.cost] for ask in asks) / _SCALE


def _preference_name(spec: str) -> str:
    return spec.split("(", 1)[0].strip()


def _function_value(paper_name: str, asks: Sequence[Ask], first_turn: int, rejected: int) -> int:
    """The REWARD_FUNCTIONS entry, in thousandths."""
    ask_turn = len(asks)
    if paper_name == "answer_more":
        return min(1 * (ask_turn - 3), 0) * _SCALE
    if paper_name == "only_begin":
        # 'ask_question' in str(messages[3:]): an ask after the agent's first message.
        return -_SCALE if any(ask.turn_number != first_turn for ask in asks) else 0
    if paper_name == "no_ask":
        return -_SCALE if ask_turn > 0 else 0
    if paper_name == "ask_many":
        return -_SCALE if ask_turn > 1 else 0
    return _PER_REJECTED_ASK[paper_name] * rejected


def paper_personalization(preferences: Iterable[str], asks: Sequence[Ask], *, first_turn: int = 1) -> float:
    """R_Pers of the paper, summed over the trajectory's preferences (specs or names).

    ``first_turn`` is the number of the trajectory's first turn: only_begin
    forgives asks there and nowhere else.
    """
    total = 0
    for name in dict.fromkeys(_preference_name(spec) for spec in preferences):
        paper_name = PAPER_NAMES.get(name)
        if paper_name is None or paper_name in _NO_FUNCTION:
            continue
        rejected = sum(1 for ask in asks if name in ask.rejected_for)
        value = _function_value(paper_name, asks, first_turn, rejected)
        total += value
        if asks and value == 0:
            total += _BONUS
    return total / _SCALE


# One row per turn of the chosen trajectories: its costliest question (1..3,
# NULL when it asks nothing) and the preferences its violations name.
_TURNS_SQL = """
WITH judged AS MATERIALIZED (SELECT id, preferences FROM trajectories WHERE {where})
SELECT j.id, j.preferences, tt.turn_number,
       (SELECT max(CASE q.effort_level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END)
          FROM trajectory_questions q WHERE q.turn_id = tt.id),
       (SELECT json_group_array(DISTINCT v.preference_name)
          FROM trajectory_violations v WHERE v.turn_id = tt.id)
FROM judged j
LEFT JOIN trajectory_turns tt ON tt.trajectory_id = j.id
ORDER BY j.id, tt.turn_number
"""
_COST = {1: "low", 2: "medium", 3: "high"}


def turns_query(where: str) -> str:
    return _TURNS_SQL.format(where=where)


def rewards_from_rows(rows: Iterable[Sequence]) -> dict[int, tuple[float, float]]:
    """(r_proact, r_pers) by trajectory id, from the rows of :func:`turns_query`."""
    grouped: dict[int, tuple[list[str], list[int], list[Ask]]] = {}
    for tid, preferences, turn_number, cost, violated in rows:
        if tid not in grouped:
            grouped[tid] = (_specs(preferences), [], [])
        _, numbers, asks = grouped[tid]
        if turn_number is None:
            continue
        numbers.append(turn_number)
        if cost is not None:
            names = frozenset(n for n in json.loads(violated or "[]") if n is not None)
            asks.append(Ask(turn_number, _COST[cost], names))
    result = {}
    for tid, (preferences, numbers, asks) in grouped.items():
        first = min(numbers) if numbers else 1
        result[tid] = (paper_proactivity(asks), paper_personalization(preferences, asks, first_turn=first))
    return result


def _specs(stored: str | None) -> list[str]:
    if not stored:
        return []
    try:
        value = json.loads(stored)
    except ValueError:
        return []
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def paper_rewards_by_trajectory(
    conn: sqlite3.Connection, where: str, params: Sequence
) -> dict[int, tuple[float, float]]:
    return rewards_from_rows(conn.execute(turns_query(where), params))


def asks_of(turns: Iterable) -> tuple[list[Ask], int]:
    """The asks of stored turns (``ppp_otel.storage.sqlite.reader.Turn``) and the first turn's number."""
    asks, numbers = [], []
    for turn in turns:
        numbers.append(turn.number)
        efforts = [q.effort_level for q in turn.questions]
        if efforts:
            cost = max(efforts, key=_RANK.__getitem__)
            asks.append(Ask(turn.number, cost, frozenset(v.preference_name for v in turn.violations)))
    return asks, (min(numbers) if numbers else 1)
