"""Judgment as its own stage: questions, their effort and violations, after the turns are written.

The recorder's writer stores each turn first, with what the agent code
reported; a :class:`JudgmentStage` then extracts the questions, grades their
effort and detects preference violations on its own thread and its own
connection, so an LLM judge that is slow or down delays judgments, never a
write. A turn not judged yet has ``trajectory_turns.judged_by`` NULL; once
judged it names the effort judge (``rules/<version>`` or ``llm/<model>``), and
every question and violation the stage adds names the judge that made it.

:func:`rejudge` brings stored trajectories up to the current judge (the
``ppp-otel judge`` command): what the agent code reported is kept (an
explicit question's effort is graded again only when a judge gave it), what a
judge found before is replaced.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from . import schema
from .analysis import RULES_JUDGE, EffortClassifier, PreferenceJudge, TurnAnalyzer
from .logs import LogLimiter
from .model import Question, TurnText, Violation
from .questions import classify_effort
from .records import TrajectoryKey, TrajectoryRecord, TurnRecord
from .store import parse_preferences

__all__ = ["JudgmentStage", "RejudgeSummary", "as_written", "rejudge"]

logger = logging.getLogger(__name__)

#: Turns waiting for judgment beyond this are left to ``ppp-otel judge --pending``.
MAX_PENDING_TURNS = 100_000
_MAX_RETRY_DELAY_S = 2.0
_BATCHES_PER_TRANSACTION = 50


def as_written(records: Sequence[TrajectoryRecord | TurnRecord]) -> list[TrajectoryRecord | TurnRecord]:
    """The records as the writer stores them, before any judge has run.

    An explicit question without an effort gets the rules' grade at once (a
    cached regular expression, no I/O), so that it is never lost if the process
    ends before judgment; an LLM judge grades it again afterwards.
    """
    written = []
    for record in records:
        if isinstance(record, TurnRecord) and any(q.effort is None for q in record.questions):
            record = replace(record, questions=[
                q if q.effort else replace(q, effort=classify_effort(q.text), judge=RULES_JUDGE)
                for q in record.questions
            ])
        written.append(record)
    return written


# --- storing judgments -----------------------------------------------------------------

_INSERT_QUESTION = """INSERT INTO trajectory_questions (turn_id, question_text, effort_level, source, judge)
                      VALUES (?, ?, ?, ?, ?)"""
_REGRADE_QUESTION = """UPDATE trajectory_questions SET effort_level = ?, judge = ?
                       WHERE turn_id = ? AND question_text = ? AND source = 'explicit' AND judge IS NOT NULL"""
_INSERT_VIOLATION = """INSERT INTO trajectory_violations
                           (turn_id, preference_name, expected, actual, severity, source, judge)
                       VALUES (?, ?, ?, ?, ?, ?, ?)"""


def _judgment_rows(turn_id: int, record: TurnRecord, judge: str) -> tuple[list, list, list]:
    """(new questions, regraded explicit questions, new violations) rows of one judged turn."""
    if record.extract_questions:
        questions = [(turn_id, q.text, q.effort, "extracted", q.judge or judge) for q in record.questions]
        regraded = []
    else:
        questions = []
        regraded = [(q.effort, q.judge, turn_id, q.text) for q in record.questions if q.judge is not None]
    # Only what a judge found now: reported violations (by the agent code, or
    # detected by another tool and imported) were written with the turn.
    violations = [(turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge)
                  for v in record.violations if v.judge is not None]
    return questions, regraded, violations


def _store_judgments(conn: sqlite3.Connection, judged: list[tuple[int, TurnRecord]], judge: str) -> None:
    """The questions and violations a judge added to turns (inside the caller's transaction)."""
    questions, regraded, violations = [], [], []
    for turn_id, record in judged:
        q, r, v = _judgment_rows(turn_id, record, judge)
        questions += q
        regraded += r
        violations += v
    if questions:
        conn.executemany(_INSERT_QUESTION, questions)
    if regraded:
        conn.executemany(_REGRADE_QUESTION, regraded)
    if violations:
        conn.executemany(_INSERT_VIOLATION, violations)


def _store_judgment(conn: sqlite3.Connection, turn_id: int, record: TurnRecord, judge: str) -> None:
    _store_judgments(conn, [(turn_id, record)], judge)


_TURN_TO_JUDGE = "SELECT id FROM trajectory_turns WHERE trace_id = ? AND span_id = ? AND judged_by IS NULL"


_LAST_TURN = """SELECT t.id FROM trajectory_turns t JOIN trajectories j ON j.id = t.trajectory_id
                 WHERE j.trace_id = ? AND j.span_id = ? AND t.turn_number = ?"""


def _store_at_end(conn: sqlite3.Connection, at_end: list, turn_ids: dict | None = None) -> None:
    """Whole-conversation violations, on the trajectory's last turn."""
    for key, number, v in at_end:
        turn_id = turn_ids.get(number) if turn_ids is not None else None
        if turn_id is None:
            row = conn.execute(_LAST_TURN, (*key, number)).fetchone()
            if row is None:
                continue
            turn_id = row[0]
        conn.execute(_INSERT_VIOLATION, (turn_id, v.preference, v.expected, v.actual, v.severity, v.source, v.judge))


def _lookup(conn: sqlite3.Connection, key: TrajectoryKey):
    """(preferences, judged turns, what the user knows) of a stored trajectory, or None."""
    row = conn.execute(
        "SELECT id, preferences, user_context FROM trajectories WHERE trace_id = ? AND span_id = ?", key
    ).fetchone()
    if row is None:
        return None
    preferences = tuple(parse_preferences(row[1]))
    if not preferences:
        return (), [], row[2]
    turns = conn.execute(
        """SELECT t.turn_number, t.prompt, t.response,
                  (SELECT json_group_array(question_text) FROM trajectory_questions q WHERE q.turn_id = t.id)
           FROM trajectory_turns t WHERE t.trajectory_id = ? AND t.judged_by IS NOT NULL
           ORDER BY t.turn_number""",
        (row[0],),
    ).fetchall()
    history = [TurnText(n, p or "", r or "", tuple(json.loads(qs) if qs else ())) for n, p, r, qs in turns]
    return preferences, history, row[2]


# --- the stage -------------------------------------------------------------------------

class JudgmentStage:
    """Judges written turns on its own thread; the recorder hands it each written batch.

    ``flush`` waits until everything submitted before it is judged;
    ``shutdown`` judges what is left until its deadline and leaves the rest
    pending (``judged_by`` NULL) for ``ppp-otel judge --pending``.
    """

    def __init__(
        self,
        db_path: str,
        classifier: EffortClassifier | None = None,
        preference_judge: PreferenceJudge | None = None,
        *,
        wal: bool = True,
        busy_timeout_ms: int = schema.DEFAULT_BUSY_TIMEOUT_MS,
        connection_hook: Callable[[sqlite3.Connection], None] | None = None,
        max_pending_turns: int = MAX_PENDING_TURNS,
    ):
        self.db_path = db_path
        self._wal = wal
        self._busy_timeout_ms = busy_timeout_ms
        self._connection_hook = connection_hook
        self.max_pending_turns = max_pending_turns
        self._conn: sqlite3.Connection | None = None
        self.analyzer = TurnAnalyzer(classifier, lookup=self._lookup, preference_judge=preference_judge)
        self._cond = threading.Condition()
        self._queue: list[list] = []
        self._pending_turns = 0
        self._submitted = 0  # batches
        self._judged = 0  # batches done (judged, or given up)
        self._stopping = False
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self.judged_turns = 0
        self.deferred_turns = 0  # not queued: the queue was full; left pending
        self.unjudged_at_shutdown = 0
        self.judge_errors = 0
        self.last_error: str | None = None
        self._log = LogLimiter(logger)

    @property
    def judge(self) -> str:
        return self.analyzer.judge

    @property
    def stats(self) -> dict[str, Any]:
        with self._cond:
            queued = self._pending_turns
        return {
            "judge": self.judge,
            "judged_turns": self.judged_turns,
            "judgment_queued": queued,
            "judgment_deferred": self.deferred_turns,
            "unjudged_at_shutdown": self.unjudged_at_shutdown,
            "judge_errors": self.judge_errors,
            "unknown_preferences": self.analyzer.unknown_preferences,
            "classifier_failures": self.analyzer.classifier_failures,
            "preference_judge_failures": self.analyzer.preference_judge_failures,
        }

    # -- the writer's side ---------------------------------------------------------

    def submit(self, records: Sequence[TrajectoryRecord | TurnRecord]) -> None:
        """Queue a written batch for judgment; never blocks on the judge."""
        turns = sum(isinstance(r, TurnRecord) for r in records)
        with self._cond:
            if self._stopping:
                # Written after shutdown began: stored, left pending for `ppp-otel judge --pending`.
                self.unjudged_at_shutdown += turns
                return
            if turns and self._pending_turns + turns > self.max_pending_turns:
                # The turns are stored; only their judgment waits for `ppp-otel judge --pending`.
                self.deferred_turns += turns
                records = [r for r in records if isinstance(r, TrajectoryRecord)]
                turns = 0
                self._log("ppp-otel: judgment is %d turns behind; later turns are left pending",
                          self._pending_turns)
                if not records:
                    return
            self._queue.append(list(records))
            self._pending_turns += turns
            self._submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ppp-otel-judge", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """True once everything submitted before this call is judged (or given up at shutdown)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            target = self._submitted
            while self._judged < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return self._judged >= target
                self._cond.wait(remaining)
            return True

    def shutdown(self, timeout_s: float) -> None:
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + max(0.0, timeout_s)
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A judge call in flight ends by its own timeout; the wait is bounded either way.
            thread.join(max(0.0, timeout_s) + 1)

    # -- the judge's thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        break
                    if self._stopping and time.monotonic() > self._deadline:
                        left = sum(sum(isinstance(r, TurnRecord) for r in b) for b in self._queue)
                        self.unjudged_at_shutdown += left
                        self._judged += len(self._queue)
                        self._queue.clear()
                        self._pending_turns = 0
                        self._cond.notify_all()
                        logger.warning("ppp-otel: %d turns left unjudged at shutdown; "
                                       "`ppp-otel judge --pending` judges them", left)
                        break
                    # Whatever the writer has handed over meanwhile is judged and
                    # stored together: one transaction however far behind it is.
                    taken = self._queue[:_BATCHES_PER_TRANSACTION]
                    del self._queue[:_BATCHES_PER_TRANSACTION]
                batch = [record for written in taken for record in written]
                self._judge_batch(batch)
                with self._cond:
                    self._pending_turns -= sum(isinstance(r, TurnRecord) for r in batch)
                    self._judged += len(taken)
                    self._cond.notify_all()
        except Exception:
            self.judge_errors += 1
            logger.exception("ppp-otel: judgment thread stopped unexpectedly")
        finally:
            self._close()
            with self._cond:
                self._cond.notify_all()

    def _judge_batch(self, batch: list) -> None:
        try:
            self.analyzer.analyze(batch)
        except Exception as exc:
            # One record broke the batch's judgment: judge the others one by one.
            self.judge_errors += 1
            self.last_error = f"judgment failed: {exc!r}"
            self._log("ppp-otel: judging a batch failed (%r); judging its records one by one", exc)
            kept = []
            for record in batch:
                try:
                    self.analyzer.analyze([record])
                    kept.append(record)
                except Exception:
                    self.judge_errors += 1
            batch = kept
        turns = [r for r in batch if isinstance(r, TurnRecord)]
        at_end, self.analyzer.at_end = self.analyzer.at_end, []
        if not turns and not at_end:
            return
        delay = 0.05
        while True:
            try:
                self._store(turns, at_end)
                self.judged_turns += len(turns)
                return
            except (sqlite3.Error, schema.DatabaseError, OSError) as exc:
                self.judge_errors += 1
                self.last_error = f"storing judgments failed: {exc}"
                self._log("ppp-otel: storing judgments in %s failed: %s", self.db_path, exc)
                self._close()
                if self._stopping and time.monotonic() > self._deadline:
                    self.unjudged_at_shutdown += len(turns)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)

    def _store(self, turns: list[TurnRecord], at_end: list) -> None:
        conn = self._connection()
        judge = self.judge
        conn.execute("BEGIN IMMEDIATE")
        try:
            _store_at_end(conn, at_end)
            # A turn not stored (refused by the writer) or judged already (a
            # redelivered span, judged once) is left alone.
            judged, seen = [], set()
            for record in turns:
                key = (record.trace_id, record.span_id)
                row = conn.execute(_TURN_TO_JUDGE, key).fetchone()  # the (trace_id, span_id) index
                if row is not None and key not in seen:
                    seen.add(key)
                    judged.append((row[0], record))
            conn.executemany("UPDATE trajectory_turns SET judged_by = ? WHERE id = ?",
                             [(judge, turn_id) for turn_id, _ in judged])
            _store_judgments(conn, judged, judge)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = schema.connect(self.db_path, wal=self._wal, busy_timeout_ms=self._busy_timeout_ms)
            if self._connection_hook is not None:
                try:
                    self._connection_hook(conn)
                except Exception:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    def abandon_after_fork(self) -> sqlite3.Connection | None:
        """In a forked child: the parent's connection, which must be neither used nor closed here."""
        conn, self._conn = self._conn, None
        return conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def _lookup(self, key: TrajectoryKey):
        try:
            return _lookup(self._connection(), key)
        except (sqlite3.Error, schema.DatabaseError):
            return None


def judges_from_config(qc: Any, *, method: str | None = None):
    """(effort classifier, preference judge) from ``[ppp.question_classifier]``; None stands
    for the rules. ``method`` overrides the config: "rules" is the rules alone, "llm" the
    endpoint for both (the preference judge taking the four judgment preferences at least)."""
    if method not in (None, "rules", "llm"):
        raise ValueError(f"unknown judge {method!r}; expected rules or llm")
    if method == "rules":
        return None, None
    from .llm_classifier import make_effort_classifier
    from .preference_judge import make_preference_judge

    options = dict(base_url=qc.base_url or None, model=qc.model or None, api_key=qc.api_key or None,
                   timeout_s=qc.timeout_s, max_concurrency=qc.max_concurrency, cache_size=qc.cache_size)
    effort_by_llm = method == "llm" or qc.method == "llm"
    preferences = qc.preference_judge
    if method == "llm" and preferences == "rules":
        preferences = "llm"
    classifier = make_effort_classifier("llm", **options) if effort_by_llm else None
    return classifier, make_preference_judge(preferences, **options)


# --- re-judging stored trajectories -------------------------------------------------------

@dataclass
class RejudgeSummary:
    judge: str
    trajectories: int = 0
    turns: int = 0
    questions: int = 0
    violations: int = 0
    classifier_failures: int = 0
    changed: dict[str, int] = field(default_factory=dict)  # questions whose effort changed, by old->new

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "trajectories": self.trajectories, "turns": self.turns,
            "questions": self.questions, "violations": self.violations,
            "classifier_failures": self.classifier_failures, "changed": dict(self.changed),
        }


def _chosen(conn: sqlite3.Connection, spec_id: str | None, since: str | None, pending: bool) -> list[int]:
    where, params = ["1"], []
    if spec_id is not None:
        where.append("spec_id = ?")
        params.append(spec_id)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if pending:
        where.append("EXISTS (SELECT 1 FROM trajectory_turns t WHERE t.trajectory_id = trajectories.id "
                     "AND t.judged_by IS NULL)")
    return [r[0] for r in conn.execute(f"SELECT id FROM trajectories WHERE {' AND '.join(where)} ORDER BY id", params)]


def _records_of(conn: sqlite3.Connection, tid: int):
    """The stored trajectory as records holding only what the agent code reported."""
    spec_id, agent, trace_id, span_id, preferences, context, ended_at = conn.execute(
        "SELECT spec_id, agent_name, trace_id, span_id, preferences, user_context, ended_at "
        "FROM trajectories WHERE id = ?", (tid,),
    ).fetchone()
    key = (trace_id or f"row-{tid}", span_id or f"row-{tid}")
    trajectory = TrajectoryRecord(key[0], key[1], spec_id, agent, preferences=tuple(parse_preferences(preferences)),
                                  user_context=context, ended_at=ended_at)
    turns = []
    for turn_id, number, prompt, response in conn.execute(
        "SELECT id, turn_number, prompt, response FROM trajectory_turns WHERE trajectory_id = ? ORDER BY turn_number",
        (tid,),
    ).fetchall():
        # Reported: what the agent code gave (or another tool's judgment, imported);
        # a judge's own findings (judge set) are found again.
        explicit = conn.execute(
            "SELECT question_text, effort_level, judge FROM trajectory_questions "
            "WHERE turn_id = ? AND (source = 'explicit' OR judge IS NULL) ORDER BY id", (turn_id,),
        ).fetchall()
        reported = conn.execute(
            "SELECT preference_name, expected, actual, severity, source FROM trajectory_violations "
            "WHERE turn_id = ? AND judge IS NULL ORDER BY id", (turn_id,),
        ).fetchall()
        record = TurnRecord(
            key[0], f"turn-{turn_id}", key, number, prompt, response,
            # An effort a judge gave is graded again; the agent's own stays.
            questions=[Question(text, None if judge else effort) for text, effort, judge in explicit],
            violations=[Violation(p, e or "", a or "", s, source) for p, e, a, s, source in reported],
            extract_questions=not explicit,
        )
        turns.append((turn_id, record))
    return trajectory, turns


def rejudge(
    db: str | sqlite3.Connection,
    *,
    spec_id: str | None = None,
    since: str | None = None,
    classifier: EffortClassifier | None = None,
    preference_judge: PreferenceJudge | None = None,
    pending_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RejudgeSummary:
    """Judge stored trajectories again (all, a spec's, those created since ``since``, or
    only those with turns not judged yet); one transaction per trajectory."""
    conn = db if isinstance(db, sqlite3.Connection) else schema.connect(db, must_exist=True)
    try:
        chosen = _chosen(conn, spec_id, since, pending_only)
        probe = TurnAnalyzer(classifier, preference_judge=preference_judge)
        summary = RejudgeSummary(judge=probe.judge)
        for done, tid in enumerate(chosen, 1):
            trajectory, turns = _records_of(conn, tid)
            before = dict(conn.execute(
                """SELECT q.turn_id || ':' || q.question_text, q.effort_level FROM trajectory_questions q
                   JOIN trajectory_turns t ON t.id = q.turn_id
                   WHERE t.trajectory_id = ? AND (q.source = 'extracted' OR q.judge IS NOT NULL)""", (tid,),
            ).fetchall())
            analyzer = TurnAnalyzer(classifier, preference_judge=preference_judge)
            # An ended trajectory's whole-conversation checks run after all its turns.
            analyzer.analyze([trajectory] + [record for _, record in turns])
            summary.classifier_failures += analyzer.classifier_failures
            judge = analyzer.judge
            conn.execute("BEGIN IMMEDIATE")
            try:
                turn_ids = [turn_id for turn_id, _ in turns]
                marks = ",".join("?" * len(turn_ids))
                if turn_ids:
                    conn.execute(f"DELETE FROM trajectory_questions WHERE source = 'extracted' "
                                 f"AND judge IS NOT NULL AND turn_id IN ({marks})", turn_ids)
                    conn.execute(f"DELETE FROM trajectory_violations WHERE judge IS NOT NULL "
                                 f"AND turn_id IN ({marks})", turn_ids)
                _store_at_end(conn, analyzer.at_end, {record.turn_number: turn_id for turn_id, record in turns})
                summary.violations += len(analyzer.at_end)
                for turn_id, record in turns:
                    _store_judgment(conn, turn_id, record, judge)
                    conn.execute("UPDATE trajectory_turns SET judged_by = ? WHERE id = ?", (judge, turn_id))
                    summary.questions += sum(1 for q in record.questions if record.extract_questions or q.judge)
                    summary.violations += sum(1 for v in record.violations if v.judge is not None)
                    for q in record.questions:
                        old = before.get(f"{turn_id}:{q.text}")
                        if old is not None and old != q.effort:
                            change = f"{old}->{q.effort}"
                            summary.changed[change] = summary.changed.get(change, 0) + 1
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            summary.trajectories += 1
            summary.turns += len(turns)
            if progress is not None:
                progress(done, len(chosen))
        return summary
    finally:
        if not isinstance(db, sqlite3.Connection):
            conn.close()
