"""The ppp.consensus span: the result as attributes, links to the judged trajectory spans."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ppp_otel import register, trajectory, turn

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.scoring.consensus import Weights, consensus, consensus_history
from ppp_otel.publish.consensus_span import emit_consensus_span
from scoring_data import add_trajectory


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def judged(db_path):
    conn = schema.connect(db_path)
    add_trajectory(conn, "spec", "alpha", questions=["high"])
    add_trajectory(conn, "spec", "beta")
    result = consensus(conn, "spec", technical={"alpha": 0.9, "beta": 0.5, "ghost": 0.2},
                       weights=Weights(0.5, 0.5), agents=["alpha", "beta", "ghost"])
    yield conn, result
    conn.close()


def test_the_span_carries_best_agent_confidence_and_each_agents_scores(judged, exported):
    conn, result = judged
    provider, exporter = exported
    emit_consensus_span(result, tracer_provider=provider)
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert span.name == "ppp.consensus"
    assert attrs["ppp.consensus.spec_id"] == "spec"
    assert attrs["ppp.consensus.best_agent"] == result.best_agent
    assert attrs["ppp.consensus.confidence"] == result.confidence
    assert attrs["ppp.consensus.agent.alpha.final"] == result.agent("alpha").final
    assert attrs["ppp.consensus.agent.alpha.r_proact"] == -0.5
    assert attrs["ppp.consensus.agent.ghost.technical_only"] is True
    assert "ppp.consensus.agent.ghost.r_proact" not in attrs
    assert json.loads(attrs["output.value"])["best_agent"] == result.best_agent


def test_the_span_links_to_every_judged_trajectory_span(judged, exported):
    conn, result = judged
    provider, exporter = exported
    emit_consensus_span(result, tracer_provider=provider)
    (span,) = exporter.get_finished_spans()
    linked = {(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
              for link in span.links}
    assert linked == {(t.trace_id, t.span_id) for t in result.trajectories}
    assert len(linked) == 2


def test_the_span_is_a_root_and_its_ids_are_kept_with_the_stored_run(judged, exported):
    conn, result = judged
    provider, exporter = exported
    trace_id, span_id = emit_consensus_span(result, tracer_provider=provider, conn=conn)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    stored = consensus_history(conn, "spec")[0]
    assert (stored.trace_id, stored.span_id) == (trace_id, span_id)


def test_a_consensus_span_through_the_recording_provider_is_not_recorded_as_a_trajectory(tmp_path):
    path = tmp_path / "recorded.db"
    provider = register(path, phoenix=False, set_global=False)
    with trajectory("spec", "alpha", tracer_provider=provider):
        with turn("hello", tracer_provider=provider) as t:
            t.respond("hi")
    provider.force_flush()
    result = consensus(path, "spec", weights=Weights(0.5, 0.5))
    emit_consensus_span(result, tracer_provider=provider)
    provider.force_flush()
    provider.shutdown()
    conn = schema.connect(path)
    assert conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == 1
    conn.close()


def test_the_consensus_command_sends_no_span_when_it_has_nowhere_to_send_one(judged, db_path, capsys,
                                                                             monkeypatch):
    from ppp_otel.cli import main

    for name in ("PHOENIX_COLLECTOR_ENDPOINT", "PPP_OTEL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["consensus", "--db", str(db_path), "--spec", "spec", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["trace_id"], data["span_id"]) == (None, None)
    [stored] = consensus_history(db_path, "spec", limit=1)
    assert stored.trace_id is None


def test_the_spans_input_names_the_spec_stage_and_run_it_judged(db_path, exported):
    provider, exporter = exported
    conn = schema.connect(db_path)
    add_trajectory(conn, "spec", "alpha", run_id="week1-r2", stage="implement")
    result = consensus(conn, "spec", stage="implement", run_id="week1-r2")
    conn.close()
    emit_consensus_span(result, tracer_provider=provider)
    (span,) = exporter.get_finished_spans()
    assert span.attributes["input.value"] == "spec spec, stage implement, run week1-r2"
