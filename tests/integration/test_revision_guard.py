"""A process left running across a migration writes nothing in its old format (RevisionGuard).

Each test plays the process that was running when another version migrated the store: it opens
the store at the head, then the store is moved to a revision this code does not know (NEWER,
written into `alembic_version` as a migration would leave it), and the process goes on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from api.app import close_app, create_app, resources_of
from api.auth import KeyStore
from domain.application import Ledger
from domain.errors import StoreMigratedAway
from domain.relationship import relationship_id
from domain.storage import REVISIONS, Store
from migrations import hold_off_writers
from projections.db import Database
from projections.runner import Runner
from tests.conftest import TEST_MASTER_KEY, new_postgres_database, open_ledger
from tests.e2e.conftest import as_json
from tests.e2e.test_pages import sign_in
from tests.factories import posted, story
from tests.integration.test_master_key import ROOT, cli
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


def test_the_runner_applies_nothing_after_the_store_was_migrated_on(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record_batch(brand, story(customer))
    runner = Runner(ledger)
    before = runner.positions()
    migrate_to(ledger.store, NEWER)
    with pytest.raises(StoreMigratedAway, match=REFUSED):
        runner.run_once()
    with pytest.raises(StoreMigratedAway, match=REFUSED):
        runner.run_forever(threading.Event())  # stops at once, rather than retry
    migrate_to(ledger.store, REVISIONS[-1])  # to read what is there
    assert runner.positions() == before
    assert rows_of(runner.db, ledger, brand, customer)["timeline"] == 0
    runner.run_once()  # the code of the store's revision applies them
    assert rows_of(runner.db, ledger, brand, customer)["timeline"] == len(story(customer))
    runner.close()


def test_the_runner_thread_stops_with_one_line(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    runner = Runner(ledger)
    migrate_to(ledger.store, NEWER)
    with caplog.at_level(logging.INFO, logger="trustledger.projections"):
        others = set(threading.enumerate())
        halt = runner.start()
        for thread in set(threading.enumerate()) - others:  # it ends on its own (or has)
            thread.join(timeout=30)
            assert not thread.is_alive()
        halt()
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert lines == [("ERROR", f"read models stopped: {REFUSED}; restart this process", None)]
    runner.close()


@pytest.fixture
def app(empty_store: Store) -> Iterator[Flask]:
    app = create_app({"database_url": empty_store.url})
    yield app
    close_app(app)


def test_the_api_and_pages_answer_503_and_store_nothing(app: Flask, empty_store: Store) -> None:
    keys = KeyStore(empty_store)
    brand, customer = random_brand(), random_customer()
    headers = {"Authorization": f"Bearer {keys.create(brand, 'brand').key}"}
    agent = keys.create(brand, "agent").key
    client = app.test_client()
    first = posted("question.answered", customer, case_id="c1", topic="billing", resolved=True)
    assert client.post("/v1/events", json=as_json(first), headers=headers).status_code == 201
    assert sign_in(client, agent) == 302
    db = Database(empty_store)
    before = rows_of(db, resources_of(app).ledger, brand, customer)
    migrate_to(empty_store, NEWER)

    second = posted("question.answered", customer, case_id="c2", topic="billing", resolved=True)
    answer = client.post("/v1/events", json=as_json(second), headers=headers)
    assert answer.status_code == 503 and answer.mimetype == "application/problem+json"
    body = answer.get_json()
    assert body["type"] == "urn:trustledger:problem:store-migrated"
    assert body["status"] == 503 and body["detail"] == f"{REFUSED}; restart this process"
    # Remembered: every call answers the same from now on, reads and pages included.
    timeline = client.get(f"/v1/customers/{customer}/timeline", headers=headers)
    assert timeline.status_code == 503 and timeline.get_json()["detail"] == body["detail"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200  # the process is up: restarting it helps
    page = client.get(f"/ui/customers/{customer}/timeline")
    assert page.status_code == 503 and REFUSED in page.get_data(as_text=True)

    assert rows_of(db, resources_of(app).ledger, brand, customer) == before
    db.close()
    keys.close()


def test_a_page_session_refused_is_remembered_by_the_api(app: Flask, empty_store: Store) -> None:
    """The key store, the ledger and the read side of a process share one guard: what one found,
    every call answers, those that read only the log (a brand's policy) included."""
    keys = KeyStore(empty_store)
    brand = random_brand()
    headers = {"Authorization": f"Bearer {keys.create(brand, 'brand').key}"}
    agent = keys.create(brand, "agent").key
    client = app.test_client()
    assert client.get("/v1/policy", headers=headers).status_code == 200
    migrate_to(empty_store, NEWER)
    assert sign_in(client, agent) == 503  # its session is not stored
    answer = client.get("/v1/policy", headers=headers)
    assert answer.status_code == 503
    assert answer.get_json()["type"] == "urn:trustledger:problem:store-migrated"
    keys.close()


def test_a_read_is_the_first_call_to_notice(app: Flask, empty_store: Store) -> None:
    """Reads catch the read models up first, and that reads the revision with the positions."""
    keys = KeyStore(empty_store)
    headers = {"Authorization": f"Bearer {keys.create(random_brand(), 'agent').key}"}
    client = app.test_client()
    assert client.get("/v1/trust", headers=headers).status_code == 200
    migrate_to(empty_store, NEWER)
    answer = client.get("/v1/trust", headers=headers)
    assert answer.status_code == 503
    assert answer.get_json()["type"] == "urn:trustledger:problem:store-migrated"
    keys.close()


def test_key_commands_refuse_a_store_migrated_on_in_one_line(empty_store: Store) -> None:
    """As every command that opens the ledger, at start (the key store's own writes are guarded
    too: test_a_page_session_refused_is_remembered_by_the_api)."""
    migrate_to(empty_store, NEWER)
    done = cli(
        "--database-url",
        empty_store.url,
        "keys",
        "create",
        "--brand",
        random_brand(),
        "--role",
        "agent",
    )
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr == (
        f"trustledger: database: at revision {NEWER}, and this version of Trust Ledger needs"
        f" {REVISIONS[-1]}: a newer version migrated it\n"
    )
    migrate_to(empty_store, REVISIONS[-1])
    keys = KeyStore(empty_store)
    assert keys.every() == []
    keys.close()


def test_the_projection_worker_exits_with_one_line(empty_store: Store) -> None:
    env = {"TRUSTLEDGER_MASTER_KEY": TEST_MASTER_KEY.encoded()}
    worker = subprocess.Popen(
        [sys.executable, "-m", "api", "--database-url", empty_store.url, "project"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TRUSTLEDGER_")}, **env},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    assert worker.stderr.readline().startswith("following the log from position")
    migrate_to(empty_store, NEWER)
    try:
        returncode = worker.wait(timeout=60)
    finally:
        worker.kill()
    assert returncode == 1
    assert worker.stderr.read() == f"trustledger: {REFUSED}; restart this process\n"


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
        waiting_on_locks(store, 1)
    engine.dispose()
    saving.join()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreMigratedAway), outcome
    migrate_to(store, REVISIONS[-1])
    assert rows_of(Database(store), ledger, brand, customer) == before
    ledger.close()


@pytest.mark.postgres
def test_a_key_write_and_a_migration_of_its_table_take_turns_rather_than_deadlock() -> None:
    """A key write reads the revision first on PostgreSQL, which holds alembic_version share-locked
    to its commit: a migration then waits for it whole. Read last, after its inserts, a migration
    that had locked alembic_version meanwhile and then wanted a table the write had written (a
    later version altering `brands`) deadlocked with it, and PostgreSQL aborted one of the two."""
    store = new_postgres_database()
    keys = KeyStore(store, cache_seconds=0)
    brand = random_brand()
    outcomes: dict[str, object] = {}

    def create_key() -> None:
        try:
            outcomes["key"] = keys.create(brand, "brand").info.brand
        except Exception as error:
            outcomes["key"] = error

    def migration() -> None:
        engine = create_engine(store.sqlalchemy_url())
        try:
            with engine.begin() as conn:
                hold_off_writers(conn)
                conn.execute(text("LOCK TABLE brands IN ACCESS EXCLUSIVE MODE"))
            outcomes["migration"] = "committed"
        except Exception as error:
            outcomes["migration"] = error
        finally:
            engine.dispose()

    with psycopg.connect(store.conninfo()) as holder:  # the key write waits on its row
        holder.execute("INSERT INTO brands (slug, created_at) VALUES (%s, now())", [brand])
        writing = threading.Thread(target=create_key)
        writing.start()
        waiting_on_locks(store, 1)
        migrating = threading.Thread(target=migration)
        migrating.start()
        waiting_on_locks(store, 2)
        holder.rollback()
    writing.join(30)
    migrating.join(30)
    keys.close()
    assert outcomes == {"key": brand, "migration": "committed"}, outcomes


def waiting_on_locks(store: Store, sessions: int) -> None:
    """Returns once that many other sessions wait for a lock."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        for _ in range(600):
            row = conn.execute(query).fetchone()
            if row and row[0] >= sessions:
                return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {sessions} sessions waited for a lock")
