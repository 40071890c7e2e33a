"""Bad input on the command line and at the API: one clear line naming what is wrong,
exit code 2, never a traceback, never a retry of what can never work."""

from __future__ import annotations

import os

import pytest

import ppp_otel
from ppp_otel.cli import main
from ppp_otel.storage import TrajectoryStore
from ppp_otel.storage.sqlite.retention import cutoff_for
from scoring_data import two_agents_of_one_spec

pytestmark = pytest.mark.usefixtures("no_ambient_database")

TOO_LARGE = "99999999999999999999"  # beyond SQLite's INTEGER (and PostgreSQL's BIGINT)


@pytest.fixture
def db(db_path) -> str:
    return two_agents_of_one_spec(db_path)


def error_of(capsys, *argv: str) -> str:
    """The one error line of a command that must fail with exit code 2 (a usage error's
    usage lines before it are argparse's)."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if "error: " in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", [
    ["show", TOO_LARGE],
    ["score", "--trajectory", TOO_LARGE],
    ["score", "--json", "--trajectory", TOO_LARGE],
    ["export", "--to", "http://127.0.0.1:9", "--trajectory", TOO_LARGE],
    ["export-atif", "--out", "out", "--trajectory", TOO_LARGE],
], ids=lambda command: " ".join(command[:2]))
def test_an_id_too_large_for_sqlite_is_no_such_trajectory(capsys, db, command):
    assert error_of(capsys, *command, "--db", db) == f"ppp-otel: error: no trajectory with id {TOO_LARGE} in {db}"


def test_the_store_finds_no_trajectory_for_an_id_too_large_for_sqlite(db):
    with TrajectoryStore(db) as store:
        assert store.get_trajectory(10**20) is None
        assert store.missing_ids([1, 10**20]) == [10**20]


@pytest.mark.parametrize("command", [
    ["trajectories", "--limit", TOO_LARGE],
    ["trajectories", "--offset", TOO_LARGE],
    ["consensus-history", "--spec", "spec-a", "--limit", "9223372036854775808"],
    ["report", "--out", "r.html", "--max-trajectories", TOO_LARGE],
    ["copy", "--to", "copy.db", "--chunk-size", TOO_LARGE],
], ids=lambda command: " ".join(command[:3:2]))
def test_a_count_too_large_for_sqlite_is_a_usage_error(capsys, db, command):
    line = error_of(capsys, *command, "--db", db)
    assert f"argument {command[-2]}: must be at most 9223372036854775807" in line


def test_the_store_refuses_a_listing_limit_too_large_for_sqlite(db):
    with TrajectoryStore(db) as store, pytest.raises(ValueError, match="limit must be at most 9223372036854775807"):
        store.list_trajectories(limit=10**20)


@pytest.mark.parametrize("days, problem", [
    ("99999999999", "must be at most"),
    ("3000000", "no date is longer ago than the year 1"),
    ("1e400", "must be a finite number of days"),
    ("nan", "must be a finite number of days"),
    ("-1", "must not be negative"),
])
def test_cleanup_refuses_a_retention_that_is_no_number_of_days_back_from_now(capsys, db, days, problem):
    line = error_of(capsys, "cleanup", "--older-than", days, "--dry-run", "--db", db)
    assert line.startswith("ppp-otel cleanup: error: argument --older-than: ") and problem in line


def test_a_retention_reaching_back_before_the_calendar_is_a_value_error_at_the_api():
    with pytest.raises(ValueError, match="older_than_days must be at most"):
        cutoff_for(3_000_000)


def test_a_cutoff_in_the_first_millennium_keeps_four_digits_of_year():
    from datetime import datetime, timezone

    assert cutoff_for(1, now=datetime(999, 1, 2, tzinfo=timezone.utc)) == "0999-01-01T00:00:00.000Z"


DIRECTORY_COMMANDS = [
    ["status"], ["trajectories"], ["show", "1"], ["score"], ["consensus", "--spec", "s"],
    ["consensus-history", "--spec", "s"], ["trends", "--spec", "s"], ["judge"], ["migrate"],
    ["migrate", "--create"], ["export", "--to", "http://127.0.0.1:9"], ["export-atif", "--out", "out"],
    ["cleanup", "--dry-run"], ["copy", "--to", "copy.db"], ["report", "--out", "r.html"],
]


@pytest.mark.parametrize("command", DIRECTORY_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_every_command_that_opens_the_store_names_a_directory_in_the_same_words(capsys, tmp_path, command):
    directory = tmp_path / "adir"
    directory.mkdir()
    assert error_of(capsys, *command, "--db", str(directory)) == (
        f"ppp-otel: error: {directory}: cannot open database "
        f"(it is a directory; name a database file, e.g. {directory / 'ppp_trajectories.db'})"
    )


@pytest.mark.parametrize("command", [["demo"], ["ingest", "--port", "0", "--grpc-port", "off"]])
def test_recording_into_a_directory_is_refused_before_anything_is_recorded(capsys, tmp_path, command):
    directory = tmp_path / "adir"
    directory.mkdir()
    assert error_of(capsys, *command, "--db", str(directory)) == (
        f"ppp-otel: error: cannot record to {directory} "
        f"(it is a directory; name a database file, e.g. {directory / 'ppp_trajectories.db'})"
    )
    assert os.listdir(directory) == []


def test_register_refuses_a_directory_at_once(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"it is a directory; name a database file, e\.g\. .*ppp_trajectories\.db"):
        ppp_otel.register(str(tmp_path), phoenix=False, set_global=False, env={})


def test_a_processor_made_by_hand_refuses_a_directory_at_once(tmp_path):
    from ppp_otel import TrajectorySpanProcessor

    with pytest.raises(IsADirectoryError, match="it is a directory"):
        TrajectorySpanProcessor(tmp_path)

def test_register_refuses_a_path_ending_in_a_separator_and_makes_no_file(tmp_path):
    path = str(tmp_path / "adirx") + os.sep
    with pytest.raises(IsADirectoryError, match="so it names a directory"):
        ppp_otel.register(path, phoenix=False, set_global=False, env={})
    assert not (tmp_path / "adirx").exists()


@pytest.mark.parametrize("option", ["--pending-ttl", "--pending-retention"])
@pytest.mark.parametrize("value, problem", [
    ("-1", "must be more than 0"), ("0", "must be more than 0"),
    ("nan", "must be a finite number"), ("inf", "must be a finite number"),
])
def test_ingest_refuses_a_waiting_time_that_is_not_a_positive_finite_number(capsys, db, option, value, problem):
    line = error_of(capsys, "ingest", option, value, "--port", "0", "--grpc-port", "off", "--db", db)
    assert line == f"ppp-otel ingest: error: argument {option}: {problem}: {value}"


@pytest.mark.parametrize("value, problem", [("-1", "must be at least 0"), ("nan", "must be a finite number")])
def test_consensus_refuses_a_wait_that_is_no_duration(capsys, db, value, problem):
    line = error_of(capsys, "consensus", "--spec", "spec-a", "--no-store", "--wait", value, "--db", db)
    assert line == f"ppp-otel consensus: error: argument --wait: {problem}: {value}"


@pytest.mark.parametrize("command", [["consensus", "--spec", "spec-a", "--no-store"], ["trends", "--spec", "spec-a"]],
                         ids=lambda command: command[0])
def test_a_negative_weight_reaches_the_weights_own_check(capsys, db, command):
    line = error_of(capsys, *command, "--weights", "-1,2", "--db", db)
    assert line == "ppp-otel: error: weight technical must be >= 0, got -1.0"


def test_a_technical_score_out_of_range_is_named_once(capsys, db):
    line = error_of(capsys, "consensus", "--spec", "spec-a", "--no-store", "--technical", "careful-agent=1.5",
                    "--db", db)
    assert line == "ppp-otel: error: technical score of careful-agent must be between 0 and 1, got 1.5"


def test_migrate_in_a_missing_directory_says_to_create_the_directory_first(capsys, tmp_path):
    path = str(tmp_path / "no" / "such" / "x.db")
    line = error_of(capsys, "migrate", "--db", path)
    assert f"the directory {tmp_path / 'no' / 'such'} does not exist; create the directory, then" in line


def test_migrate_of_an_empty_file_names_the_command_that_makes_it_a_store(capsys, tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    line = error_of(capsys, "migrate", "--db", str(path))
    assert line == (f"ppp-otel: error: {path}: empty file, not a trajectory database; "
                    f"`ppp-otel migrate --create --db {path}` makes it one")
    assert main(["migrate", "--create", "--db", str(path)]) == 0


def test_an_id_no_integer_column_holds_names_no_trajectory_on_every_backend(store_url):
    from ppp_otel.scoring.rewards import score_trajectories
    from ppp_otel.storage import open_store

    with open_store(store_url, must_exist=False) as store:
        assert store.get_trajectory(10**20) is None
        assert store.missing_ids([10**20]) == [10**20]
        assert store.score_counts(trajectory_id=10**20) == []
        with pytest.raises(ValueError, match="limit must be at most"):
            store.consensus_history_rows("spec-a", 10**20)
    assert score_trajectories(store_url, trajectory_id=10**20) == []
    assert score_trajectories(store_url, trajectory_id=10**20, rewards="paper") == []
