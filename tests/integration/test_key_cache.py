"""The key cache's two levels against each store's key table: an erasure made by another process
reaches both within KEY_CACHE_SECONDS of this process unwrapping the key."""

from __future__ import annotations

import pytest

from domain.relationship import relationship_id
from domain.shredding import CustomerKeys
from domain.storage import Store
from tests.conftest import TEST_MASTER_KEY, open_ledger
from tests.factories import story
from tests.random_refs import random_brand, random_customer
from tests.unit.test_key_cache import Clock


@pytest.mark.parametrize("built", [True, False], ids=["key built", "secret only"])
def test_a_key_erased_by_another_process_leaves_both_levels_when_its_secret_expires(
    store: Store, built: bool
) -> None:
    brand, customer, other = random_brand(), random_customer(), random_customer()
    writer, reader = open_ledger(store), open_ledger(store)
    writer.record_batch(brand, story(customer)[:3] + story(other)[:3])
    clock = Clock()
    keys = CustomerKeys(
        reader.customer_keys.table, TEST_MASTER_KEY, 30.0, context_cache_size=1, clock=clock
    )
    rid = relationship_id(brand, customer)
    key = keys.get(rid)  # unwrapped and built now
    assert key is not None
    sealed = key.seal_value("refund Jane", "summary", 1)
    if not built:
        assert keys.get(relationship_id(brand, other)) is not None  # pushes the built key out
    writer.erase(brand, customer, requested_by="dpo", reason="art. 17")
    clock.now += 29.9
    kept = keys.get(rid)
    assert kept is not None, "held for at most KEY_CACHE_SECONDS, as docs/privacy.md says"
    assert kept.open_value(sealed, "summary", 1) == "refund Jane"
    clock.now += 0.1
    assert keys.get(rid) is None, "the table is read again: the key is gone"
    assert keys.get(relationship_id(brand, other)) is not None
    writer.close()
    reader.close()
