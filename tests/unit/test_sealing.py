"""Personal fields at rest, in memory: sealed, bound to their event, keyed fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import Ledger
from domain.errors import MasterKeyError
from domain.key_table import MemoryKeyTable
from domain.relationship import relationship_id
from domain.shredding import CustomerKeys, MasterKey, TamperedPersonalData, _event_aad
from domain.storage import Store
from tests.factories import LATER, posted, story
from tests.random_refs import random_brand, random_customer


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def stored(ledger: Ledger, brand: str, customer: str) -> list[StoredEvent]:
    return list(ledger.recorder.select_events(relationship_id(brand, customer)))


def test_personal_fields_are_stored_sealed_and_read_back_whole(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    event = replace(
        posted("promise.made", customer, promise_id="p-clear", summary="refund Jane", due_at=LATER),
        actor="Agent Smith",
    )
    memory_ledger.record(brand, event)
    states = b"".join(s.state for s in stored(memory_ledger, brand, customer))
    assert b"p-clear" in states, "non-personal fields stay in the clear"
    for secret in (b"refund Jane", b"Agent Smith", customer.encode()):
        assert secret not in states
    read = memory_ledger.interactions(brand, customer)[0]
    assert (read.summary, read.actor) == ("refund Jane", "Agent Smith")  # type: ignore[attr-defined]
    assert memory_ledger.relationship(brand, customer).customer == customer


def test_absent_personal_fields_stay_none(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    event = replace(posted("case.reopened", customer, case_id="c"), actor=None)
    memory_ledger.record_batch(
        brand, [posted("question.answered", customer, case_id="c", topic="t", resolved=True), event]
    )
    assert memory_ledger.interactions(brand, customer)[1].actor is None


def move(event: StoredEvent, **changes: Any) -> StoredEvent:
    return StoredEvent(**{**vars(event), **changes})


def test_a_sealed_entry_moved_to_another_relationship_or_event_fails_to_open(
    memory_ledger: Ledger,
) -> None:
    brand, customer, other = random_brand(), random_customer(), random_customer()
    memory_ledger.record_batch(brand, story(customer)[:3] + story(other)[:3])
    made = stored(memory_ledger, brand, customer)[1]
    assert memory_ledger.mapper.to_domain_event(made).summary == "refund by Friday"  # type: ignore[attr-defined]
    moved = [
        move(made, originator_id=relationship_id(brand, other)),
        move(made, originator_version=3),
        move(made, topic="trustledger:error.reported"),
    ]
    for event in moved:
        with pytest.raises(TamperedPersonalData):
            memory_ledger.mapper.to_domain_event(event)


def test_a_sealed_entry_moved_to_the_same_customer_of_another_brand_fails_to_open(
    memory_ledger: Ledger,
) -> None:
    customer = random_customer()
    memory_ledger.record("brand-a", story(customer)[0])
    memory_ledger.record("brand-b", story(customer)[0])
    made = stored(memory_ledger, "brand-a", customer)[1]
    with pytest.raises(TamperedPersonalData):
        memory_ledger.mapper.to_domain_event(
            move(made, originator_id=relationship_id("brand-b", customer))
        )


def test_the_idempotency_fingerprint_is_keyed_by_the_customer_key(memory_ledger: Ledger) -> None:
    brand, event = random_brand(), story()[0]
    memory_ledger.record(brand, event)
    claim = memory_ledger.recorder.event_id_claims(brand, [event.event_id])[event.event_id]  # type: ignore[attr-defined]
    assert claim.fingerprint != hashlib.sha256(event.canonical()).hexdigest()
    key = memory_ledger.customer_keys.get(relationship_id(brand, event.customer))
    assert key is not None and claim.fingerprint == key.fingerprint(event.canonical())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "not 32"),
        ("not base64!", "not base64"),
        ("c2hvcnQ=", "holds 5 bytes"),
        ("ab" * 32, "looks like hex"),
    ],
)
def test_a_malformed_master_key_is_refused_with_the_fix(text: str, complaint: str) -> None:
    with pytest.raises(MasterKeyError, match=complaint) as refused:
        MasterKey.parse(text)
    assert "openssl rand -base64 32" in str(refused.value)


def test_a_master_key_never_shows_itself() -> None:
    key = MasterKey.generate()
    assert key.encoded() not in repr(key) and key.key_id in repr(key)
    assert MasterKey.parse(key.encoded()).key_id == key.key_id


def test_preloaded_keys_are_read_in_one_call_and_a_missing_row_reads_erased() -> None:
    master, table = MasterKey.generate(), MemoryKeyTable()
    table.claim_master_key(master.key_id)
    keys = CustomerKeys(table, master)
    kept, erased = uuid4(), uuid4()
    table.insert_or_get(kept, "acme", master.wrap("acme", kept, os.urandom(32)), master.key_id)
    asked: list[list[UUID]] = []

    def fetch(missing: list[UUID]) -> list[tuple[UUID, str, bytes]]:
        asked.append(sorted(missing))
        return [(rid, *row) for rid in missing if (row := table.select(rid)) is not None]

    keys.preload([kept, erased], fetch)
    keys.preload([kept, erased], fetch)
    assert asked == [sorted([kept, erased])], "one read for both, none once cached"
    table.rows.clear()  # a query now finds nothing: what follows comes from the cache
    assert keys.get(kept) is not None
    assert keys.get(erased) is None, "no row: the key was destroyed"


@pytest.mark.parametrize("brand", ["acme", 'q"uote\\back', "ünïcode-☃", "tab\there"])
@pytest.mark.parametrize("version", [1, 12345, None])
def test_the_associated_data_of_a_sealed_event_is_the_json_it_always_was(
    brand: str, version: int | None
) -> None:
    """Every stored event was sealed under this exact text: a byte changed opens none of them."""
    rid, topic = uuid4(), "domain.relationship:PromiseMade"
    expected = json.dumps(["personal", brand, str(rid), version, topic]).encode()
    assert _event_aad(brand, rid, version, topic) == expected
