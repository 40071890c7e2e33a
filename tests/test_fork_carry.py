"""What a queue engine's forked child queues again: the carry predicate's picks, in order."""

from __future__ import annotations

from ppp_otel.recorder.fork import ForkCarry


def _starts(item) -> bool:
    return item.startswith("start")


def test_a_fork_carries_the_picks_of_the_batch_in_flight_then_those_of_the_queue():
    carry = ForkCarry(_starts)
    carry.took(["start 1", "turn 1", "start 2"])
    assert carry.in_child(["turn 2", "start 3"]) == ["start 1", "start 2", "start 3"]


def test_a_child_forked_again_before_its_worker_takes_a_batch_does_not_carry_the_parents_batch_twice():
    carry = ForkCarry(_starts)
    carry.took(["start 1"])
    requeued = carry.in_child([])
    assert carry.in_child(requeued) == ["start 1"]


def test_of_the_batches_in_flight_only_the_one_taken_last_is_carried():
    carry = ForkCarry(_starts)
    carry.took(["start 1"])
    carry.took(["turn 1"])
    assert carry.in_child([]) == []


def test_without_a_carry_predicate_a_fork_carries_nothing():
    carry = ForkCarry(None)
    carry.took(["start 1"])
    assert carry.in_child(["start 2"]) == []
