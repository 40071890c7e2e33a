"""``ppp-otel export``: trajectories from SQLite replayed as OTLP spans with the same conventions.

The receiving end here is ``ppp-otel ingest`` on a second database: a replay
that round-trips through it carries everything the conventions say a span carries.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
import subprocess
import sys
import os

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel import conventions as c
from ppp_otel.ingest.server import IngestServer
from ppp_otel.publish.otlp_replay import export_trajectories, otlp_exporter


def record(db_path, spec="spec-1", agent="agent-a"):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    with ppp_otel.trajectory(spec, agent, run_id="run-1", preferences=["no_commas"], tracer_provider=provider) as traj:
        with ppp_otel.turn("Fix the test", tracer_provider=provider) as t:
            t.respond("Which runner do you prefer, pytest or unittest?", token_count=12)
            t.question("Which runner do you prefer, pytest or unittest?", "low")
            t.violation("no_commas", "no commas", "pytest, or unittest", "minor")
        with ppp_otel.turn("pytest", tracer_provider=provider) as t:
            t.respond("Fixed.", token_count=3)
        traj.set_technical_score(0.9)
    provider.shutdown()


def rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            """SELECT t.trace_id, t.span_id, t.spec_id, t.agent_name, t.run_id, t.preferences, t.technical_score,
                      u.trace_id, u.span_id, u.turn_number, u.prompt, u.response, u.token_count,
                      u.latency_ms, u.timestamp,
                      (SELECT group_concat(question_text || '/' || effort_level) FROM trajectory_questions WHERE turn_id = u.id),
                      (SELECT group_concat(preference_name || '/' || severity) FROM trajectory_violations WHERE turn_id = u.id)
               FROM trajectory_turns u JOIN trajectories t ON t.id = u.trajectory_id ORDER BY u.turn_number"""
        ).fetchall()


def test_a_replay_into_ingest_reproduces_the_trajectory_with_its_ids_turns_questions_and_violations(tmp_path):
    source, copy = tmp_path / "source.db", tmp_path / "copy.db"
    record(source)
    with IngestServer(copy, port=0) as receiver:
        summary = export_trajectories(source, otlp_exporter(receiver.url), endpoint=receiver.url)
    assert (summary.trajectories, summary.spans, summary.ok) == (1, 3, True)
    original, replayed = rows(source), rows(copy)
    # Latency goes through integer nanoseconds: equal to the microsecond.
    assert [r[:13] + r[14:] for r in replayed] == [r[:13] + r[14:] for r in original]
    assert [round(r[13], 3) for r in replayed] == [round(r[13], 3) for r in original]


def test_replaying_twice_leaves_one_copy(tmp_path):
    source, copy = tmp_path / "source.db", tmp_path / "copy.db"
    record(source)
    with IngestServer(copy, port=0) as receiver:
        export_trajectories(source, otlp_exporter(receiver.url))
        export_trajectories(source, otlp_exporter(receiver.url))
    assert len(rows(copy)) == 2


def test_the_trajectory_span_carries_a_session_id_and_the_agent_kind(tmp_path):
    source = tmp_path / "source.db"
    record(source)
    memory = InMemorySpanExporter()
    export_trajectories(source, memory, project_name="my-project")
    spans = {s.name: s for s in memory.get_finished_spans()}
    (trajectory,) = [s for s in spans.values() if s.parent is None]
    assert trajectory.name == c.trajectory_span_name(trajectory.attributes[c.AGENT_NAME],
                                                     trajectory.attributes.get(c.STAGE))
    assert trajectory.attributes[c.SPAN_KIND] == c.KIND_AGENT
    assert trajectory.attributes[c.SESSION_ID] == c.default_session_id(
        trajectory.attributes[c.AGENT_NAME], format(trajectory.context.trace_id, "032x"))
    assert trajectory.resource.attributes["openinference.project.name"] == "my-project"
    assert spans[c.TURN_SPAN].attributes[c.SPAN_KIND] == c.KIND_LLM


def test_rows_written_without_span_ids_get_the_same_derived_ids_on_every_replay(tmp_path):
    db = tmp_path / "plain.db"
    ppp_otel.register(db, phoenix=False, set_global=False, env={}).shutdown()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO trajectories (spec_id, agent_name, created_at) VALUES ('s', 'a', '2025-01-01 10:00:00')")
        conn.execute("INSERT INTO trajectory_turns (trajectory_id, turn_number, prompt, response, timestamp) "
                     "VALUES (1, 1, 'p', 'r', '2025-01-01 10:00:01')")
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    export_trajectories(db, first)
    export_trajectories(db, second)
    ids = lambda m: sorted((s.context.trace_id, s.context.span_id) for s in m.get_finished_spans())
    assert ids(first) == ids(second) and len(ids(first)) == 2


def test_only_the_chosen_spec_is_exported(tmp_path):
    source = tmp_path / "source.db"
    record(source, spec="spec-1")
    record(source, spec="spec-2")
    memory = InMemorySpanExporter()
    summary = export_trajectories(source, memory, spec_id="spec-2")
    assert summary.trajectories == 1
    assert {s.attributes.get(c.SPEC_ID) for s in memory.get_finished_spans()} == {"spec-2", None}


def test_an_unknown_trajectory_id_is_an_error_before_anything_is_sent(tmp_path):
    source = tmp_path / "source.db"
    record(source)
    memory = InMemorySpanExporter()
    with pytest.raises(ValueError, match="no trajectory with id 99"):
        export_trajectories(source, memory, trajectory_ids=[1, 99])


def test_an_unknown_trajectory_id_sends_nothing_even_when_earlier_batches_are_full(tmp_path):
    source = tmp_path / "source.db"
    record(source)
    memory = InMemorySpanExporter()
    with pytest.raises(ValueError, match="no trajectory with id 99"):
        export_trajectories(source, memory, trajectory_ids=[1, 99], batch_size=1)
    assert memory.get_finished_spans() == ()


def ppp_otel_command(*args: str) -> subprocess.CompletedProcess:
    executable = os.path.join(os.path.dirname(sys.executable), "ppp-otel")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=60)


def test_the_export_command_prints_a_json_summary(tmp_path):
    source, copy = tmp_path / "source.db", tmp_path / "copy.db"
    record(source)
    with IngestServer(copy, port=0) as receiver:
        done = ppp_otel_command("export", "--db", str(source), "--to", receiver.url, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["trajectories"], summary["spans"], summary["ok"]) == (1, 3, True)
    assert summary["endpoint"] == receiver.url + "/v1/traces"
    assert len(rows(copy)) == 2


def test_the_export_command_fails_with_one_line_naming_the_status_when_the_endpoint_refuses(tmp_path):
    source = tmp_path / "source.db"
    record(source)
    with IngestServer(tmp_path / "copy.db", port=0, token="secret") as receiver:
        done = ppp_otel_command("export", "--db", str(source), "--to", receiver.url)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ppp-otel: error: 3 spans were not accepted by {receiver.url}/v1/traces (trajectories 1): 401 Unauthorized"
    ]


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """An OTLP endpoint that is always briefly unavailable, and says to retry at once."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_sdk_retry_lines_stay_off_the_terminal_and_the_one_error_line_says_why(tmp_path):
    source = tmp_path / "source.db"
    record(source)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        done = ppp_otel_command("export", "--db", str(source), "--to", url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ppp-otel: error: 3 spans were not accepted by {url}/v1/traces (trajectories 1): Service Unavailable"
    ]


@pytest.mark.parametrize("url, problem", [
    ("notaurl", "it does not start with http:// or https://"),
    ("localhost:6006", "it does not start with http:// or https://"),
    ("ftp://localhost", "it does not start with http:// or https://"),
    ("http://", "it has no host"),
    ("http://localhost:port", "its port is not a number from 0 to 65535"),
])
def test_an_export_to_a_malformed_url_is_a_one_line_usage_error(tmp_path, capsys, url, problem):
    from ppp_otel.cli import main

    source = tmp_path / "source.db"
    record(source)
    code = main(["export", "--db", str(source), "--to", url])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.splitlines() == [
        f"ppp-otel: error: --to {url!r} is not an OTLP/HTTP URL: {problem} (e.g. http://localhost:6006 for Phoenix)"
    ]


def test_a_postgresql_store_replays_the_same_spans_as_the_sqlite_file_it_was_copied_from(tmp_path, postgres_url):
    from ppp_otel.storage.copy import copy_store

    source, replayed = tmp_path / "source.db", tmp_path / "replayed.db"
    record(source)
    copy_store(str(source), postgres_url)
    with IngestServer(replayed, port=0) as receiver:
        summary = export_trajectories(postgres_url, otlp_exporter(receiver.url), endpoint=receiver.url)
    assert (summary.trajectories, summary.spans, summary.ok) == (1, 3, True)
    assert [r[:13] + r[14:] for r in rows(replayed)] == [r[:13] + r[14:] for r in rows(source)]


def test_atif_documents_from_a_postgresql_store_equal_those_from_sqlite(tmp_path, postgres_url):
    from ppp_otel.interchange.atif.exporter import export_atif
    from ppp_otel.storage.copy import copy_store

    source = tmp_path / "source.db"
    record(source)
    copy_store(str(source), postgres_url)
    export_atif(str(source), tmp_path / "from-sqlite")
    export_atif(postgres_url, tmp_path / "from-postgresql")
    documents = {d.name: d.read_text() for d in (tmp_path / "from-sqlite").iterdir()}
    assert documents and documents == {d.name: d.read_text() for d in (tmp_path / "from-postgresql").iterdir()}
