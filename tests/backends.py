"""Raw connections and bulk writes on either backend, for tests that set up data
below the storage seam (the product opens stores only through ``ppp_otel.storage.open_store``)."""

from __future__ import annotations

import os
from typing import Any, Iterable

from ppp_otel.storage import cleanup, display_name, open_store  # noqa: F401


def is_postgres_connection(conn: Any) -> bool:
    return type(conn).__module__.startswith("psycopg")


def connect(db: str | os.PathLike, **options: Any) -> Any:
    """The backend's own connection (sqlite3 or psycopg), migrated unless ``migrate_schema=False``."""
    if is_postgres(db):
        from ppp_otel.storage.postgres import migrations

        return migrations.connect(db, **options)
    from ppp_otel.storage.sqlite import migrations

    return migrations.connect(db, **options)


def write_all(conn: Any, records: Iterable[Any], *, batch_size: int = 500) -> Any:
    """Complete records written synchronously in batches, no analysis."""
    if is_postgres_connection(conn):
        from ppp_otel.storage.postgres.writer import write_all as pg_write_all

        return pg_write_all(conn, records, batch_size=batch_size)
    from ppp_otel.storage.sqlite.writer import write_all as sqlite_write_all

    return sqlite_write_all(conn, records, batch_size=batch_size)


def is_postgres(db) -> bool:
    return str(db).startswith("postgresql://")


def run_sql(db, sql: str, params=()) -> list:
    """Run one statement (``?`` parameters) on either backend, committed; its rows, if any."""
    if is_postgres(db):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        cur = conn.execute(sql, params)
        return cur.fetchall()
    finally:
        conn.close()


def schema_of(db):
    """The migrations module of the database's backend."""
    if is_postgres(db):
        from ppp_otel.storage.postgres import migrations
    else:
        from ppp_otel.storage.sqlite import migrations
    return migrations


def set_schema_version(db, version: int) -> None:
    """Mark the store as being at ``version`` (to test how newer and older stores are met)."""
    if is_postgres(db):
        run_sql(db, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "applied_at TEXT NOT NULL DEFAULT 'now')")
        run_sql(db, "DELETE FROM schema_migrations WHERE version > ?", (version,))
        run_sql(db, "INSERT INTO schema_migrations (version) SELECT v FROM generate_series(1, ?) v "
                    "ON CONFLICT DO NOTHING", (version,))
    else:
        run_sql(db, f"PRAGMA user_version = {int(version)}")
