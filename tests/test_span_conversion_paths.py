"""Span -> record conversion reads an SDK span's own fields in place; any other span gives the same record."""

import dataclasses

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ppp_otel import TrajectorySpanProcessor, conventions as c
from ppp_otel.dialects import SpanContentError, read_turn, token_count


def finished_spans():
    """Spans as the SDK records them: a ppp.turn span with a question event, and an LLM span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span(c.TRAJECTORY_SPAN):
        with tracer.start_as_current_span(c.TURN_SPAN, attributes={c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: "Fix it"}) as s:
            s.set_attribute(c.OUTPUT_VALUE, "Done. Shall I push?")
            s.set_attribute(c.TOKEN_COUNT_TOTAL, 42)
            s.add_event(c.QUESTION_EVENT, {c.QUESTION_TEXT: "Shall I push?", c.QUESTION_EFFORT: "low"})
        with tracer.start_as_current_span("llm call", attributes={c.SPAN_KIND: c.KIND_LLM, c.INPUT_VALUE: "Why?",
                                                                  c.OUTPUT_VALUE: "Because."}):
            pass
    provider.shutdown()
    return [s for s in exporter.get_finished_spans() if s.name != c.TRAJECTORY_SPAN]


class PublicOnly:
    """A span known only by the ReadableSpan properties (a wrapper another library might hand on)."""

    def __init__(self, span):
        self.name, self.context, self.attributes = span.name, span.context, dict(span.attributes)
        self.events, self.start_time, self.end_time = span.events, span.start_time, span.end_time
        self.instrumentation_scope = span.instrumentation_scope


def plain_readable(span):
    """The same span as a ReadableSpan made by hand: attributes a plain dict, events a tuple."""
    return ReadableSpan(span.name, span.context, span.parent, attributes=dict(span.attributes),
                        events=tuple(span.events), start_time=span.start_time, end_time=span.end_time,
                        instrumentation_scope=span.instrumentation_scope)


def converted(db_path, spans, numbered):
    processor = TrajectorySpanProcessor(db_path)
    try:
        ids = (spans[0].context.trace_id, 0xABC)
        return [dataclasses.asdict(processor._convert(("turn", (span, ids, numbered)))) for span in spans]
    finally:
        processor.shutdown()


@pytest.mark.parametrize("numbered", [None, (7, True), (7, False)])
@pytest.mark.parametrize("other", [plain_readable, PublicOnly])
def test_a_span_that_is_not_the_sdks_own_converts_to_the_same_records(tmp_path, other, numbered):
    spans = finished_spans()
    sdk = converted(tmp_path / "a.db", spans, numbered)
    assert converted(tmp_path / "b.db", [other(s) for s in spans], numbered) == sdk
    assert sdk[0]["questions"] and sdk[0]["token_count"] == 42


@pytest.mark.parametrize("numbered, renumber", [((7, True), True), ((7, False), False)])
def test_a_turn_spans_number_from_the_sequence_may_be_renumbered_and_a_chosen_one_may_not(
        tmp_path, numbered, renumber):
    record = converted(tmp_path / "a.db", finished_spans()[:1], numbered)[0]
    assert (record["turn_number"], record["renumber_on_conflict"]) == (7, renumber)


@pytest.mark.parametrize("total, expected", [
    (0, 0), (120, 120), (2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)), (3.0, 3), ("42", 42),
])
def test_the_total_token_count_is_read_whatever_its_form(total, expected):
    assert token_count({c.TOKEN_COUNT_TOTAL: total, c.TOKEN_COUNT_PROMPT: 1}) == expected


@pytest.mark.parametrize("total, error", [(2**63, "out of range"), (True, "got a bool"), ("4a", "must be an integer")])
def test_a_total_token_count_that_is_no_storable_integer_is_named(total, error):
    with pytest.raises(SpanContentError, match=error):
        token_count({c.TOKEN_COUNT_TOTAL: total, c.TOKEN_COUNT_PROMPT: 1})


@pytest.mark.parametrize("prompt", ["Fix it", "[1, 2]", "{\"a\": 1}", " padded", "\tTab", "", 12])
@pytest.mark.parametrize("response", ["Done.", "[\"x\"]", "\nDone", None])
def test_a_ppp_turn_span_reads_as_an_llm_span_of_the_same_texts_would(prompt, response):
    attrs = {c.INPUT_VALUE: prompt, c.OUTPUT_VALUE: response}
    as_turn = read_turn(c.TURN_SPAN, attrs)
    as_llm = read_turn("llm", {**attrs, c.SPAN_KIND: c.KIND_LLM})
    assert (as_turn.prompt, as_turn.response, as_turn.tool_calls) == (as_llm.prompt, as_llm.response, as_llm.tool_calls)
