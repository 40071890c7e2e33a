"""The conversation every instrumentation is driven through, and how to read back what it gave.

Three exchanges with the user, inside one ``trajectory()`` and with no
``turn()`` call:

1. "Fix the failing test" -> the reply asks "Which test runner do you use?";
2. "pytest" -> the model calls ``run_tests``, gets its result, then replies;
3. "Thanks" -> the model asks "Should I also update the docs?" through the
   ``ask_user`` tool, gets "yes", then replies.

Five model calls, three turns: the tool-call-only steps are not turns of
their own; their tool calls go with the turn they lead to, the question
asked through ``ask_user`` is a question of the third turn, and a turn of two
model calls counts the tokens of both.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel.ingest.server import IngestServer
from llm_protocols import USAGE_IN, USAGE_OUT, text, tool_call

PROMPTS = ("Fix the failing test", "pytest", "Thanks")
SYSTEM = "You fix code. Ask when you must."
SCRIPT = (
    text("Which test runner do you use?"),
    tool_call("run_tests", path="tests"),
    text("Done: the test passes."),
    tool_call("ask_user", question="Should I also update the docs?"),
    text("Docs updated."),
)
TOOL_RESULTS = {"run_tests": "1 passed", "ask_user": "yes"}
TOKENS = USAGE_IN + USAGE_OUT

EXPECTED_TURNS = [
    (1, "Fix the failing test", "Which test runner do you use?", TOKENS, ["Which test runner do you use?"]),
    (2, "pytest", "Done: the test passes.", 2 * TOKENS, []),  # the run_tests call and the reply
    (3, "Thanks", "Docs updated.", 2 * TOKENS, ["Should I also update the docs?"]),
]
EXPECTED_TOOL_CALLS = [[], ["run_tests"], ["ask_user"]]


def tool_result(name: str) -> str:
    return TOOL_RESULTS[name]


class Recording:
    """A provider recording into ``db`` whose finished spans are also kept, for replay over OTLP."""

    def __init__(self, db: Path):
        self.db = db
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        ppp_otel.register(db, phoenix=False, set_global=False, tracer_provider=self.provider, env={})

    def finish(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()


def replay_over_ingest(spans, db: Path, *, batches: int = 2) -> None:
    """Send the spans to a real ``ppp-otel ingest`` as an OTLP/HTTP exporter would:
    in the order they ended, split into batches."""
    server = IngestServer(db, port=0).start()
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
    try:
        size = max(1, -(-len(spans) // batches))
        for i in range(0, len(spans), size):
            assert exporter.export(spans[i:i + size]).name == "SUCCESS"
    finally:
        exporter.shutdown()  # closes its keep-alive connection, which stop() would wait for
        server.stop()


def turns(db: Path) -> list[tuple]:
    """(number, prompt, response, token count, questions) of every turn, in order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            """SELECT u.id, u.turn_number, u.prompt, u.response, u.token_count FROM trajectory_turns u
               ORDER BY u.turn_number"""
        ).fetchall()
        return [
            (n, p, r, tokens, [q for (q,) in conn.execute(
                "SELECT question_text FROM trajectory_questions WHERE turn_id = ? ORDER BY id", (turn_id,))])
            for turn_id, n, p, r, tokens in rows
        ]


def tool_calls(db: Path) -> list[list[str]]:
    """Names of the tool calls each turn carries, in turn order."""
    import json

    with sqlite3.connect(db) as conn:
        return [
            [call["name"] for call in (json.loads(extra)["tool_calls"] if extra else [])]
            for (extra,) in conn.execute("SELECT extra FROM trajectory_turns ORDER BY turn_number")
        ]


# --- agent loops, one per client API ---------------------------------------------------

TOOLS_SCHEMA = {
    "run_tests": {"type": "object", "properties": {"path": {"type": "string"}}},
    "ask_user": {"type": "object", "properties": {"question": {"type": "string"}}},
}


def openai_chat_agent(client, *, stream: bool = False, parts: bool = False, model: str = "gpt-test") -> None:
    """The conversation over Chat Completions, as an agent loop with tools."""
    tools = [{"type": "function", "function": {"name": name, "parameters": schema}}
             for name, schema in TOOLS_SCHEMA.items()]
    history: list[dict] = [{"role": "system", "content": SYSTEM}]
    for prompt in PROMPTS:
        content = [{"type": "text", "text": prompt}] if parts else prompt
        history.append({"role": "user", "content": content})
        while True:
            if stream:
                text_parts, calls = [], {}
                options = {"stream_options": {"include_usage": True}}
                for chunk in client.chat.completions.create(model=model, messages=history, tools=tools,
                                                            stream=True, **options):
                    for choice in chunk.choices:
                        if choice.delta.content:
                            text_parts.append(choice.delta.content)
                        for call in choice.delta.tool_calls or []:
                            entry = calls.setdefault(call.index, {"id": call.id, "type": "function",
                                                                  "function": {"name": "", "arguments": ""}})
                            entry["function"]["name"] += call.function.name or ""
                            entry["function"]["arguments"] += call.function.arguments or ""
                message = {"role": "assistant", "content": "".join(text_parts) or None}
                if calls:
                    message["tool_calls"] = [calls[i] for i in sorted(calls)]
            else:
                answer = client.chat.completions.create(model=model, messages=history, tools=tools)
                message = answer.choices[0].message.model_dump(exclude_none=True)
            history.append(message)
            if not message.get("tool_calls"):
                break
            for call in message["tool_calls"]:
                history.append({"role": "tool", "tool_call_id": call["id"],
                                "content": tool_result(call["function"]["name"])})


def openai_responses_agent(client, *, model: str = "gpt-test") -> None:
    """The conversation over the Responses API, keeping the history client-side."""
    tools = [{"type": "function", "name": name, "parameters": schema} for name, schema in TOOLS_SCHEMA.items()]
    history: list[dict] = []
    for prompt in PROMPTS:
        history.append({"role": "user", "content": [{"type": "input_text", "text": prompt}]})
        while True:
            response = client.responses.create(model=model, instructions=SYSTEM, input=history, tools=tools)
            calls = [item for item in response.output if item.type == "function_call"]
            for item in response.output:
                history.append(item.model_dump(exclude_none=True))
            if not calls:
                break
            for call in calls:
                history.append({"type": "function_call_output", "call_id": call.call_id,
                                "output": tool_result(call.name)})


def anthropic_agent(client, *, model: str = "claude-test") -> None:
    """The conversation over Anthropic Messages; tool results go back with role user."""
    tools = [{"name": name, "input_schema": schema} for name, schema in TOOLS_SCHEMA.items()]
    history: list[dict] = []
    for prompt in PROMPTS:
        history.append({"role": "user", "content": prompt})
        while True:
            message = client.messages.create(model=model, max_tokens=256, system=SYSTEM, messages=history,
                                             tools=tools)
            history.append({"role": "assistant", "content": [block.model_dump(exclude_none=True)
                                                             for block in message.content]})
            calls = [block for block in message.content if block.type == "tool_use"]
            if not calls:
                break
            history.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": tool_result(call.name)}
                for call in calls]})


def langchain_agent(base_url: str) -> None:
    """The conversation through langchain-openai's ChatOpenAI with bound tools."""
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-test", base_url=base_url, api_key="test", max_retries=0).bind_tools(
        [{"type": "function", "function": {"name": name, "parameters": schema}}
         for name, schema in TOOLS_SCHEMA.items()])
    history: list = [SystemMessage(SYSTEM)]
    for prompt in PROMPTS:
        history.append(HumanMessage(prompt))
        while True:
            message = model.invoke(history)
            history.append(message)
            if not message.tool_calls:
                break
            for call in message.tool_calls:
                history.append(ToolMessage(tool_result(call["name"]), tool_call_id=call["id"]))


def genai_content_on_spans(monkeypatch) -> None:
    """opentelemetry-instrumentation-openai-v2 records message content only when asked,
    and on span attributes only under the latest GenAI conventions."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")


def in_one_trajectory(recording: Recording, agent, *args, **kwargs) -> None:
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=recording.provider):
        agent(*args, **kwargs)
    recording.finish()


def assert_recorded_by_every_path(recording: Recording, tmp_path: Path) -> None:
    """Three turns in process, and the same rows from the same spans sent to ``ppp-otel ingest``."""
    assert turns(recording.db) == EXPECTED_TURNS
    assert tool_calls(recording.db) == EXPECTED_TOOL_CALLS
    ingested = tmp_path / "ingest.db"
    replay_over_ingest(list(recording.memory.get_finished_spans()), ingested)
    assert turns(ingested) == EXPECTED_TURNS
    assert tool_calls(ingested) == EXPECTED_TOOL_CALLS
