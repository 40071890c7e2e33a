"""What a backend's store facade does the same on SQLite and PostgreSQL.

Each backend's store (:class:`~ppp_otel.storage.sqlite.store.SQLiteStore`,
:class:`~ppp_otel.storage.postgres.store.PostgresStore`) hands its connection to
statement modules of the same names and functions (judgments, staging, scoring,
consensus) and turns its driver's exceptions into storage errors. The hand-over
is written here once; a backend names its modules, its driver's exception class
and how one is translated, and keeps only the methods whose statements differ.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Callable, Sequence

from ppp_otel.model import TurnText
from ppp_otel.storage.base import StorageError, check_row_count
from ppp_otel.storage.sqlite import lookups


def translated(method: Callable) -> Callable:
    """``method`` with the store's driver errors leaving as storage errors."""
    # try/except rather than a context manager: scoring calls these in loops.
    @functools.wraps(method)
    def wrapper(self: StoreFacade, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.driver_error as exc:
            raise self.translate_error(exc) from exc
    return wrapper


class StoreFacade:
    """The interface methods that pass straight to a backend's statement modules."""

    conn: Any
    #: The driver's base exception (sqlite3.Error, psycopg.Error).
    driver_error: type[BaseException] = ()  # type: ignore[assignment]
    judgments_sql: ModuleType
    staging_sql: ModuleType
    scoring_sql: ModuleType
    consensus_sql: ModuleType
    #: A SQLite statement as the driver takes it (the reader's).
    dialect: Callable[[str], str]
    #: Each judged turn's number, prompt, response and questions, for :meth:`trajectory_history`.
    history_turns_sql: str = lookups.SQL_HISTORY_TURNS

    def translate_error(self, exc: BaseException, default: type[StorageError] = StorageError) -> StorageError:
        raise NotImplementedError

    # --- lookups (the statements are SQLite's lookups.py's) -------------------------------

    @translated
    def trajectory_parents(self) -> dict[int, int | None]:
        return lookups.trajectory_parents(self.conn)

    @translated
    def children_of(self, trajectory_id: int) -> list[int]:
        return lookups.children_of(self.conn, trajectory_id, dialect=self.dialect)

    @translated
    def turn_extras(self, trajectory_id: int) -> dict[int, dict[str, Any]]:
        return lookups.turn_extras(self.conn, trajectory_id, dialect=self.dialect)

    @translated
    def trajectory_history(self, key: tuple[str, str]) -> tuple[tuple[str, ...], list[TurnText], str | None] | None:
        return lookups.trajectory_history(self.conn, key, dialect=self.dialect, turns_sql=self.history_turns_sql)

    # --- judgments ---------------------------------------------------------------------

    @translated
    def store_judged(self, turns: Sequence[Any], at_end: list, judge: str) -> int:
        return self.judgments_sql.store_judged(self.conn, turns, at_end, judge)

    @translated
    def to_rejudge(self, *, spec_id: str | None = None, since: str | None = None,
                   pending: bool = False) -> list[int]:
        return self.judgments_sql.to_rejudge(self.conn, spec_id=spec_id, since=since, pending=pending)

    @translated
    def as_reported(self, trajectory_id: int) -> tuple | None:
        return self.judgments_sql.as_reported(self.conn, trajectory_id)

    @translated
    def replace_judgments(self, turns: list, at_end: list, judge: str) -> int:
        return self.judgments_sql.replace_judgments(self.conn, turns, at_end, judge)

    # --- spans waiting for their parent (ingest) ---------------------------------------

    @translated
    def waiting_parents(self) -> list[tuple[str, str]]:
        return self.staging_sql.waiting_parents(self.conn)

    @translated
    def stored_waiting_parents(self) -> list[tuple[str, str]]:
        return self.staging_sql.stored_waiting_parents(self.conn)

    @translated
    def staged_children(self, parent: tuple[str, str]) -> list[Any]:
        return self.staging_sql.load_children(self.conn, parent)

    @translated
    def purge_pending(self, retention_s: float) -> int:
        return self.staging_sql.purge(self.conn, retention_s)

    @translated
    def pending_summary(self) -> dict[str, Any]:
        """Turns ingest acknowledged whose trajectory span has not come (yet)."""
        return self.staging_sql.summary(self.conn)

    # --- scoring and consensus ---------------------------------------------------------

    @translated
    def score_counts(self, **filters: Any) -> list[tuple]:
        return self.scoring_sql.score_counts(self.conn, **filters)

    @translated
    def score_count_columns(self, picked: Sequence[int], **filters: Any) -> list[list[Any]]:
        return self.scoring_sql.score_count_columns(self.conn, picked, **filters)

    @translated
    def paper_turn_rows(self, **filters: Any) -> list[tuple]:
        return self.scoring_sql.paper_turn_rows(self.conn, **filters)

    @translated
    def violations_by_preference(self, **filters: Any) -> list[tuple]:
        return self.scoring_sql.violations_by_preference(self.conn, **filters)

    @translated
    def store_consensus(self, result: Any) -> int:
        return self.consensus_sql.store_consensus(self.conn, result)

    @translated
    def record_consensus_span(self, consensus_id: int, trace_id: str, span_id: str) -> None:
        self.consensus_sql.record_consensus_span(self.conn, consensus_id, trace_id, span_id)

    @translated
    def consensus_history_rows(self, spec_id: str, limit: int | None, *, stage: str | None = None,
                               run_id: str | None = None) -> list[tuple]:
        check_row_count("limit", limit)
        return self.consensus_sql.history_rows(self.conn, spec_id, limit, stage=stage, run_id=run_id)
