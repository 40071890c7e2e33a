"""Importing ATIF files and directories into the trajectory database.

Records go through a :class:`~ppp_otel.recorder.Recorder`, the queue and writer
live recording uses, so imported turns get the same question
extraction, effort classification and preference detection, and the same
idempotence on (trace_id, span_id).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ppp_otel.dialects import DEFAULT_QUESTION_TOOLS
from ppp_otel.recorder import Recorder
from ppp_otel.interchange.atif.convert import convert
from ppp_otel.interchange.atif.document import AtifError, Document, looks_like_atif, read_file, validate
from ppp_otel.storage import open_store
from ppp_otel.storage.base import StorageError

#: What a directory import reads; other files are not looked at.
SUFFIXES = (".json", ".jsonl", ".ndjson")

# Generous: the import waits for the writer rather than dropping a record.
_BLOCK_MS = 24 * 3600 * 1000
_FLUSH_TIMEOUT_MS = 24 * 3600 * 1000

Progress = Callable[[int, int], None]


@dataclass
class ImportSummary:
    """What an import did.

    ``trajectories`` and ``turns`` count what the imported documents hold
    (``tool_steps``: their agent steps that only called tools, which are no
    turns of their own);
    ``duplicates`` are turns the database already had (a re-import), and
    ``rejected`` records the writer refused (its log says why).
    """

    files: int = 0
    imported: int = 0  # documents
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason: what and where in it)
    ignored: list[str] = field(default_factory=list)  # JSON in a directory that is not ATIF
    trajectories: int = 0
    turns: int = 0
    tool_steps: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        """Every ATIF document found was imported whole."""
        return self.imported > 0 and not self.skipped and not self.rejected

    def skip(self, file: str | os.PathLike, why: str) -> None:
        """Count ``file`` skipped; ``why`` may start with the file's name (errors name their
        origin), which ``file`` already says: the reason keeps only what follows it (the
        line or document, the step, what is wrong)."""
        name = os.fspath(file)
        reason = why[len(name):].lstrip(":").strip() if why.startswith(name) else why
        self.skipped.append((name, reason or why))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"file": f, "reason": r} for f, r in self.skipped]
        data["ok"] = self.ok
        return data


def find_files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """Files to read, each with whether it was named explicitly.

    A missing path raises :class:`FileNotFoundError` before anything is
    written: a typo should not half-import a list.
    """
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                (p, False) for p in sorted(path.rglob("*"))
                if p.is_file() and p.name.lower().endswith(SUFFIXES)
            )
        elif path.exists():
            found.append((path, True))
        else:
            raise FileNotFoundError(2, "no such file or directory", str(path))
    return found


def _fallback_spec(path: Path) -> str:
    name = path.name
    for suffix in (".trajectory.json", *SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def import_paths(
    paths: Sequence[str | os.PathLike],
    db_path: str | os.PathLike,
    *,
    spec_id: str | None = None,
    agent_name: str | None = None,
    progress: Progress | None = None,
    stage: str | None = None,
    question_tools: Sequence[str] = DEFAULT_QUESTION_TOOLS,
) -> ImportSummary:
    """Import ATIF files and directories (recursively) into ``db_path``.

    ``spec_id`` and ``agent_name`` override what the documents say; ``stage``
    (the spec's stage the runs worked on) is the stage of the trajectories that
    carry none (see :func:`~ppp_otel.interchange.atif.convert.convert`): a
    document's own stage wins. ``question_tools`` names the tools through which
    an agent asks its user (``[ppp.trajectory] question_tools``; the CLI reads
    it from the config): their calls are questions of their turn.

    One bad file or document is skipped with its reason; the rest is imported.
    ``progress(done, total)`` is called after each file.
    """
    files = find_files(paths)
    check_writable(db_path)
    summary = ImportSummary(files=len(files))
    processor = Recorder(
        db_path, buffer_size=1000, flush_interval_ms=50, max_queue_size=20_000,
        on_full="block", block_timeout_ms=_BLOCK_MS,
    )
    try:
        for done, (path, explicit) in enumerate(files, 1):
            try:
                for item in read_file(path):
                    _import_one(item, path, explicit, processor, summary, spec_id, agent_name, stage,
                                tuple(question_tools))
            except Exception as exc:  # a file no check foresaw costs itself, not the import
                summary.skip(path, f"cannot import: {type(exc).__name__}: {exc}"[:500])
            if progress is not None:
                progress(done, len(files))
        committed = processor.force_flush(_FLUSH_TIMEOUT_MS)
    finally:
        processor.shutdown()
    stats = processor.stats
    # A document counts as imported only once committed.
    if not committed or processor.lost_at_shutdown:
        summary.skip(db_path, f"the writer did not confirm {summary.imported} document(s): {stats['last_error']}")
        summary.imported = 0
    summary.duplicates = stats["duplicates"]
    summary.rejected = stats["rejected"] + stats["dropped"]
    summary.last_error = stats["last_error"]
    return summary


def check_writable(db_path: str | os.PathLike) -> None:
    """Raise :class:`~ppp_otel.storage.base.StorageError` at once, with the reason, when
    ``db_path`` cannot be written (read-only file or directory, not a database, locked)."""
    try:
        with open_store(db_path, must_exist=False, busy_timeout_ms=2000) as store:
            store.check_writable()
    except StorageError as exc:
        raise type(exc)(f"cannot import into {exc}") from None


def _import_one(
    item: Document | AtifError,
    path: Path,
    explicit: bool,
    processor: Recorder,
    summary: ImportSummary,
    spec_id: str | None,
    agent_name: str | None,
    stage: str | None = None,
    question_tools: tuple[str, ...] = DEFAULT_QUESTION_TOOLS,
) -> None:
    if isinstance(item, AtifError):
        summary.skip(path, str(item))
        return
    if not explicit and not looks_like_atif(item.data):
        # Run directories hold config and result JSON beside the trajectories.
        summary.ignored.append(item.origin)
        return
    try:
        validate(item.data, item.origin)
        converted = convert(
            item.data, item.origin, spec_id=spec_id, agent_name=agent_name,
            fallback_spec=_fallback_spec(path), stage=stage, question_tools=question_tools,
        )
    except AtifError as exc:
        summary.skip(path, str(exc))
        return
    processor.submit(converted.records)
    summary.imported += 1
    summary.trajectories += converted.trajectories
    summary.turns += converted.turns
    summary.tool_steps += converted.tool_steps
