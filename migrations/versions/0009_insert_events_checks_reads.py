"""`ledger_insert_events` also checks what the command read and does not write (domain/recorders.py).

A push decision reads its brand's policy and saves only the relationship. The relationship's
version is checked by its insert; the policy's was not, so a decision could be recorded under a
policy changed since it was read. The function is 0007's with one more row set, (aggregate id,
version read), checked under the table lock, where no writer can come in between: if any of those
aggregates has a later version, the save fails with a unique violation, as on a version already
taken. The downgrade puts back 0007's function as 0007 made it.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

from migrations import replaced_once, revision_module

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SIGNATURE = "json, text, json, json, json, text"

_CHECK_READS = """    IF read_rows IS NOT NULL AND EXISTS (
        SELECT 1 FROM json_to_recordset(read_rows) AS x(r uuid, v bigint)
        WHERE coalesce((SELECT max(originator_version) FROM ledger_events
                        WHERE originator_id = x.r), 0) <> x.v
    ) THEN
        RAISE unique_violation USING MESSAGE = 'an aggregate the command read has a later version';
    END IF;
"""


def _made_by_0007() -> str:
    create: str = revision_module("0007_insert_events_function.py").CREATE
    return create


def made_by_0009() -> str:
    """The function this revision creates (0018 builds on it)."""
    create = _made_by_0007()
    create = replaced_once(create, "lock_timeout text\n)", "lock_timeout text, read_rows json\n)")
    return replaced_once(
        create, "    NOTIFY ledger_events;\n", _CHECK_READS + "    NOTIFY ledger_events;\n"
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION ledger_insert_events({_SIGNATURE})")
        op.execute(made_by_0009())


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION ledger_insert_events({_SIGNATURE}, json)")
        op.execute(_made_by_0007())
