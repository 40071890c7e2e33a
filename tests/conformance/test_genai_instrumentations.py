"""Instrumentations that speak the OpenTelemetry GenAI conventions give one turn per exchange:
the official OpenAI instrumentation, OpenLLMetry/Traceloop's OpenAI and Anthropic ones, pydantic-ai."""

from __future__ import annotations

import pytest

from conversation import (
    PROMPTS, SCRIPT, SYSTEM, anthropic_agent, assert_recorded_by_every_path, genai_content_on_spans, in_one_trajectory,
    openai_chat_agent, tool_result,
)

openai = pytest.importorskip("openai")


def openai_client(llm):
    return openai.OpenAI(base_url=f"{llm.url}/v1", api_key="test", max_retries=0)


def test_opentelemetry_openai_v2_with_content_on_span_attributes(llm, recording, tmp_path, monkeypatch):
    v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    genai_content_on_spans(monkeypatch)
    instrumentor = v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    try:
        llm.script(*SCRIPT)
        in_one_trajectory(recording, openai_chat_agent, openai_client(llm))
    finally:
        instrumentor.uninstrument()
    assert_recorded_by_every_path(recording, tmp_path)


def _unwrap_what_uninstrument_left(package: str) -> None:
    """Traceloop's OpenAI uninstrument() leaves its wrappers on (0.62.4): the next
    test's instrumentation would run inside them. Take every wrapt wrapper off."""
    import sys

    for name, module in list(sys.modules.items()):
        if not name.startswith(package) or module is None:
            continue
        for owner in [v for v in vars(module).values() if isinstance(v, type)]:
            for attr, value in list(vars(owner).items()):
                if type(value).__name__ == "FunctionWrapper":
                    setattr(owner, attr, value.__wrapped__)


def test_traceloop_openai(llm, recording, tmp_path, monkeypatch):
    traceloop = pytest.importorskip("opentelemetry.instrumentation.openai")
    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    instrumentor = traceloop.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    try:
        llm.script(*SCRIPT)
        in_one_trajectory(recording, openai_chat_agent, openai_client(llm))
    finally:
        instrumentor.uninstrument()
        _unwrap_what_uninstrument_left("openai")
    assert_recorded_by_every_path(recording, tmp_path)


def test_traceloop_anthropic(llm, recording, tmp_path, monkeypatch):
    anthropic = pytest.importorskip("anthropic")
    traceloop = pytest.importorskip("opentelemetry.instrumentation.anthropic")
    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    instrumentor = traceloop.AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=recording.provider)
    try:
        llm.script(*SCRIPT)
        client = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0)
        in_one_trajectory(recording, anthropic_agent, client)
    finally:
        instrumentor.uninstrument()
    assert_recorded_by_every_path(recording, tmp_path)


def test_pydantic_ai_agent(llm, recording, tmp_path):
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-test", provider=OpenAIProvider(base_url=f"{llm.url}/v1", api_key="test"))
    settings = InstrumentationSettings(tracer_provider=recording.provider)
    agent = pydantic_ai.Agent(model, system_prompt=SYSTEM, capabilities=[Instrumentation(settings=settings)])

    @agent.tool_plain
    def run_tests(path: str) -> str:
        return tool_result("run_tests")

    @agent.tool_plain
    def ask_user(question: str) -> str:
        return tool_result("ask_user")

    def conversation() -> None:
        history = None
        for prompt in PROMPTS:
            history = agent.run_sync(prompt, message_history=history).all_messages()

    llm.script(*SCRIPT)
    in_one_trajectory(recording, conversation)
    assert_recorded_by_every_path(recording, tmp_path)


def test_two_instrumentors_on_one_openai_client_record_each_call_once(llm, recording, tmp_path, monkeypatch):
    # Traceloop's span wraps the client call and OpenInference's sits inside it.
    traceloop = pytest.importorskip("opentelemetry.instrumentation.openai")
    oi_openai = pytest.importorskip("openinference.instrumentation.openai")
    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    outer, inner = traceloop.OpenAIInstrumentor(), oi_openai.OpenAIInstrumentor()
    outer.instrument(tracer_provider=recording.provider)
    inner.instrument(tracer_provider=recording.provider)
    try:
        llm.script(*SCRIPT)
        in_one_trajectory(recording, openai_chat_agent, openai_client(llm))
    finally:
        inner.uninstrument()
        outer.uninstrument()
        _unwrap_what_uninstrument_left("openai")
    spans = recording.memory.get_finished_spans()
    assert len([s for s in spans if s.name in ("openai.chat", "ChatCompletion")]) == 2 * len(SCRIPT)
    assert_recorded_by_every_path(recording, tmp_path)


def test_ppp_otel_ingest_says_once_which_instrumentation_sent_model_calls_without_message_content(
        llm, tmp_path, monkeypatch):
    import json

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    import ppp_otel
    from ingest_process import IngestProcess

    v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    # Its defaults: no message content on the spans.
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    ingest = IngestProcess(tmp_path / "ingest.db", "--json", capture_output=True).start()
    try:
        # Another process's agent, exporting its spans to ppp-otel ingest over OTLP/HTTP.
        provider = TracerProvider(resource=Resource.create({"service.name": "billing-agent"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{ingest.url}/v1/traces", timeout=10)))
        instrumentor = v2.OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            llm.script(*SCRIPT)
            with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
                openai_chat_agent(openai_client(llm))
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
    finally:
        status, out, err = ingest.finish()
    assert status == 0, err
    warned = [line for line in err.splitlines() if "carry no message content" in line]
    assert len(warned) == 1, err
    # openai-v2 traces through opentelemetry-util-genai, under the latter's scope name.
    assert "traced by opentelemetry.util.genai.handler (service billing-agent)" in warned[0]
    assert ("turn its content capture on in the process that sends them (set OTEL_SEMCONV_STABILITY_OPT_IN="
            "gen_ai_latest_experimental and OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY") in warned[0]
    stats = json.loads(out)
    assert stats["turns_without_content_by_instrumentation"] == {
        "opentelemetry.util.genai.handler": stats["turns_without_content"]}
    assert stats["turns_without_content"] == stats["written_turns"] == len(SCRIPT)
