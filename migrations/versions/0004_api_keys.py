"""API keys and the brands they belong to.

A key is stored only as the SHA-256 of the whole key (256 random bits, so a fast hash is enough);
`key_id` is the public part of the key, used to find the row and to list or revoke it. The API
reads these tables with sqlite3 or psycopg directly (api/auth.py), not through SQLAlchemy.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"  # main's customer keys; re-chain if main takes 0004 first
branch_labels = None
depends_on = None


def statements(timestamp: str) -> list[str]:
    return [
        "CREATE TABLE brands ("
        " slug VARCHAR(63) NOT NULL,"
        f" created_at {timestamp} NOT NULL,"
        " CONSTRAINT brands_pkey PRIMARY KEY (slug))",
        "CREATE TABLE api_keys ("
        " key_id VARCHAR(32) NOT NULL,"
        " brand VARCHAR(63) NOT NULL,"
        " role VARCHAR(16) NOT NULL,"
        " secret_hash CHAR(64) NOT NULL,"
        f" created_at {timestamp} NOT NULL,"
        f" revoked_at {timestamp},"
        " CONSTRAINT api_keys_pkey PRIMARY KEY (key_id),"
        " CONSTRAINT api_keys_brand_fkey FOREIGN KEY (brand) REFERENCES brands (slug),"
        " CONSTRAINT api_keys_role_check CHECK (role IN ('brand', 'agent', 'compliance')))",
        "CREATE INDEX api_keys_brand_idx ON api_keys (brand)",
    ]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    # SQLite keeps timestamps as RFC 3339 text, which sorts as time does when all are in UTC.
    for statement in statements("TIMESTAMPTZ" if postgres else "TEXT"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE brands")
