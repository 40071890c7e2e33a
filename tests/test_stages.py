"""A trajectory's stage, and consensus judged per (spec, stage, run).

The stage travels every path a trajectory takes: ``trajectory(stage=...)``
in process, OTLP into ``ppp-otel ingest``, the ``ppp-otel export`` replay,
ATIF export and import; consensus judges one stage of one run when asked,
and says so when it averaged several.
"""

from __future__ import annotations

import json
import sqlite3
import warnings

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import ppp_otel
from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.interchange.atif import export_atif, import_paths
from ppp_otel.cli import main
from ppp_otel.scoring.consensus import (
    MixedConsensusWarning,
    consensus,
    consensus_history,
    run_spec_consensus_weighted,
)
from ppp_otel.ingest.server import IngestServer
from ppp_otel.publish.otlp_replay import export_trajectories, otlp_exporter
from ppp_otel.scoring.rewards import score_trajectories
import backends
from backends import run_sql
from scoring_data import add_trajectory

RUNS = ("r1", "r2")
STAGES = ("plan", "implement")
AGENTS = ("alpha", "beta", "gamma")
#: The agent that asks nothing (the others ask a high-effort question) in each (stage, run).
BEST = {("plan", "r1"): "alpha", ("implement", "r1"): "beta",
        ("plan", "r2"): "gamma", ("implement", "r2"): "alpha"}


@pytest.fixture
def staged(store_url):
    """Two runs x two stages x three agents; one clean agent per (stage, run); on each backend."""
    conn = backends.connect(store_url)
    for run in RUNS:
        for stage in STAGES:
            for agent in AGENTS:
                questions = [] if BEST[stage, run] == agent else ["high"]
                add_trajectory(conn, "spec", agent, run_id=run, stage=stage, questions=questions)
    conn.close()
    return store_url


def stored_stages(db) -> list[tuple]:
    return [tuple(row) for row in run_sql(str(db), "SELECT spec_id, agent_name, run_id, stage FROM trajectories ORDER BY id")]


# --- consensus per (spec, stage, run) ------------------------------------------------

@pytest.mark.parametrize("stage,run", sorted(BEST))
def test_consensus_of_one_stage_and_run_picks_that_stages_best_agent(staged, stage, run):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedConsensusWarning)
        result = consensus(staged, "spec", stage=stage, run_id=run, weights=(0.7, 0.3))
    assert result.best_agent == BEST[stage, run]
    assert (result.stage, result.run_id) == (stage, run)
    assert (result.stages, result.runs) == ([stage], [run])
    assert not result.mixed and result.warning is None
    assert result.scope == f"spec spec, stage {stage}, run {run}"
    assert {t.stage for t in result.trajectories} == {stage}
    assert {t.run_id for t in result.trajectories} == {run}


def test_consensus_over_every_run_and_stage_warns_that_it_mixed_them(staged):
    with pytest.warns(MixedConsensusWarning, match="2 runs .*2 stages"):
        result = consensus(staged, "spec", weights=(0.7, 0.3))
    assert result.mixed
    assert result.runs == ["r1", "r2"] and result.stages == ["implement", "plan"]
    assert "give a run and a stage" in result.warning
    # As before stages existed: each agent's mean over all its trajectories of the spec.
    assert all(len(a.trajectory_ids) == 4 for a in result.agents)
    assert result.agent("alpha").r_proact == pytest.approx((0.05 * 2 - 0.5 * 2) / 4)
    assert result.best_agent == "alpha"


def test_consensus_of_one_stage_over_two_runs_warns_about_the_runs_only(staged):
    with pytest.warns(MixedConsensusWarning) as caught:
        result = consensus(staged, "spec", stage="plan", weights=(0.7, 0.3))
    message = str(caught[0].message)
    assert "2 runs (r1, r2)" in message and "stages" not in message
    assert result.stages == ["plan"] and result.scope == "spec spec, stage plan, 2 runs"


def test_the_seed_entry_point_judges_one_stage_of_one_run(staged):
    result = run_spec_consensus_weighted("spec", "implement", {"alpha": 1.0}, (0.5, 0.5),
                                         run_id="r1", db=staged)
    assert result.best_agent == "alpha"  # its technical score outweighs beta's clean run
    assert result.agent("alpha").technical == 1.0
    assert (result.stage, result.run_id) == ("implement", "r1")


def test_the_stage_and_run_judged_are_kept_in_the_history_and_filter_it(staged):
    consensus(staged, "spec", stage="plan", run_id="r1", weights=(0.7, 0.3))
    with pytest.warns(MixedConsensusWarning):
        consensus(staged, "spec", weights=(0.7, 0.3))
    everything = consensus_history(staged, "spec")
    assert [(r.stage, r.run_id) for r in everything] == [(None, None), ("plan", "r1")]
    assert everything[0].runs == ["r1", "r2"] and everything[0].mixed
    plan = consensus_history(staged, "spec", stage="plan")
    assert [(r.stage, r.run_id, r.best_agent) for r in plan] == [("plan", "r1", "alpha")]
    assert consensus_history(staged, "spec", run_id="r2") == []


def test_trajectories_without_a_stage_are_judged_as_before(db_path):
    conn = schema.connect(db_path)
    add_trajectory(conn, "spec", "alpha", run_id="r1")
    add_trajectory(conn, "spec", "beta", run_id="r1", questions=["medium"])
    conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedConsensusWarning)
        result = consensus(db_path, "spec", weights=(0.7, 0.3))
    assert result.best_agent == "alpha"
    assert result.stages == [None] and result.runs == ["r1"] and not result.mixed


# --- the CLI -----------------------------------------------------------------------

def test_cli_consensus_says_which_stage_and_run_it_judged(staged, capsys):
    assert main(["consensus", "--db", str(staged), "--spec", "spec", "--stage", "plan",
                 "--run", "r2"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("spec spec, stage plan, run r2: best agent gamma")
    assert "warning" not in err


def test_cli_consensus_without_stage_and_run_warns_in_its_output_and_json(staged, capsys):
    assert main(["consensus", "--db", str(staged), "--spec", "spec"]) == 0
    out, _ = capsys.readouterr()
    assert ("note: consensus on spec spec averaged each agent over 2 runs (r1, r2) and "
            "2 stages (implement, plan); give a run and a stage to judge one") in out
    assert main(["consensus", "--db", str(staged), "--spec", "spec", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert "ppp-otel: warning: consensus on spec spec averaged" in err
    assert data["judged"] == {"scope": "spec spec, 2 stages, 2 runs",
                              "stages": ["implement", "plan"], "runs": ["r1", "r2"], "mixed": True}
    assert data["stage"] is None and data["run_id"] is None
    assert len(data["warnings"]) == 1


def test_cli_consensus_json_of_one_stage_has_no_warning(staged, capsys):
    assert main(["consensus", "--db", str(staged), "--spec", "spec", "--stage", "implement",
                 "--run", "r1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best_agent"] == "beta" and data["warnings"] == []
    assert (data["stage"], data["run_id"]) == ("implement", "r1")


def test_cli_consensus_history_filters_by_stage_and_shows_it(staged, capsys):
    main(["consensus", "--db", str(staged), "--spec", "spec", "--stage", "plan", "--run", "r1"])
    main(["consensus", "--db", str(staged), "--spec", "spec"])
    capsys.readouterr()
    assert main(["consensus-history", "--db", str(staged), "--spec", "spec", "--stage", "plan",
                 "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["stage"], r["run_id"], r["best_agent"]) for r in runs] == [("plan", "r1", "alpha")]
    assert main(["consensus-history", "--db", str(staged), "--spec", "spec"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STAGE", "RUN"]  # what a run judged comes first
    assert "mixed: implement, plan" in lines[1] and lines[2].split()[1:3] == ["plan", "r1"]


def test_cli_score_and_trajectories_take_stage_and_run(staged, capsys):
    assert main(["score", "--db", str(staged), "--spec", "spec", "--stage", "plan", "--run", "r2",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert [(s["agent_name"], s["stage"], s["run_id"]) for s in scores] == [
        (a, "plan", "r2") for a in AGENTS]
    assert main(["trajectories", "--db", str(staged), "--stage", "implement", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 6 and {t["stage"] for t in listed} == {"implement"}


def test_cli_export_atif_takes_stage_and_run(staged, tmp_path, capsys):
    out = tmp_path / "atif"
    assert main(["export-atif", "--db", str(staged), "--out", str(out), "--stage", "plan",
                 "--run", "r1", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert len(files) == 3
    stages = {json.loads(open(f).read())["extra"]["ppp"]["stage"] for f in files}
    assert stages == {"plan"}


# --- the stage on every path --------------------------------------------------------

def test_a_trajectory_recorded_in_process_keeps_its_stage(db_path):
    provider = TracerProvider()
    provider.add_span_processor(ppp_otel.TrajectorySpanProcessor(db_path))
    with ppp_otel.trajectory("spec", "alpha", "r1", stage="plan", tracer_provider=provider) as traj:
        assert traj.stage == "plan"
        with ppp_otel.turn("Plan the change", tracer_provider=provider) as t:
            t.respond("Here is the plan.")
    with ppp_otel.trajectory("spec", "alpha", "r1", tracer_provider=provider):
        pass
    provider.shutdown()
    assert stored_stages(db_path) == [("spec", "alpha", "r1", "plan"), ("spec", "alpha", "r1", None)]


def test_an_empty_stage_is_refused_at_the_call(db_path):
    with pytest.raises(ValueError, match="stage"):
        with ppp_otel.trajectory("spec", "alpha", stage=" ", tracer_provider=TracerProvider()):
            pass


def test_the_stage_arrives_over_otlp_through_ingest(tmp_path):
    db = tmp_path / "ingested.db"
    server = IngestServer(db, port=0).start()
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces")))
        with ppp_otel.trajectory("spec", "beta", "r2", stage="implement", tracer_provider=provider):
            with ppp_otel.turn("Implement it", tracer_provider=provider) as t:
                t.respond("Implemented.")
        provider.shutdown()
    finally:
        server.stop()
    assert stored_stages(db) == [("spec", "beta", "r2", "implement")]


def test_the_export_replay_carries_the_stage(staged, tmp_path):
    db = tmp_path / "replayed.db"
    server = IngestServer(db, port=0).start()
    exporter = otlp_exporter(server.url)
    try:
        summary = export_trajectories(staged, exporter, spec_id="spec")
    finally:
        exporter.shutdown()
        server.stop()
    assert summary.ok and summary.trajectories == 12
    assert sorted(stored_stages(db)) == sorted(stored_stages(staged))


def test_atif_export_then_import_keeps_the_stage(staged, tmp_path):
    export_atif(staged, tmp_path / "atif", run_id="r2")
    db = tmp_path / "imported.db"
    summary = import_paths([tmp_path / "atif"], db)
    assert summary.ok and summary.trajectories == 6
    assert sorted(score.stage for score in score_trajectories(db)) == ["implement"] * 3 + ["plan"] * 3
    assert sorted(stored_stages(db)) == sorted(s for s in stored_stages(staged) if s[2] == "r2")


def test_a_version_4_database_is_migrated_with_no_stage_on_its_rows(db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    for migration in schema.MIGRATIONS[:4]:
        migration(conn)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO trajectories (spec_id, agent_name, run_id) VALUES ('s', 'a', 'r')")
    conn.close()
    conn = schema.connect(db_path)
    assert schema.schema_version(conn) == schema.latest_version()
    assert conn.execute("SELECT spec_id, run_id, stage FROM trajectories").fetchall() == [("s", "r", None)]
    conn.close()


async def test_the_async_scores_and_store_filter_by_stage_and_run_as_the_sync_ones(staged):
    from ppp_otel.scoring import arewards as ascoring
    from ppp_otel.storage.aio import AsyncTrajectoryStore

    scores = await ascoring.score_spec(staged, "spec", stage="plan", run_id="r1")
    assert scores == score_trajectories(staged, spec_id="spec", stage="plan", run_id="r1")
    async with AsyncTrajectoryStore(staged) as store:
        listed = await store.list_trajectories(spec_id="spec", stage="implement", run_id="r2")
    assert [(t.agent_name, t.stage, t.run_id) for t in listed] == [(a, "implement", "r2") for a in AGENTS]


def test_the_mixed_warning_names_a_few_runs_and_counts_the_rest(db_path):
    conn = schema.connect(db_path)
    for i in range(8):
        add_trajectory(conn, "spec", "alpha", run_id=f"n{i}")
    conn.close()
    with pytest.warns(MixedConsensusWarning, match=r"8 runs \(n0, n1, n2, n3, n4 and 3 more\)"):
        consensus(db_path, "spec", weights=(0.7, 0.3))


def test_the_export_replay_can_send_one_stage_of_one_run(staged, tmp_path, capsys):
    db = tmp_path / "replayed.db"
    server = IngestServer(db, port=0).start()
    try:
        assert main(["export", "--db", str(staged), "--to", server.url, "--stage", "plan",
                     "--run", "r2", "--json"]) == 0
    finally:
        server.stop()
    assert json.loads(capsys.readouterr().out)["trajectories"] == 3
    assert sorted(stored_stages(db)) == [("spec", a, "r2", "plan") for a in AGENTS]


def test_import_gives_documents_without_a_stage_the_one_asked_for(tmp_path, capsys):
    from pathlib import Path

    document = Path(__file__).parent / "data" / "atif" / "full.trajectory.json"
    db = tmp_path / "imported.db"
    assert main(["import", str(document), "--db", str(db), "--spec", "spec", "--stage", "validate",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 1
    assert {row[3] for row in stored_stages(db)} == {"validate"}  # subagents too
