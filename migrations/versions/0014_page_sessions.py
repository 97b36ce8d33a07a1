"""The pages' sessions, kept by the server so that signing out ends them.

The pages' cookie was signed, not stored: signing out dropped the browser's copy, and a copy
taken before (a shared desk, a proxy's log) opened the pages for the rest of its 10 hours. A
session is now a row, named in the cookie by a random id and kept here as the SHA-256 of it
(as API keys are: the table alone opens no session). Signing out deletes the row; every page
request reads it joined to its key, by primary keys, in the one query that checked the key
before. `expires_at` is indexed for the sweep of ended sessions at each sign-in.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def statements(timestamp: str) -> list[str]:
    return [
        "CREATE TABLE page_sessions ("
        " session_hash CHAR(64) NOT NULL,"
        " key_id VARCHAR(32) NOT NULL,"
        f" started_at {timestamp} NOT NULL,"
        f" expires_at {timestamp} NOT NULL,"
        " CONSTRAINT page_sessions_pkey PRIMARY KEY (session_hash),"
        " CONSTRAINT page_sessions_key_fkey FOREIGN KEY (key_id) REFERENCES api_keys (key_id))",
        "CREATE INDEX page_sessions_key_idx ON page_sessions (key_id)",
        "CREATE INDEX page_sessions_expires_idx ON page_sessions (expires_at)",
    ]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    # As api_keys: SQLite keeps RFC 3339 text in UTC, which sorts as time does.
    for statement in statements("TIMESTAMPTZ" if postgres else "TEXT"):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE page_sessions")
