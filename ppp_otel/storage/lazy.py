"""A store a background thread opens when it first needs it, and what fork does to it.

The recorder's writer and the judgment stage each keep one: opened on first
use (a database that is not there yet is retried, not refused), touched only
under a lock fork takes (:mod:`ppp_otel.storage.sqlite.forklock`), closed
quietly at shutdown, and in a forked child neither used nor closed again.
"""

from __future__ import annotations

from typing import Any

from ppp_otel.storage import open_store
from ppp_otel.storage.base import StorageError, TrajectoryBackend
from ppp_otel.storage.sqlite import forklock

# Stores a forked child inherited: never used again, nor closed (closing would
# touch the parent's file handles), and kept from the garbage collector for that.
_ABANDONED_STORES: list[TrajectoryBackend] = []


class LazyStore:
    """``db_path``'s store, opened with ``options`` by the first :meth:`get`.

    Hold :attr:`lock` around :meth:`get` and every use of what it returns.
    """

    def __init__(self, db_path: str, options: dict[str, Any]):
        self.db_path = db_path
        self._options = options
        self._store: TrajectoryBackend | None = None
        self.lock = forklock.new_lock()

    def get(self) -> TrajectoryBackend:
        if self._store is None:
            self._store = open_store(self.db_path, **self._options)
        return self._store

    def close(self) -> None:
        """Close the store if open (a failing close is the end of it all the same)."""
        with self.lock:
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
