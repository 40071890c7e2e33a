"""Judging a stored database again with an LLM judge: round trips overlap across trajectories, and a
run stopped with Ctrl-C says what it stored."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chat_server import ChatServer
from support import clear_llm_ambient, wait_for
from ppp_otel import trajectory, turn
from ppp_otel.analysis.judgment_stage import rejudge
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier
from ppp_otel.capture.processor import TrajectorySpanProcessor


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    clear_llm_ambient(monkeypatch)


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


def test_judge_stopped_with_ctrl_c_says_how_many_trajectories_it_stored(tmp_path):
    db = str(tmp_path / "runs.db")
    provider = TracerProvider()
    provider.add_span_processor(TrajectorySpanProcessor(db, flush_interval_ms=20))
    for i in range(40):
        with trajectory(f"spec-{i}", "agent", tracer_provider=provider):
            with turn("The tests fail.", tracer_provider=provider) as t:
                t.respond(f"Which shell were you in for job {i}?")
    provider.shutdown()
    with ChatServer(lambda message: "medium", delay_s=0.3) as server:
        env = {**os.environ, "PPP_OTEL_LLM_BASE_URL": server.base_url, "PPP_OTEL_LLM_MODEL": "judge"}
        env.pop("PPP_OTEL_CONFIG", None)
        judging = subprocess.Popen([sys.executable, "-m", "ppp_otel", "judge", "--db", db, "--judge", "llm"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: len(server.requests) > 8)
        judging.send_signal(signal.SIGINT)
        _, err = judging.communicate(timeout=60)
    assert judging.returncode == 130
    stored = re.search(r"interrupted: (\d+) of 40 trajectories judged again and stored", err)
    assert stored, err
    with sqlite3.connect(db) as conn:
        [(by_llm,)] = conn.execute("SELECT count(*) FROM trajectory_questions WHERE judge = 'llm/judge'").fetchall()
    assert by_llm == int(stored.group(1)) and 0 < by_llm < 40
