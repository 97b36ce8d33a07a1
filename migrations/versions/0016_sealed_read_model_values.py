"""The read models' personal values are sealed with their customer's key: their rows are emptied.

The timeline's actors, personal data fields and summaries, the relationships' customer references
and the customers in the decisions' requests were stored in clear, so an erasure's masking UPDATE
left them in dead row versions, the WAL, replicas and backups. They are now sealed with the
customer's key (projections/personal.py), which no migration holds: this one empties every
read-model table and moves their positions back to the start of the log, and `trustledger
migrate` then rebuilds them from the log (or, without the master key, the projection workers
refill them). On PostgreSQL, TRUNCATE gives the tables new files and drops the old ones at
commit, plaintext included; on SQLite, `secure_delete` zeroes the freed pages. The column types
do not change: a sealed value is text (`sealed:` then base64).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

READ_MODEL_TABLES = (
    "timeline",
    "consents",
    "relationships",
    "brand_trust",
    "brand_trust_checkpoints",
    "decisions",
    "consent_acts",
)


def _empty_read_models() -> None:
    """Every read model emptied, to be refilled from the log in the format of the code that runs
    after this revision (the older code cannot read sealed values: its downgrade empties too)."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")
    else:
        op.execute("PRAGMA secure_delete = ON")
        for table in READ_MODEL_TABLES:
            op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE projection_positions SET position = 0")


def upgrade() -> None:
    _empty_read_models()


def downgrade() -> None:
    _empty_read_models()
