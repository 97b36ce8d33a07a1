"""Erasure reaches the read models: nothing of the customer stays readable, and a rebuild agrees."""

from __future__ import annotations

from domain.relationship import ERASED
from domain.storage import Store
from projections.consents import consents
from projections.relationships import customers
from projections.runner import Runner
from projections.timeline import timeline_page
from tests.conftest import open_ledger
from tests.integration.test_canary import Canaries, found, raw_storage, record
from tests.random_refs import random_brand


def test_erasure_masks_every_read_model_and_a_rebuild_agrees(empty_store: Store) -> None:
    brand, s, t = random_brand(), Canaries("S"), Canaries("T")
    ledger = open_ledger(empty_store)
    record(ledger, brand, s)
    record(ledger, brand, t)
    runner = Runner(ledger)
    runner.run_once()
    before = raw_storage(empty_store)
    assert found(s.personal["promise.made.summary"].encode(), before), "the read models held S"

    ledger.erase(brand, s.customer, requested_by="dpo@brand", reason="art. 17 request")
    runner.run_once()
    after = raw_storage(empty_store)
    assert not [where for where, value in s.personal.items() if found(value.encode(), after)]
    assert found(t.personal["promise.made.summary"].encode(), after), "the control is found"

    items = timeline_page(runner.db, brand, s.customer, limit=200).items
    assert items and all(item["actor"] in (None, ERASED) for item in items)
    made = next(item for item in items if item["type"] == "promise.made")
    assert made["data"]["summary"] == ERASED and ERASED in made["summary"]
    assert consents(runner.db, brand, s.customer), "consent facts stay: they identify no one"
    assert ERASED in [row["customer"] for row in customers(runner.db, brand).items]
    assert runner.rebuild(verify=True) == {}
    runner.close()
    ledger.close()
