"""A parent that keeps its recorder busy writing while a fork pool records in its children.

    python fork_pool_child.py DB TASKS

Each of TASKS pool tasks (fork start method) records one trajectory of three
turns in the child with the recorder inherited from the parent, and returns
whether ``force_flush`` confirmed it. Meanwhile a thread in the parent records
turn after turn, so that forks land while the parent's writer is writing.
Prints ``confirmed <n>`` for the tasks that confirmed their turns.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading

from opentelemetry.sdk.trace import TracerProvider

import ppp_otel
from ppp_otel import TrajectorySpanProcessor

_PIPELINE: tuple | None = None


def task(k: int) -> bool:
    provider, processor = _PIPELINE
    with ppp_otel.trajectory("fork-spec", f"task-{k}", tracer_provider=provider):
        for i in range(3):
            with ppp_otel.turn(f"task {k} turn {i}", tracer_provider=provider) as t:
                t.respond("done")
    return processor.force_flush(20_000)


def main() -> int:
    global _PIPELINE
    db, tasks = sys.argv[1], int(sys.argv[2])
    provider = TracerProvider()
    processor = TrajectorySpanProcessor(db, buffer_size=1, flush_interval_ms=1)
    provider.add_span_processor(processor)
    _PIPELINE = (provider, processor)
    stop = threading.Event()

    def busy() -> None:
        with ppp_otel.trajectory("fork-spec", "parent", tracer_provider=provider):
            i = 0
            while not stop.is_set():
                i += 1
                with ppp_otel.turn(f"parent turn {i}", tracer_provider=provider) as t:
                    t.respond("x" * 2000)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        # maxtasksperchild=1: every task is a fresh fork, so 32 chances to land mid-write.
        with multiprocessing.get_context("fork").Pool(4, maxtasksperchild=1) as pool:
            results = pool.map(task, range(tasks), chunksize=1)
    finally:
        stop.set()
        thread.join()
    provider.shutdown()
    print(f"confirmed {sum(results)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
