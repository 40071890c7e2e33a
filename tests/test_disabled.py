"""[ppp] enabled = false: recording is off cleanly and scoring falls back to technical-only."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ppp_otel
from ppp_otel import TrajectorySpanProcessor, register
from ppp_otel.config.settings import Config


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch, tmp_path):
    monkeypatch.delenv("PPP_OTEL_DB", raising=False)
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def record_one_turn(provider) -> None:
    with ppp_otel.trajectory("spec-off", "agent", tracer_provider=provider):
        with ppp_otel.turn("hello", tracer_provider=provider) as t:
            t.respond("Which file do you prefer?")
            t.question("Which file do you prefer?", "low")


def recorders(provider: TracerProvider) -> list:
    return [p for p in provider._active_span_processor._span_processors
            if isinstance(p, TrajectorySpanProcessor)]


def test_register_with_recording_disabled_creates_no_database_file(db_path, tmp_path):
    provider = register(db_path, config=Config(enabled=False), phoenix=False, set_global=False, env={})
    record_one_turn(provider)
    provider.shutdown()
    assert recorders(provider) == []
    assert not db_path.exists()
    assert list(tmp_path.glob("*.db*")) == []


def test_PPP_OTEL_ENABLED_false_turns_recording_off(db_path):
    provider = register(db_path, phoenix=False, set_global=False, env={"PPP_OTEL_ENABLED": "false"})
    record_one_turn(provider)
    provider.shutdown()
    assert recorders(provider) == [] and not db_path.exists()


def test_spans_still_reach_other_exporters_when_recording_is_off(db_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    register(db_path, config=Config(enabled=False), phoenix=False, set_global=False,
             tracer_provider=provider, env={})
    record_one_turn(provider)
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["agent (ppp.trajectory)", "ppp.turn"]
    assert not db_path.exists()


def test_with_nothing_recorded_consensus_is_technical_only():
    consensus = pytest.importorskip("ppp_otel.scoring.consensus")
    result = consensus.judge("spec-off", {}, {"a": 0.9, "b": 0.5}, (0.7, 0.3))
    assert result.best_agent == "a"
    assert all(score.technical_only for score in result.agents)
    assert [score.final for score in result.agents] == pytest.approx([0.63, 0.35])


def test_consensus_over_a_database_never_created_falls_back_to_technical_only(db_path):
    consensus = pytest.importorskip("ppp_otel.scoring.consensus")
    off = Config(enabled=False)
    register(db_path, config=off, phoenix=False, set_global=False, env={}).shutdown()
    result = consensus.consensus(db_path, "spec-off", technical={"a": 0.9}, weights=(0.7, 0.3), config=off)
    assert result.best_agent == "a" and result.agents[0].technical_only
