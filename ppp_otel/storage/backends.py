"""Which backend a database name means: a ``postgresql://`` URL is PostgreSQL,
anything else a SQLite file. Every place that opens a store by name asks here,
so choosing the backend is decided in one module.

PostgreSQL's modules are imported only when a URL is used: the core install
(and SQLite) never needs psycopg.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Iterable

from ppp_otel.storage.sqlite import migrations as sqlite_schema

__all__ = ["connect", "display_name", "is_postgres", "is_postgres_connection", "open_store",
           "storage_errors", "write_all", "writer_for"]

URL_PREFIXES = ("postgresql://", "postgres://")


def is_postgres(db: Any) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(db, str) and db.startswith(URL_PREFIXES)


def is_postgres_connection(conn: Any) -> bool:
    return type(conn).__module__.startswith("psycopg")


def display_name(db: Any) -> str:
    """How to name the database to a person: a path, or a URL without its password."""
    if is_postgres(db):
        from ppp_otel.storage.postgres.migrations import redact

        return redact(db)
    return os.fspath(db)


def connect(db: str | os.PathLike, **options: Any) -> Any:
    """The backend's connection, migrated unless ``migrate_schema=False``
    (SQLite's :func:`~ppp_otel.storage.sqlite.migrations.connect` options; PostgreSQL
    ignores those that are SQLite's alone)."""
    if is_postgres(db):
        from ppp_otel.storage.postgres import migrations

        return migrations.connect(db, **options)
    return sqlite_schema.connect(db, **options)


def open_store(db: str | os.PathLike, **options: Any) -> Any:
    """A ``TrajectoryStore`` of the right backend (same methods and results)."""
    if is_postgres(db):
        from ppp_otel.storage.postgres.reader import TrajectoryStore

        return TrajectoryStore(db, **options)
    from ppp_otel.storage.sqlite.reader import TrajectoryStore

    return TrajectoryStore(db, **options)


def writer_for(conn: Any) -> Any:
    if is_postgres_connection(conn):
        from ppp_otel.storage.postgres.writer import TrajectoryWriter

        return TrajectoryWriter(conn)
    from ppp_otel.storage.sqlite.writer import TrajectoryWriter

    return TrajectoryWriter(conn)


def write_all(conn: Any, records: Iterable[Any], *, batch_size: int = 500) -> Any:
    if is_postgres_connection(conn):
        from ppp_otel.storage.postgres.writer import write_all as pg_write_all

        return pg_write_all(conn, records, batch_size=batch_size)
    from ppp_otel.storage.sqlite.writer import write_all as sqlite_write_all

    return sqlite_write_all(conn, records, batch_size=batch_size)


def storage_errors() -> tuple[type[BaseException], ...]:
    """Errors about the store itself (locked, down, unreachable) that a writer retries."""
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, sqlite_schema.DatabaseError, OSError)
    try:
        import psycopg
    except ImportError:
        return errors
    return errors + (psycopg.Error,)


def cleanup(db: str | os.PathLike, **options: Any) -> Any:
    """Retention on either backend: :func:`ppp_otel.storage.sqlite.retention.cleanup`'s arguments and summary."""
    if is_postgres(db):
        from ppp_otel.storage.postgres.retention import cleanup as pg_cleanup

        return pg_cleanup(db, **options)
    from ppp_otel.storage.sqlite.retention import cleanup as sqlite_cleanup

    return sqlite_cleanup(db, **options)
