"""What a queue engine's forked child still has to write, and the hook that restarts it there.

After ``os.fork`` only the forking thread goes on in the child: the parent's
worker is gone, and what the parent queued is the parent's to write. Some items
are needed in the child all the same (a trajectory's start, without which the
child's turns of it would be orphans): a ``carry`` predicate picks them, from
the batch the parent's worker had in hand and from the parent's queue.
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any, Callable, Iterable


class ForkCarry:
    """The items a forked child queues again, picked by ``carry`` (none without one)."""

    def __init__(self, carry: Callable[[Any], bool] | None):
        self._carry = carry
        self._inflight: list = []  # of the batch being processed, what a fork must carry

    def took(self, batch: list) -> None:
        """The worker took ``batch``: until the next, a fork carries what of it ``carry`` picks."""
        self._inflight = [item for item in batch if self._carry(item)] if self._carry else []

    def in_child(self, queued: Iterable) -> list:
        """In the child: the batch in flight's picks, then the queue's, in order; forgets them."""
        carried = []
        if self._carry is not None:
            carried = self._inflight + [item for item in queued if self._carry(item)]
        self._inflight = []
        return carried


def restart_in_child(restart: Callable[[], None]) -> None:
    """Call the bound method ``restart`` in every forked child while its object lives
    (held weakly: an engine that is gone is not restarted, nor kept alive)."""
    ref = weakref.WeakMethod(restart)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: (m := ref()) and m())


def finish_in_child(finish: Callable[[], None]) -> None:
    """In every child that multiprocessing starts, call the bound method ``finish`` when the
    child's work is done (held weakly, as :func:`restart_in_child` holds its method): in
    the children forked after this call, and in this process if it is such a child (a
    forkserver's, which ends with ``os._exit`` too).

    multiprocessing runs its after-fork callbacks, then the finalizers registered
    from them at its exit; a plain ``os.fork`` is left alone (its exit is the app's).
    """
    ref = weakref.WeakMethod(finish)

    def at_exit() -> None:
        method = ref()
        if method is not None:
            method()

    started = sys.modules.get("multiprocessing")
    if started is not None and started.parent_process() is not None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, at_exit, exitpriority=0)

    def in_child() -> None:
        # Loaded in every process that forks through multiprocessing, before it forks.
        util = sys.modules.get("multiprocessing.util")
        target = ref()
        if util is None or target is None:
            return
        # The child's finalizers are cleared after this hook and before the after-fork
        # callbacks: the finalizer is registered from one of them.
        util.register_after_fork(target.__self__, lambda _: util.Finalize(None, at_exit, exitpriority=0))

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=in_child)
