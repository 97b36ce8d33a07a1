"""Alembic migrations: they own every table, the event store's included."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text

from domain.storage import Store

HERE = Path(__file__).parent
MIGRATION_LOCK = 0x7472_7573_746C_6D67
"""The PostgreSQL advisory lock a migration holds ("trustlmg"): one migration at a time."""


EMPTY_READ_MODELS = ("0016", "0017", "0019")
"""Revisions that empty the read models, for `trustledger migrate` to rebuild them from the log."""


def empties_read_models(before: str | None, after: str | None) -> bool:
    """Whether migrating from `before` to `after` emptied the read models (a new store's are
    empty already; revision names are zero-padded, so they compare as text)."""
    if before is None or after is None:
        return False
    return any(before < revision <= after for revision in EMPTY_READ_MODELS)


SQLITE_LOCK_WAIT = 30
"""Seconds a SQLite migration waits for the write lock (a writer's transaction to end), as the
ledger's own connections wait for it (SQLITE_LOCK_TIMEOUT)."""


def migration_engine(url: str) -> Engine:
    """An engine to migrate the store at `url` with. On SQLite, every transaction it begins
    starts with BEGIN IMMEDIATE and holds every statement until its commit, DDL included:
    SQLAlchemy's recipe for pysqlite ("Serializable isolation / Savepoints / Transactional
    DDL"). Left to itself, pysqlite (its legacy transaction control, Python's default up to
    3.15) begins a transaction only before an INSERT, UPDATE or DELETE, so a migration's DDL
    was committed statement by statement: one that failed halfway left the store half-migrated
    at the old revision, and a process left running wrote between its statements.

    A migration on SQLite therefore cannot change what SQLite refuses, or ignores, inside a
    transaction: `PRAGMA journal_mode` (`_use_wal` sets it before), `PRAGMA foreign_keys` (off,
    as every connection of the ledger leaves it), `VACUUM`."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_WAIT})
    event.listen(engine, "connect", _driver_begins_nothing)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _driver_begins_nothing(dbapi_connection: Any, _record: object) -> None:
    """pysqlite's own BEGIN (and its commit before some statements) off: `_begin_immediate`
    begins every transaction; pysqlite still commits and rolls back when asked."""
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    """Takes SQLite's write lock as the transaction begins, waiting for a writer's transaction
    to end: the revision `upgrade` reads first is the one it migrates from, and no writer
    commits until the migration has (then it finds the new revision: RevisionGuard)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def hold_off_writers(connection: Connection) -> None:
    """Keeps writers out until the migration's transaction ends. On PostgreSQL it locks
    `alembic_version`: every guarded write reads it in its own transaction (domain/storage.py
    RevisionGuard), so a write begun before waits to be committed first, and one begun after
    waits for the new revision and is refused by a process whose code knows another. On SQLite
    the transaction's BEGIN IMMEDIATE (`migration_engine`) holds the write lock already; a
    connection with no SQLite transaction open (one of another engine, whose DDL pysqlite would
    commit statement by statement) is refused. Called by env.py on the migration's connection,
    when it is in a transaction (its own and `upgrade`'s are) and, on PostgreSQL, the store has
    the table (a new one has no process writing to it)."""
    if connection.dialect.name == "sqlite":
        if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            raise RuntimeError(
                "a SQLite migration runs in a transaction begun by migrations.migration_engine"
            )
        return
    if connection.dialect.name != "postgresql" or not connection.in_transaction():
        return
    if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is not None:
        connection.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))


def revision_module(filename: str) -> ModuleType:
    """A revision's module (migrations/versions/FILENAME), loaded for a later revision that
    builds on what it made (the versions are no package: alembic loads them by path)."""
    path = HERE / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replaced_once(text: str, old: str, new: str) -> str:
    """`text` with `old`, which it must hold exactly once, replaced by `new`."""
    if text.count(old) != 1:
        raise RuntimeError(f"{old!r} is not in the statement exactly once")
    return text.replace(old, new)


def alembic_config(store: Store) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", store.sqlalchemy_url().replace("%", "%%"))
    return config


def upgrade(
    store: Store, revision: str = "head", connection: Connection | None = None
) -> str | None:
    """Applies the migrations up to `revision`; applying them again changes nothing. Returns the
    revision the store was at before (None: a new store), read under the migration's lock."""
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(store)
    if connection is not None:
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        return before
    if store.is_sqlite:
        _use_wal(store)
    engine = migration_engine(store.sqlalchemy_url())
    try:
        with _one_at_a_time(store), engine.begin() as conn:
            if not store.is_sqlite:  # held to the commit; the next one then finds it done
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()
    return before


@contextmanager
def _one_at_a_time(store: Store) -> Iterator[None]:
    """Migrations of one SQLite file one after the other, across processes (hosts that each run
    `trustledger migrate` as they start raced to create the same tables, and all but one failed).
    Each one's BEGIN IMMEDIATE would keep them apart too, but gives up after SQLITE_LOCK_WAIT
    seconds, and a migration may take longer: the lock of a file beside the database waits for
    as long as the one before takes. PostgreSQL's is the advisory lock taken in the migration's
    transaction."""
    if not store.is_sqlite:
        yield
        return
    path = f"{store.path}-migrate-lock"
    descriptor = _locked(path)
    try:
        yield
    finally:
        # Removed while still held, so it does not litter the database's directory. A migration
        # waiting on this file gets its lock after, finds the name gone (or another file's) and
        # starts again on the file at the name: one lock at a time, on whatever file is there.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(descriptor)  # closing drops the lock


def _locked(path: str) -> int:
    """An open descriptor of the file at `path`, locked by this process alone (made if missing,
    its owner's only: it sits beside a database of personal data)."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # removed by the migration that held it: lock the next file


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
