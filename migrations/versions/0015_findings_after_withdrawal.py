"""Findings of pushes sent after the consent they relied on was withdrawn.

An offer or advice push the gate allowed (or deferred) relied on the customer's consent for its
purpose on its channel. If the customer's latest act there, in event time, at the moment the
push was sent was a withdrawal (an objection on that channel included), the send is a finding.
The decisions read model keeps, per relationship, every consent act in `consent_acts` (a grant,
a withdrawal, an `unsubscribed` reaction as the withdrawal it is) and every send (`act` "sent",
with its `push_id`), so that it judges each send again whenever an act or a send arrives, in
whatever order they were posted, reading by the primary key alone (a rebuild's copy of
`decisions` has no index by relationship until the end); it writes the withdrawal found on the
push's row (`withdrawn_at`, `withdrawn_by`). The key leads with the relationship and the kind
of act, so a relationship's consent acts are read without its sends, however many. The findings' condition
gains `OR withdrawn_by IS NOT NULL`, and so does their partial index, word for word.

Pushes sent before this migration are judged once `trustledger rebuild --projection decisions`
has replayed the log into these tables; until then only acts recorded since are known.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BEFORE = (
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
    " OR sent_channel <> channel)"
)
AFTER = (
    " WHERE sent_at IS NOT NULL"
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
    " OR sent_channel <> channel OR withdrawn_by IS NOT NULL)"
)
"""The findings' condition, word for word as projections/decisions.py asks it."""


def _findings_index(condition: str) -> None:
    op.execute("DROP INDEX decisions_findings")
    op.execute(
        f"CREATE INDEX decisions_findings ON decisions (brand, sent_at DESC, push_id DESC){condition}"
    )


def upgrade() -> None:
    op.execute(
        "CREATE TABLE consent_acts (relationship_id TEXT NOT NULL, sequence BIGINT NOT NULL,"
        " act TEXT NOT NULL, purpose TEXT, channels TEXT, occurred_at TEXT NOT NULL,"
        " event_id TEXT NOT NULL, push_id TEXT,"
        " CONSTRAINT consent_acts_pkey PRIMARY KEY (relationship_id, act, sequence))"
    )
    op.execute("ALTER TABLE decisions ADD COLUMN withdrawn_at TEXT")
    op.execute("ALTER TABLE decisions ADD COLUMN withdrawn_by TEXT")
    _findings_index(AFTER)


def downgrade() -> None:
    _findings_index(BEFORE)
    op.execute("ALTER TABLE decisions DROP COLUMN withdrawn_by")
    op.execute("ALTER TABLE decisions DROP COLUMN withdrawn_at")
    op.execute("DROP TABLE consent_acts")
