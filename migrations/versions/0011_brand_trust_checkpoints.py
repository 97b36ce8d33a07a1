"""Checkpoints of each brand's trust, so a replay "as of" a record time starts near it.

A brand's scores as the ledger knew them at a past record time (`/v1/trust?as_of=`, and the base
rate of a customer's trust `as_of`) were folded again from the brand's first timeline row: 1.3-1.6 s
at 123,000 rows, growing with its history. The relationships read model now writes, each time one
of a brand's events is the first past a multiple of `CHECKPOINT_EVERY` log positions, the brand's
evidence and its relationships' open items as they stood before it (projections/relationships.py);
a replay starts from the latest checkpoint taken of rows all recorded by the time asked.

`brand_trust` keeps what that needs: the position of the brand's latest event and the latest
record time among its events. Rows made before this migration get both from the timeline (the
read models move together, in one transaction a page); the checkpoints before it are missing until
`trustledger rebuild --projection relationships` makes them (a replay without one starts from the
beginning, as before).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE brand_trust_checkpoints (brand TEXT NOT NULL, position BIGINT NOT NULL,"
        " recorded_until TEXT NOT NULL, evidence TEXT NOT NULL, open_items TEXT NOT NULL,"
        " CONSTRAINT brand_trust_checkpoints_pkey PRIMARY KEY (brand, position))"
    )
    op.execute("ALTER TABLE brand_trust ADD COLUMN last_position BIGINT")
    op.execute("ALTER TABLE brand_trust ADD COLUMN recorded_until TEXT")
    op.execute(
        "UPDATE brand_trust SET"
        " last_position = (SELECT max(position) FROM timeline t WHERE t.brand = brand_trust.brand),"
        " recorded_until = (SELECT max(recorded_at) FROM timeline t WHERE t.brand = brand_trust.brand)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE brand_trust DROP COLUMN recorded_until")
    op.execute("ALTER TABLE brand_trust DROP COLUMN last_position")
    op.execute("DROP TABLE brand_trust_checkpoints")
