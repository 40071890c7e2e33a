"""Judging a stored database again with an LLM judge: its round trips overlap across trajectories."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chat_server import ChatServer
from ppp_otel import trajectory, turn
from ppp_otel.analysis.judgment_stage import rejudge
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier
from ppp_otel.capture.processor import TrajectorySpanProcessor


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_judging_again_asks_for_several_trajectories_at_once_within_the_judges_cap(tmp_path):
    db = str(tmp_path / "runs.db")
    provider = TracerProvider()
    provider.add_span_processor(TrajectorySpanProcessor(db, flush_interval_ms=20))
    for i in range(8):  # one question each: nothing to overlap within a trajectory
        with trajectory(f"spec-{i}", "agent", tracer_provider=provider):
            with turn("The tests fail.", tracer_provider=provider) as t:
                t.respond(f"Which shell were you in for job {i}?")
    provider.shutdown()
    with ChatServer(lambda message: "low", delay_s=0.2) as server:
        classifier = LLMEffortClassifier(server.base_url, "judge", max_concurrency=3)
        summary = rejudge(db, classifier=classifier)
    assert summary.trajectories == 8 and summary.questions == 8
    assert len(server.requests) == 8
    assert 2 <= server.max_in_flight <= 3
