"""Against a real Phoenix: consensus annotations land on the trajectory spans, once each."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from ppp_otel import register, trajectory, turn
from ppp_otel.publish.phoenix_annotations import annotate_consensus
from ppp_otel.scoring.consensus import Weights, consensus
from ppp_otel.publish.consensus_span import emit_consensus_span

pytestmark = pytest.mark.needs_phoenix


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def span_annotations(phoenix, project: str, span_ids: list[str]) -> list[dict]:
    query = urllib.parse.urlencode([("span_ids", s) for s in span_ids] + [("limit", 1000)])
    return get_json(f"{phoenix.url}/v1/projects/{project}/span_annotations?{query}")["data"]


def wait_for_spans(phoenix, project: str, name: str, count: int, timeout_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            spans = get_json(f"{phoenix.url}/v1/projects/{project}/spans?name={name}&limit=100")["data"]
        except urllib.error.HTTPError:  # the project appears with its first span
            spans = []
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.3)


@pytest.fixture
def recorded(phoenix, db_path):
    """Two agents' trajectories, traced into SQLite and Phoenix (project of this test only)."""
    project = f"consensus-{uuid.uuid4().hex[:8]}"
    provider = register(db_path, phoenix=phoenix.url, project_name=project, set_global=False)
    with trajectory("spec-p", "alpha", tracer_provider=provider) as traj:
        traj.set_technical_score(0.9)
        with turn("Fix the bug", tracer_provider=provider) as t:
            t.respond("Could you investigate which commit broke it?")
            t.question("Could you investigate which commit broke it?", effort="high")
    with trajectory("spec-p", "beta", tracer_provider=provider) as traj:
        traj.set_technical_score(0.8)
        with turn("Fix the bug", tracer_provider=provider) as t:
            t.respond("Fixed; the test passes now.")
    assert provider.force_flush(30_000)
    yield provider, project
    provider.shutdown()


def test_consensus_annotations_are_seen_in_phoenix_and_a_rerun_updates_them(phoenix, db_path, recorded):
    provider, project = recorded
    result = consensus(db_path, "spec-p", weights=Weights(0.7, 0.3))
    assert result.best_agent == "beta"  # 0.56 + 0.03 beats 0.63 - 0.135

    summary = annotate_consensus(result, phoenix.url, wait_s=30)
    assert summary.failed == []
    assert sorted(summary.annotated) == sorted(t.trajectory_id for t in result.trajectories)

    by_agent = {t.agent_name: t.span_id for t in result.trajectories}
    seen = span_annotations(phoenix, project, list(by_agent.values()))
    values = {(a["span_id"], a["name"]): a["result"] for a in seen}
    assert len(seen) == 6  # three annotations on each of two spans
    assert values[(by_agent["alpha"], "ppp.r_proact")]["score"] == pytest.approx(-0.5)
    assert values[(by_agent["alpha"], "ppp.r_pers")]["score"] == pytest.approx(0.05)
    assert values[(by_agent["beta"], "ppp.final")]["label"] == "best"
    assert values[(by_agent["beta"], "ppp.final")]["score"] == pytest.approx(result.confidence)
    assert values[(by_agent["alpha"], "ppp.final")]["label"] == "not_best"

    # Weights that favour technical: alpha becomes best; annotations change, not multiply.
    rerun = consensus(db_path, "spec-p", weights=Weights(1.0, 0.0001))
    assert rerun.best_agent == "alpha"
    assert annotate_consensus(rerun, phoenix.url, wait_s=30).failed == []
    seen = span_annotations(phoenix, project, list(by_agent.values()))
    values = {(a["span_id"], a["name"]): a["result"] for a in seen}
    assert len(seen) == 6
    assert values[(by_agent["alpha"], "ppp.final")]["label"] == "best"
    assert values[(by_agent["beta"], "ppp.final")]["label"] == "not_best"


def test_the_consensus_span_reaches_phoenix_with_its_attributes(phoenix, db_path, recorded):
    provider, project = recorded
    result = consensus(db_path, "spec-p", weights=Weights(0.7, 0.3))
    _, span_id = emit_consensus_span(result, tracer_provider=provider)
    provider.force_flush(30_000)
    spans = wait_for_spans(phoenix, project, "ppp.consensus", 1)
    (span,) = [s for s in spans if s["context"]["span_id"] == span_id]
    assert span["attributes"]["ppp.consensus.best_agent"] == "beta"


def test_a_span_phoenix_never_got_is_reported_not_raised(phoenix, db_path, tmp_path):
    # Recorded to SQLite only: Phoenix has never seen these spans.
    provider = register(db_path, phoenix=False, set_global=False)
    with trajectory("spec-local", "alpha", tracer_provider=provider):
        with turn("hi", tracer_provider=provider) as t:
            t.respond("hello")
    provider.force_flush()
    provider.shutdown()
    result = consensus(db_path, "spec-local", weights=Weights(0.5, 0.5))
    summary = annotate_consensus(result, phoenix.url, wait_s=0)
    assert summary.annotated == []
    ((trajectory_id, message),) = summary.failed
    assert trajectory_id == result.trajectories[0].trajectory_id
    assert "span not in Phoenix" in message and f"trajectory {trajectory_id}" in message


def test_the_consensus_command_annotates_in_phoenix_and_sends_its_span(phoenix, db_path, recorded,
                                                                      capsys, monkeypatch):
    from ppp_otel.cli import main

    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    provider, project = recorded
    code = main(["consensus", "--db", str(db_path), "--spec", "spec-p", "--phoenix", phoenix.url,
                 "--project", project, "--wait", "30", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert len(data["annotations"]["annotated"]) == 2 and data["annotations"]["failed"] == []
    spans = wait_for_spans(phoenix, project, "ppp.consensus", 1)
    assert any(s["context"]["span_id"] == data["span_id"] for s in spans)


def test_the_consensus_command_sends_its_span_to_the_phoenix_tracing_forwards_to(phoenix, db_path, recorded,
                                                                                capsys, monkeypatch):
    from ppp_otel.cli import main

    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url)
    _, project = recorded
    code = main(["consensus", "--db", str(db_path), "--spec", "spec-p", "--project", project, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert "annotations" not in data  # annotating is --phoenix's
    spans = wait_for_spans(phoenix, project, "ppp.consensus", 1)
    assert [s["context"]["span_id"] for s in spans] == [data["span_id"]]


def _ppp_otel(*args: str, cwd) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PPP_OTEL_", "PHOENIX_", "OTEL_"))}
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ppp-otel"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_consensus_without_project_sends_its_span_to_the_project_its_trajectories_are_in(phoenix, tmp_path):
    project = f"demo-{uuid.uuid4().hex[:8]}"
    db = str(tmp_path / "demo.db")
    recorded = _ppp_otel("demo", "--db", db, "--phoenix", phoenix.url, "--project", project, "--json", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    done = _ppp_otel("consensus", "--db", db, "--spec", "demo-fix-flaky-test", "--phoenix", phoenix.url,
                     "--wait", "30", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["phoenix_project"] == project
    deadline = time.monotonic() + 30
    while data["span_id"] not in [s["context"]["span_id"] for s in wait_for_spans(phoenix, project, "ppp.consensus", 1)]:
        assert time.monotonic() < deadline, f"the ppp.consensus span is not in project {project}"
        time.sleep(0.3)
