"""Event and snapshot states compressed with lz4, not pglz, on PostgreSQL.

PostgreSQL compresses a row's value once the row passes about 2 kB: a push decision's state (its
reasons and scores, about 2.2 kB) every time, and every snapshot. pglz did it in 12 µs a decision
and lz4 does it in 4, to the same size (1,558 and 1,574 bytes on average, 10,000 decisions of the
gate bench), and reads it back in half the time. Rows written before keep pglz, and read as before.
A server built without lz4 keeps pglz (its notice says so).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("ledger_events", "ledger_snapshots")


def _compress_with(method: str) -> str:
    return (
        "DO $$ BEGIN "
        + " ".join(f"ALTER TABLE {t} ALTER COLUMN state SET COMPRESSION {method};" for t in TABLES)
        + " EXCEPTION WHEN feature_not_supported THEN"
        " RAISE NOTICE 'states keep the default compression: %', SQLERRM; END $$"
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_compress_with("lz4"))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_compress_with("default"))
