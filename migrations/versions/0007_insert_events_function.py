"""`ledger_insert_events`: a save's writes in one function call, on PostgreSQL (domain/recorders.py).

A save was five statements sent as one simple query: the server parsed and planned each of them
again on every save, and psycopg quoted every parameter in Python. As a function, called through
a prepared statement, its statements' plans are kept by the session and the parameters go as
they are. What it does is what the five statements did, in the same order and transaction:

- new customer keys, after checking (FOR SHARE, so waiting for a rotation in progress) that the
  key table is bound to the master key that wrapped them; division by zero if it is not;
- the event ids and push ids the save claims (their primary keys refuse a repeat), before the
  lock, so a repeated id fails without holding up other saves;
- the eventsourcing library's table lock, with its lock timeout, and its NOTIFY;
- the events, returning their notification ids.

Each row set is one JSON array of objects (bytes in base64), or NULL for none. This is not the
library's `es_insert_events_uuid`, whose insert skips the table lock (see 0001).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CREATE = """
CREATE FUNCTION ledger_insert_events(
    key_rows json, master_key text, event_id_rows json, push_id_rows json, event_rows json,
    lock_timeout text
) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    IF key_rows IS NOT NULL THEN
        PERFORM 1 / (c.master_key_id = master_key)::int
            FROM master_key_check c WHERE c.id = 1 FOR SHARE;
        INSERT INTO customer_keys (relationship_id, brand, wrapped_key, master_key_id, created_at)
            SELECT r, b, decode(w, 'base64'), m, c FROM json_to_recordset(key_rows)
            AS k(r uuid, b text, w text, m text, c timestamptz);
    END IF;
    IF event_id_rows IS NOT NULL THEN
        INSERT INTO event_ids
            (brand, event_id, relationship_id, sequence, fingerprint, recorded_at)
            SELECT b, e, r, s, f, t FROM json_to_recordset(event_id_rows)
            AS c(b text, e text, r uuid, s bigint, f text, t timestamptz);
    END IF;
    IF push_id_rows IS NOT NULL THEN
        INSERT INTO push_ids (brand, push_id, relationship_id)
            SELECT b, p, r FROM json_to_recordset(push_id_rows) AS x(b text, p text, r uuid);
    END IF;
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE ledger_events IN EXCLUSIVE MODE;
    NOTIFY ledger_events;
    RETURN QUERY
        INSERT INTO ledger_events (originator_id, originator_version, topic, state)
            SELECT r, v, t, decode(s, 'base64') FROM json_to_recordset(event_rows)
            AS e(r uuid, v bigint, t text, s text)
        RETURNING notification_id;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_insert_events(json, text, json, json, json, text)")
