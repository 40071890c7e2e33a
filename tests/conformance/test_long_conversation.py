"""An agent resends the whole conversation with every call: each call is still one
turn whose prompt is the user's latest words, however long the history it carries
(it is read from its end)."""

from __future__ import annotations

import pytest

from conversation import genai_content_on_spans, in_one_trajectory, replay_over_ingest, turns
from llm_protocols import USAGE_IN, USAGE_OUT, text

openai = pytest.importorskip("openai")

HISTORY = 40  # earlier exchanges resent with every call: far past what is read in one pass
LAST_WORDS = "Which of these files should I open first?"


def long_conversation_agent(client) -> None:
    messages = [{"role": "system", "content": "You fix code."}]
    for i in range(HISTORY):
        messages += [{"role": "user", "content": f"Earlier request {i}"},
                     {"role": "assistant", "content": f"Earlier reply {i}"}]
    messages.append({"role": "user", "content": LAST_WORDS})
    client.chat.completions.create(model="gpt-test", messages=messages)


def _client(llm):
    return openai.OpenAI(base_url=f"{llm.url}/v1", api_key="test", max_retries=0)


def _recorded_by_every_path(llm, recording, tmp_path, instrumentor) -> list:
    """The long conversation through ``instrumentor``: one turn of the user's last
    words in process, and the same from its spans sent to ``ppp-otel ingest``."""
    instrumentor.instrument(tracer_provider=recording.provider)
    try:
        llm.script(text("Open conftest.py first?"))
        in_one_trajectory(recording, long_conversation_agent, _client(llm))
    finally:
        instrumentor.uninstrument()
    spans = list(recording.memory.get_finished_spans())
    replay_over_ingest(spans, tmp_path / "ingest.db")
    for db in (recording.db, tmp_path / "ingest.db"):
        assert turns(db) == [(1, LAST_WORDS, "Open conftest.py first?", USAGE_IN + USAGE_OUT,
                              ["Open conftest.py first?"])]
    return spans


def test_openinference_openai_a_long_conversation_is_one_turn_of_the_users_last_words(llm, recording, tmp_path):
    oi_openai = pytest.importorskip("openinference.instrumentation.openai")
    spans = _recorded_by_every_path(llm, recording, tmp_path, oi_openai.OpenAIInstrumentor())
    assert max(len(s.attributes) for s in spans) > 2 * HISTORY  # the history is on the span, flattened


def test_opentelemetry_openai_v2_a_long_conversation_is_one_turn_of_the_users_last_words(
        llm, recording, tmp_path, monkeypatch):
    v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    genai_content_on_spans(monkeypatch)
    _recorded_by_every_path(llm, recording, tmp_path, v2.OpenAIInstrumentor())
