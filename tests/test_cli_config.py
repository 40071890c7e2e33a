"""ppp-otel config: every effective value and where it came from, secrets masked."""

from __future__ import annotations

import json

import pytest

from ppp_otel.cli import main


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for var in ("PPP_OTEL_DB", "PPP_OTEL_CONFIG", "PPP_OTEL_ENABLED", "PHOENIX_API_KEY",
                "PHOENIX_COLLECTOR_ENDPOINT", "OPENAI_API_KEY", "PPP_OTEL_LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "ppp-otel.toml"
    path.write_text(
        '[ppp]\ndb_path = "from-file.db"\n'
        '[ppp.archival]\nretention_days = 7\n'
        '[ppp.phoenix]\napi_key = "phx-secret-1234567890-LAST"\n'
    )
    return path


def settings(capsys, *argv: str) -> dict[str, dict]:
    assert main(["config", "--json", *argv]) == 0
    document = json.loads(capsys.readouterr().out)
    return {row["key"]: row for row in document["settings"]}


def test_every_key_is_listed_with_its_default_source_when_nothing_is_configured(capsys):
    shown = settings(capsys)
    assert shown["ppp.trajectory.buffer_size"] == {
        "key": "ppp.trajectory.buffer_size", "value": 10, "source": "default"}
    assert "ppp.archival.auto_cleanup" in shown and "ppp.weights.technical" in shown


def test_a_value_from_the_file_names_the_file(capsys, config_file):
    shown = settings(capsys, "--config", str(config_file))
    assert shown["ppp.archival.retention_days"]["value"] == 7
    assert shown["ppp.archival.retention_days"]["source"] == f"file:{config_file}"


def test_the_config_file_is_found_through_PPP_OTEL_CONFIG(capsys, config_file, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config_file))
    assert settings(capsys)["ppp.db_path"]["source"] == f"file:{config_file}"


def test_an_environment_variable_overrides_the_file_and_is_named(capsys, config_file, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_ENABLED", "false")
    shown = settings(capsys, "--config", str(config_file))
    assert shown["ppp.enabled"] == {"key": "ppp.enabled", "value": False, "source": "env:PPP_OTEL_ENABLED"}


def test_db_on_the_command_line_is_an_argument(capsys, config_file):
    shown = settings(capsys, "--config", str(config_file), "--db", "given.db")
    assert shown["ppp.db_path"]["value"] == "given.db"
    assert shown["ppp.db_path"]["source"] == "argument"


def test_secrets_are_masked_in_json_and_in_the_table(capsys, config_file):
    assert settings(capsys, "--config", str(config_file))["ppp.phoenix.api_key"]["value"] == "****LAST"
    assert main(["config", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "phx-secret" not in out and "****LAST" in out


def test_the_table_shows_the_file_and_one_row_per_key(capsys, config_file):
    assert main(["config", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert f"config file: {config_file}" in out
    row = next(line for line in out.splitlines() if line.startswith("ppp.archival.retention_days"))
    assert row.split()[1:] == ["7", f"file:{config_file}"]


def test_a_bad_config_file_is_a_one_line_error_naming_key_and_file(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[ppp.weights]\ntechnical = -1\n")
    assert main(["config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ppp.weights.technical" in err and str(bad) in err


def test_a_misspelt_ppp_otel_variable_is_named_as_ignored_with_the_ones_read(capsys, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_DATABASE", "runs.db")
    assert main(["config"]) == 0
    err = capsys.readouterr().err
    assert "PPP_OTEL_DATABASE is not a ppp-otel variable and is ignored" in err and "PPP_OTEL_DB," in err
    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"][0].startswith("PPP_OTEL_DATABASE is not")
