"""The recorder's counters: what was offered, written, dropped, rejected and why.

One object shared by the queue engine (``enqueued``, ``dropped``, batches a bug
broke) and the sink behind it (everything about writing). ``dirty`` says the
counters changed since they were last saved to the database.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class RecorderStats:
    enqueued: int = 0
    dropped: int = 0  # changes under the queue lock
    rejected: int = 0
    written_turns: int = 0
    written_trajectories: int = 0  # distinct trajectories: a start and its end are one
    trajectory_updates: int = 0  # trajectory records that completed a row already counted (its end)
    duplicates: int = 0
    write_errors: int = 0
    internal_errors: int = 0
    truncated: int = 0
    repaired_text: int = 0  # characters SQLite could not store, replaced by U+FFFD
    dropped_values: int = 0  # values no column can hold (see TurnRecord), dropped from their turn
    lost_at_shutdown: int = 0  # queued, then given up: the file stayed unwritable past the deadline
    last_error: str | None = None
    dirty: bool = False

    def reset(self) -> None:
        """Back to zero, in place (a forked child counts its own work)."""
        for f in fields(self):
            setattr(self, f.name, f.default)

    def as_dict(
        self, *, db_path: str, queued: int, forgotten_spans: int, judgment: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        """The ``stats`` mapping the processor, ingest and import report, in this order."""
        return {
            "db_path": db_path,
            "queued": queued,
            "enqueued": self.enqueued,
            "written_trajectories": self.written_trajectories,
            "trajectory_updates": self.trajectory_updates,
            "written_turns": self.written_turns,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "write_errors": self.write_errors,
            "internal_errors": self.internal_errors,
            "truncated": self.truncated,
            "repaired_text": self.repaired_text,
            "dropped_values": self.dropped_values,
            "forgotten_spans": forgotten_spans,
            "lost_at_shutdown": self.lost_at_shutdown,
            **judgment,
            **extra,
            "last_error": self.last_error,
        }
