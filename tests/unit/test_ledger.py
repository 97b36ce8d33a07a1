"""The Ledger application on the library's in-memory store: idempotency, batches, as-of, snapshots."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Recording

from domain.application import SNAPSHOT_INTERVAL, Ledger
from domain.errors import BatchRejected, EventIdConflict, RelationshipNotFound, UnknownReference
from domain.relationship import Relationship, relationship_id
from domain.snapshots import RelationshipSnapshot
from domain.storage import Store
from tests.factories import LATER, posted, story
from tests.random_refs import random_brand, random_customer


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def test_a_repeated_event_gets_the_first_answer_replayed(memory_ledger: Ledger) -> None:
    event = posted("promise.made", promise_id="p", summary="s", due_at=LATER)
    first = memory_ledger.record("brand-a", event)
    again = memory_ledger.record("brand-a", event)
    assert (again.event_id, again.sequence, again.recorded_at) == (
        first.event_id,
        first.sequence,
        first.recorded_at,
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert len(memory_ledger.interactions("brand-a", "cust-1")) == 1


def test_a_reused_event_id_with_other_content_is_a_conflict(memory_ledger: Ledger) -> None:
    event = posted("question.answered", case_id="c", topic="t", resolved=True)
    memory_ledger.record("brand-a", event)
    with pytest.raises(EventIdConflict):
        memory_ledger.record("brand-a", replace(event, data={**event.data, "resolved": False}))
    assert len(memory_ledger.interactions("brand-a", "cust-1")) == 1


def test_event_ids_are_scoped_by_brand(memory_ledger: Ledger) -> None:
    event = posted("question.answered", case_id="c", topic="t", resolved=True)
    memory_ledger.record("brand-a", event)
    assert not memory_ledger.record("brand-b", event).replayed


def test_a_batch_is_stored_whole_across_relationships(memory_ledger: Ledger) -> None:
    batch = story("cust-1") + story("cust-2")
    recordings = memory_ledger.record_batch("brand-a", batch)
    assert [r.event_id for r in recordings] == [e.event_id for e in batch]
    assert len(memory_ledger.interactions("brand-a", "cust-2")) == len(story())


def test_a_batch_with_one_bad_event_stores_nothing_and_names_it(memory_ledger: Ledger) -> None:
    batch = [*story("cust-1"), posted("promise.kept", "cust-2", promise_id="never")]
    with pytest.raises(BatchRejected) as rejected:
        memory_ledger.record_batch("brand-a", batch)
    assert list(rejected.value.errors) == [len(batch) - 1]
    assert isinstance(rejected.value.errors[len(batch) - 1], UnknownReference)
    with pytest.raises(RelationshipNotFound):
        memory_ledger.interactions("brand-a", "cust-1")


def test_a_batch_repeating_an_event_id_is_rejected(memory_ledger: Ledger) -> None:
    event = posted("question.answered", case_id="c", topic="t", resolved=True)
    with pytest.raises(BatchRejected) as rejected:
        memory_ledger.record_batch("brand-a", [event, event])
    assert list(rejected.value.errors) == [1]


def test_a_repeated_batch_is_replayed_and_a_partly_new_one_records_the_rest(
    memory_ledger: Ledger,
) -> None:
    batch = story("cust-1")
    first = memory_ledger.record_batch("brand-a", batch[:5])
    second = memory_ledger.record_batch("brand-a", batch[:8])
    assert [r.sequence for r in second[:5]] == [r.sequence for r in first]
    assert [r.replayed for r in second] == [True] * 5 + [False] * 3
    assert len(memory_ledger.interactions("brand-a", "cust-1")) == 8


def test_as_of_answers_what_was_recorded_by_then(memory_ledger: Ledger) -> None:
    events = story("cust-1")
    memory_ledger.record_batch("brand-a", events[:3])
    middle = datetime.now(UTC)
    memory_ledger.record_batch("brand-a", events[3:])
    assert [e.event_id for e in memory_ledger.interactions("brand-a", "cust-1", as_of=middle)] == [
        e.event_id for e in events[:3]
    ]
    then = memory_ledger.relationship("brand-a", "cust-1", as_of=middle)
    assert then.items["promise"]["p2"]["status"] == "open"
    assert (
        memory_ledger.relationship("brand-a", "cust-1").items["promise"]["p2"]["status"] == "broken"
    )


def test_an_unknown_relationship_is_not_found(memory_ledger: Ledger) -> None:
    with pytest.raises(RelationshipNotFound):
        memory_ledger.relationship("brand-a", "nobody")


def test_a_relationship_from_a_snapshot_and_its_tail_equals_one_from_all_its_events(
    memory_ledger: Ledger,
) -> None:
    brand, customer = random_brand(), random_customer()
    for n in range(4):
        memory_ledger.record_batch(
            brand,
            story(customer)[:24]
            if n == 0
            else [
                posted(
                    "question.answered",
                    customer,
                    case_id=f"c{n}-{i}",
                    topic="t",
                    resolved=i % 2 == 0,
                )
                for i in range(40)
            ],
        )
    rid = relationship_id(brand, customer)
    assert memory_ledger.snapshots is not None
    snapshots = list(memory_ledger.snapshots.get(rid))
    assert snapshots, "a relationship this long has snapshots"
    assert all(isinstance(s, RelationshipSnapshot) for s in snapshots), "its items in columns"
    from_snapshot: Relationship = memory_ledger.repository.get(rid)
    replayed: Relationship | None = None
    for event in memory_ledger.events.get(rid):
        replayed = event.mutate(replayed)  # type: ignore[attr-defined]
    assert replayed is not None
    from_events: Relationship = replayed
    assert vars(from_snapshot) == vars(from_events)


def test_a_batch_that_brings_relationships_to_the_interval_snapshots_them_in_one_write(
    memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand, customers = random_brand(), [random_customer() for _ in range(3)]
    answered = [
        posted("question.answered", customer, case_id=f"c{i}", topic="t", resolved=True)
        for customer in customers
        for i in range(SNAPSHOT_INTERVAL - 2)  # after Opened: the version before the interval
    ]
    memory_ledger.record_batch(brand, answered)
    assert memory_ledger.snapshots is not None
    writes: list[Sequence[DomainEventProtocol[UUID]]] = []
    put = memory_ledger.snapshots.put

    def noted_put(
        snapshots: Sequence[DomainEventProtocol[UUID]], **kw: Any
    ) -> list[Recording[UUID]]:
        writes.append(snapshots)
        return put(snapshots, **kw)

    monkeypatch.setattr(memory_ledger.snapshots, "put", noted_put)
    memory_ledger.record_batch(
        brand,
        [
            posted("question.answered", c, case_id="last", topic="t", resolved=True)
            for c in customers
        ],
    )
    assert [len(w) for w in writes] == [3]
    for customer in customers:
        (snapshot,) = memory_ledger.snapshots.get(relationship_id(brand, customer))
        assert snapshot.originator_version == SNAPSHOT_INTERVAL


def test_customers_lists_a_brands_relationships_only(memory_ledger: Ledger) -> None:
    memory_ledger.record_batch("brand-a", story("c1")[:1] + story("c2")[:1])
    memory_ledger.record("brand-b", story("c3")[0])
    assert list(memory_ledger.customers("brand-a")) == ["c1", "c2"]
