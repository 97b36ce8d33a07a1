"""A process left running across a migration writes nothing in its old format (RevisionGuard).

Each test plays the process that was running when another version migrated the store: it opens
the store at the head, then the store is moved to a revision this code does not know (NEWER,
written into `alembic_version` as a migration would leave it), and the process goes on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import psycopg
import pytest
from sqlalchemy import create_engine, text

from domain.application import Ledger
from domain.errors import StoreMigratedAway
from domain.relationship import relationship_id
from domain.storage import REVISIONS, Store
from migrations import hold_off_writers
from projections.db import Database
from tests.conftest import new_postgres_database, open_ledger
from tests.factories import posted, story
from tests.random_refs import random_brand, random_customer

NEWER = "0999"
"""A revision of a later version than this one."""
REFUSED = f"the database was migrated to revision {NEWER} by another version of Trust Ledger"


def migrate_to(store: Store, revision: str) -> None:
    """What another version's `trustledger migrate` leaves in the store's revision."""
    statement = f"UPDATE alembic_version SET version_num = '{revision}'"
    if store.is_sqlite:
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute(statement)
        return
    with psycopg.connect(store.conninfo()) as pg:
        pg.execute(statement)


@pytest.fixture
def ledger(empty_store: Store) -> Iterator[Ledger]:
    """A ledger of its own store (the test moves the store's revision)."""
    ledger = open_ledger(empty_store)
    yield ledger
    ledger.close()


def rows_of(db: Database, ledger: Ledger, brand: str, customer: str) -> dict[str, int]:
    """How many rows the store holds of the customer: events, event-id claims, key, read models."""
    rid = relationship_id(brand, customer)
    key = rid.hex if db.is_sqlite else rid
    table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    counts = {
        "events": f"SELECT count(*) FROM {table} WHERE originator_id = ?",
        "event_ids": "SELECT count(*) FROM event_ids WHERE relationship_id = ?",
        "customer_keys": "SELECT count(*) FROM customer_keys WHERE relationship_id = ?",
        "timeline": "SELECT count(*) FROM timeline WHERE relationship_id = ?",
        "relationships": "SELECT count(*) FROM relationships WHERE relationship_id = ?",
    }
    return {
        name: db.scalar(
            query, [key if name != "timeline" and name != "relationships" else str(rid)]
        )
        for name, query in counts.items()
    }


def test_a_save_after_the_store_was_migrated_on_stores_nothing(ledger: Ledger) -> None:
    brand, known, new = random_brand(), random_customer(), random_customer()
    ledger.record_batch(brand, story(known))
    migrate_to(ledger.store, NEWER)
    db = Database(ledger.store)
    before = rows_of(db, ledger, brand, known)
    assert before["events"] and before["event_ids"] and before["customer_keys"] == 1
    for customer in (known, new):  # an append, and a new customer's first event (with its key)
        with pytest.raises(StoreMigratedAway, match=REFUSED):
            ledger.record(
                brand,
                posted("question.answered", customer, case_id="c9", topic="billing", resolved=True),
            )
    assert rows_of(db, ledger, brand, known) == before
    assert set(rows_of(db, ledger, brand, new).values()) == {0}
    assert ledger.store.guard.moved_to == NEWER
    db.close()


@pytest.mark.postgres
def test_a_save_made_during_a_migration_waits_for_it_then_is_refused() -> None:
    """A migration holds alembic_version locked (migrations/env.py): a save reading it waits for
    the migration's commit and then reads its revision, rather than slip in before it."""
    store = new_postgres_database()
    ledger = open_ledger(store)
    brand, customer = random_brand(), random_customer()
    ledger.record_batch(brand, story(customer))
    before = rows_of(Database(store), ledger, brand, customer)
    outcome: list[object] = []

    def save() -> None:
        event = posted("question.answered", customer, case_id="c9", topic="x", resolved=True)
        try:
            outcome.append(ledger.record(brand, event))
        except StoreMigratedAway as error:
            outcome.append(error)

    engine = create_engine(store.sqlalchemy_url())
    with engine.begin() as migration:
        hold_off_writers(migration)
        migration.execute(text(f"UPDATE alembic_version SET version_num = '{NEWER}'"))
        saving = threading.Thread(target=save)
        saving.start()
        waiting_on_the_lock(store)
    engine.dispose()
    saving.join()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreMigratedAway), outcome
    migrate_to(store, REVISIONS[-1])
    assert rows_of(Database(store), ledger, brand, customer) == before
    ledger.close()


def waiting_on_the_lock(store: Store) -> None:
    """Returns once another session waits for a lock on alembic_version."""
    query = (
        "SELECT count(*) FROM pg_locks WHERE NOT granted"
        " AND relation = to_regclass('alembic_version')"
    )
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        for _ in range(600):
            row = conn.execute(query).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("no session waited for the migration")
