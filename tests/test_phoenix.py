"""Forwarding to Phoenix: where spans go, what Phoenix shows, and that SQLite never waits for it.

The settings tests are plain functions of (argument, config, environment).
The ``phoenix`` tests run against a real ``phoenix serve`` and read back
through its REST API, each in a project of its own.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import urllib.error
import urllib.request
import uuid

import pytest

from support import wait_for
import ppp_otel
from ppp_otel.config.settings import PhoenixConfig
from ppp_otel.publish.otlp_replay import export_trajectories, otlp_exporter
from ppp_otel.capture.register import PROJECT_NAME_ATTRIBUTE, phoenix_exporter_settings

OFF = PhoenixConfig()
ON = PhoenixConfig(enabled=True)


# --- where spans go -------------------------------------------------------------

def test_forwarding_is_off_by_default():
    assert phoenix_exporter_settings(None, OFF, {}) is None


def test_false_keeps_it_off_even_with_a_collector_endpoint_set():
    assert phoenix_exporter_settings(False, ON, {"PHOENIX_COLLECTOR_ENDPOINT": "http://p:6006"}) is None


def test_phoenix_collector_endpoint_alone_turns_forwarding_on():
    protocol, endpoint, _ = phoenix_exporter_settings(None, OFF, {"PHOENIX_COLLECTOR_ENDPOINT": "http://p:6006"})
    assert (protocol, endpoint) == ("http/protobuf", "http://p:6006/v1/traces")


def test_true_goes_to_the_configured_endpoint_which_defaults_to_local_phoenix():
    assert phoenix_exporter_settings(True, OFF, {})[1] == "http://localhost:6006/v1/traces"


def test_the_traces_own_otlp_protocol_variable_beats_the_general_one():
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    assert phoenix_exporter_settings(True, OFF, env)[0] == "grpc"


def test_an_otlp_protocol_ppp_otel_cannot_send_is_ignored_with_a_warning_naming_the_variable(caplog):
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    with caplog.at_level("WARNING", logger="ppp_otel.capture.register"):
        assert phoenix_exporter_settings(True, OFF, env)[0] == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is ignored" in caplog.text


def test_an_endpoint_that_already_names_the_traces_path_is_kept():
    assert phoenix_exporter_settings("http://p:6006/v1/traces/", OFF, {})[1] == "http://p:6006/v1/traces"


def test_an_endpoint_argument_beats_the_environment():
    env = {"PHOENIX_COLLECTOR_ENDPOINT": "http://env:6006"}
    assert phoenix_exporter_settings("http://arg:6006", OFF, env)[1] == "http://arg:6006/v1/traces"


def test_phoenix_collector_endpoint_beats_the_generic_otlp_endpoint():
    env = {"PHOENIX_COLLECTOR_ENDPOINT": "http://phoenix:6006", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    assert phoenix_exporter_settings(True, OFF, env)[1] == "http://phoenix:6006/v1/traces"


def test_the_generic_otlp_endpoint_is_a_base_url():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert phoenix_exporter_settings(True, OFF, env)[1] == "http://collector:4318/v1/traces"


def test_the_traces_otlp_endpoint_is_used_as_given():
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    assert phoenix_exporter_settings(True, OFF, env)[1] == "http://collector:4318/custom"


def test_the_config_endpoint_is_the_last_resort():
    assert phoenix_exporter_settings(None, PhoenixConfig(enabled=True, endpoint="http://cfg:6006"), {})[1] == (
        "http://cfg:6006/v1/traces"
    )


def test_the_phoenix_api_key_becomes_a_bearer_token_and_beats_the_config_key():
    settings = PhoenixConfig(enabled=True, api_key="from-config")
    headers = phoenix_exporter_settings(None, settings, {"PHOENIX_API_KEY": "from-env"})[2]
    assert headers["authorization"] == "Bearer from-env"


def test_otlp_headers_are_parsed_and_url_decoded():
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-team=agents%20lab, api_key=abc"}
    assert phoenix_exporter_settings(True, OFF, env)[2] == {"x-team": "agents lab", "api_key": "abc"}


def test_grpc_to_the_default_phoenix_goes_to_its_grpc_port_without_a_path():
    protocol, endpoint, _ = phoenix_exporter_settings(True, OFF, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (protocol, endpoint) == ("grpc", "http://localhost:4317")


def _project_of(provider) -> str:
    return provider.resource.attributes[PROJECT_NAME_ATTRIBUTE]


def test_the_project_name_comes_from_phoenix_project_name(db_path):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={"PHOENIX_PROJECT_NAME": "agents"})
    assert _project_of(provider) == "agents"
    provider.shutdown()


def test_a_project_name_argument_beats_phoenix_project_name(db_path):
    provider = ppp_otel.register(
        db_path, phoenix=False, set_global=False, project_name="mine", env={"PHOENIX_PROJECT_NAME": "agents"}
    )
    assert _project_of(provider) == "mine"
    provider.shutdown()


def test_phoenix_project_name_applies_to_a_config_given_as_an_object(db_path):
    from ppp_otel.config.settings import Config

    provider = ppp_otel.register(db_path, config=Config(), phoenix=False, set_global=False,
                                 env={"PHOENIX_PROJECT_NAME": "agents"})
    assert _project_of(provider) == "agents"
    provider.shutdown()


# --- Phoenix unreachable -----------------------------------------------------------

def stored_prompts(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT prompt FROM trajectory_turns ORDER BY turn_number")]




def record_two_turns(provider) -> None:
    with ppp_otel.trajectory("spec-1", "agent-a", tracer_provider=provider):
        for prompt in ("first", "second"):
            with ppp_otel.turn(prompt, tracer_provider=provider) as t:
                t.respond("ok")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_phoenix_down_does_not_stop_turns_landing_in_sqlite(db_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    provider = ppp_otel.register(db_path, phoenix=f"http://127.0.0.1:{closed_port()}", set_global=False, env={})
    record_two_turns(provider)
    assert wait_for(lambda: stored_prompts(db_path)) == ["first", "second"]
    provider.shutdown()


def test_phoenix_that_accepts_but_never_answers_does_not_stop_turns_landing_in_sqlite(db_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    with socket.socket() as silent:  # listens, never accepts: requests hang
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        provider = ppp_otel.register(
            db_path, phoenix=f"http://127.0.0.1:{silent.getsockname()[1]}", set_global=False, env={}
        )
        record_two_turns(provider)
        assert wait_for(lambda: stored_prompts(db_path)) == ["first", "second"]
        provider.shutdown()


# --- a real Phoenix -------------------------------------------------------------------

def phoenix_spans(phoenix, project: str, expected: int) -> list[dict]:
    def fetch():
        try:
            with urllib.request.urlopen(f"{phoenix.url}/v1/projects/{project}/spans?limit=100", timeout=5) as r:
                spans = json.load(r)["data"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the project appears with its first span
                return None
            raise
        return spans if len(spans) >= expected else None

    return wait_for(fetch, timeout_s=30) or []


def unique_project() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.mark.needs_phoenix
def test_register_shows_the_trajectory_in_phoenix_as_an_agent_session_with_llm_turns(db_path, phoenix):
    project = unique_project()
    provider = ppp_otel.register(db_path, phoenix=phoenix.url, project_name=project, set_global=False, env={})
    with ppp_otel.trajectory("spec-1", "agent-a", session_id="session-42", tracer_provider=provider):
        with ppp_otel.turn("Fix the failing test", tracer_provider=provider) as t:
            t.respond("Which runner do you use?", token_count=9)
    provider.shutdown()

    spans = {s["name"]: s for s in phoenix_spans(phoenix, project, 2)}
    trajectory, turn = spans["agent-a (ppp.trajectory)"], spans["ppp.turn"]
    assert trajectory["span_kind"] == "AGENT"
    assert trajectory["attributes"]["session.id"] == "session-42"
    assert turn["span_kind"] == "LLM"
    assert turn["parent_id"] == trajectory["context"]["span_id"]
    assert turn["attributes"]["input.value"] == "Fix the failing test"
    assert turn["attributes"]["output.value"] == "Which runner do you use?"
    assert turn["attributes"]["llm.token_count.total"] == 9
    assert stored_prompts(db_path) == ["Fix the failing test"]


@pytest.mark.needs_phoenix
def test_an_offline_run_exported_twice_shows_once_in_phoenix_with_its_original_ids(db_path, phoenix):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    record_two_turns(provider)
    provider.shutdown()
    with sqlite3.connect(db_path) as conn:
        recorded = {row[0] for row in conn.execute("SELECT span_id FROM trajectories UNION SELECT span_id FROM trajectory_turns")}

    project = unique_project()
    for _ in range(2):
        summary = export_trajectories(db_path, otlp_exporter(phoenix.url), project_name=project)
        assert summary.ok
    spans = phoenix_spans(phoenix, project, 3)
    time.sleep(1)  # give a second copy, if Phoenix made one, the time to show
    spans = phoenix_spans(phoenix, project, 3)
    assert sorted(s["context"]["span_id"] for s in spans) == sorted(recorded)
    kinds = sorted(s["span_kind"] for s in spans)
    assert kinds == ["AGENT", "LLM", "LLM"]
    trajectory = next(s for s in spans if s["span_kind"] == "AGENT")
    assert trajectory["attributes"]["session.id"] == f"{trajectory['attributes']['ppp.agent_name']}-{trajectory['context']['trace_id']}"
