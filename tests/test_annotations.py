"""Phoenix annotations: the payload, and errors that are reported, never raised."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from support import free_port
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.publish.phoenix_annotations import annotate_consensus, annotation_payload, phoenix_base_url
from ppp_otel.scoring.consensus import Weights, consensus
from scoring_data import add_trajectory


@pytest.fixture
def result(db_path):
    conn = schema.connect(db_path)
    add_trajectory(conn, "spec", "alpha", questions=["high"])
    add_trajectory(conn, "spec", "beta")
    judged = consensus(conn, "spec", technical={"alpha": 0.9, "beta": 0.5}, weights=Weights(0.5, 0.5))
    conn.close()
    return judged


class Stub:
    """A local HTTP server answering every POST with one status and body, keeping what it got."""

    def __init__(self, status: int, body: str):
        self.requests: list[tuple[str, dict, dict]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                stub.requests.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    stubs = []

    def make(status, body='{"data": []}'):
        stubs.append(Stub(status, body))
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


def test_each_trajectory_span_gets_r_proact_r_pers_and_final_with_a_best_label(result):
    alpha = next(t for t in result.trajectories if t.agent_name == "alpha")
    data = annotation_payload(result, alpha)["data"]
    assert {d["name"]: d["result"]["score"] for d in data} == {
        "ppp.r_proact": -0.5, "ppp.r_pers": 0.05, "ppp.final": result.agent("alpha").final,
    }
    final = next(d for d in data if d["name"] == "ppp.final")
    assert final["result"]["label"] == ("best" if result.best_agent == "alpha" else "not_best")
    assert {d["span_id"] for d in data} == {alpha.span_id}


def test_the_explanation_of_an_agent_with_one_trajectory_says_one_not_a_mean_over_1(result):
    final = next(d for d in annotation_payload(result, result.trajectories[0])["data"] if d["name"] == "ppp.final")
    assert "of its one trajectory;" in final["result"]["explanation"]
    assert "1 trajectories" not in final["result"]["explanation"]


def test_every_trajectory_phoenix_could_not_be_reached_for_names_its_span(result):
    from support import free_port

    summary = annotate_consensus(result, f"http://127.0.0.1:{free_port()}", wait_s=0)
    assert len(summary.failed) == 2
    assert all(f"span {t.span_id}:" in message for t, (_, message) in zip(result.trajectories, summary.failed))

def test_annotations_carry_a_stable_identifier_so_a_rerun_updates_them(result):
    first = annotation_payload(result, result.trajectories[0])["data"]
    again = annotation_payload(result, result.trajectories[0])["data"]
    assert {d["identifier"] for d in first} == {d["identifier"] for d in again} == {"ppp-otel:spec"}
    assert {d["annotator_kind"] for d in first} == {"CODE"}


def test_the_api_key_is_sent_as_a_bearer_token(result, stub_factory):
    stub = stub_factory(200)
    summary = annotate_consensus(result, stub.url, api_key="s3cret")
    assert summary.ok and len(summary.annotated) == 2
    path, headers, _ = stub.requests[0]
    assert path == "/v1/span_annotations?sync=true"
    assert headers["Authorization"] == "Bearer s3cret"


def test_an_http_error_names_the_trajectory_the_status_and_the_body(result, stub_factory):
    stub = stub_factory(500, '{"detail": "database is on fire"}')
    summary = annotate_consensus(result, stub.url, wait_s=0)
    assert summary.annotated == []
    trajectory_id, message = summary.failed[0]
    assert f"trajectory {trajectory_id}" in message
    assert "HTTP 500" in message and "database is on fire" in message


def test_an_unreachable_phoenix_is_reported_for_every_trajectory(result):
    summary = annotate_consensus(result, f"http://127.0.0.1:{free_port()}", wait_s=0, timeout_s=2)
    assert len(summary.failed) == 2
    assert all("cannot reach" in message for _, message in summary.failed)


def test_the_otlp_endpoint_is_accepted_as_the_phoenix_url():
    assert phoenix_base_url("http://localhost:6006/v1/traces") == "http://localhost:6006"
    assert phoenix_base_url("http://localhost:6006/") == "http://localhost:6006"
