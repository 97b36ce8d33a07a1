"""The push ids each brand has decided, and whose relationship each belongs to (domain/recorders.py).

A push id's claim was a `PushClaim` aggregate in the event store, one more event per first
decision; it is now a row of `push_ids`, written in the same transaction as the decision. The
claims already in the log are copied here, so a push id decided before this migration still
belongs to its customer, and its audit still finds it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CLAIMED = "trustledger:push-id.claimed"

POSTGRES = [
    "CREATE TABLE push_ids (brand text NOT NULL, push_id text NOT NULL,"
    " relationship_id uuid NOT NULL, CONSTRAINT push_ids_pkey PRIMARY KEY (brand, push_id))",
    "INSERT INTO push_ids (brand, push_id, relationship_id)"
    " SELECT c->>'brand', c->>'push_id', (c->'relationship_id'->>'_data_')::uuid"
    " FROM (SELECT convert_from(state, 'UTF8')::jsonb AS c FROM ledger_events"
    f" WHERE topic = '{CLAIMED}') AS claims",
]

SQLITE = [
    "CREATE TABLE push_ids (brand TEXT NOT NULL, push_id TEXT NOT NULL,"
    " relationship_id TEXT NOT NULL, CONSTRAINT push_ids_pkey PRIMARY KEY (brand, push_id))"
    " WITHOUT ROWID",
    "INSERT INTO push_ids (brand, push_id, relationship_id)"
    " SELECT json_extract(c, '$.brand'), json_extract(c, '$.push_id'),"
    " json_extract(c, '$.relationship_id._data_')"
    f" FROM (SELECT CAST(state AS TEXT) AS c FROM stored_events WHERE topic = '{CLAIMED}')",
]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE push_ids")
