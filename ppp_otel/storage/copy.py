"""Copying trajectories between stores, either way between SQLite and PostgreSQL.

Rows are copied as rows (every column both stores have), not replayed as spans,
so what other tools wrote without span ids travels too. Copying is idempotent:
a trajectory the target already holds (the same trace and span ids, or, for
rows without span ids, the same id, spec, agent and creation time) is not
copied again, so an interrupted copy is finished by running it again; one the target got
while it was still being recorded (no end there yet) gets its end and the
turns recorded since. Ids are
kept when the target does not have them yet; otherwise a chunk moves up past
the target's highest id, its turns, questions and violations going with it.

``ppp-otel copy --from A --to B`` and ``cleanup --archive`` on PostgreSQL use it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from ppp_otel.storage import display_name, open_store
from ppp_otel.storage.base import StorageError

__all__ = ["CopySummary", "copy_chunk", "copy_store"]

DEFAULT_CHUNK_SIZE = 500
_TABLES = ("trajectories", "trajectory_turns", "trajectory_questions", "trajectory_violations")


@dataclass
class CopySummary:
    source: str
    target: str
    trajectories: int = 0  # copied
    skipped: int = 0  # already in the target
    turns: int = 0
    questions: int = 0
    violations: int = 0
    renumbered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Side:
    """One store's connection, with the little that differs between the dialects."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.pg = type(conn).__module__.startswith("psycopg")

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.conn.execute(self.sql(text), params).fetchall())

    def many(self, text: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql(text), rows)
        else:
            self.conn.executemany(text, rows)

    def columns(self, table: str) -> list[str]:
        if self.pg:
            return [r[0] for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def ids_in(self, column: str, ids: Sequence[int]) -> str:
        # Ids are integers read from a store: inlined, so one statement serves any count.
        return f"{column} IN ({', '.join(str(int(i)) for i in ids)})"

    def top(self, table: str) -> int:
        return self.rows(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0][0]

    def bump_identities(self) -> None:
        """After ids were given explicitly, new rows must still get fresh ones."""
        if not self.pg:
            return
        for table in _TABLES:
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1), "
                f"(SELECT COUNT(*) > 0 FROM {table}))")


def _shared(src: _Side, dst: _Side, table: str, leave_out: tuple[str, ...]) -> list[str]:
    there = set(dst.columns(table))
    return [c for c in src.columns(table) if c in there and c not in leave_out]


def _shift(dst: _Side, table: str, ids: list[int]) -> int:
    """0 when the ids are free in the target, else how far to move them up."""
    if not ids or not dst.rows(f"SELECT 1 FROM {table} WHERE {dst.ids_in('id', ids)} LIMIT 1"):
        return 0
    return dst.top(table) - min(ids) + 1


def copy_chunk(src_conn: Any, dst_conn: Any, ids: Sequence[int], summary: CopySummary,
               id_map: dict[int, int] | None = None) -> list[int]:
    """Copy the source trajectories ``ids`` (with their turns, questions, violations)
    into the target, inside whatever transactions the caller holds; returns the
    source ids now held by the target (copied or already there)."""
    src, dst = _Side(src_conn), _Side(dst_conn)
    id_map = {} if id_map is None else id_map
    if not ids:
        return []
    cols = _shared(src, dst, "trajectories", ("id", "parent_trajectory_id"))
    rows = src.rows(
        f"SELECT id, parent_trajectory_id, {', '.join(cols)} FROM trajectories "
        f"WHERE {src.ids_in('id', ids)} ORDER BY id")
    at = {c: i + 2 for i, c in enumerate(cols)}
    fresh, unfinished = [], []
    for row in rows:
        existing = _existing(dst, row, at)
        if existing is None:
            fresh.append(row)
            continue
        id_map[row[0]] = existing[0]
        summary.skipped += 1
        if existing[1] is None:
            unfinished.append(row)
    held = [row[0] for row in rows]
    if unfinished:
        _catch_up(src, dst, unfinished, cols, at, id_map, summary)
    if not fresh:
        return held
    shift = _shift(dst, "trajectories", [r[0] for r in fresh])
    for row in fresh:
        id_map[row[0]] = row[0] + shift
    dst.many(
        f"INSERT INTO trajectories (id, parent_trajectory_id, {', '.join(cols)}) "
        f"VALUES ({', '.join('?' * (len(cols) + 2))})",
        [(id_map[r[0]], id_map.get(r[1]) if r[1] is not None else None, *r[2:]) for r in fresh],
    )
    summary.trajectories += len(fresh)
    summary.renumbered = summary.renumbered or bool(shift)
    _copy_turns(src, dst, [r[0] for r in fresh], id_map, summary)
    return held


# What a trajectory's end may still bring, as the writer's upsert takes it.
_LATE_COLUMNS = ("ended_at", "technical_score", "user_context", "preferences", "run_id", "stage")


def _catch_up(src: _Side, dst: _Side, rows: list[tuple], cols: list[str], at: dict[str, int],
              id_map: dict[int, int], summary: CopySummary) -> None:
    """Trajectories the target got while they were still being recorded (no end there yet):
    what their end set, and the turns recorded since."""
    late = [c for c in _LATE_COLUMNS if c in at]
    if late:
        dst.many(f"UPDATE trajectories SET {', '.join(f'{c} = COALESCE({c}, ?)' for c in late)} WHERE id = ?",
                 [(*(row[at[c]] for c in late), id_map[row[0]]) for row in rows])
    targets = [id_map[row[0]] for row in rows]
    have = set(dst.rows(f"SELECT trajectory_id, turn_number FROM trajectory_turns "
                        f"WHERE {dst.ids_in('trajectory_id', targets)}"))
    _copy_turns(src, dst, [row[0] for row in rows], id_map, summary,
                keep=lambda trajectory_id, number: (id_map[trajectory_id], number) not in have)


def _copy_turns(src: _Side, dst: _Side, trajectory_ids: list[int], id_map: dict[int, int],
                summary: CopySummary, keep: Callable[[int, int], bool] | None = None) -> None:
    """The turns of the source trajectories ``trajectory_ids`` (those ``keep`` takes, by
    trajectory and turn number), with their questions and violations."""
    tcols = _shared(src, dst, "trajectory_turns", ("id", "trajectory_id"))
    turns = src.rows(
        f"SELECT id, trajectory_id, {', '.join(tcols)} FROM trajectory_turns "
        f"WHERE {src.ids_in('trajectory_id', trajectory_ids)} ORDER BY id")
    if keep is not None:
        number = 2 + tcols.index("turn_number")
        turns = [t for t in turns if keep(t[1], t[number])]
    turn_shift = _shift(dst, "trajectory_turns", [t[0] for t in turns])
    summary.renumbered = summary.renumbered or bool(turn_shift)
    dst.many(
        f"INSERT INTO trajectory_turns (id, trajectory_id, {', '.join(tcols)}) "
        f"VALUES ({', '.join('?' * (len(tcols) + 2))})",
        [(t[0] + turn_shift, id_map[t[1]], *t[2:]) for t in turns],
    )
    summary.turns += len(turns)
    if turns:
        turn_ids = [t[0] for t in turns]
        for table, counter in (("trajectory_questions", "questions"), ("trajectory_violations", "violations")):
            # Nothing points at question or violation ids: the target numbers them.
            qcols = _shared(src, dst, table, ("id", "turn_id"))
            children = src.rows(
                f"SELECT turn_id, {', '.join(qcols)} FROM {table} "
                f"WHERE {src.ids_in('turn_id', turn_ids)} ORDER BY id")
            dst.many(f"INSERT INTO {table} (turn_id, {', '.join(qcols)}) "
                     f"VALUES ({', '.join('?' * (len(qcols) + 1))})",
                     [(c[0] + turn_shift, *c[1:]) for c in children])
            setattr(summary, counter, getattr(summary, counter) + len(children))


def _existing(dst: _Side, row: tuple, at: dict[str, int]) -> tuple[int, Any] | None:
    """The target's id and end for this source trajectory, when it holds it already."""
    trace_id = row[at["trace_id"]] if "trace_id" in at else None
    span_id = row[at["span_id"]] if "span_id" in at else None
    if trace_id is not None and span_id is not None:
        found = dst.rows("SELECT id, ended_at FROM trajectories WHERE trace_id = ? AND span_id = ?",
                         (trace_id, span_id))
    else:
        found = dst.rows(
            "SELECT id, ended_at FROM trajectories WHERE id = ? AND spec_id = ? AND agent_name = ? AND created_at = ?",
            (row[0], row[at["spec_id"]], row[at["agent_name"]], row[at["created_at"]]))
    return tuple(found[0]) if found else None


def _begin(side: _Side) -> None:
    side.conn.execute("BEGIN" if side.pg else "BEGIN IMMEDIATE")


def copy_store(source: str, target: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
               progress: Callable[[int, int], None] | None = None) -> CopySummary:
    """Copy every trajectory of ``source`` into ``target`` (created and migrated
    when missing); each chunk is one transaction in the target."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if display_name(source) == display_name(target):
        raise ValueError("the source and the target are the same database")
    summary = CopySummary(display_name(source), display_name(target))
    try:
        return _copy(source, target, chunk_size, progress, summary)
    except StorageError:
        raise
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        # The rows go through the drivers directly: their errors leave as storage errors.
        raise StorageError(f"copying {summary.source} to {summary.target}: {' '.join(str(exc).split())}") from exc


def _is_driver_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")


def _copy(source: str, target: str, chunk_size: int, progress: Callable[[int, int], None] | None,
          summary: CopySummary) -> CopySummary:
    with open_store(source, must_exist=True, read_only=True) as src_store, \
            open_store(target, must_exist=False) as dst_store:
        src_conn, dst_conn = src_store.conn, dst_store.conn
        src, dst = _Side(src_conn), _Side(dst_conn)
        ids = [r[0] for r in src.rows("SELECT id FROM trajectories ORDER BY id")]
        id_map: dict[int, int] = {}
        for start in range(0, len(ids), chunk_size):
            _begin(dst)
            try:
                copy_chunk(src_conn, dst_conn, ids[start:start + chunk_size], summary, id_map)
                dst.conn.execute("COMMIT")
            except BaseException:
                dst.conn.execute("ROLLBACK")
                raise
            if progress is not None:
                progress(min(start + chunk_size, len(ids)), len(ids))
        dst.bump_identities()
    return summary
