"""Erasure by crypto-shredding, in memory: what is masked, what still works, what is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from domain.application import Ledger
from domain.errors import BatchRejected, CustomerErased, RelationshipNotFound
from domain.relationship import ERASED, Envelope, Interaction, Relationship
from domain.storage import Store
from tests.factories import NOW, posted, story
from tests.random_refs import random_brand, random_customer


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def erase(ledger: Ledger, brand: str, customer: str) -> object:
    return ledger.erase(brand, customer, requested_by="dpo@brand", reason="art. 17 request #42")


def personal_or_not(event: Interaction) -> tuple[dict[str, object], dict[str, object]]:
    state = {k: v for k, v in vars(event).items() if k != "timestamp"}
    personal = {name: state.pop(name) for name in event.PERSONAL if state.get(name) is not None}
    return personal, state


def test_erasure_masks_every_personal_field_and_keeps_the_rest(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    memory_ledger.record_batch(brand, story(customer))
    before = memory_ledger.interactions(brand, customer)
    erase(memory_ledger, brand, customer)
    after = memory_ledger.interactions(brand, customer)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        old_personal, old_rest = personal_or_not(old)
        new_personal, new_rest = personal_or_not(new)
        assert new_rest == old_rest, "non-personal fields survive, for replay, trust and the gate"
        assert new_personal == dict.fromkeys(old_personal, ERASED)
    assert any(e.as_dict()["data"].get("summary") == ERASED for e in after)


def test_the_relationship_replays_to_the_same_state_but_the_customer(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    memory_ledger.record_batch(brand, story(customer))
    before = vars(memory_ledger.relationship(brand, customer)).copy()
    erase(memory_ledger, brand, customer)
    after = vars(memory_ledger.relationship(brand, customer)).copy()
    assert after.pop("customer") == ERASED and before.pop("customer") == customer
    erased = after.pop("erased")
    for name in ("_version", "_modified_on"):
        before.pop(name), after.pop(name)
    assert after == before
    assert (erased["requested_by"], erased["reason"]) == ("dpo@brand", "art. 17 request #42")


def test_the_receipt_says_what_was_shredded_and_a_repeat_repeats_it(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    events = story(customer)
    memory_ledger.record_batch(brand, events)
    first = memory_ledger.erase(brand, customer, requested_by="dpo@brand", reason="art. 17")
    again = memory_ledger.erase(brand, customer, requested_by="someone else", reason="again")
    assert first.events_shredded == len(events) + 1  # the opening event, and every one posted
    assert (first.requested_by, first.reason, first.replayed) == ("dpo@brand", "art. 17", False)
    assert again == replace(first, replayed=True)
    assert customer not in repr(first)


def test_an_unknown_customer_cannot_be_erased(memory_ledger: Ledger) -> None:
    with pytest.raises(RelationshipNotFound):
        erase(memory_ledger, random_brand(), random_customer())


def test_events_for_an_erased_customer_are_rejected(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    memory_ledger.record_batch(brand, story(customer)[:3])
    erase(memory_ledger, brand, customer)
    with pytest.raises(CustomerErased) as rejected:
        memory_ledger.record(brand, posted("case.reopened", customer, case_id="c"))
    assert rejected.value.field == "customer"


def test_a_batch_naming_an_erased_customer_is_rejected_at_that_index(memory_ledger: Ledger) -> None:
    brand, erased, other = random_brand(), random_customer(), random_customer()
    memory_ledger.record(brand, story(erased)[0])
    erase(memory_ledger, brand, erased)
    with pytest.raises(BatchRejected) as rejected:
        memory_ledger.record_batch(brand, [story(other)[0], story(erased)[0]])
    assert list(rejected.value.errors) == [1]
    assert isinstance(rejected.value.errors[1], CustomerErased)
    with pytest.raises(RelationshipNotFound):
        memory_ledger.interactions(brand, other)


def test_replaying_an_event_id_from_before_the_erasure_is_rejected(memory_ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    event = story(customer)[0]
    memory_ledger.record(brand, event)
    erase(memory_ledger, brand, customer)
    with pytest.raises(CustomerErased):
        memory_ledger.record(brand, event)


def test_the_gate_cannot_record_a_decision_for_an_erased_customer() -> None:
    relationship = Relationship("brand-a", "cust-1")
    relationship.erase("dpo", "art. 17")
    with pytest.raises(CustomerErased):
        relationship.record_push_decision(Envelope("d1", NOW), "push-1", request={}, decision={})


def test_customers_leaves_out_the_erased(memory_ledger: Ledger) -> None:
    brand = random_brand()
    memory_ledger.record_batch(brand, story("c1")[:1] + story("c2")[:1] + story("c3")[:1])
    erase(memory_ledger, brand, "c2")
    assert list(memory_ledger.customers(brand)) == ["c1", "c3"]
