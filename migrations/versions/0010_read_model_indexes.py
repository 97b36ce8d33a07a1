"""Read-model indexes that answer a brand's lists without reading all its rows.

A plan audit on PostgreSQL, with one brand of 2,000 relationships, 269,000 timeline rows and
44,000 decisions, found three reads that took every row of the brand on every call:

- the customers list (`projections.relationships.customers`) is ordered by a score or by the
  latest interaction, then by the relationship id; the indexes stopped at the score, so each
  page sorted the brand's rows, on statistics taken before the brand grew. With the id at
  their end, a page is the first rows of one index scan;
- the open promises and reports behind the derived evidence (`brand_open_items`), read on every
  trust answer and, once a second per server process, for the gate's base rates: 4 ms at 2,000
  relationships, growing with them, though few relationships have anything open. A partial
  index holds only those that do;
- the compliance findings (`projections.decisions.findings`): every decision of the brand read
  and sorted, 12-36 ms. A partial index holds only the findings, in the order they are listed.

Index names start with their table's name (0002), so a rebuild copies them with the table.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ORDERED = {
    "relationships_by_brand": ("last_at", "last_at DESC"),
    "relationships_by_consistency": ("consistency", "consistency"),
    "relationships_by_honesty": ("honesty", "honesty"),
    "relationships_by_expertise": ("expertise", "expertise"),
}
"""Each list's index: its columns after the brand, before and after this migration."""

PARTIAL = [
    "CREATE INDEX relationships_open_items ON relationships (brand)"
    " WHERE open_promises <> '{}' OR open_reports <> '{}'",
    "CREATE INDEX decisions_findings ON decisions (brand, sent_at DESC, push_id)"
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after))",
]
"""Their predicates are the queries' conditions word for word, for the planner to match them."""


def upgrade() -> None:
    for name, (_, after) in ORDERED.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON relationships (brand, {after}, relationship_id)")
    for statement in PARTIAL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX decisions_findings")
    op.execute("DROP INDEX relationships_open_items")
    for name, (before, _) in ORDERED.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON relationships (brand, {before})")
