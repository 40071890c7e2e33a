"""A small app that records turns, run as a real process by the crash and concurrency tests.

    python recording_child.py DB AGENT TURNS FLUSH_EVERY [--fork N]

Records one trajectory of TURNS turns (prompts ``"<AGENT> turn <i>"``) and
after every FLUSH_EVERY turns prints ``confirmed <i>`` once ``force_flush``
has confirmed them. ``TURNS`` 0 records until killed. ``--fork N`` first
records a turn, then forks a multiprocessing child (fork start method) that
records N turns of its own under agent ``<AGENT>-child``. At the end it prints
``stats <json>``; any exception escaping into this "app" exits with status 3.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.sdk.trace import TracerProvider

import ppp_otel
from ppp_otel import TrajectorySpanProcessor


def record(provider: TracerProvider, processor: TrajectorySpanProcessor, agent: str,
           turns: int, flush_every: int) -> None:
    with ppp_otel.trajectory("crash-spec", agent, tracer_provider=provider):
        i = 0
        while turns == 0 or i < turns:
            i += 1
            with ppp_otel.turn(f"{agent} turn {i}", tracer_provider=provider) as t:
                t.respond("Done. " * 20, token_count=i)
            if i % flush_every == 0 and processor.force_flush(30_000):
                print(f"confirmed {i}", flush=True)


def in_forked_child(db: str, agent: str, turns: int) -> None:
    # The processor inherited from the parent re-made its thread and connection after fork.
    provider, processor = _PIPELINE
    record(provider, processor, agent, turns, turns)
    provider.force_flush()
    print("child stats " + json.dumps(processor.stats), flush=True)


_PIPELINE: tuple | None = None


def main() -> int:
    global _PIPELINE
    db, agent, turns, flush_every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    provider = TracerProvider()
    processor = TrajectorySpanProcessor(db, buffer_size=50, flush_interval_ms=50)
    provider.add_span_processor(processor)
    _PIPELINE = (provider, processor)
    try:
        if "--fork" in sys.argv:
            import multiprocessing

            child_turns = int(sys.argv[sys.argv.index("--fork") + 1])
            record(provider, processor, agent, 1, 1)
            child = multiprocessing.get_context("fork").Process(
                target=in_forked_child, args=(db, f"{agent}-child", child_turns)
            )
            child.start()
            child.join(60)
            if child.exitcode != 0:
                print(f"forked child exit code {child.exitcode}", flush=True)
                return 4
            record(provider, processor, agent + "-after-fork", 5, 5)
        else:
            record(provider, processor, agent, turns, flush_every)
        provider.shutdown()
    except Exception as exc:  # the recorder must never raise into the app
        print(f"app saw {type(exc).__name__}: {exc}", flush=True)
        return 3
    print("stats " + json.dumps(processor.stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
