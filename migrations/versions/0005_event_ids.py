"""The event ids each brand has used, and what each names (domain/recorders.py).

A claim was an `IdempotencyKey` aggregate in the event store, one more event per recorded event;
it is now a row of `event_ids`, written in the same transaction as the event. The claims already
in the log are copied here, so a repeat of an event recorded before this migration is still
answered with its first recording.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CLAIMED = "trustledger:idempotency-key.claimed"

POSTGRES = [
    "CREATE TABLE event_ids (brand text NOT NULL, event_id text NOT NULL,"
    " relationship_id uuid NOT NULL, sequence bigint NOT NULL, fingerprint text NOT NULL,"
    " recorded_at timestamptz NOT NULL, CONSTRAINT event_ids_pkey PRIMARY KEY (brand, event_id))",
    "INSERT INTO event_ids (brand, event_id, relationship_id, sequence, fingerprint, recorded_at)"
    " SELECT c->>'brand', c->>'event_id', (c->'relationship_id'->>'_data_')::uuid,"
    " (c->>'sequence')::bigint, c->>'fingerprint', (c->'recorded_at'->>'_data_')::timestamptz"
    " FROM (SELECT convert_from(state, 'UTF8')::jsonb AS c FROM ledger_events"
    f" WHERE topic = '{CLAIMED}') AS claims",
]

SQLITE = [
    "CREATE TABLE event_ids (brand TEXT NOT NULL, event_id TEXT NOT NULL,"
    " relationship_id TEXT NOT NULL, sequence INTEGER NOT NULL, fingerprint TEXT NOT NULL,"
    " recorded_at TEXT NOT NULL, CONSTRAINT event_ids_pkey PRIMARY KEY (brand, event_id))"
    " WITHOUT ROWID",
    "INSERT INTO event_ids (brand, event_id, relationship_id, sequence, fingerprint, recorded_at)"
    " SELECT json_extract(c, '$.brand'), json_extract(c, '$.event_id'),"
    " json_extract(c, '$.relationship_id._data_'), json_extract(c, '$.sequence'),"
    " json_extract(c, '$.fingerprint'), json_extract(c, '$.recorded_at._data_')"
    f" FROM (SELECT CAST(state AS TEXT) AS c FROM stored_events WHERE topic = '{CLAIMED}')",
]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE event_ids")
