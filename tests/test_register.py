"""register(): one call, readable defaults, environment honored."""

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

import ppp_otel
from ppp_otel.capture.processor import TrajectorySpanProcessor


def processors(provider):
    return list(provider._active_span_processor._span_processors)


def record_one(provider):
    with ppp_otel.trajectory("s", "a", tracer_provider=provider):
        with ppp_otel.turn("p", tracer_provider=provider) as t:
            t.respond("r")
    provider.shutdown()


def test_the_default_database_is_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PPP_OTEL_DB", raising=False)
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    provider = ppp_otel.register(set_global=False, env={})
    record_one(provider)
    assert sqlite3.connect(tmp_path / "ppp_trajectories.db").execute("SELECT count(*) FROM trajectory_turns").fetchone() == (1,)


def test_a_relative_database_path_stays_where_it_was_when_the_app_changes_directory(tmp_path, monkeypatch):
    (tmp_path / "started").mkdir()
    (tmp_path / "moved").mkdir()
    monkeypatch.chdir(tmp_path / "started")
    provider = ppp_otel.register("runs.db", set_global=False, env={})
    os.chdir(tmp_path / "moved")
    record_one(provider)
    assert sqlite3.connect(tmp_path / "started" / "runs.db").execute("SELECT count(*) FROM trajectory_turns").fetchone() == (1,)
    assert not (tmp_path / "moved" / "runs.db").exists()


@pytest.mark.parametrize("argument", ["db_path", "config"])
def test_a_database_or_config_that_is_not_a_path_is_a_value_error_naming_the_argument(argument):
    with pytest.raises(ValueError, match=rf"^{argument} must be .*, got 123$"):
        ppp_otel.register(**{argument: 123}, set_global=False, env={})


def test_the_database_path_comes_from_ppp_otel_db(tmp_path):
    db = tmp_path / "from-env.db"
    provider = ppp_otel.register(set_global=False, env={"PPP_OTEL_DB": str(db)})
    record_one(provider)
    assert db.exists()


def test_an_argument_beats_the_environment(tmp_path):
    db = tmp_path / "arg.db"
    provider = ppp_otel.register(db, set_global=False, env={"PPP_OTEL_DB": str(tmp_path / "env.db")})
    record_one(provider)
    assert db.exists() and not (tmp_path / "env.db").exists()


def test_the_config_file_named_by_ppp_otel_config_sets_the_recorder(tmp_path):
    config = tmp_path / "ppp.toml"
    db = tmp_path / "configured.db"
    config.write_text(f'[ppp]\ndb_path = "{db}"\n[ppp.trajectory]\nbuffer_size = 3\nflush_interval_ms = 50\n')
    provider = ppp_otel.register(set_global=False, env={"PPP_OTEL_CONFIG": str(config)})
    (processor,) = [p for p in processors(provider) if isinstance(p, TrajectorySpanProcessor)]
    assert processor.db_path == str(db)
    assert processor.buffer_size == 3
    provider.shutdown()


def test_a_bad_config_file_names_the_key_and_the_file(tmp_path):
    config = tmp_path / "ppp.toml"
    config.write_text("[ppp.weights]\ntechnical = -1\n")
    with pytest.raises(ValueError) as info:
        ppp_otel.register(set_global=False, env={"PPP_OTEL_CONFIG": str(config)})
    assert "ppp.weights.technical" in str(info.value) and str(config) in str(info.value)


def test_recording_disabled_adds_no_recorder_and_creates_no_file(tmp_path):
    config = tmp_path / "ppp.toml"
    db = tmp_path / "never.db"
    config.write_text(f'[ppp]\nenabled = false\ndb_path = "{db}"\n')
    provider = ppp_otel.register(config=config, set_global=False, env={})
    record_one(provider)
    assert not any(isinstance(p, TrajectorySpanProcessor) for p in processors(provider))
    assert not db.exists()


def test_trajectory_and_turn_use_the_registered_provider_by_default(tmp_path):
    db = tmp_path / "r.db"
    provider = ppp_otel.register(db, set_global=False, env={})
    with ppp_otel.trajectory("s", "a"):
        with ppp_otel.turn("p"):
            pass
    provider.shutdown()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM trajectory_turns").fetchone() == (1,)


# The global provider can be set once per process: these run in a process of their own.
_MODEL_CALLS = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
import ppp_otel

def model_call(name):
    # As an instrumentation bound to the global provider makes it, inside the trajectory.
    with trace.get_tracer("an-instrumentation").start_as_current_span(
            "chat", attributes={"openinference.span.kind": "LLM", "input.value": "Fix it",
                                "output.value": "Which file?"}):
        pass
"""


def _run(script: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PPP_OTEL_", "PHOENIX_", "OTEL_"))}
    return subprocess.run([sys.executable, "-c", _MODEL_CALLS + script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def _turns(tmp_path) -> list:
    with closing(sqlite3.connect(tmp_path / "ppp_trajectories.db")) as conn:
        return conn.execute("SELECT t.agent_name, count(u.id) FROM trajectories t LEFT JOIN trajectory_turns u "
                            "ON u.trajectory_id = t.id GROUP BY t.id ORDER BY t.id").fetchall()


def test_register_called_again_records_the_turns_of_instrumentations_bound_to_the_first_provider(tmp_path):
    done = _run("""
for cell in range(2):   # a notebook cell run twice
    provider = ppp_otel.register()
    with ppp_otel.trajectory("s", f"agent-{cell}"):
        model_call("m")
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert _turns(tmp_path) == [("agent-0", 1), ("agent-1", 1)]


def test_register_called_again_with_the_same_database_adds_no_second_recorder(tmp_path):
    done = _run("""
first, second = ppp_otel.register(), ppp_otel.register()
assert first is second
recorders = [p for p in first._active_span_processor._span_processors
             if isinstance(p, ppp_otel.TrajectorySpanProcessor)]
print(len(recorders))
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


def test_register_adds_to_a_global_provider_set_by_the_application(tmp_path):
    done = _run("""
mine = TracerProvider()
trace.set_tracer_provider(mine)
assert ppp_otel.register() is mine
with ppp_otel.trajectory("s", "agent"):
    model_call("m")
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Overriding of current TracerProvider" not in done.stderr
    assert _turns(tmp_path) == [("agent", 1)]


def test_register_after_the_global_provider_was_shut_down_sets_up_a_new_recorder(tmp_path):
    done = _run("""
ppp_otel.register().shutdown()
provider = ppp_otel.register()
with ppp_otel.trajectory("s", "after", tracer_provider=provider):
    with ppp_otel.turn("p", tracer_provider=provider) as t:
        t.respond("r")
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert _turns(tmp_path) == [("after", 1)]


def _span_annotations(phoenix, project: str, span_id: str) -> list[dict]:
    import json
    import urllib.error
    import urllib.request

    url = f"{phoenix.url}/v1/projects/{project}/span_annotations?span_ids={span_id}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())["data"]
    except urllib.error.HTTPError:  # the span is not there yet
        return []


@pytest.mark.needs_phoenix
def test_register_called_again_to_add_phoenix_sends_the_judgments_of_the_first_calls_recorder(tmp_path, phoenix):
    import uuid

    from support import wait_for

    project = f"again-{uuid.uuid4().hex[:10]}"
    done = _run(f"""
ppp_otel.register(project_name={project!r})                       # a cell that records
provider = ppp_otel.register(phoenix={phoenix.url!r}, project_name={project!r})   # a cell that adds Phoenix
with ppp_otel.trajectory("s", "agent"):
    with ppp_otel.turn("The upload test fails one run in ten.") as t:
        t.respond("Could you grep the CI logs for the failing request id?")
provider.shutdown()
""", tmp_path)
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(tmp_path / "ppp_trajectories.db")) as conn:
        (span_id,) = conn.execute("SELECT span_id FROM trajectory_turns").fetchone()
    found = wait_for(lambda: _span_annotations(phoenix, project, span_id) or None, timeout_s=40) or []
    assert {a["name"] for a in found} >= {"ppp.questions", "ppp.violations"}


def test_register_called_again_with_another_phoenix_project_says_where_the_spans_go(tmp_path):
    from support import free_port

    done = _run(f"""
import logging
logging.basicConfig()
ppp_otel.register(project_name="first")
ppp_otel.register(phoenix="http://127.0.0.1:{free_port()}", project_name="second").shutdown()
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "spans go to Phoenix project 'first', not 'second'" in done.stderr
    assert "before the provider is created" in done.stderr


def test_register_names_a_misspelt_ppp_otel_variable_it_ignores(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="ppp_otel.capture.register"):
        ppp_otel.register(tmp_path / "runs.db", set_global=False, env={"PPP_OTEL_DATABSE": "elsewhere.db"}).shutdown()
    assert "PPP_OTEL_DATABSE is not a ppp-otel variable and is ignored" in caplog.text
