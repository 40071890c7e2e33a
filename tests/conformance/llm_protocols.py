"""Small loopback servers that speak the LLM protocols the instrumentations wrap.

One ``ScriptedLLM`` answers OpenAI Chat Completions (plain and streamed),
OpenAI Responses and Anthropic Messages on the same port, each request with
the next reply of its script: a text, or tool calls. It keeps the requests it
got, so a test can check what the client really sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE_IN, USAGE_OUT = 11, 4


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)


def text(value: str) -> Reply:
    return Reply(text=value)


def tool_call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


class ScriptedLLM:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._calls = 0
        handler = type("Handler", (_Handler,), {"llm": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies[:] = list(replies)

    def next_reply(self, path: str, request: dict) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append((path, request))
            if not self.replies:
                raise AssertionError(f"the script ran out at a request to {path}")
            self._calls += 1
            return self.replies.pop(0), self._calls

    def start(self) -> "ScriptedLLM":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    llm: ScriptedLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?", 1)[0]
        reply, n = self.llm.next_reply(path, request)
        stream = bool(request.get("stream"))
        if path.endswith("/chat/completions"):
            if stream:
                self._sse([("", chunk) for chunk in _chat_chunks(request, reply, n)])
            else:
                self._json(_chat_completion(request, reply, n))
        elif path.endswith("/responses"):
            if stream:
                self._sse(_response_events(request, reply, n))
            else:
                self._json(_response(request, reply, n))
        elif path.endswith("/messages"):
            if stream:
                self._sse(_anthropic_events(request, reply, n))
            else:
                self._json(_anthropic_message(request, reply, n))
        else:
            self.send_error(404)

    def _json(self, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, events: list[tuple[str, dict]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            if name:
                self.wfile.write(f"event: {name}\n".encode())
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        if not events or not events[0][0]:  # OpenAI chat streams end with [DONE]
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _usage_chat() -> dict:
    return {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT}


def _chat_tool_calls(reply: Reply, n: int) -> list[dict]:
    return [
        {"id": f"call_{n}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        for i, (name, args) in enumerate(reply.tool_calls)
    ]


def _chat_completion(request: dict, reply: Reply, n: int) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = _chat_tool_calls(reply, n)
    return {
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
        "model": request.get("model", "gpt-test"),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": _usage_chat(),
    }


def _chat_chunks(request: dict, reply: Reply, n: int) -> list[dict]:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request.get("model", "gpt-test")}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    words = reply.text.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        if piece:
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    for i, call in enumerate(_chat_tool_calls(reply, n)):
        chunks.append({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {
            "tool_calls": [{"index": i, **call}]}}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {},
                                        "finish_reason": "tool_calls" if reply.tool_calls else "stop"}]})
    if (request.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage_chat()})
    return chunks


def _response_output(reply: Reply, n: int) -> list[dict]:
    output: list[dict] = []
    if reply.text:
        output.append({"type": "message", "id": f"msg_{n}", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})
    for i, (name, args) in enumerate(reply.tool_calls):
        output.append({"type": "function_call", "id": f"fc_{n}_{i}", "call_id": f"call_{n}_{i}",
                       "name": name, "arguments": json.dumps(args), "status": "completed"})
    return output


def _response(request: dict, reply: Reply, n: int) -> dict:
    return {
        "id": f"resp_{n}", "object": "response", "created_at": int(time.time()), "status": "completed",
        "model": request.get("model", "gpt-test"), "output": _response_output(reply, n),
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


def _response_events(request: dict, reply: Reply, n: int) -> list[tuple[str, dict]]:
    done = _response(request, reply, n)
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    events = [("response.created", {"type": "response.created", "sequence_number": 0, "response": started})]
    seq = 1
    for index, item in enumerate(done["output"]):
        if item["type"] == "message":
            text_value = item["content"][0]["text"]
            events.append(("response.output_text.delta", {
                "type": "response.output_text.delta", "sequence_number": seq, "item_id": item["id"],
                "output_index": index, "content_index": 0, "delta": text_value, "logprobs": []}))
            seq += 1
        events.append(("response.output_item.done", {
            "type": "response.output_item.done", "sequence_number": seq, "output_index": index, "item": item}))
        seq += 1
    events.append(("response.completed", {"type": "response.completed", "sequence_number": seq, "response": done}))
    return events


def _anthropic_content(reply: Reply, n: int) -> list[dict]:
    content: list[dict] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for i, (name, args) in enumerate(reply.tool_calls):
        content.append({"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args})
    return content


def _anthropic_message(request: dict, reply: Reply, n: int) -> dict:
    return {
        "id": f"msg_{n}", "type": "message", "role": "assistant", "model": request.get("model", "claude-test"),
        "content": _anthropic_content(reply, n),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
    }


def _anthropic_events(request: dict, reply: Reply, n: int) -> list[tuple[str, dict]]:
    message = _anthropic_message(request, reply, n)
    started = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": USAGE_IN, "output_tokens": 0}}
    events = [("message_start", {"type": "message_start", "message": started})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {**block, "input": {}}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": USAGE_OUT}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
