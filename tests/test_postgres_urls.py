"""Naming a PostgreSQL store: a password never shows, and a URL with a typo is called one.

A store is named by a URL that may carry its password (``user:pw@`` or
``?password=``); messages, logs, ``status`` and the counters a recorder or an
ingest replica reports name it without. A name that is a URL but not one a
backend opens is refused as such, not taken for a file that does not exist.
"""

from __future__ import annotations

import logging

import pytest

import ppp_otel
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.cli import main
from ppp_otel.records import TrajectoryRecord
from ppp_otel.storage import DatabaseError, display_name, open_store, redact_url

pytestmark = pytest.mark.usefixtures("no_ambient_database")

SECRET = "s3cr3t-pw"


def with_password(url: str) -> str:
    """The same store, its URL carrying a password (the test server trusts loopback, so any does)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)


# --- redaction -----------------------------------------------------------------------

def test_a_password_in_the_user_part_of_the_url_is_masked():
    assert redact_url("postgresql://ppp:pw@db:5432/ppp_otel") == "postgresql://ppp:***@db:5432/ppp_otel"


def test_a_password_given_as_a_url_parameter_is_masked():
    assert (redact_url("postgresql://ppp@db/ppp_otel?sslmode=require&password=pw&application_name=x")
            == "postgresql://ppp@db/ppp_otel?sslmode=require&password=***&application_name=x")


def test_a_url_without_a_password_is_shown_as_it_is():
    url = "postgresql://ppp@db.internal:5432/ppp_otel?options=-csearch_path%3Dx"
    assert redact_url(url) == display_name(url) == url


def test_a_password_in_a_url_whose_scheme_lost_its_colon_is_masked():
    assert display_name("postgresql//ppp:pw@db/ppp_otel") == "postgresql//ppp:***@db/ppp_otel"


# --- a URL that no backend opens --------------------------------------------------------

@pytest.mark.parametrize("typo", [
    "postgresql//ppp:pw@127.0.0.1:5432/ppp_otel",      # the colon lost
    "postgresql:/ppp:pw@127.0.0.1:5432/ppp_otel",      # a slash lost
    "PostgreSQL://ppp:pw@127.0.0.1:5432/ppp_otel",     # libpq takes the scheme in lower case only
    "postgresql+psycopg://ppp:pw@127.0.0.1/ppp_otel",  # SQLAlchemy's form
    "mysql://ppp:pw@127.0.0.1/ppp_otel",
])
def test_a_url_no_backend_opens_is_refused_as_a_url_without_its_password(typo, capsys):
    with pytest.raises(DatabaseError, match="not a database ppp-otel can open: a PostgreSQL store is postgresql://"):
        open_store(typo)
    assert main(["status", "--db", typo]) == 2
    err = capsys.readouterr().err
    assert "not a database ppp-otel can open" in err and "no such database file" not in err
    assert ":pw@" not in err and ":***@" in err


def test_register_refuses_a_url_no_backend_opens_before_recording_anything(tmp_path):
    with pytest.raises(DatabaseError, match="not a database ppp-otel can open"):
        ppp_otel.register("postgresql//ppp:pw@127.0.0.1:5432/ppp_otel", phoenix=False, set_global=False, env={})
    assert list(tmp_path.iterdir()) == []  # no directory or file made for it


def test_a_windows_drive_path_is_still_a_sqlite_file_name():
    from ppp_otel.storage import refuse_unknown_url

    refuse_unknown_url("C:/runs/ppp.db")  # one letter: a drive, not a scheme


# --- what a recorder and ingest report -----------------------------------------------------

def test_write_failures_are_logged_without_the_password(caplog):
    from support import free_port

    url = f"postgresql://ppp:{SECRET}@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    processor = TrajectorySpanProcessor(url, flush_interval_ms=20, shutdown_timeout_ms=300)
    with caplog.at_level(logging.WARNING, logger="ppp_otel"):
        processor.submit([TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")])
        assert not processor.force_flush(500)
        processor.shutdown()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "cannot connect" in logged and SECRET not in logged


def test_a_recorders_stats_name_the_store_without_its_password(postgres_url):
    url = with_password(postgres_url)
    processor = TrajectorySpanProcessor(url, flush_interval_ms=20)
    processor.submit([TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")])
    assert processor.force_flush()
    processor.shutdown()
    stats = processor.stats
    assert stats["written_trajectories"] == 1
    assert SECRET not in stats["db_path"] and "postgres:***@" in stats["db_path"]


def test_the_ingest_summary_names_the_store_without_its_password(postgres_url):
    from ppp_otel.ingest.server import IngestServer

    server = IngestServer(with_password(postgres_url), port=0, grpc_port=None).start()
    server.stop()
    assert SECRET not in str(server.stats) and "postgres:***@" in server.stats["db_path"]


def test_import_names_the_store_it_imported_into_without_its_password(postgres_url, capsys):
    from pathlib import Path

    atif = next((Path(__file__).parent / "data" / "atif").glob("*.json"))
    assert main(["import", str(atif), "--db", with_password(postgres_url)]) == 0
    out = capsys.readouterr().out
    assert "imported 1 document(s)" in out and SECRET not in out and "postgres:***@" in out


def test_a_database_without_a_trajectory_store_is_answered_with_the_migrate_command_for_that_store(
        postgres_url, capsys):
    assert main(["status", "--db", postgres_url]) == 2
    err = capsys.readouterr().err
    # `migrate --create` alone would create the default SQLite file instead.
    assert f"`ppp-otel migrate --create --db {postgres_url}` adds one" in err


def test_the_demo_on_a_store_named_by_ppp_otel_db_with_a_password_suggests_commands_that_need_no_db(
        postgres_url, monkeypatch, capsys):
    monkeypatch.setenv("PPP_OTEL_DB", with_password(postgres_url))
    assert main(["demo"]) == 0
    next_steps = capsys.readouterr().out.split("\nNext:\n", 1)[1]
    assert "ppp-otel report --out report.html" in next_steps
    assert "--db" not in next_steps and SECRET not in next_steps


def test_the_demo_on_a_url_with_a_password_says_what_the_masked_part_is(postgres_url, capsys):
    assert main(["demo", "--db", with_password(postgres_url)]) == 0
    next_steps = capsys.readouterr().out.split("\nNext:\n", 1)[1]
    assert f"ppp-otel show ID --db {with_password(postgres_url).replace(SECRET, '***')}" in next_steps
    assert "*** is the URL's password" in next_steps and SECRET not in next_steps


def test_a_failed_automatic_cleanup_is_logged_without_the_password(caplog):
    from support import free_port
    from ppp_otel.storage.sqlite.retention import ArchivalScheduler

    url = f"postgresql://ppp:{SECRET}@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="ppp_otel"):
        assert ArchivalScheduler(url, retention_days=30, interval_s=3600).run_once() is None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "automatic cleanup of postgresql://ppp:***@" in logged and SECRET not in logged


# --- migrate --create: the database itself, as createdb would --------------------------

def test_migrate_create_makes_a_postgresql_database_the_server_does_not_have(postgres_server, capsys):
    import uuid

    url = postgres_server.url(f"made_{uuid.uuid4().hex[:10]}")
    assert main(["migrate", "--create", "--db", url]) == 0
    assert "migrated to schema version" in capsys.readouterr().out
    assert main(["status", "--db", url, "--json"]) == 0


def test_migrate_create_on_a_postgresql_database_that_exists_only_adds_the_schema(postgres_server, capsys):
    url = postgres_server.create_database()
    assert main(["migrate", "--create", "--db", url]) == 0
    assert main(["migrate", "--create", "--db", url]) == 0
    assert "up to date at schema version" in capsys.readouterr().out.splitlines()[-1]


def test_a_postgresql_database_that_cannot_be_created_says_to_run_createdb(postgres_server, capsys):
    url = postgres_server.url("ppp_nobody_may_make").replace("postgres@", "no_such_role@", 1)
    assert main(["migrate", "--create", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "cannot create the database ppp_nobody_may_make" in err and "createdb ppp_nobody_may_make" in err


def test_the_sqlite_store_named_by_a_postgresql_url_says_what_opens_one():
    from ppp_otel.storage import TrajectoryStore

    with pytest.raises(DatabaseError, match=r"a URL, not a SQLite file; open_store\(\) opens any store") as caught:
        TrajectoryStore(with_password("postgresql://postgres@127.0.0.1:1/ppp_otel"))
    assert SECRET not in str(caught.value)
