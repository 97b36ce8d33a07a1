"""Alembic migrations: they own every table, the event store's included."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine

from domain.storage import Store

HERE = Path(__file__).parent


def alembic_config(store: Store) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", store.sqlalchemy_url().replace("%", "%%"))
    return config


def upgrade(store: Store, revision: str = "head", connection: Connection | None = None) -> None:
    """Applies the migrations up to `revision`; applying them again changes nothing."""
    config = alembic_config(store)
    if connection is not None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        return
    if store.is_sqlite:
        _use_wal(store)
    engine = create_engine(store.sqlalchemy_url())
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def new_postgres_database(server: Store, prefix: str) -> Store:
    """A fresh database on the server of `server`, migrated: for tests and benchmarks that need
    a whole log of their own."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = server.with_dbname(name)
    upgrade(store)
    return store


def _use_wal(store: Store) -> None:
    """Puts the SQLite file in WAL mode once, here: WAL persists in the file, and processes that
    would each switch it on first open race for the exclusive lock it takes."""
    import sqlite3

    store.make_directory()
    with sqlite3.connect(store.path, timeout=30) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def current(store: Store) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(store.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
