"""Spans' ids, times and turns as records: the text the store keeps for each."""

from __future__ import annotations

import time

import pytest

from ppp_otel import conventions as c
from ppp_otel.model import Question, Violation
from ppp_otel.records import TurnRecord, carry, format_span_id, format_trace_id, iso_from_ns, turn_record
from ppp_otel.textrepair import repair_record

SECOND = 1_000_000_000


@pytest.mark.parametrize("ns, expected", [
    (0, "1970-01-01T00:00:00.000Z"),
    (SECOND - 1, "1970-01-01T00:00:00.999Z"),
    (1_764_613_200 * SECOND + 7_999_999, "2025-12-01T18:20:00.007Z"),
    (1_764_613_200 * SECOND + 999_000_000, "2025-12-01T18:20:00.999Z"),
    (1_764_613_201 * SECOND, "2025-12-01T18:20:01.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
])
def test_a_time_is_written_in_utc_with_its_milliseconds_cut_not_rounded(ns, expected):
    assert iso_from_ns(ns) == expected


def test_times_of_one_second_and_the_next_each_get_their_own_second():
    base = 1_764_613_200 * SECOND
    assert [iso_from_ns(base + d) for d in (5, SECOND + 5, 5)] == [
        "2025-12-01T18:20:00.000Z", "2025-12-01T18:20:01.000Z", "2025-12-01T18:20:00.000Z"]


def test_a_time_agrees_with_the_clock_formatting_of_the_same_moment():
    ns = time.time_ns()
    t = time.gmtime(ns // SECOND)
    assert iso_from_ns(ns) == time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ns // 1_000_000 % 1000:03d}Z"


def test_ids_are_zero_padded_lowercase_hex_of_their_full_width():
    assert format_span_id(0xAB) == "00000000000000ab"
    assert format_trace_id(0xAB) == "000000000000000000000000000000ab"
    assert format_span_id(2**64 - 1) == "f" * 16 and format_trace_id(2**128 - 1) == "f" * 32


def test_a_turn_that_ends_before_it_starts_has_no_negative_latency():
    record = turn_record("t" * 32, "s" * 16, ("t" * 32, "r" * 16), {}, [], start_ns=10 * SECOND, end_ns=SECOND)
    assert record.latency_ms == 0.0


def test_carrying_nothing_leaves_the_turn_as_it_was():
    record = TurnRecord("t", "s", ("t", "r"), 1, "Fix it", "Done.", questions=[Question("Which file?")])
    assert carry(record, [], []) is record
    assert (record.extra, record.questions) == (None, [Question("Which file?")])


def turn(**fields) -> TurnRecord:
    return TurnRecord("t", "s", ("t", "r"), 1, fields.pop("prompt", "Fix it"), fields.pop("response", "Done."),
                      **fields)


def test_an_ascii_turn_needs_no_repair():
    record = turn(questions=[Question("Which file?", "low")])
    assert repair_record(record) == 0 and record.questions == [Question("Which file?", "low")]


def test_a_lone_surrogate_in_a_question_of_an_ascii_turn_is_repaired():
    record = turn(questions=[Question("Which file?"), Question("Which \ud83d?")])
    assert repair_record(record) == 1
    assert [q.text for q in record.questions] == ["Which file?", "Which \ufffd?"]


def test_a_lone_surrogate_in_a_violation_of_an_ascii_turn_is_repaired():
    record = turn(violations=[Violation("no_commas", "no commas", "a comma \udc80", "minor")])
    assert repair_record(record) == 1 and record.violations[0].actual == "a comma \ufffd"


def test_a_lone_surrogate_in_the_extra_of_an_ascii_turn_is_repaired():
    record = turn(extra={"tool_calls": [{"name": "ask_user", "arguments": "\ud83d"}]})
    assert repair_record(record) == 1 and record.extra == {"tool_calls": [{"name": "ask_user", "arguments": "\ufffd"}]}


def test_non_ascii_text_that_utf8_can_hold_is_kept_as_it_is():
    record = turn(prompt="caf\u00e9 \U0001f600", response=None)
    assert repair_record(record) == 0 and record.prompt == "caf\u00e9 \U0001f600"


def test_a_question_event_gives_an_explicit_question_of_the_turn():
    record = turn_record("t" * 32, "s" * 16, ("t" * 32, "r" * 16), {}, [
        (c.QUESTION_EVENT, {c.QUESTION_TEXT: "Which file?", c.QUESTION_EFFORT: "low"})], start_ns=1, end_ns=2)
    assert record.questions == [Question("Which file?", "low")] and not record.extract_questions
