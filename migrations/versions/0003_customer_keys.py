"""Customer keys: one per relationship, stored only wrapped by the master key, deleted at erasure.

`customer_keys` holds each relationship's key, AES-GCM-wrapped by the master key with the brand
and relationship id as associated data. `master_key_check` has one row naming the master key that
wraps them all (`master_key_id` is a keyed hash of it, not the key), so a process started with
another key is refused before it reads or writes anything. See docs/privacy.md.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

POSTGRES = [
    "CREATE TABLE customer_keys (relationship_id uuid NOT NULL, brand text NOT NULL,"
    " wrapped_key bytea NOT NULL, master_key_id text NOT NULL, created_at timestamptz NOT NULL,"
    " CONSTRAINT customer_keys_pkey PRIMARY KEY (relationship_id))",
    "CREATE TABLE master_key_check (id smallint NOT NULL, master_key_id text NOT NULL,"
    " changed_at timestamptz NOT NULL, CONSTRAINT master_key_check_pkey PRIMARY KEY (id),"
    " CONSTRAINT master_key_check_one_row CHECK (id = 1))",
]

SQLITE = [
    "CREATE TABLE customer_keys (relationship_id TEXT NOT NULL, brand TEXT NOT NULL,"
    " wrapped_key BLOB NOT NULL, master_key_id TEXT NOT NULL, created_at TEXT NOT NULL,"
    " CONSTRAINT customer_keys_pkey PRIMARY KEY (relationship_id)) WITHOUT ROWID",
    "CREATE TABLE master_key_check (id INTEGER NOT NULL, master_key_id TEXT NOT NULL,"
    " changed_at TEXT NOT NULL, CONSTRAINT master_key_check_pkey PRIMARY KEY (id),"
    " CONSTRAINT master_key_check_one_row CHECK (id = 1))",
]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE master_key_check")
    op.execute("DROP TABLE customer_keys")
