"""OpenInference instrumentations (OpenAI, Anthropic, LangChain) give one turn per exchange."""

from __future__ import annotations

import pytest

from conversation import (
    SCRIPT, anthropic_agent, assert_recorded_by_every_path, in_one_trajectory, langchain_agent,
    openai_chat_agent, openai_responses_agent,
)

openai = pytest.importorskip("openai")
oi_openai = pytest.importorskip("openinference.instrumentation.openai")


@pytest.fixture
def openai_instrumented(recording):
    instrumentor = oi_openai.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    yield
    instrumentor.uninstrument()


def openai_client(llm):
    return openai.OpenAI(base_url=f"{llm.url}/v1", api_key="test", max_retries=0)


@pytest.mark.parametrize("parts", [False, True], ids=["text", "content-parts"])
def test_openinference_openai_chat_completions(llm, recording, openai_instrumented, tmp_path, parts):
    llm.script(*SCRIPT)
    in_one_trajectory(recording, openai_chat_agent, openai_client(llm), parts=parts)
    assert_recorded_by_every_path(recording, tmp_path)


def test_openinference_openai_streamed_chat_completions(llm, recording, openai_instrumented, tmp_path):
    llm.script(*SCRIPT)
    in_one_trajectory(recording, openai_chat_agent, openai_client(llm), stream=True)
    assert_recorded_by_every_path(recording, tmp_path)


def test_openinference_openai_responses_api(llm, recording, openai_instrumented, tmp_path):
    llm.script(*SCRIPT)
    in_one_trajectory(recording, openai_responses_agent, openai_client(llm))
    assert_recorded_by_every_path(recording, tmp_path)


def test_openinference_anthropic_messages(llm, recording, tmp_path):
    anthropic = pytest.importorskip("anthropic")
    oi_anthropic = pytest.importorskip("openinference.instrumentation.anthropic")
    instrumentor = oi_anthropic.AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    try:
        llm.script(*SCRIPT)
        client = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0)
        in_one_trajectory(recording, anthropic_agent, client)
    finally:
        instrumentor.uninstrument()
    assert_recorded_by_every_path(recording, tmp_path)


@pytest.fixture
def langchain_instrumented(recording):
    pytest.importorskip("langchain_openai")
    oi_langchain = pytest.importorskip("openinference.instrumentation.langchain")
    instrumentor = oi_langchain.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    yield
    instrumentor.uninstrument()


def test_openinference_langchain_with_langchain_openai(llm, recording, langchain_instrumented, tmp_path):
    llm.script(*SCRIPT)
    in_one_trajectory(recording, langchain_agent, f"{llm.url}/v1")
    assert_recorded_by_every_path(recording, tmp_path)


def test_langchain_and_openai_instrumented_together_record_each_call_once(
        llm, recording, langchain_instrumented, openai_instrumented, tmp_path):
    llm.script(*SCRIPT)
    in_one_trajectory(recording, langchain_agent, f"{llm.url}/v1")
    assert_recorded_by_every_path(recording, tmp_path)
