"""Alembic's environment: runs on the connection a caller hands over, or opens one from the URL.

Either way every revision of the run, its version update included, is in the one transaction of
that connection (alembic's own per-migration transactions are then none): all of them are
stored, or none. On SQLite that transaction is `migration_engine`'s, begun with BEGIN IMMEDIATE."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from migrations import hold_off_writers, migration_engine

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        migrate(connection)
        return
    engine = migration_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        migrate(conn)
    engine.dispose()


def migrate(connection: Connection) -> None:
    hold_off_writers(connection)
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `trustledger migrate`")
run()
