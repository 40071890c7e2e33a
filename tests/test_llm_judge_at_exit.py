"""An app that records with an LLM judge and simply ends: the judgments made at exit are the LLM's."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from chat_server import ChatServer

# Records one turn asking two questions and ends without shutting anything down:
# the provider's shutdown at exit judges the turn.
APP = """
import sys
from opentelemetry.sdk.trace import TracerProvider
import ppp_otel
from ppp_otel import TrajectorySpanProcessor
from ppp_otel.analysis.llm_classifier import LLMEffortClassifier

db, base_url = sys.argv[1:3]
provider = TracerProvider()
provider.add_span_processor(TrajectorySpanProcessor(db, classifier=LLMEffortClassifier(base_url, "exit-judge")))
with ppp_otel.trajectory("spec", "agent", tracer_provider=provider):
    with ppp_otel.turn("The tests fail.", tracer_provider=provider) as t:
        t.respond("Which shell were you in? Should I push the fix?")
"""


def test_questions_judged_while_the_app_exits_are_graded_by_the_llm(tmp_path):
    db = tmp_path / "runs.db"
    with ChatServer(lambda question: "medium") as server:
        done = subprocess.run([sys.executable, "-c", APP, str(db), server.base_url],
                              capture_output=True, text=True, timeout=60)
        asked = len(server.requests)
    assert done.returncode == 0, done.stderr
    assert "the rules graded the questions" not in done.stderr
    assert asked == 2
    with sqlite3.connect(db) as conn:
        graded = conn.execute("SELECT effort_level, judge FROM trajectory_questions ORDER BY id").fetchall()
    assert graded == [("medium", "llm/exit-judge"), ("medium", "llm/exit-judge")]
