"""Findings of pushes sent after the consent they relied on had expired.

An offer or advice push the gate allowed (or deferred) relied on a grant; if the customer's
latest act on its purpose and channel at the send's time, in event time, was a grant whose
`expires_at` had come, the send is a finding too ("sent after its consent expired", the grant
as its evidence), as one after a withdrawal is (0015). `consent_acts` gains the grants'
`expires_at`; a decision's row gains `consent_ended` ("withdrawn" or "expired"), which names the
finding, beside `withdrawn_at` (the withdrawal's time, or the expiry) and `withdrawn_by` (the
withdrawal, or the grant that lapsed). The findings' condition and index are unchanged.

The grants recorded before this revision have no expiry in `consent_acts`: this revision empties
the decisions read model and moves its position back to the start of the log, and `trustledger
migrate` rebuilds the read models from the log (as after 0016).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _empty_decisions() -> None:
    """The decisions read model emptied, to be refilled from the log with the code after this
    revision (on SQLite under secure_delete, as 0016: its requests' customers were sealed)."""
    if op.get_context().dialect.name == "postgresql":
        op.execute("TRUNCATE decisions, consent_acts")
    else:
        op.execute("PRAGMA secure_delete = ON")
        op.execute("DELETE FROM decisions")
        op.execute("DELETE FROM consent_acts")
    op.execute("UPDATE projection_positions SET position = 0 WHERE name = 'decisions'")


def upgrade() -> None:
    op.execute("ALTER TABLE consent_acts ADD COLUMN expires_at TEXT")
    op.execute("ALTER TABLE decisions ADD COLUMN consent_ended TEXT")
    _empty_decisions()


def downgrade() -> None:
    _empty_decisions()
    op.execute("ALTER TABLE decisions DROP COLUMN consent_ended")
    op.execute("ALTER TABLE consent_acts DROP COLUMN expires_at")
