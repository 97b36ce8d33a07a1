"""The read models hold no personal value in clear, and erasure reaches them: what they wrote
before it is ciphertext under the destroyed key, what they hold after it reads "[erased]", and a
rebuild agrees with both."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.application import Ledger
from domain.relationship import ERASED, relationship_id
from domain.shredding import SEALED_VALUE, TamperedPersonalData
from domain.storage import Store
from projections.consents import consents
from projections.db import Database
from projections.decisions import decisions_of
from projections.personal import opened
from projections.relationships import customers
from projections.runner import READ_MODELS, Runner
from projections.timeline import timeline_page
from tests.conftest import open_ledger
from tests.factories import LATER
from tests.integration.test_canary import Canaries, found, raw_storage, record
from tests.random_refs import random_brand

READ_MODEL_TABLES = sorted({table for model in READ_MODELS for table in model.tables})


def raw_rows(db: Database, tables: Iterable[str] = READ_MODEL_TABLES) -> list[bytes]:
    """Every row of every read-model table (of `tables`), each value as the database returns it."""
    return [repr(db.query(f"SELECT * FROM {table}")).encode() for table in tables]


def clear_in(canaries: Canaries, blobs: list[bytes]) -> list[str]:
    """Where the customer's personal values are found in clear (raw, hex or base64)."""
    return [where for where, value in canaries.personal.items() if found(value.encode(), blobs)]


def promise_summary(db: Database, brand: str, customer: str) -> tuple[int, str]:
    """The stored summary of the customer's first promise.made row, and its sequence."""
    rows = db.query(
        "SELECT sequence, summary FROM timeline WHERE relationship_id = ? AND type = ?"
        " ORDER BY sequence LIMIT 1",
        [str(relationship_id(brand, customer)), "promise.made"],
    )
    return rows[0][0], rows[0][1]


def shown(db: Database, brand: str, canaries: Canaries) -> dict[str, Any]:
    """What the reads show of the customer: the promise's summaries, the actor, the list's
    reference, and the customer in the push's decision."""
    items = timeline_page(db, brand, canaries.customer, limit=200).items
    made = next(item for item in items if item["type"] == "promise.made")
    listed = [row for row in customers(db, brand).items if row["customer"] != "[erased]"]
    rid = str(relationship_id(brand, canaries.customer))
    return {
        "summary": made["data"]["summary"],
        "line": made["summary"],
        "actor": made["actor"],
        "listed": canaries.customer in [row["customer"] for row in listed],
        "request": [d["request"]["customer"] for d in decisions_of(db, rid)],
    }


def projected(store: Store, brand: str, *customers: Canaries) -> tuple[Ledger, Runner]:
    """A ledger holding the customers' events, and a runner that has applied them."""
    ledger = open_ledger(store)
    for canaries in customers:
        record(ledger, brand, canaries)
    runner = Runner(ledger)
    runner.run_once()
    return ledger, runner


def test_the_read_models_hold_no_personal_value_in_clear(empty_store: Store) -> None:
    """Before the fix the timeline held actors, summaries and personal data fields, the
    relationships row the customer reference, and a decision's request the customer, in clear:
    an erasure's UPDATE left those bytes in dead row versions, the WAL, replicas and backups."""
    brand, s, t = random_brand(), Canaries("S"), Canaries("T")
    ledger, runner = projected(empty_store, brand, s, t)

    rows = raw_rows(runner.db)
    assert found(t.clear.encode(), rows), "what identifies no one is in clear: the search works"
    assert clear_in(s, rows) == [] and clear_in(t, rows) == []
    storage = raw_storage(empty_store)  # SQLite's file, WAL and -shm; PostgreSQL's pg_dump
    assert found(t.clear.encode(), storage)
    assert clear_in(s, storage) == [] and clear_in(t, storage) == []
    summary = promise_summary(runner.db, brand, s.customer)[1]
    assert summary.startswith(SEALED_VALUE)

    assert shown(runner.db, brand, s) == {
        "summary": s.personal["promise.made.summary"],
        "line": f"Promised: {s.personal['promise.made.summary']}, due {LATER:%Y-%m-%d}",
        "actor": s.personal["promise.made.actor"],
        "listed": True,
        "request": [s.customer],
    }
    assert runner.rebuild(verify=True) == {}, "sealed deterministically: a rebuild agrees"
    runner.close()
    ledger.close()


def test_erasure_masks_every_read_model_and_a_rebuild_agrees(empty_store: Store) -> None:
    brand, s, t = random_brand(), Canaries("S"), Canaries("T")
    ledger, runner = projected(empty_store, brand, s, t)
    sequence, sealed = promise_summary(runner.db, brand, s.customer)
    rid = str(relationship_id(brand, s.customer))
    # Another process's reads, which still hold S's key after the erasure (its cache).
    other = open_ledger(empty_store)
    elsewhere = Database(empty_store, other.customer_keys)
    assert shown(elsewhere, brand, s)["summary"] == s.personal["promise.made.summary"]

    ledger.erase(brand, s.customer, requested_by="dpo@brand", reason="art. 17 request")
    runner.run_once()
    after = raw_storage(empty_store)
    assert clear_in(s, after) == []
    assert shown(runner.db, brand, t)["summary"] == t.personal["promise.made.summary"]

    items = timeline_page(runner.db, brand, s.customer, limit=200).items
    assert items and all(item["actor"] in (None, ERASED) for item in items)
    made = next(item for item in items if item["type"] == "promise.made")
    assert made["data"]["summary"] == ERASED and ERASED in made["summary"]
    assert consents(runner.db, brand, s.customer), "consent facts stay: they identify no one"
    assert ERASED in [row["customer"] for row in customers(runner.db, brand).items]
    assert shown(elsewhere, brand, s) == {
        "summary": ERASED,
        "line": f"Promised: [erased], due {LATER:%Y-%m-%d}",
        "actor": ERASED,
        "listed": False,
        "request": [ERASED],
    }, "a reader still holding the key reads the masked rows as erased"

    # What was written before the erasure (in dead row versions, the WAL, backups) is sealed
    # under a key that is gone: a new process finds none to open it with...
    fresh = open_ledger(empty_store)
    keys = Database(empty_store, fresh.customer_keys).keys_for([rid])
    assert keys == {rid: None}
    assert opened(keys, rid, sealed, "summary", sequence) == ERASED
    # ... and no other customer's key opens it.
    t_key = fresh.customer_keys.get(relationship_id(brand, t.customer))
    assert t_key is not None
    try:
        t_key.open_value(sealed, "summary", sequence)
    except TamperedPersonalData:
        pass
    else:
        raise AssertionError("another customer's key opened S's summary")
    assert runner.rebuild(verify=True) == {}
    for each in (fresh, other, ledger):
        each.close()
    elsewhere.close()
    runner.close()
