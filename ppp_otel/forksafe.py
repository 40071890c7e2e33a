"""Locks that a forked child starts afresh.

A fork while another thread holds a lock leaves the child's copy of it held
for good (the thread that would release it is not in the child). Whatever
keeps a lock in an attribute (an object, or a module for a module-level lock)
names it here once; in every forked child it gets a new lock.
"""

from __future__ import annotations

import os
import threading
import weakref

_holders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def renew_locks_in_child(holder: object, *names: str) -> None:
    """After a fork, the child sets each attribute ``names`` of ``holder`` (``_lock`` when
    none is named) to a new lock. Held weakly: a holder gone is forgotten."""
    _holders[holder] = names or ("_lock",)


def _renew() -> None:
    for holder, names in list(_holders.items()):
        for name in names:
            setattr(holder, name, threading.Lock())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew)
