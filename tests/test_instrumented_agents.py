"""Agents already instrumented with OpenInference get trajectories with no turn() calls.

The real ``openinference-instrumentation-openai`` wraps the real ``openai``
client, which talks to a small local server speaking the chat-completions
protocol; inside ``ppp_otel.trajectory(...)`` each completion becomes a turn.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

openai = pytest.importorskip("openai")
instrumentation = pytest.importorskip("openinference.instrumentation.openai")

import ppp_otel  # noqa: E402


class _ChatCompletions(BaseHTTPRequestHandler):
    """Answers every chat completion with a canned reply and its token usage."""

    replies: list[str] = []

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.replies.pop(0)
        body = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def openai_server():
    handler = type("Handler", (_ChatCompletions,), {"replies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def instrumented(db_path):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider
    instrumentor.uninstrument()
    provider.shutdown()


def turns(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            """SELECT t.spec_id, u.turn_number, u.prompt, u.response, u.token_count
               FROM trajectory_turns u JOIN trajectories t ON t.id = u.trajectory_id ORDER BY u.turn_number"""
        ).fetchall()


def test_openai_completions_inside_a_trajectory_become_its_turns(db_path, openai_server, instrumented):
    server, handler = openai_server
    handler.replies[:] = ["Which test runner do you use?", "Done: the test passes."]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="test", max_retries=0)
    history = [{"role": "system", "content": "You fix code."}]
    with ppp_otel.trajectory("spec-1", "gpt-agent", tracer_provider=instrumented):
        for prompt in ("Fix the failing test", "pytest"):
            history.append({"role": "user", "content": prompt})
            answer = client.chat.completions.create(model="gpt-test", messages=history)
            history.append({"role": "assistant", "content": answer.choices[0].message.content})
    instrumented.shutdown()
    assert turns(db_path) == [
        ("spec-1", 1, "Fix the failing test", "Which test runner do you use?", 15),
        ("spec-1", 2, "pytest", "Done: the test passes.", 15),
    ]


def test_a_question_in_an_instrumented_reply_is_extracted_and_classified(db_path, openai_server, instrumented):
    server, handler = openai_server
    handler.replies[:] = ["Which test runner do you prefer, pytest or unittest?"]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="test", max_retries=0)
    with ppp_otel.trajectory("spec-1", "gpt-agent", tracer_provider=instrumented):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Fix it"}])
    instrumented.shutdown()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT question_text, effort_level, source FROM trajectory_questions").fetchall() == [
            ("Which test runner do you prefer, pytest or unittest?", "low", "extracted")
        ]


def test_completions_outside_any_trajectory_are_not_recorded(db_path, openai_server, instrumented):
    server, handler = openai_server
    handler.replies[:] = ["hello"]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="test", max_retries=0)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    instrumented.shutdown()
    assert turns(db_path) == []
