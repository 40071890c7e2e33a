"""A chat-completions endpoint on loopback whose answers a test decides (the OpenAI protocol)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    """A chat-completions endpoint whose answers the test decides.

    `reply(question)` returns the assistant's content, or a tuple
    (status, raw body) or (status, raw body, headers) to send instead of a
    well-formed completion.
    """

    def __init__(self, reply, delay_s: float = 0.0):
        self.reply = reply
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    answer = server.reply(body["messages"][-1]["content"])
                finally:
                    # Counted out before the answer leaves: once the client has read it, it
                    # may send its next request, which must not find this one still counted.
                    # So the count is of requests the client has outstanding, what a cap limits.
                    with server._lock:
                        server.in_flight -= 1
                headers = {}
                if isinstance(answer, tuple):
                    status, raw, *more = answer
                    headers = more[0] if more else {}
                else:
                    status = 200
                    raw = json.dumps(
                        {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
                    ).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as the timeout test intends

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll keeps shutdown, and so each test, quick.
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
