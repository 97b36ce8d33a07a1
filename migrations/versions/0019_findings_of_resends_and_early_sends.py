"""Findings of a push sent again under one decision, and of one sent before it was decided.

A `push.sent` with a push id already sent is recorded (another event id: the same event id is
answered the same and stored once), so one allow could cover any number of sends. The decisions
row now keeps a push's first send in event time (at the same instant, the one recorded first,
`sent_sequence`), and `resends` keeps every other send of it, one row each: each is a finding
("sent again under the same decision", unless an earlier finding in FINDINGS' order applies to
it), newest sent first by `resends_findings`.

A send dated more than the clocks' tolerance (domain/gate.py SEND_AT_TOLERANCE, 5 minutes)
before its decision is a finding too ("sent before it was decided"): the row gains
`decided_from`, the decision's time less the tolerance, and the findings' condition (and their
partial index, word for word) gains `OR sent_at < decided_from`.

Rows written before this revision have neither, and their later sends overwrote their first:
this revision empties the decisions read model and moves its position back to the start of the
log, and `trustledger migrate` rebuilds the read models from the log (as after 0017).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

from migrations import revision_module

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

WITHDRAWALS = revision_module("0015_findings_after_withdrawal.py")
EXPIRY = revision_module("0017_findings_after_expiry.py")
BEFORE: str = WITHDRAWALS.AFTER
AFTER = BEFORE[:-1] + " OR sent_at < decided_from)"
"""The findings' condition, word for word as projections/decisions.py asks it."""


def _empty_decisions() -> None:
    """The decisions read model emptied at position 0, as 0017 empties it, `resends` with it."""
    EXPIRY._empty_decisions()
    op.execute("DELETE FROM resends")


def upgrade() -> None:
    op.execute("ALTER TABLE decisions ADD COLUMN decided_from TEXT")
    op.execute("ALTER TABLE decisions ADD COLUMN sent_sequence BIGINT")
    op.execute(
        "CREATE TABLE resends (brand TEXT NOT NULL, push_id TEXT NOT NULL,"
        " sequence BIGINT NOT NULL, relationship_id TEXT NOT NULL, sent_at TEXT NOT NULL,"
        " sent_channel TEXT, sent_event_id TEXT NOT NULL,"
        " CONSTRAINT resends_pkey PRIMARY KEY (brand, push_id, sequence))"
    )
    op.execute(
        "CREATE INDEX resends_findings ON resends (brand, sent_at DESC, push_id DESC, sequence DESC)"
    )
    WITHDRAWALS._findings_index(AFTER)
    _empty_decisions()


def downgrade() -> None:
    _empty_decisions()
    WITHDRAWALS._findings_index(BEFORE)
    op.execute("DROP TABLE resends")
    op.execute("ALTER TABLE decisions DROP COLUMN sent_sequence")
    op.execute("ALTER TABLE decisions DROP COLUMN decided_from")
