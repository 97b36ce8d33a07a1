"""Alembic's environment: runs on the connection a caller hands over, or opens one from the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from migrations import hold_off_writers

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        hold_off_writers(connection)
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        hold_off_writers(conn)
        context.configure(connection=conn, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `trustledger migrate`")
run()
