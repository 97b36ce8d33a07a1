"""`ledger_insert_events` refuses a save by code that knows another revision (domain/storage.py).

A process started before a migration went on saving after it, in its own format: it checked the
store's revision only as it started. The function is 0009's with one more parameter, the revision
the caller's code knows (REVISIONS[-1]), compared first thing with `alembic_version`, in the
save's transaction and with no round trip of its own; if they differ, nothing is written and the
save fails with SQLSTATE `TLREV` (MESSAGE: the revision found), which the recorder turns into
StoreMigratedAway. A migration holds `alembic_version` locked for its whole transaction
(migrations/env.py), so a save either commits before it starts or reads the revision it leaves.

Every later revision that replaces this function must keep the check (a test reads it back). The
callers of 0009's signature, processes of the versions before this one, find no such function
after this revision and fail their saves: nothing they would write is stored. The downgrade puts
back 0009's function as 0009 made it.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

from migrations import replaced_once, revision_module

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_SIGNATURE_0009 = "json, text, json, json, json, text, json"

CHECK_REVISION = """DECLARE
    stored_revision text;
BEGIN
    SELECT version_num INTO stored_revision FROM alembic_version;
    IF stored_revision IS DISTINCT FROM revision THEN
        RAISE EXCEPTION USING ERRCODE = 'TLREV', MESSAGE = coalesce(stored_revision, '(none)'),
            HINT = 'the database was migrated by another version of Trust Ledger';
    END IF;
"""
"""The check, first in the function: before any write, and before the table lock is waited on."""


def _made_by_0009() -> str:
    """0009's function, as its upgrade creates it."""
    create: str = revision_module("0009_insert_events_checks_reads.py").made_by_0009()
    return create


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        create = _made_by_0009()
        create = replaced_once(create, "read_rows json\n)", "read_rows json, revision text\n)")
        create = replaced_once(create, "$$\nBEGIN\n", "$$\n" + CHECK_REVISION)
        op.execute(f"DROP FUNCTION ledger_insert_events({_SIGNATURE_0009})")
        op.execute(create)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION ledger_insert_events({_SIGNATURE_0009}, text)")
        op.execute(_made_by_0009())
