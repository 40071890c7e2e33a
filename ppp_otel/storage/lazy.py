"""A store a background thread opens when it first needs it, and what fork does to it.

The recorder's writer and the judgment stage each keep one: opened on first
use (a database that is not there yet is retried, not refused), touched only
under a lock fork takes (:mod:`ppp_otel.storage.sqlite.forklock`), closed
quietly at shutdown, and in a forked child neither used nor closed again.

A SQLite file deleted or replaced (``rm``, ``mv other.db runs.db``) while it is
open goes on taking writes through the open connection, into a file no one
will read again: before each use the path is checked to still name the file
that was opened, and when it does not, the store is opened again at the path.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ppp_otel.storage import is_postgres_url, open_store
from ppp_otel.storage.base import StorageError, TrajectoryBackend
from ppp_otel.storage.sqlite import forklock

# Stores a forked child inherited: never used again, nor closed (closing would
# touch the parent's file handles), and kept from the garbage collector for that.
_ABANDONED_STORES: list[TrajectoryBackend] = []

logger = logging.getLogger(__name__)


def _file_at(path: str | None) -> tuple[int, int] | None:
    """The identity of the file ``path`` names now (None when there is none)."""
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class LazyStore:
    """``db_path``'s store, opened with ``options`` by the first :meth:`get`.

    Hold :attr:`lock` around :meth:`get` and every use of what it returns.
    """

    def __init__(self, db_path: str, options: dict[str, Any]):
        self.db_path = db_path
        self._options = options
        self._store: TrajectoryBackend | None = None
        self.lock = forklock.new_lock()
        # Absolute: the app may change directory while it records.
        plain_file = not is_postgres_url(db_path) and db_path != ":memory:"
        self._checked_path = os.path.abspath(db_path) if plain_file else None
        self._file: tuple[int, int] | None = None  # what the open store's path named when opened

    def get(self) -> TrajectoryBackend:
        if self._store is not None and self._file is not None and _file_at(self._checked_path) != self._file:
            logger.warning("ppp-otel: %s was deleted or replaced while open; writing to the file now "
                           "at that path (what was written to the old one is wherever it went)",
                           self.db_path)
            self._close()
            self.db_path = self._checked_path
        if self._store is None:
            self._store = open_store(self.db_path, **self._options)
            self._file = _file_at(self._checked_path)
        return self._store

    def close(self) -> None:
        """Close the store if open (a failing close is the end of it all the same)."""
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except StorageError:
                pass
        self._store = None

    def abandon(self) -> None:
        """In a forked child: let go of the parent's store without closing it."""
        if self._store is not None:
            _ABANDONED_STORES.append(self._store)
        self._store = None


__all__ = ["LazyStore"]
