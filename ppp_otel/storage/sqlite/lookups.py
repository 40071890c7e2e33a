"""Small lookups by id that the layers above need while they work.

- :func:`trajectory_history`: a trajectory begun before this process knew it
  (the analyzer's preferences and earlier turns);
- :func:`placement`: where a span recorded earlier sits (ingest's parents);
- :func:`trajectory_parents`, :func:`children_of`, :func:`turn_extras`: the
  subagent tree and the turns' extra JSON (ATIF export).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from ppp_otel.model import TurnText
from ppp_otel.storage.sqlite.reader import extra_object, parse_preferences

#: A statement as the connection's driver takes it (SQLite's own text here; PostgreSQL's
#: store passes its ``?``-to-``%s`` rewrite).
Dialect = Callable[[str], str]

# SQLite-specific: json_group_array gathers each turn's questions in the one statement.
SQL_HISTORY_TURNS = """SELECT t.turn_number, t.prompt, t.response,
                  (SELECT json_group_array(question_text) FROM trajectory_questions q
                   WHERE q.turn_id = t.id)
           FROM trajectory_turns t WHERE t.trajectory_id = ? AND t.judged_by IS NOT NULL
           ORDER BY t.turn_number"""


def _sqlite(sql: str) -> str:
    return sql


def trajectory_history(
    conn: Any, key: tuple[str, str], *, dialect: Dialect = _sqlite, turns_sql: str = SQL_HISTORY_TURNS,
) -> tuple[tuple[str, ...], list[TurnText], str | None] | None:
    """Its preferences, its turns judged so far (with their questions) and what the user
    knows; None when not recorded (yet). ``turns_sql`` gives each judged turn's number,
    prompt, response and questions (a JSON array's text, or an array)."""
    row = conn.execute(dialect(
        "SELECT id, preferences, user_context FROM trajectories WHERE trace_id = ? AND span_id = ?"), key
    ).fetchone()
    if row is None:
        return None
    preferences = tuple(parse_preferences(row[1]))
    if not preferences:
        return (), [], row[2]
    turns = conn.execute(dialect(turns_sql), (row[0],)).fetchall()
    history = [
        TurnText(n, p or "", r or "", tuple((json.loads(qs) if isinstance(qs, str) else qs) if qs else ()))
        for n, p, r, qs in turns
    ]
    return preferences, history, row[2]


def placement(conn: sqlite3.Connection, trace_id: str, span_id: str) -> tuple[tuple[str, str], bool] | None:
    """For a recorded span: (its trajectory's (trace id, span id), whether the span is a turn)."""
    row = conn.execute(
        "SELECT 1 FROM trajectories WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    if row is not None:
        return (trace_id, span_id), False
    row = conn.execute(
        """SELECT t.trace_id, t.span_id FROM trajectory_turns u JOIN trajectories t
           ON t.id = u.trajectory_id WHERE u.trace_id = ? AND u.span_id = ?""",
        (trace_id, span_id),
    ).fetchone()
    if row is not None:
        return (row[0], row[1]), True
    return None


def trajectory_parents(conn: Any) -> dict[int, int | None]:
    return dict(conn.execute("SELECT id, parent_trajectory_id FROM trajectories").fetchall())


def children_of(conn: Any, trajectory_id: int, *, dialect: Dialect = _sqlite) -> list[int]:
    return [row[0] for row in conn.execute(dialect(
        "SELECT id FROM trajectories WHERE parent_trajectory_id = ? ORDER BY id"), (trajectory_id,)
    ).fetchall()]


def turn_extras(conn: Any, trajectory_id: int, *, dialect: Dialect = _sqlite) -> dict[int, dict[str, Any]]:
    """Turn number -> its ``extra`` JSON object (turns without one, or with other JSON, left out)."""
    extras = {}
    for number, text in conn.execute(dialect(
        "SELECT turn_number, extra FROM trajectory_turns WHERE trajectory_id = ? AND extra IS NOT NULL"),
        (trajectory_id,),
    ).fetchall():
        value = extra_object(text)  # None: written by another tool; the columns still export
        if value is not None:
            extras[number] = value
    return extras
