"""Finding the Phoenix project of spans: a server that cannot be asked gives no project, never an error."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ppp_otel.publish.phoenix_projects import project_of_spans


def _serving(status: int, body: bytes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("status, body", [(200, b"<html>not the REST API</html>"), (500, b"oops")],
                         ids=["not-json", "server-error"])
def test_a_server_that_cannot_be_asked_gives_no_project(status, body):
    server = _serving(status, body)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert project_of_spans(url, ["a1b2c3d4e5f60718"], timeout_s=2) is None
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_phoenix_gives_no_project():
    from support import free_port

    assert project_of_spans(f"http://127.0.0.1:{free_port()}", ["a1b2c3d4e5f60718"], timeout_s=2) is None
