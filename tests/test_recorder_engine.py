"""The queue engine on its own: batches, flush and shutdown barriers, counted drops, a sink's failure."""

from __future__ import annotations

import threading
import time

import pytest

from ppp_otel.recorder.engine import BACKLOG_BATCH, BUSY_BATCH, QueueEngine, batch_size
from ppp_otel.recorder.stats import RecorderStats


class ListSink:
    """Keeps what it is handed; ``fail_first`` batches raise, ``gate`` holds the worker."""

    def __init__(self, fail_first: int = 0, gate: threading.Event | None = None):
        self.batches: list[list] = []
        self.fail_first = fail_first
        self.gate = gate
        self.ticks = 0
        self.closed = False
        self.entered = threading.Event()

    def process(self, batch, engine):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("a bug in the sink")
        self.batches.append(list(batch))

    def tick(self, *, final):
        self.ticks += 1

    def close(self):
        self.closed = True

    def after_fork(self):
        pass

    @property
    def items(self):
        return [item for batch in self.batches for item in batch]


def engine(sink, **options):
    return QueueEngine(sink, RecorderStats(), **{"flush_interval_ms": 60_000, **options})


def test_force_flush_returns_once_everything_queued_before_it_is_processed():
    sink = ListSink()
    e = engine(sink, buffer_size=1000)
    for i in range(25):
        e.put(i)
    assert e.force_flush(10_000)
    assert sink.items == list(range(25))
    e.shutdown()


def test_items_are_handed_over_in_order_in_batches_no_larger_than_a_busy_batch():
    sink = ListSink()
    e = engine(sink, buffer_size=10)
    for i in range(300):
        e.put(i)
    e.force_flush(10_000)
    e.shutdown()
    assert all(len(batch) <= BUSY_BATCH for batch in sink.batches) and sink.items == list(range(300))


def test_a_batch_is_buffer_size_unless_two_batches_wait_then_up_to_a_backlog_batch():
    assert batch_size(5, 10) == 5
    assert batch_size(19, 10) == 10
    assert batch_size(20, 10) == 20
    assert batch_size(5000, 10) == BACKLOG_BATCH
    assert batch_size(5000, 1000) == 1000


def test_a_backlog_in_a_roomy_queue_is_written_in_busy_batches():
    assert batch_size(202, 10, max_queue_size=100_000) == 202  # a trajectory's turns, one transaction
    assert batch_size(5000, 10, max_queue_size=100_000) == BUSY_BATCH


def test_a_backlog_in_a_half_full_queue_is_written_in_backlog_batches_that_free_room_sooner():
    assert batch_size(1024, 10, max_queue_size=2048) == BACKLOG_BATCH
    assert batch_size(1023, 10, max_queue_size=2048) == BUSY_BATCH


def test_shutdown_processes_what_is_queued_then_closes_the_sink():
    sink = ListSink()
    e = engine(sink, buffer_size=1000)
    for i in range(5):
        e.put(i)
    e.shutdown()
    assert sink.items == list(range(5)) and sink.closed


def test_an_item_offered_after_shutdown_is_counted_as_dropped():
    e = engine(ListSink())
    e.shutdown()
    assert e.put("late") is False
    assert e.stats.dropped == 1


def test_a_full_queue_drops_the_newest_and_counts_it():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    e = engine(sink, buffer_size=1, max_queue_size=2)
    e.put("taken by the held worker")
    assert sink.entered.wait(10)  # the worker holds that batch at the gate
    results = [e.put(i) for i in range(4)]
    assert results == [True, True, False, False] and e.stats.dropped == 2
    gate.set()
    e.shutdown()


def test_a_put_dropped_on_a_full_queue_leaves_the_queue_open_to_the_next_once_there_is_room():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    e = engine(sink, buffer_size=1, max_queue_size=1, on_full="drop")
    e.put("held")
    assert sink.entered.wait(10)
    e.put("queued")
    assert e.put("dropped") is False
    gate.set()
    assert e.force_flush(10_000)
    assert e.put("after the drop") is True and e.force_flush(10_000)
    e.shutdown()
    assert sink.items == ["held", "queued", "after the drop"]


def test_a_put_that_waited_for_room_is_queued_and_the_next_put_goes_straight_in():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    e = engine(sink, buffer_size=1, max_queue_size=1, on_full="block", block_timeout_ms=10_000)
    e.put("held")
    assert sink.entered.wait(10)
    e.put("queued")
    threading.Timer(0.05, gate.set).start()
    assert e.put("waited") is True
    assert e.put("straight in") is True and e.force_flush(10_000)
    e.shutdown()
    assert sink.items == ["held", "queued", "waited", "straight in"] and e.stats.dropped == 0


def test_an_item_offered_after_shutdown_leaves_flushes_answered_at_once():
    e = engine(ListSink())
    e.shutdown()
    e.put("late")
    done = threading.Thread(target=e.force_flush, args=(10_000,))
    done.start()
    done.join(5)
    assert not done.is_alive()


def test_forced_items_use_the_headroom_above_max_queue_size():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    e = engine(sink, buffer_size=1, max_queue_size=2)
    e.put("held")
    assert sink.entered.wait(10)
    e.put(1), e.put(2)
    assert e.put("must not be lost", force=True) is True
    gate.set()
    e.shutdown()


def test_a_sink_that_raises_costs_its_batch_and_the_worker_goes_on():
    sink = ListSink(fail_first=1)
    e = engine(sink, buffer_size=1000)
    e.put("lost")
    assert e.force_flush(10_000)
    e.put("kept")
    e.shutdown()
    assert sink.items == ["kept"]
    assert e.stats.internal_errors == 1 and e.stats.rejected == 1
    assert "a bug in the sink" in e.stats.last_error


def test_arguments_a_queue_cannot_work_with_are_value_errors_naming_them():
    with pytest.raises(ValueError, match="buffer_size"):
        engine(ListSink(), buffer_size=0)
    with pytest.raises(ValueError, match="on_full"):
        engine(ListSink(), on_full="wait")


# --- when a batch is due -------------------------------------------------------------

def _processed_within(sink, seconds: float) -> bool:
    return sink.entered.wait(seconds)


def test_a_full_batch_waits_for_the_producers_to_pause(monkeypatch):
    from ppp_otel.recorder import engine as engine_module

    monkeypatch.setattr(engine_module, "QUIET_S", 60.0)  # a producer that never pauses
    sink = ListSink()
    e = engine(sink, buffer_size=10)
    for i in range(10):
        e.put(i)
    assert not _processed_within(sink, 0.3)
    e.shutdown()
    assert sink.items == list(range(10))


def test_a_full_batch_is_written_once_the_producers_pause(monkeypatch):
    from ppp_otel.recorder import engine as engine_module

    monkeypatch.setattr(engine_module, "QUIET_S", 0.02)
    sink = ListSink()
    e = engine(sink, buffer_size=10)  # the flush interval is a minute
    for i in range(10):
        e.put(i)
    assert _processed_within(sink, 10)
    e.shutdown()


def test_a_producer_that_never_pauses_long_enough_wakes_the_worker_a_few_times_not_once_an_item(monkeypatch):
    from ppp_otel.recorder import engine as engine_module

    looks = []
    due_in = engine_module.due_in
    monkeypatch.setattr(engine_module, "QUIET_S", 0.01)
    monkeypatch.setattr(engine_module, "due_in", lambda *a: looks.append(a) or due_in(*a))
    sink = ListSink()
    e = engine(sink, buffer_size=10)  # the flush interval is a minute
    for i in range(60):  # a full batch, then an item every 5 ms: never 10 ms quiet
        e.put(i)
        if i >= 10:
            time.sleep(0.005)
    assert len(looks) < 25  # 10, 20, 40, 80, 160 ms...: not one look an item (50)
    e.shutdown()
    assert sink.items == list(range(60))


def test_a_busy_batch_is_written_however_busy_the_producers_are(monkeypatch):
    from ppp_otel.recorder import engine as engine_module

    monkeypatch.setattr(engine_module, "QUIET_S", 60.0)
    sink = ListSink()
    e = engine(sink, buffer_size=10)
    for i in range(engine_module.BUSY_BATCH):
        e.put(i)
    assert _processed_within(sink, 10)
    e.shutdown()


def test_an_item_put_due_makes_what_is_queued_due_at_once(monkeypatch):
    from ppp_otel.recorder import engine as engine_module

    monkeypatch.setattr(engine_module, "QUIET_S", 60.0)
    sink = ListSink()
    e = engine(sink, buffer_size=10)
    e.put("turn")
    e.put("trajectory end", due=True)
    assert _processed_within(sink, 10)
    e.shutdown()
    assert sink.items == ["turn", "trajectory end"]


class LoopWaiter:
    """A waiter that wakes an asyncio loop, as an async caller's would."""

    def __init__(self, loop):
        self.loop = loop

    def set(self):
        self.loop.call_soon_threadsafe(lambda: None)


def test_a_waiter_whose_event_loop_has_closed_is_counted_and_the_worker_goes_on(caplog):
    import asyncio

    gate = threading.Event()
    sink = ListSink(gate=gate)
    e = engine(sink, buffer_size=1000)
    e.put("first", due=True)
    assert sink.entered.wait(10)
    loop = asyncio.new_event_loop()
    loop.close()
    e.when_done(LoopWaiter(loop))  # set() will raise RuntimeError: Event loop is closed
    e.when_done(woken := threading.Event())
    gate.set()
    assert woken.wait(10)  # the waiters after it are still woken
    e.put("second")
    assert e.force_flush(10_000)  # and the worker is alive
    assert sink.items == ["first", "second"]
    assert e.flush_waiters.failed == 1
    assert [r.message for r in caplog.records if "could not be woken" in r.message] != []
    e.shutdown()


def test_a_waiter_that_raises_when_woken_at_once_does_not_reach_the_caller():
    import asyncio

    e = engine(ListSink())
    loop = asyncio.new_event_loop()
    loop.close()
    e.when_done(LoopWaiter(loop))  # nothing queued: woken on the caller's thread
    assert e.flush_waiters.failed == 1
    e.shutdown()


def test_waiters_left_at_the_end_are_woken_even_when_one_of_them_raises():
    import asyncio

    gate = threading.Event()
    e = engine(ListSink(gate=gate), shutdown_timeout_ms=100)
    e.put("held")
    loop = asyncio.new_event_loop()
    loop.close()
    e.when_done(LoopWaiter(loop))
    e.when_done(woken := threading.Event())
    e.shutdown()  # the worker is held past the deadline; it wakes everyone when it ends
    gate.set()
    assert woken.wait(10)
    e._thread.join(10)
    assert not e._thread.is_alive() and e.flush_waiters.failed == 1
