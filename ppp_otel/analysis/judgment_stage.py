"""Judgment as its own stage: questions, their effort and violations, after the turns are written.

With the rules for judges (the default), the recorder's writer judges each
batch before writing it (:meth:`JudgmentStage.judge_batch`), in the same
transaction: microseconds a turn, one commit, no second thread. With an LLM
or custom judge, the writer stores each turn first, with what the agent code
reported; a :class:`JudgmentStage` then extracts the questions, grades their
effort and detects preference violations on its own thread and its own
connection, so an LLM judge that is slow or down delays judgments, never a
write. A turn not judged yet has ``trajectory_turns.judged_by`` NULL; once
judged it names the effort judge (``rules/<version>`` or ``llm/<model>``), and
every question and violation the stage adds names the judge that made it. A
turn a judge gave no answer on in part (the rules graded a question instead,
a preference went unjudged) keeps what was found and stays NULL.

:func:`rejudge` brings stored trajectories up to the current judge (the
``ppp-otel judge`` command): what the agent code reported is kept (an
explicit question's effort is graded again only when a judge gave it), what a
judge found before is replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ppp_otel.analysis.analyzer import RULES_JUDGE, EffortClassifier, PreferenceJudge, TurnAnalyzer
from ppp_otel.analysis.effort import classify_effort
from ppp_otel.logs import LogLimiter
from ppp_otel.analysis.llm_classifier import HeuristicEffortClassifier
from ppp_otel.records import ConversationViolation, TrajectoryKey, TrajectoryRecord, TurnRecord
from ppp_otel.storage import display_name
from ppp_otel.storage.base import StorageError, TrajectoryBackend
from ppp_otel.storage.lazy import LazyStore

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


def judged_in_batch(analyzer: TurnAnalyzer, records: list) -> tuple[list, int, Exception | None]:
    """(the records judged and marked, with the conversation violations found; failures;
    the first failure)."""
    failures, first = 0, None
    failed: set[int] = set()
    try:
        analyzer.analyze(records)
    except Exception as exc:
        failures, first, records = 1, exc, list(records)
        for i, record in enumerate(records):
            try:
                analyzer.analyze([record])
            except Exception:
                failures += 1
                failed.add(i)
                records[i] = as_written([record])[0]
    judge = analyzer.judge
    for i, record in enumerate(records):
        if isinstance(record, TurnRecord) and i not in failed and not record.judgment_incomplete:
            record.judged_by = judge
    at_end, analyzer.at_end = analyzer.at_end, []
    return records + [ConversationViolation(key, number, v) for key, number, v in at_end], failures, first


# --- the stage -------------------------------------------------------------------------

class JudgedListeners:
    """Who is given each batch of judged turns, on the judge's thread (the Phoenix annotation
    sender queues them: none may block). A tuple, replaced whole when one is added, so the
    judge's thread never sees it change under it."""

    def __init__(self, first: Callable[[list[TurnRecord]], None] | None = None):
        self._all: tuple[Callable[[list[TurnRecord]], None], ...] = (first,) if first else ()

    def add(self, listener: Callable[[list[TurnRecord]], None]) -> None:
        self._all = (*self._all, listener)

    def __iter__(self):
        return iter(self._all)


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
        on_judged: Callable[[list[TurnRecord]], None] | None = None,
        max_pending_turns: int = MAX_PENDING_TURNS,
        **store_options: Any,
    ):
        self.db_path = db_path
        # The backend's options (for SQLite: wal, busy_timeout_ms, connection_hook).
        self._store_options = {**store_options, "must_exist": False}
        self.max_pending_turns = max_pending_turns
        # Given each batch of judged turns (see JudgedListeners); more can be added later.
        self.listeners = JudgedListeners(on_judged)
        self.analyzer = TurnAnalyzer(classifier, lookup=self._lookup, preference_judge=preference_judge)
        self._fresh()
        self.judged_turns = 0
        self.deferred_turns = 0  # not queued: the queue was full; left pending
        self.unjudged_at_shutdown = 0
        self.judge_errors = 0
        self.last_error: str | None = None
        self._log = LogLimiter(logger)

    def _fresh(self) -> None:
        # Its lock is held while this thread writes, and taken by fork.
        self._db = LazyStore(self.db_path, self._store_options)
        self._db_lock = self._db.lock
        self._cond = threading.Condition()
        self._queue: list[list] = []
        self._pending_turns = 0
        self._submitted = 0  # batches
        self._judged = 0  # batches done (judged, or given up)
        self._stopping = False
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its store must be neither used
        nor closed here; what the parent queued is the parent's to judge."""
        self._db.abandon()
        self._fresh()
        # The parent's judge thread may have been inside the analyzer: the child's starts clean.
        old = self.analyzer
        self.analyzer = TurnAnalyzer(old.classifier, lookup=self._lookup, preference_judge=old.preference_judge)

    @property
    def judge(self) -> str:
        return self.analyzer.judge

    @property
    def in_batch(self) -> bool:
        """Every judge is the rules (local, quick, no I/O): the writer judges each batch in the
        transaction that writes it. An LLM or custom judge keeps to its own thread."""
        return type(self.analyzer.classifier) is HeuristicEffortClassifier and self.analyzer.preference_judge is None

    def judge_batch(self, records: list) -> list:
        """The batch judged before it is written (see :attr:`in_batch`) and its conversation
        violations; a record whose judgment fails is left for ``ppp-otel judge --pending``."""
        records, failures, first = judged_in_batch(self.analyzer, records)
        if failures:
            self.judge_errors += failures
            self.last_error = f"judgment failed: {first!r}"
            self._log("ppp-otel: judging a batch failed (%r); judging its records one by one", first)
        return records

    def close_in_batch(self) -> None:
        """From the writer's thread: close the store its in-batch lookups opened."""
        if self.in_batch and self._thread is None:
            self._close()

    def batch_written(self, records: Sequence) -> None:
        """After the writer committed a batch judged by :meth:`judge_batch`."""
        turns = [r for r in records if isinstance(r, TurnRecord) and r.judged_by is not None]
        self.judged_turns += len(turns)
        self._tell_judged(turns)

    @property
    def stats(self) -> dict[str, Any]:
        with self._cond:
            queued = self._pending_turns
        a = self.analyzer
        return {
            "judge": self.judge, "judged_turns": self.judged_turns, "judgment_queued": queued,
            "judgment_deferred": self.deferred_turns, "unjudged_at_shutdown": self.unjudged_at_shutdown,
            "judge_errors": self.judge_errors, "unknown_preferences": a.unknown_preferences,
            "classifier_failures": a.classifier_failures, "preference_judge_failures": a.preference_judge_failures,
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
                self._store_judged(turns, at_end)
                self.judged_turns += len(turns)
                return
            except (StorageError, OSError) as exc:
                self.judge_errors += 1
                self.last_error = f"storing judgments failed: {exc}"
                self._log("ppp-otel: storing judgments in %s failed: %s", display_name(self.db_path), exc)
                self._close()
                if self._stopping and time.monotonic() > self._deadline:
                    self.unjudged_at_shutdown += len(turns)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)

    def _store_judged(self, turns: list[TurnRecord], at_end: list) -> None:
        with self._db_lock:
            self._connection().store_judged(turns, at_end, self.judge)
        self._tell_judged(turns)

    def _tell_judged(self, turns: list[TurnRecord]) -> None:
        for listener in self.listeners if turns else ():
            try:
                listener(turns)
            except Exception:
                self.judge_errors += 1
                logger.exception("ppp-otel: on_judged failed")

    def _connection(self) -> TrajectoryBackend:
        return self._db.get()

    def _close(self) -> None:
        self._db.close()

    def _lookup(self, key: TrajectoryKey):
        try:
            with self._db_lock:
                return self._connection().trajectory_history(key)
        except (StorageError, OSError):
            return None


def judges_from_config(qc: Any, *, method: str | None = None):
    """(effort classifier, preference judge) from ``[ppp.question_classifier]``; None stands
    for the rules. ``method`` overrides the config: "rules" is the rules alone, "llm" the
    endpoint for both (the preference judge taking the four judgment preferences at least)."""
    if method not in (None, "rules", "llm"):
        raise ValueError(f"unknown judge {method!r}; expected rules or llm")
    if method == "rules":
        return None, None
    from ppp_otel.analysis.llm_classifier import make_effort_classifier
    from ppp_otel.analysis.preference_judge import make_preference_judge

    options = dict(base_url=qc.base_url or None, model=qc.model or None, api_key=qc.api_key or None,
                   timeout_s=qc.timeout_s, max_concurrency=qc.max_concurrency, cache_size=qc.cache_size)
    effort_by_llm = method == "llm" or qc.method == "llm"
    preferences = qc.preference_judge
    if method == "llm" and preferences == "rules":
        preferences = "llm"
    try:
        classifier = make_effort_classifier("llm", **options) if effort_by_llm else None
        return classifier, make_preference_judge(preferences, **options)
    except ValueError as exc:
        if method == "llm":  # the setting the message names is not what asked for the LLM
            raise ValueError(f"--judge llm takes its endpoint from the config: {exc}") from None
        raise


# --- re-judging stored trajectories -------------------------------------------------------

@dataclass
class RejudgeSummary:
    judge: str
    trajectories: int = 0
    turns: int = 0
    questions: int = 0
    violations: int = 0
    classifier_failures: int = 0
    left_pending: int = 0  # turns a judge gave no answer on in part: `--pending` judges them again
    changed: dict[str, int] = field(default_factory=dict)  # questions whose effort changed, by old->new

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "trajectories": self.trajectories, "turns": self.turns,
            "questions": self.questions, "violations": self.violations,
            "classifier_failures": self.classifier_failures, "left_pending": self.left_pending,
            "changed": dict(self.changed),
        }


def rejudge(
    db: Any,
    *,
    spec_id: str | None = None,
    since: str | None = None,
    classifier: EffortClassifier | None = None,
    preference_judge: PreferenceJudge | None = None,
    pending_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RejudgeSummary:
    """Judge stored trajectories again (all, a spec's, those created since ``since``, or
    only those with turns not judged yet); one transaction per trajectory. ``db`` is a
    store, a path or a URL (it must exist)."""
    from ppp_otel.storage import using_store

    with using_store(db) as store:
        chosen = store.to_rejudge(spec_id=spec_id, since=since, pending=pending_only)
        probe = TurnAnalyzer(classifier, preference_judge=preference_judge)
        summary = RejudgeSummary(judge=probe.judge)
        # As many trajectories are judged at once as the judges take requests at once (an
        # LLM judge's time is its round trips); each is stored in order, one transaction each.
        width = max(getattr(judge, "max_concurrency", 1) for judge in (classifier, preference_judge))
        done = 0
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="ppp-rejudge") as pool:
            for start in range(0, len(chosen), width):
                reported = [store.as_reported(tid) for tid in chosen[start:start + width]]
                judged = pool.map(lambda r: r and _judged_again(r, classifier, preference_judge), reported)
                for reported_one, analyzer in zip(reported, judged):
                    done += 1
                    if reported_one is not None:  # else deleted since it was chosen (a cleanup meanwhile)
                        _store_judged_again(store, summary, reported_one, analyzer)
                    if progress is not None:
                        progress(done, len(chosen))
        return summary


def _judged_again(reported: tuple, classifier: EffortClassifier | None,
                  preference_judge: PreferenceJudge | None) -> TurnAnalyzer:
    trajectory, turns, _ = reported
    analyzer = TurnAnalyzer(classifier, preference_judge=preference_judge)
    # An ended trajectory's whole-conversation checks run after all its turns.
    analyzer.analyze([trajectory] + [record for _, record in turns])
    return analyzer


def _store_judged_again(store: Any, summary: RejudgeSummary, reported: tuple, analyzer: TurnAnalyzer) -> None:
    _, turns, before = reported
    summary.classifier_failures += analyzer.classifier_failures
    if not store.replace_judgments(turns, analyzer.at_end, analyzer.judge) and turns:
        return  # its turns were deleted while it was judged
    summary.violations += len(analyzer.at_end)
    for turn_id, record in turns:
        summary.questions += sum(1 for q in record.questions if record.extract_questions or q.judge)
        summary.violations += sum(1 for v in record.violations if v.judge is not None)
        for q in record.questions:
            old = before.get(f"{turn_id}:{q.text}")
            if old is not None and old != q.effort:
                change = f"{old}->{q.effort}"
                summary.changed[change] = summary.changed.get(change, 0) + 1
    summary.trajectories += 1
    summary.turns += len(turns)
    summary.left_pending += sum(record.judgment_incomplete for _, record in turns)
