"""Configuration: defaults < file < environment < arguments, validated on load."""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path

import pytest

from ppp_otel.config.settings import (
    Config,
    ConfigError,
    PhoenixConfig,
    TrajectoryConfig,
    WeightsConfig,
    display_value,
    load_config,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ppp-otel.toml"


@pytest.fixture
def toml(tmp_path):
    """Write a config file and return its path as a string."""

    def write(text: str, name: str = "ppp.toml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


# --- defaults ---------------------------------------------------------------


def test_defaults_when_nothing_is_given():
    config = load_config(env={})
    assert config == Config()
    assert config.enabled is True
    assert config.db_path == "ppp_trajectories.db"
    assert config.trajectory.buffer_size == 10
    assert config.trajectory.flush_interval_ms == 500
    assert config.trajectory.max_queue_size == 20_000
    assert config.trajectory.on_full == "block"
    assert config.trajectory.block_timeout_ms == 50.0
    assert config.trajectory.enable_wal is True
    assert config.trajectory.busy_timeout_ms == 5000
    assert config.question_classifier.method == "heuristic"
    assert config.question_classifier.base_url == ""
    assert config.question_classifier.model == ""
    assert config.question_classifier.api_key == ""
    assert config.question_classifier.timeout_s == 10.0
    assert config.question_classifier.max_concurrency == 4
    assert config.question_classifier.cache_size == 10_000
    assert (config.weights.technical, config.weights.interaction) == (0.7, 0.3)
    assert config.archival.enabled is False
    assert config.archival.retention_days == 90
    assert config.archival.auto_cleanup is False
    assert config.archival.archive_path == ""
    assert config.archival.cleanup_interval_s == 3600
    assert config.phoenix.enabled is False
    assert config.phoenix.endpoint == "http://localhost:6006"
    assert config.phoenix.project_name == "default"
    assert config.phoenix.api_key == ""
    assert config.phoenix.protocol == "http/protobuf"


def test_every_default_comes_from_default():
    assert {source for _, _, source in load_config(env={}).items()} == {"default"}


def test_config_is_frozen():
    config = load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.db_path = "other.db"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.weights.technical = 1.0  # type: ignore[misc]


def test_no_file_is_read_implicitly_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "ppp-otel.toml").write_text("[ppp]\ndb_path = 'implicit.db'\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).db_path == "ppp_trajectories.db"


# --- the file -----------------------------------------------------------------


def test_file_values_replace_defaults(toml):
    path = toml(
        """
        [ppp]
        enabled = false
        db_path = "runs.db"
        [ppp.trajectory]
        buffer_size = 50
        on_full = "drop"
        block_timeout_ms = 0.5
        [ppp.weights]
        technical = 0.5
        interaction = 0.5
        [ppp.phoenix]
        protocol = "grpc"
        """.replace("        ", "")
    )
    config = load_config(path, env={})
    assert config.enabled is False
    assert config.db_path == "runs.db"
    assert config.trajectory.buffer_size == 50
    assert config.trajectory.on_full == "drop"
    assert config.trajectory.block_timeout_ms == 0.5
    assert config.weights == WeightsConfig(technical=0.5, interaction=0.5)
    assert config.phoenix.protocol == "grpc"
    assert config.file == path


def test_keys_missing_from_the_file_keep_their_defaults(toml):
    config = load_config(toml("[ppp.trajectory]\nbuffer_size = 3\n"), env={})
    assert config.trajectory.flush_interval_ms == 500
    assert config.source("trajectory.flush_interval_ms") == "default"


def test_an_empty_file_gives_the_defaults(toml):
    assert load_config(toml(""), env={}) == Config()


def test_path_may_be_a_pathlib_path(toml):
    path = Path(toml("[ppp]\ndb_path = 'p.db'\n"))
    assert load_config(path, env={}).db_path == "p.db"


def test_an_integer_is_accepted_where_a_number_is_expected(toml):
    config = load_config(toml("[ppp.weights]\ntechnical = 1\ninteraction = 0\n"), env={})
    assert config.weights.technical == 1.0
    assert isinstance(config.weights.technical, float)


def test_ppp_otel_config_names_the_file(toml):
    path = toml("[ppp]\ndb_path = 'from-env-file.db'\n")
    config = load_config(env={"PPP_OTEL_CONFIG": path})
    assert config.db_path == "from-env-file.db"
    assert config.source("db_path") == f"file:{path}"


def test_ppp_otel_config_is_read_from_os_environ_by_default(toml, monkeypatch):
    monkeypatch.setenv("PPP_OTEL_CONFIG", toml("[ppp]\ndb_path = 'os-environ.db'\n"))
    monkeypatch.delenv("PPP_OTEL_DB", raising=False)
    assert load_config().db_path == "os-environ.db"


def test_the_path_argument_beats_ppp_otel_config(toml):
    chosen = toml("[ppp]\ndb_path = 'chosen.db'\n", name="chosen.toml")
    ignored = toml("[ppp]\ndb_path = 'ignored.db'\n", name="ignored.toml")
    assert load_config(chosen, env={"PPP_OTEL_CONFIG": ignored}).db_path == "chosen.db"


def test_the_example_file_names_every_key_with_its_default():
    config = load_config(EXAMPLE, env={})
    assert config == Config()
    assert {source for _, _, source in config.items()} == {f"file:{EXAMPLE}"}


# --- environment --------------------------------------------------------------


def test_environment_beats_the_file(toml):
    path = toml("[ppp]\ndb_path = 'file.db'\nenabled = true\n")
    config = load_config(path, env={"PPP_OTEL_DB": "env.db", "PPP_OTEL_ENABLED": "false"})
    assert config.db_path == "env.db"
    assert config.enabled is False
    assert config.source("db_path") == "env:PPP_OTEL_DB"
    assert config.source("enabled") == "env:PPP_OTEL_ENABLED"


@pytest.mark.parametrize("text, expected", [("true", True), ("1", True), ("TRUE", True),
                                            ("false", False), ("0", False), ("False", False)])
def test_ppp_otel_enabled_reads_true_false_1_0(text, expected):
    assert load_config(env={"PPP_OTEL_ENABLED": text}).enabled is expected


def test_os_environ_is_read_when_env_is_not_given(monkeypatch):
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    monkeypatch.setenv("PPP_OTEL_DB", "os.db")
    assert load_config().db_path == "os.db"


def test_an_empty_variable_counts_as_unset(toml):
    path = toml("[ppp]\ndb_path = 'file.db'\n")
    config = load_config(path, env={"PPP_OTEL_DB": "", "PHOENIX_COLLECTOR_ENDPOINT": ""})
    assert config.db_path == "file.db"
    assert config.phoenix.enabled is False


def test_phoenix_collector_endpoint_sets_the_endpoint_and_enables_export(toml):
    path = toml("[ppp.phoenix]\nenabled = false\n")
    config = load_config(path, env={"PHOENIX_COLLECTOR_ENDPOINT": "http://phoenix:6006"})
    assert config.phoenix.endpoint == "http://phoenix:6006"
    assert config.phoenix.enabled is True
    assert config.source("phoenix.enabled") == "env:PHOENIX_COLLECTOR_ENDPOINT"


def test_phoenix_project_name_and_api_key_come_from_the_environment():
    config = load_config(env={"PHOENIX_PROJECT_NAME": "agents", "PHOENIX_API_KEY": "px-key"})
    assert config.phoenix.project_name == "agents"
    assert config.phoenix.api_key == "px-key"
    assert config.phoenix.enabled is False


def test_llm_settings_come_from_ppp_otel_llm_variables():
    config = load_config(
        env={
            "PPP_OTEL_LLM_BASE_URL": "http://llm:8000/v1",
            "PPP_OTEL_LLM_MODEL": "small-model",
            "PPP_OTEL_LLM_API_KEY": "ppp-key",
        }
    )
    classifier = config.question_classifier
    assert (classifier.base_url, classifier.model, classifier.api_key) == (
        "http://llm:8000/v1",
        "small-model",
        "ppp-key",
    )


def test_ppp_otel_llm_variables_beat_the_openai_ones():
    config = load_config(
        env={
            "PPP_OTEL_LLM_BASE_URL": "http://ppp",
            "OPENAI_BASE_URL": "http://openai",
            "PPP_OTEL_LLM_API_KEY": "ppp-key",
            "OPENAI_API_KEY": "openai-key",
        }
    )
    assert config.question_classifier.base_url == "http://ppp"
    assert config.question_classifier.api_key == "ppp-key"


def test_openai_variables_fill_llm_settings_left_empty(toml):
    path = toml('[ppp.question_classifier]\napi_key = ""\n')
    config = load_config(path, env={"OPENAI_BASE_URL": "http://openai", "OPENAI_API_KEY": "sk"})
    assert config.question_classifier.base_url == "http://openai"
    assert config.question_classifier.api_key == "sk"
    assert config.source("question_classifier.api_key") == "env:OPENAI_API_KEY"


def test_openai_variables_do_not_replace_a_value_the_file_chose(toml):
    path = toml('[ppp.question_classifier]\nbase_url = "http://local-llm/v1"\n')
    config = load_config(path, env={"OPENAI_BASE_URL": "http://openai"})
    assert config.question_classifier.base_url == "http://local-llm/v1"


# --- arguments ------------------------------------------------------------------


def test_overrides_beat_the_environment(toml):
    path = toml("[ppp.trajectory]\nbuffer_size = 20\n")
    config = load_config(
        path,
        env={"PPP_OTEL_DB": "env.db"},
        overrides={"db_path": "arg.db", "trajectory.buffer_size": 30},
    )
    assert config.db_path == "arg.db"
    assert config.trajectory.buffer_size == 30
    assert config.source("db_path") == "argument"
    assert config.source("trajectory.buffer_size") == "argument"


def test_override_keys_may_carry_the_ppp_prefix():
    config = load_config(env={}, overrides={"ppp.weights.technical": 1.0, "enabled": False})
    assert config.weights.technical == 1.0
    assert config.enabled is False


def test_an_override_of_none_means_not_given():
    config = load_config(env={"PPP_OTEL_DB": "env.db"}, overrides={"db_path": None})
    assert config.db_path == "env.db"
    assert config.source("db_path") == "env:PPP_OTEL_DB"


def test_a_path_override_may_be_a_pathlib_path(tmp_path):
    config = load_config(env={}, overrides={"db_path": tmp_path / "x.db"})
    assert config.db_path == str(tmp_path / "x.db")


def test_an_override_can_turn_off_what_the_environment_turned_on():
    config = load_config(
        env={"PHOENIX_COLLECTOR_ENDPOINT": "http://phoenix:6006"},
        overrides={"phoenix.enabled": False},
    )
    assert config.phoenix.enabled is False


def test_an_unknown_override_key_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown key trajectory\.bufer_size \(in argument\)"):
        load_config(env={}, overrides={"trajectory.bufer_size": 5})


def test_an_override_naming_a_section_is_an_error():
    with pytest.raises(ConfigError, match="unknown key weights"):
        load_config(env={}, overrides={"weights": {"technical": 1.0}})


# --- validation: the error names the key and the source ----------------------


@pytest.mark.parametrize(
    "section, line, message",
    [
        ("ppp.trajectory", "buffer_size = 0", "ppp.trajectory.buffer_size must be >= 1, got 0"),
        ("ppp.trajectory", "flush_interval_ms = 0", "ppp.trajectory.flush_interval_ms must be > 0"),
        ("ppp.trajectory", "max_queue_size = 0", "ppp.trajectory.max_queue_size must be >= 1"),
        ("ppp.trajectory", "block_timeout_ms = -1", "ppp.trajectory.block_timeout_ms must be > 0"),
        ("ppp.trajectory", "busy_timeout_ms = 0", "ppp.trajectory.busy_timeout_ms must be > 0"),
        ("ppp.question_classifier", "timeout_s = 0.0", "ppp.question_classifier.timeout_s must be > 0"),
        ("ppp.question_classifier", "max_concurrency = 0", "ppp.question_classifier.max_concurrency must be >= 1"),
        ("ppp.question_classifier", "cache_size = -1", "ppp.question_classifier.cache_size must be >= 0"),
        ("ppp.weights", "technical = -0.1", "ppp.weights.technical must be >= 0, got -0.1"),
        ("ppp.weights", "interaction = -1", "ppp.weights.interaction must be >= 0"),
        ("ppp.archival", "retention_days = -1", "ppp.archival.retention_days must be >= 0"),
        ("ppp.archival", "cleanup_interval_s = 0", "ppp.archival.cleanup_interval_s must be > 0"),
    ],
)
def test_an_out_of_range_value_names_key_and_file(toml, section, line, message):
    path = toml(f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith(f"(in {path})")


@pytest.mark.parametrize(
    "section, line, key",
    [
        ("ppp.trajectory", 'on_full = "wait"', "ppp.trajectory.on_full"),
        ("ppp.question_classifier", 'method = "magic"', "ppp.question_classifier.method"),
        ("ppp.phoenix", 'protocol = "http/json"', "ppp.phoenix.protocol"),
    ],
)
def test_a_value_outside_its_choices_names_key_choices_and_file(toml, section, line, key):
    path = toml(f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError, match=rf"^{key} must be one of '.*'.*\(in {re.escape(str(path))}\)$"):
        load_config(path, env={})


def test_an_error_message_reads_as_in_the_contract(toml):
    path = toml("[ppp.weights]\ntechnical = -0.1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"ppp.weights.technical must be >= 0, got -0.1 (in {path})"
    assert caught.value.key == "ppp.weights.technical"
    assert caught.value.source == f"file:{path}"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_both_weights_zero_is_an_error_naming_the_weights_and_the_file(toml):
    path = toml("[ppp.weights]\ntechnical = 0\ninteraction = 0\n")
    with pytest.raises(ConfigError, match=rf"ppp\.weights\.technical and ppp\.weights\.interaction.*\(in {re.escape(str(path))}\)"):
        load_config(path, env={})


def test_both_weights_zero_from_two_places_names_both(toml):
    path = toml("[ppp.weights]\ntechnical = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, overrides={"weights.interaction": 0})
    assert str(caught.value).endswith(f"(in {path}, argument)")


def test_one_weight_zero_is_allowed():
    assert load_config(env={}, overrides={"weights.interaction": 0}).weights.interaction == 0.0


@pytest.mark.parametrize(
    "section, line, key, expected",
    [
        ("ppp.trajectory", 'buffer_size = "10"', "ppp.trajectory.buffer_size", "an integer"),
        ("ppp.trajectory", "buffer_size = 10.5", "ppp.trajectory.buffer_size", "an integer"),
        ("ppp.weights", 'technical = "0.7"', "ppp.weights.technical", "a number"),
        ("ppp.trajectory", 'enable_wal = "yes"', "ppp.trajectory.enable_wal", "true or false"),
        ("ppp.trajectory", "enable_wal = 1", "ppp.trajectory.enable_wal", "true or false"),
        ("ppp.phoenix", "endpoint = 6006", "ppp.phoenix.endpoint", "a string"),
        ("ppp.question_classifier", "model = []", "ppp.question_classifier.model", "a string"),
    ],
)
def test_a_wrong_type_names_key_expected_type_and_file(toml, section, line, key, expected):
    path = toml(f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError, match=rf"^{key} must be {expected}, got .*\(in {re.escape(str(path))}\)$"):
        load_config(path, env={})


def test_a_bool_is_not_an_integer(toml):
    path = toml("[ppp.trajectory]\nbuffer_size = true\n")
    with pytest.raises(ConfigError, match=r"buffer_size must be an integer, got True \(bool\)"):
        load_config(path, env={})


def test_a_bool_is_not_a_number(toml):
    path = toml("[ppp.weights]\ntechnical = true\n")
    with pytest.raises(ConfigError, match=r"technical must be a number, got True \(bool\)"):
        load_config(path, env={})


def test_an_infinite_number_is_an_error(toml):
    path = toml("[ppp.question_classifier]\ntimeout_s = inf\n")
    with pytest.raises(ConfigError, match="timeout_s must be a finite number"):
        load_config(path, env={})


def test_an_unknown_key_names_key_and_file_and_suggests_the_near_one(toml):
    path = toml("[ppp.trajectory]\nbufer_size = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"unknown key ppp.trajectory.bufer_size (in {path})")
    assert "did you mean ppp.trajectory.buffer_size?" in message


def test_an_unknown_key_directly_under_ppp_is_an_error(toml):
    path = toml("[ppp]\ndatabase = 'x.db'\n")
    with pytest.raises(ConfigError, match=rf"unknown key ppp\.database \(in {re.escape(str(path))}\)"):
        load_config(path, env={})


def test_an_unknown_section_names_section_and_file(toml):
    path = toml("[ppp.grading]\nmode = 'fast'\n")
    with pytest.raises(ConfigError, match=rf"unknown section \[ppp\.grading\] \(in {re.escape(str(path))}\)"):
        load_config(path, env={})


def test_a_section_outside_ppp_is_an_error(toml):
    path = toml("[trajectory]\nbuffer_size = 5\n")
    with pytest.raises(ConfigError, match=rf"unknown section \[trajectory\] \(in {re.escape(str(path))}\); settings go under \[ppp\]"):
        load_config(path, env={})


def test_a_section_given_as_a_value_is_an_error(toml):
    path = toml("[ppp]\nweights = 0.5\n")
    with pytest.raises(ConfigError, match=rf"ppp\.weights must be a table.*\(in {re.escape(str(path))}\)"):
        load_config(path, env={})


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"^ppp\.enabled must be true or false, got 'maybe'.*\(in env PPP_OTEL_ENABLED\)$"):
        load_config(env={"PPP_OTEL_ENABLED": "maybe"})


def test_a_database_path_of_only_spaces_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^ppp\.db_path must be a non-empty string, got '   ' \(in env PPP_OTEL_DB\)$"):
        load_config(env={"PPP_OTEL_DB": "   "})


def test_the_commands_default_database_of_only_spaces_is_an_error_naming_the_variable():
    from ppp_otel.config.settings import default_db_path

    with pytest.raises(ConfigError, match=r"ppp\.db_path must be a non-empty string.*\(in env PPP_OTEL_DB\)"):
        default_db_path({"PPP_OTEL_DB": "   "})


def test_a_config_file_name_of_only_spaces_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"config file name is blank: '  ' \(named by env PPP_OTEL_CONFIG\)"):
        load_config(env={"PPP_OTEL_CONFIG": "  "})


def test_a_phoenix_endpoint_without_its_scheme_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^ppp\.phoenix\.endpoint must be an http:// or https:// URL, "
                                          r"got 'localhost:6006' \(in env PHOENIX_COLLECTOR_ENDPOINT\)$"):
        load_config(env={"PHOENIX_COLLECTOR_ENDPOINT": "localhost:6006"})


def test_an_llm_base_url_without_its_scheme_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^ppp\.question_classifier\.base_url must be an http:// or https:// URL, "
                                          r"got 'localhost:8000' \(in env PPP_OTEL_LLM_BASE_URL\)$"):
        load_config(env={"PPP_OTEL_LLM_BASE_URL": "localhost:8000"})


def test_a_retention_reaching_back_before_the_year_1_names_the_key_and_the_file(toml):
    path = toml("[ppp.archival]\nretention_days = 1000000\n")
    with pytest.raises(ConfigError, match=rf"^ppp\.archival\.retention_days must be at most \d+ days .*got 1000000 "
                                          rf"\(in {re.escape(path)}\)$"):
        load_config(path, env={})


def test_a_bad_override_value_names_the_argument():
    with pytest.raises(ConfigError, match=r"^ppp\.trajectory\.buffer_size must be >= 1, got 0 \(in argument\)$"):
        load_config(env={}, overrides={"trajectory.buffer_size": 0})


def test_a_bad_file_value_is_forgiven_when_an_override_replaces_it(toml):
    path = toml("[ppp.trajectory]\nbuffer_size = 0\n")
    assert load_config(path, env={}, overrides={"trajectory.buffer_size": 5}).trajectory.buffer_size == 5


def test_a_missing_file_is_named_in_the_error(tmp_path):
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=rf"config file not found: {re.escape(str(missing))}"):
        load_config(missing, env={})


def test_a_missing_file_named_by_ppp_otel_config_says_so(tmp_path):
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=rf"not found: {re.escape(str(missing))} \(named by env PPP_OTEL_CONFIG\)"):
        load_config(env={"PPP_OTEL_CONFIG": missing})


def test_invalid_toml_is_named_in_the_error(toml):
    path = toml("[ppp\nenabled = true\n")
    with pytest.raises(ConfigError, match=rf"invalid TOML in {re.escape(str(path))}: .*line 1"):
        load_config(path, env={})


def test_a_file_that_is_not_utf8_is_invalid_toml(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[ppp]\ndb_path = "caf\xe9.db"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"invalid TOML in {re.escape(str(path))}"):
        load_config(path, env={})


def test_a_file_that_begins_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes(b'\xef\xbb\xbf[ppp]\ndb_path = "bom.db"\n')
    assert load_config(path, env={}).db_path == "bom.db"


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_config(tmp_path, env={})


def test_config_error_survives_pickling_with_key_and_source():
    error = ConfigError("ppp.db_path must be a string", key="ppp.db_path", source="argument")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.key, copy.source) == (str(error), "ppp.db_path", "argument")


# --- direct construction --------------------------------------------------------


def test_sections_built_in_code_are_validated_too():
    with pytest.raises(ConfigError, match="ppp.trajectory.buffer_size must be >= 1"):
        TrajectoryConfig(buffer_size=0)
    with pytest.raises(ConfigError, match="ppp.weights.technical and ppp.weights.interaction"):
        WeightsConfig(technical=0, interaction=0)
    with pytest.raises(ConfigError, match="ppp.phoenix.protocol"):
        PhoenixConfig(protocol="udp")


def test_a_config_built_in_code_reports_every_value_as_default():
    config = Config(db_path="code.db", trajectory=TrajectoryConfig(buffer_size=2))
    assert config.source("db_path") == "default"


# --- provenance, listing, display ---------------------------------------------


def test_source_tells_default_file_env_and_argument_apart(toml):
    path = toml("[ppp.trajectory]\nbuffer_size = 20\n")
    config = load_config(
        path, env={"PPP_OTEL_DB": "env.db"}, overrides={"weights.technical": 0.9}
    )
    assert config.source("trajectory.buffer_size") == f"file:{path}"
    assert config.source("db_path") == "env:PPP_OTEL_DB"
    assert config.source("weights.technical") == "argument"
    assert config.source("weights.interaction") == "default"


def test_source_accepts_keys_with_or_without_the_ppp_prefix():
    config = load_config(env={"PPP_OTEL_DB": "env.db"})
    assert config.source("ppp.db_path") == config.source("db_path") == "env:PPP_OTEL_DB"


def test_source_of_an_unknown_key_is_a_key_error():
    with pytest.raises(KeyError):
        load_config(env={}).source("trajectory.nope")


def _example_keys() -> set[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parent.parent / "examples" / "ppp-otel.toml").read_text())

    def walk(prefix: str, table: dict) -> set[str]:
        found = set()
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            found |= walk(name, value) if isinstance(value, dict) else {name}
        return found

    return walk("", data)


def test_items_lists_every_key_once_in_file_order_with_value_and_source():
    config = load_config(env={"PPP_OTEL_DB": "env.db"})
    items = list(config.items())
    keys = [key for key, _, _ in items]
    # Every key of the example file (which lists each with its default), once.
    example = _example_keys()
    assert len(keys) == len(set(keys)) == len(example) and set(keys) == example
    assert keys[:3] == ["ppp.enabled", "ppp.db_path", "ppp.trajectory.buffer_size"]
    assert keys[-1] == "ppp.phoenix.protocol"
    assert ("ppp.db_path", "env.db", "env:PPP_OTEL_DB") in items
    assert keys == [key for key, _, _ in Config().items()]


def test_value_reads_a_dotted_key():
    config = load_config(env={}, overrides={"trajectory.buffer_size": 7})
    assert config.value("trajectory.buffer_size") == 7
    assert config.value("ppp.enabled") is True


def test_to_dict_mirrors_the_file_layout():
    data = load_config(env={}).to_dict()
    assert list(data) == ["ppp"]
    assert data["ppp"]["db_path"] == "ppp_trajectories.db"
    assert data["ppp"]["trajectory"]["buffer_size"] == 10
    assert data["ppp"]["weights"] == {"technical": 0.7, "interaction": 0.3}
    assert set(data["ppp"]) == {
        "enabled", "db_path", "trajectory", "question_classifier", "weights", "scoring", "archival", "phoenix"
    }


def test_to_dict_masks_secrets_unless_asked_not_to():
    config = load_config(env={"PHOENIX_API_KEY": "px-0123456789abcdef"})
    assert config.to_dict()["ppp"]["phoenix"]["api_key"] == "****cdef"
    assert config.to_dict(mask_secrets=False)["ppp"]["phoenix"]["api_key"] == "px-0123456789abcdef"


def test_display_value_masks_api_keys():
    assert display_value("ppp.question_classifier.api_key", "sk-abcdefghijklmnop1234") == "****1234"
    assert display_value("phoenix.api_key", "px-0123456789abcdef") == "****cdef"


def test_display_value_hides_a_short_secret_entirely():
    assert display_value("phoenix.api_key", "short") == "****"


def test_display_value_shows_an_unset_secret_as_empty():
    assert display_value("phoenix.api_key", "") == ""


def test_display_value_leaves_ordinary_values_alone():
    assert display_value("ppp.db_path", "runs.db") == "runs.db"
    assert display_value("trajectory.buffer_size", 10) == 10


def test_repr_does_not_show_sources():
    assert "_sources" not in repr(load_config(env={"PPP_OTEL_DB": "x.db"}))


def test_repr_does_not_show_secrets():
    config = load_config(env={"PHOENIX_API_KEY": "px-secret", "PPP_OTEL_LLM_API_KEY": "llm-secret"})
    assert "px-secret" not in repr(config)
    assert "llm-secret" not in repr(config)


# --- the rules are written once and used by the API too -------------------------------

@pytest.mark.parametrize("technical, interaction, message", [
    (-0.1, 0.3, "technical must be >= 0"),
    (0.7, float("inf"), "interaction must be a finite number"),
    (0, 0, "are both 0"),
])
def test_consensus_weights_follow_the_same_rules_as_the_config_file(technical, interaction, message):
    from ppp_otel.scoring.consensus import Weights

    with pytest.raises(ValueError, match=message):
        Weights(technical, interaction)
    with pytest.raises(ConfigError, match=message):
        WeightsConfig(technical=technical, interaction=interaction)


def test_the_recorders_defaults_are_the_configs_defaults(tmp_path):
    import inspect

    from ppp_otel import TrajectorySpanProcessor
    from ppp_otel.recorder import Recorder

    defaults = Config().trajectory
    params = inspect.signature(Recorder).parameters
    assert params["buffer_size"].default == defaults.buffer_size
    assert params["flush_interval_ms"].default == defaults.flush_interval_ms
    assert params["max_queue_size"].default == defaults.max_queue_size
    assert params["on_full"].default == defaults.on_full
    assert params["busy_timeout_ms"].default == defaults.busy_timeout_ms
    processor = TrajectorySpanProcessor(tmp_path / "t.db")
    try:
        assert (processor.buffer_size, processor.max_queue_size, processor.on_full) == (
            defaults.buffer_size, defaults.max_queue_size, defaults.on_full)
        assert processor.flush_interval_s * 1000 == defaults.flush_interval_ms
    finally:
        processor.shutdown()
