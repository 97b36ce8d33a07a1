"""A relationship's snapshots pruned to its latest and one anchor every 200 versions.

From this revision the ledger's snapshot recorders (domain/recorders.py SNAPSHOT_ANCHOR) delete,
with each snapshot they write, the relationship's earlier snapshots but the first of each span
of 200 versions. This revision deletes once what the ledger kept before it: every snapshot
that is neither its relationship's latest nor the first of its span. The anchor is written out
here (200), not imported: a later change of the constant must not change what this did.

One statement. A migration runs in one transaction (migrations/env.py) that holds writers off to
its commit on either store, so batches inside it would hold them off as long; readers go on.
Measured on the development machine (docs/recording.md, "Snapshots kept"), the delete took
13-29 µs a deleted snapshot on PostgreSQL and about 200 µs on SQLite (a 32 kB state's pages
freed each): a 100,000-event relationship's 5,000, 0.1 s and 1 s. A store holding millions of
them is a maintenance window's work: count them first.

Its downgrade deletes nothing more and restores nothing: a snapshot is a cache of its
relationship's events, which are all kept; the code before reads the latest at or before a
version wherever it is.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

ANCHOR = 200

PRUNE = (
    "DELETE FROM {table} WHERE (originator_id, originator_version) IN ("
    " SELECT originator_id, originator_version FROM ("
    "  SELECT originator_id, originator_version,"
    f"   row_number() OVER (PARTITION BY originator_id, originator_version / {ANCHOR}"
    "    ORDER BY originator_version) AS nth,"
    "   max(originator_version) OVER (PARTITION BY originator_id) AS latest"
    "  FROM {table}) AS ranked"
    " WHERE nth > 1 AND originator_version < latest)"
)
"""Deletes every snapshot but each relationship's latest and each span's first."""


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    op.execute(PRUNE.format(table="ledger_snapshots" if postgres else "stored_snapshots"))


def downgrade() -> None:
    pass
