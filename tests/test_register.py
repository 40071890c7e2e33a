"""register(): one call, readable defaults, environment honored."""

import sqlite3

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
