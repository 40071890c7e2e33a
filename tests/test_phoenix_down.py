"""Phoenix down, slow or missing costs what is sent to it, one log line, and about a second at exit.

No Phoenix here: a closed port (refused at once) and a socket that listens
but never answers (requests hang until their timeout).
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import time

import pytest

from support import wait_for
import ppp_otel
from ppp_otel.publish.phoenix_exporter import PhoenixSpanExporter
from ppp_otel.publish.phoenix_sender import SPAN_ANNOTATIONS, PhoenixAnnotationSender


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_url():
    with socket.socket() as silent:  # listens, never accepts: requests hang
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def record(provider, n: int = 3) -> None:
    for i in range(n):
        with ppp_otel.trajectory("spec", f"agent-{i}", tracer_provider=provider):
            with ppp_otel.turn("Fix it", tracer_provider=provider) as t:
                t.respond("Which runner do you use?")


def stored_turns(db) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM trajectory_turns").fetchone()[0]
    except sqlite3.Error:
        return 0


def _problems_recording_with_phoenix_at(phoenix: str, db_path, caplog) -> list:
    """The warnings and errors logged while a few turns are recorded with ``phoenix`` as the endpoint."""
    provider = ppp_otel.register(db_path, phoenix=phoenix, set_global=False, env={})
    record(provider)
    provider.force_flush()
    provider.shutdown()
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unreachable_phoenix_is_one_log_line_naming_phoenix_and_its_url(db_path, caplog):
    url = f"http://127.0.0.1:{closed_port()}"
    caplog.set_level(logging.INFO)
    problems = _problems_recording_with_phoenix_at(url, db_path, caplog)
    assert len(problems) == 1, [r.getMessage() for r in problems]
    message = problems[0].getMessage()
    assert f"Phoenix at {url} is unreachable" in message and "Recording to the database goes on" in message
    assert not [r for r in caplog.records if r.name.startswith(("urllib3", "opentelemetry.exporter"))]
    assert stored_turns(db_path) == 3


@pytest.mark.parametrize("endpoint", ["localhost:6006", "notaurl"])
def test_a_phoenix_endpoint_without_its_scheme_is_a_value_error_naming_the_argument(db_path, endpoint):
    # As --phoenix is on the command line: every send would fail, reported as Phoenix unreachable.
    with pytest.raises(ValueError, match=rf"^phoenix must be True, False or an http:// or https:// URL, got '{endpoint}'$"):
        ppp_otel.register(db_path, phoenix=endpoint, set_global=False, env={})


def test_shutdown_does_not_wait_long_for_a_phoenix_that_never_answers(db_path, silent_url):
    provider = ppp_otel.register(db_path, phoenix=silent_url, set_global=False, env={})
    record(provider)
    assert wait_for(lambda: stored_turns(db_path) == 3)
    started = time.monotonic()
    provider.shutdown()
    # About a second by default; the bound is loose for a busy machine, and far
    # below the 10 s export timeout that shutdown used to wait out.
    assert time.monotonic() - started < 6
    assert stored_turns(db_path) == 3


def test_an_exporter_shutting_down_gives_up_on_a_phoenix_that_never_answers(silent_url):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    exporter = PhoenixSpanExporter(f"{silent_url}/v1/traces", timeout_s=60, shutdown_timeout_s=0.2)
    exporter.begin_shutdown()
    assert exporter.export(memory.get_finished_spans()).name == "FAILURE"
    assert exporter.failed_spans == 1 and exporter.exported_spans == 0


def test_a_database_in_a_missing_directory_is_refused_at_register(tmp_path):
    path = tmp_path / "no-such-dir" / "runs.db"
    with pytest.raises(FileNotFoundError, match="no-such-dir does not exist"):
        ppp_otel.register(path, phoenix=False, set_global=False, env={})


def test_the_annotation_queue_is_bounded_and_counts_what_it_drops():
    sender = PhoenixAnnotationSender(f"http://127.0.0.1:{closed_port()}", max_queue_size=3, retry_for_s=0)
    taken = sender.submit(SPAN_ANNOTATIONS, [{"span_id": f"{i:016x}", "name": "n"} for i in range(5)])
    sender.shutdown()
    assert taken <= 3 and sender.dropped == 5 - taken


def test_annotations_phoenix_cannot_take_are_retried_then_counted_as_failed():
    sender = PhoenixAnnotationSender(f"http://127.0.0.1:{closed_port()}", retry_for_s=0.5)
    sender.submit(SPAN_ANNOTATIONS, [{"span_id": "00000000000000aa", "name": "n"}])
    assert wait_for(lambda: sender.failed == 1, timeout_s=20)
    sender.shutdown()
    assert sender.retries >= 1 and sender.sent == 0
    assert sender.stats["phoenix_down"] is True


def test_a_flush_does_not_wait_out_the_retries_while_phoenix_is_down():
    sender = PhoenixAnnotationSender(f"http://127.0.0.1:{closed_port()}", retry_for_s=3600)
    sender.submit(SPAN_ANNOTATIONS, [{"span_id": "00000000000000aa", "name": "n"}])
    assert wait_for(lambda: sender.stats["phoenix_down"])
    assert sender.force_flush(3_600_000) is False  # returns, saying not everything was sent
    sender.shutdown()
    assert sender.sent == 0


def test_a_bad_annotation_kind_is_a_value_error():
    sender = PhoenixAnnotationSender("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="span_annotations or session_annotations"):
        sender.submit("trace_annotations", [])


def test_a_phoenix_that_is_only_slow_is_not_taken_for_down(silent_url, caplog):
    caplog.set_level(logging.WARNING)
    sender = PhoenixAnnotationSender(silent_url, timeout_s=0.2, retry_for_s=3600)
    sender.submit(SPAN_ANNOTATIONS, [{"span_id": "00000000000000aa", "name": "n"}])
    assert wait_for(lambda: sender.retries >= 1)
    assert sender.stats["phoenix_down"] is False  # a flush keeps waiting for a slow Phoenix
    sender.shutdown()
    (line,) = [r.getMessage() for r in caplog.records if "Phoenix at" in r.getMessage()]
    assert f"Phoenix at {silent_url} is not answering in time" in line


def test_a_phoenix_answering_again_is_a_warning_naming_the_spans_it_missed_and_export(caplog):
    import http.server
    import threading

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in ("a", "b"):
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    exporter = PhoenixSpanExporter(f"{url}/v1/traces", timeout_s=5)
    caplog.set_level(logging.INFO)
    assert exporter.export(memory.get_finished_spans()).name == "FAILURE"  # Phoenix down: 2 spans lost

    class Taken(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Taken)  # Phoenix back on its port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert exporter.export(memory.get_finished_spans()[:1]).name == "SUCCESS"
    finally:
        server.shutdown()
        server.server_close()
    again = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(again) == 1 and again[0].levelno == logging.WARNING
    message = again[0].getMessage()
    assert f"Phoenix at {url} answers again; 2 spans sent while it did not answer were dropped" in message
    assert f"ppp-otel export --db DB --to {url}" in message
