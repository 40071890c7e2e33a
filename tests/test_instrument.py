"""trajectory() and turn(): plain spans, and mistakes caught at the call."""

import sqlite3

import pytest
from opentelemetry.sdk.trace import TracerProvider

import ppp_otel
from ppp_otel import trajectory, turn
from ppp_otel.logs import LogLimiter


@pytest.fixture
def provider():
    p = TracerProvider()
    yield p
    p.shutdown()


@pytest.mark.parametrize("spec_id", ["", "   ", None, 3])
def test_an_empty_or_non_text_spec_id_is_a_value_error_naming_it(provider, spec_id):
    with pytest.raises(ValueError, match="spec_id"):
        with trajectory(spec_id, "agent", tracer_provider=provider):
            pass


def test_an_empty_agent_name_is_a_value_error_naming_it(provider):
    with pytest.raises(ValueError, match="agent_name"):
        with trajectory("s", "", tracer_provider=provider):
            pass


def test_an_unknown_preference_is_a_value_error_naming_it(provider):
    with pytest.raises(ValueError, match="no_such_preference"):
        with trajectory("s", "a", preferences=["no_such_preference"], tracer_provider=provider):
            pass


def test_an_unknown_effort_is_a_value_error_naming_the_levels(provider):
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            with pytest.raises(ValueError, match="effort.*low, medium, high"):
                t.question("Which one?", "extreme")


def test_an_unknown_severity_is_a_value_error_naming_the_levels(provider):
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            with pytest.raises(ValueError, match="severity.*minor, major, critical"):
                t.violation("no_commas", "none", "3", "fatal")


def test_a_negative_token_count_is_a_value_error(provider):
    with trajectory("s", "a", tracer_provider=provider):
        with turn("p", tracer_provider=provider) as t:
            with pytest.raises(ValueError, match="token_count"):
                t.respond("ok", token_count=-1)


def test_a_non_positive_turn_number_is_a_value_error(provider):
    with pytest.raises(ValueError, match="number"):
        with turn("p", number=0, tracer_provider=provider):
            pass


def test_an_exception_in_agent_code_reaches_the_caller_and_the_turn_is_still_recorded(tmp_path):
    db = tmp_path / "t.db"
    provider = TracerProvider()
    provider.add_span_processor(ppp_otel.TrajectorySpanProcessor(db))
    with pytest.raises(KeyError):
        with trajectory("s", "a", tracer_provider=provider):
            with turn("p", tracer_provider=provider):
                raise KeyError("agent bug")
    provider.shutdown()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM trajectory_turns").fetchone() == (1,)


def test_the_technical_score_set_during_the_trajectory_is_recorded(tmp_path):
    db = tmp_path / "t.db"
    provider = TracerProvider()
    provider.add_span_processor(ppp_otel.TrajectorySpanProcessor(db))
    with trajectory("s", "a", tracer_provider=provider) as traj:
        traj.set_technical_score(0.75)
    provider.shutdown()
    assert sqlite3.connect(db).execute("SELECT technical_score FROM trajectories").fetchone() == (0.75,)


def test_a_turn_outside_any_trajectory_is_warned_about(provider, caplog, monkeypatch):
    from ppp_otel.capture import api as instrument

    monkeypatch.setattr(instrument, "_warned", LogLimiter.once(instrument.logger))
    with turn("stray", tracer_provider=provider):
        pass
    assert "outside any trajectory" in caplog.text


@pytest.fixture
def no_provider(monkeypatch):
    """No tracer provider anywhere: neither register()'s nor a global one; the warning not yet given."""
    from ppp_otel.capture import api as instrument

    monkeypatch.setattr(instrument, "_warned", LogLimiter.once(instrument.logger))
    monkeypatch.setattr(instrument, "_provider", None)
    monkeypatch.setattr(instrument.trace, "get_tracer_provider", lambda: instrument.trace.NoOpTracerProvider())


def test_a_trajectory_with_no_tracer_provider_set_up_is_warned_about(caplog, no_provider):
    with trajectory("s", "a"):
        pass
    assert "call ppp_otel.register() first" in caplog.text


def test_the_no_provider_warning_says_how_to_record_through_a_provider_of_your_own(caplog, no_provider):
    with trajectory("s", "a"):
        pass
    assert "set_tracer_provider" in caplog.text and "tracer_provider=" in caplog.text


def test_turns_opened_through_the_trajectory_handle_go_to_the_trajectorys_provider(tmp_path, monkeypatch):
    from ppp_otel.capture import api as instrument

    # No register(): the provider given to trajectory() is the only one there is.
    monkeypatch.setattr(instrument, "_provider", None)
    db = tmp_path / "t.db"
    provider = TracerProvider()
    provider.add_span_processor(ppp_otel.TrajectorySpanProcessor(db))
    with trajectory("s", "a", tracer_provider=provider) as traj:
        with traj.turn("first") as t:
            t.respond("done")
        with traj.turn("second"):
            pass
    provider.shutdown()
    assert sqlite3.connect(db).execute(
        "SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number"
    ).fetchall() == [(1, "first"), (2, "second")]
