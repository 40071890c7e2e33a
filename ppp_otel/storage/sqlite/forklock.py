"""No fork inside a write: a lock each writer holds while it uses SQLite, taken before fork.

A child forked while its parent's writer is inside a transaction inherits
SQLite's in-memory lock state without the locks themselves, and its own
connections to that file then see "database is locked" forever. Every writer
thread holds its :func:`new_lock` while it touches the database (BEGIN ..
COMMIT, a stats upsert, a lookup); ``os.register_at_fork(before=...)`` takes
every such lock, so a fork waits for the transaction in progress to end and
never happens in the middle of one. Both parent and child release them after.
"""

from __future__ import annotations

import os
import threading
import weakref

_locks: weakref.WeakSet = weakref.WeakSet()
_registry_lock = threading.Lock()
_held: list = []


class WriteLock:
    """A plain lock, weakly registered so that fork can take it; usable as a context manager."""

    __slots__ = ("_lock", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> WriteLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def new_lock() -> WriteLock:
    lock = WriteLock()
    with _registry_lock:
        _locks.add(lock)
    return lock


def _before_fork() -> None:
    _registry_lock.acquire()
    # A stable order: two threads forking at once take the locks in the same order.
    locks = sorted(_locks, key=id)
    for lock in locks:
        lock._lock.acquire()
    _held[:] = locks


def _after_fork() -> None:
    locks, _held[:] = list(_held), []
    for lock in locks:
        lock._lock.release()
    _registry_lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


__all__ = ["WriteLock", "new_lock"]
