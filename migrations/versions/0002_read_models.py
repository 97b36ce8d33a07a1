"""Read models: timeline, consent history, relationships, push decisions, and their positions.

Timestamps are fixed-width UTC text and ids are text on both stores (see projections/db.py), so
one SQL serves SQLite and PostgreSQL. Every index name starts with its table's name.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

READ_MODELS = ("timeline", "consents", "relationships", "decisions")

STATEMENTS = [
    "CREATE TABLE projection_positions (name TEXT NOT NULL, position BIGINT NOT NULL,"
    " CONSTRAINT projection_positions_pkey PRIMARY KEY (name))",
    "CREATE TABLE timeline (relationship_id TEXT NOT NULL, sequence BIGINT NOT NULL,"
    " brand TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL, occurred_at TEXT NOT NULL,"
    " recorded_at TEXT NOT NULL, actor TEXT, channel TEXT, summary TEXT NOT NULL, data TEXT NOT NULL,"
    " position BIGINT NOT NULL, CONSTRAINT timeline_pkey PRIMARY KEY (relationship_id, sequence))",
    "CREATE INDEX timeline_by_type ON timeline (relationship_id, type, sequence)",
    "CREATE INDEX timeline_by_brand ON timeline (brand, position)",
    "CREATE INDEX timeline_by_event ON timeline (brand, event_id)",
    "CREATE TABLE consents (relationship_id TEXT NOT NULL, purpose TEXT NOT NULL, channel TEXT NOT NULL,"
    " sequence BIGINT NOT NULL, brand TEXT NOT NULL, status TEXT NOT NULL, data_categories TEXT NOT NULL,"
    " notice_version TEXT, method TEXT, jurisdiction TEXT, since TEXT NOT NULL, expires_at TEXT,"
    " event_id TEXT NOT NULL, recorded_at TEXT NOT NULL,"
    " CONSTRAINT consents_pkey PRIMARY KEY (relationship_id, purpose, channel, sequence))",
    "CREATE TABLE relationships (relationship_id TEXT NOT NULL, brand TEXT NOT NULL,"
    " customer TEXT NOT NULL, sequence BIGINT NOT NULL, events BIGINT NOT NULL, first_at TEXT,"
    " last_at TEXT, opened_at TEXT NOT NULL, counts TEXT NOT NULL, open_promises TEXT NOT NULL,"
    " open_reports TEXT NOT NULL, evidence TEXT NOT NULL, consistency DOUBLE PRECISION NOT NULL,"
    " honesty DOUBLE PRECISION NOT NULL, expertise DOUBLE PRECISION NOT NULL,"
    " CONSTRAINT relationships_pkey PRIMARY KEY (relationship_id))",
    "CREATE INDEX relationships_by_brand ON relationships (brand, last_at)",
    "CREATE INDEX relationships_by_consistency ON relationships (brand, consistency)",
    "CREATE INDEX relationships_by_honesty ON relationships (brand, honesty)",
    "CREATE INDEX relationships_by_expertise ON relationships (brand, expertise)",
    "CREATE TABLE brand_trust (brand TEXT NOT NULL, evidence TEXT NOT NULL,"
    " CONSTRAINT brand_trust_pkey PRIMARY KEY (brand))",
    "CREATE TABLE decisions (brand TEXT NOT NULL, push_id TEXT NOT NULL, relationship_id TEXT NOT NULL,"
    " sequence BIGINT, event_id TEXT, decided_at TEXT, recorded_at TEXT, outcome TEXT, kind TEXT,"
    " purpose TEXT, channel TEXT, retry_after TEXT, policy_version BIGINT, request TEXT, decision TEXT,"
    " sent_at TEXT, sent_channel TEXT, sent_event_id TEXT,"
    " CONSTRAINT decisions_pkey PRIMARY KEY (brand, push_id))",
    "CREATE INDEX decisions_by_relationship ON decisions (relationship_id, decided_at)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    for name in READ_MODELS:
        op.execute(f"INSERT INTO projection_positions (name, position) VALUES ('{name}', 0)")


def downgrade() -> None:
    for table in (
        "decisions",
        "brand_trust",
        "relationships",
        "consents",
        "timeline",
        "projection_positions",
    ):
        op.execute(f"DROP TABLE {table}")
