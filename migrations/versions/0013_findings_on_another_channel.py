"""The findings' partial index also holds pushes sent on another channel than the one decided.

An allow (or a defer's retry time) is for the channel the gate was asked about, since consent is
per purpose and channel; a push sent on another channel had no allow there, and was not listed
as a finding. The findings' condition gains `OR sent_channel <> channel`, and so does the
partial index that holds them, word for word, for the planner to match it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BEFORE = (
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after))"
)
AFTER = (
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
    " OR sent_channel <> channel)"
)
"""The findings' condition, word for word as projections/decisions.py asks it."""


def _findings_index(condition: str) -> None:
    op.execute("DROP INDEX decisions_findings")
    op.execute(
        f"CREATE INDEX decisions_findings ON decisions (brand, sent_at DESC, push_id DESC){condition}"
    )


def upgrade() -> None:
    _findings_index(AFTER)


def downgrade() -> None:
    _findings_index(BEFORE)
