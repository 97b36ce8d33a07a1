"""Indexes for paging the customers list and the findings by where the last page ended.

Both lists paged by OFFSET: a customer who became the most recent (or the lowest) between two
pages, or a new finding, pushed every row down one, and the next page repeated a row; and a deep
page read all the rows before it. A page now starts after the last row of the one before: a row
comparison, `(last_at, relationship_id) < (?, ?)`, which an index answers only when its columns
run the list's way. The latest-first lists broke their ties by the id ascending, against their
time's descending order; both now descend.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FINDINGS = (
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after))"
)
"""The findings' condition, word for word as projections/decisions.py asks it."""


def _indexes(by_brand: str, findings: str) -> None:
    op.execute("DROP INDEX relationships_by_brand")
    op.execute(f"CREATE INDEX relationships_by_brand ON relationships (brand, {by_brand})")
    op.execute("DROP INDEX decisions_findings")
    op.execute(f"CREATE INDEX decisions_findings ON decisions (brand, {findings}){FINDINGS}")


def upgrade() -> None:
    _indexes("last_at DESC, relationship_id DESC", "sent_at DESC, push_id DESC")


def downgrade() -> None:
    _indexes("last_at DESC, relationship_id", "sent_at DESC, push_id")
