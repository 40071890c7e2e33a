"""The async store: :class:`AsyncTrajectoryStore`, the sync store run on a thread it owns.

As aiosqlite does it: one thread per store holds the store (and so its
connection), and every method is the sync store's method sent to that thread
and awaited. Nothing is written twice, so the async results are the sync
results by construction, and opening, migrating and the storage errors are
the sync code's.

    async with AsyncTrajectoryStore("runs.db") as store:
        summaries = await store.list_trajectories(spec_id="spec-1")
        counts = await store.run(lambda s: s.status()["row_counts"])
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from ppp_otel.storage import open_store
from ppp_otel.storage.base import TrajectoryBackend

__all__ = ["AsyncTrajectoryStore"]

T = TypeVar("T")

#: The store's methods offered as coroutines, each the sync method of the same name.
METHODS = (
    "list_trajectories", "get_trajectory", "missing_ids", "specs", "agents", "status", "migrate",
    "trajectory_parents", "children_of", "turn_extras",
    "write", "recorders", "trajectory_history", "placement",
    "score_counts", "store_consensus", "record_consensus_span", "consensus_history_rows",
)


class AsyncTrajectoryStore:
    """Async access to a trajectory store; the options are :func:`ppp_otel.storage.open_store`'s.

    Use ``async with AsyncTrajectoryStore(path) as store:`` or
    ``store = await AsyncTrajectoryStore(path).open()`` and ``await store.close()``.
    ``must_exist`` defaults to True, as for the sync store.
    """

    def __init__(self, path: str | os.PathLike[str], **options: Any):
        if not isinstance(path, (str, os.PathLike)):
            # A sync store's connection belongs to the thread that opened it: it cannot move here.
            raise TypeError(f"AsyncTrajectoryStore takes a database path or URL, got {type(path).__name__}")
        self.path = os.fspath(path)
        self._options = {"must_exist": True, **options}
        self._thread: ThreadPoolExecutor | None = None
        self._store: TrajectoryBackend | None = None

    async def open(self) -> AsyncTrajectoryStore:
        if self._store is not None:
            # Opening again would leave the first connection and its thread behind.
            return self
        # One worker: the store and its connection are only ever used from it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppp-otel-store")
        opening = self._thread.submit(open_store, self.path, **self._options)
        try:
            self._store = await asyncio.wrap_future(opening)
        except BaseException:
            # Cancelled while the thread opens it: the store still opens there; close it there.
            self._thread.submit(_close_opened, opening)
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        return self

    async def close(self) -> None:
        store, self._store = self._store, None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            if store is not None:
                # Shielded: a close that is cancelled still closes the store, on its thread.
                await asyncio.shield(asyncio.wrap_future(thread.submit(store.close)))
        finally:
            thread.shutdown(wait=False)

    async def __aenter__(self) -> AsyncTrajectoryStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    def _opened(self) -> TrajectoryBackend:
        if self._store is None:
            raise RuntimeError("AsyncTrajectoryStore is not open; use 'async with' or await open()")
        return self._store

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, *args, **kwargs)`` on the store's thread, with the sync store:
        how sync code over a store (the rewards, consensus) runs unchanged here."""
        if inspect.iscoroutinefunction(fn):
            # It would only be called, never awaited, on the store's thread.
            raise TypeError(f"run() takes a sync function of the store, got the coroutine function {fn.__name__}")
        return await self._on_thread(fn, self._opened(), *args, **kwargs)

    @property
    def conn(self) -> Any:
        """The sync store's connection; use it only inside :meth:`run`."""
        return getattr(self._opened(), "conn", None)


def _close_opened(opening: Future) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _coroutine(name: str) -> Callable[..., Any]:
    async def method(self: AsyncTrajectoryStore, *args: Any, **kwargs: Any) -> Any:
        store = self._opened()
        return await self._on_thread(getattr(store, name), *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The store's ``{name}``, awaited (see :class:`ppp_otel.storage.base.TrajectoryBackend`)."
    return method


for _name in METHODS:
    setattr(AsyncTrajectoryStore, _name, _coroutine(_name))
del _name
