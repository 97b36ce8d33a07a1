"""The event store: the eventsourcing library's tables, created here since the library runs with
CREATE_TABLE=n. The SQL is what eventsourcing 9.5.6 renders (`recorder.sql_create_statements`),
less its `es_insert_events_uuid` function: that function is used only with
the library's "enable DB functions" setting, whose insert skips the table lock: never set here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUTOVACUUM = (
    "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000,"
    " autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000,"
    " autovacuum_analyze_scale_factor = 0.01)"
)

POSTGRES = [
    "CREATE TYPE stored_event_uuid AS"
    " (originator_id uuid, originator_version bigint, topic text, state bytea)",
    "CREATE TABLE ledger_events (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
    " topic text, state bytea, notification_id bigserial,"
    " PRIMARY KEY (originator_id, originator_version)) " + AUTOVACUUM,
    "CREATE UNIQUE INDEX ledger_events_notification_id_idx ON ledger_events (notification_id ASC)",
    "CREATE TABLE ledger_snapshots (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
    " topic text, state bytea, PRIMARY KEY (originator_id, originator_version)) " + AUTOVACUUM,
]

SQLITE = [
    "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT,"
    " state BLOB, PRIMARY KEY (originator_id, originator_version))",
    "CREATE TABLE stored_snapshots (originator_id TEXT, originator_version INTEGER, topic TEXT,"
    " state BLOB, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TABLE ledger_snapshots")
        op.execute("DROP TABLE ledger_events")
        op.execute("DROP TYPE stored_event_uuid")
    else:
        op.execute("DROP TABLE stored_snapshots")
        op.execute("DROP TABLE stored_events")
