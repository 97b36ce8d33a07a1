"""The push gate on real SQLite and PostgreSQL: racing requests cannot break the rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from domain.application import Ledger
from domain.brand import policy_id
from domain.errors import ConcurrencyConflict, PushIdConflict
from domain.recorders import READS
from domain.relationship import PushDecided
from domain.storage import Store
from domain.versions import KnownVersions
from tests.conftest import new_sqlite_database, noted, open_ledger
from tests.factories import posted
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push, scores
from tests.random_refs import random_brand, random_customer

RACERS = 5
"""At most Ledger.max_attempts: each racer can lose a save only to each other racer once."""


@pytest.fixture(params=["reads every time", "known versions"])
def ledger(store: Store, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """A ledger that reads before each decision, and one that skips the read when its known
    versions say nothing was written since (as under the API): a racer that decided on a stale
    copy has its save fail, and decides again on what was written."""
    known = KnownVersions() if request.param == "known versions" else None
    ledger = open_ledger(store, known_versions=known)
    yield ledger
    ledger.close()


def test_a_worker_decides_without_a_read_unless_another_worker_wrote_since(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand, customer = random_brand(), random_customer()
    shared = KnownVersions()
    first, second = (open_ledger(store, known_versions=shared) for _ in range(2))
    first.set_policy(brand, {"frequency_cap": 1000, **NO_QUIET_HOURS})
    first.record(brand, grant(customer))
    reads: list[str] = []
    for name, ledger in (("first", first), ("second", second)):
        monkeypatch.setattr(ledger, "_stored", noted(reads, name, ledger._stored))
    outcomes = [
        ledger.decide_push(brand, push(customer=customer), scores(0.5), NOON)["outcome"]
        for ledger in (first, second, first, first)
    ]
    assert outcomes == ["allow"] * 4
    assert reads == ["second", "first"], "what it had not seen, then what the other wrote"
    assert len(decisions(first, brand, customer)) == 4
    first.close()
    second.close()


def test_a_decision_on_a_policy_changed_since_it_was_read_is_made_again(store: Store) -> None:
    """Two servers: the first holds the brand's policy and takes it as the latest, unread; the
    second changed it. The first's save fails on the policy's version, and the decision is made
    again under the policy now in force (as a decision made between a read and a change would
    be)."""
    brand, customer = random_brand(), random_customer()
    first = open_ledger(store, known_versions=KnownVersions())
    second = open_ledger(store, known_versions=KnownVersions())
    first.set_policy(brand, {"frequency_cap": 1000, **NO_QUIET_HOURS})
    first.record(brand, grant(customer))
    assert (
        first.decide_push(brand, push(customer=customer), scores(0.5), NOON)["outcome"] == "allow"
    )
    changed = second.set_policy(brand, {"frequency_cap": 1})
    decision = first.decide_push(brand, push(customer=customer), scores(0.5), NOON)
    assert decision["policy_version"] == changed.version
    assert decision["outcome"] == "defer", "the second push of the day, under a cap of one"
    first.close()
    second.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return Store.from_url("memory://")
    if request.param == "sqlite":
        return new_sqlite_database(tmp_path)
    migrated: Store = request.getfixturevalue("migrated_postgres")
    return migrated


def test_a_save_fails_when_what_it_read_has_moved_on(any_store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(any_store)
    ledger.record(brand, grant(customer))
    pid = policy_id(brand)

    def answered(case_id: str) -> object:
        relationship = ledger.relationship(brand, customer)
        relationship.record(
            posted("question.answered", customer, case_id=case_id, topic="t", resolved=True)
        )
        return relationship

    with pytest.raises(IntegrityError):
        ledger.save(answered("1"), **{READS: [(pid, 1)]})  # read at 1, but there is no policy
    ledger.set_policy(brand, NO_QUIET_HOURS)
    with pytest.raises(IntegrityError):
        ledger.save(answered("2"), **{READS: [(pid, 0)]})  # read before it was set
    assert len(ledger.interactions(brand, customer)) == 1, "neither save wrote anything"
    ledger.save(answered("3"), **{READS: [(pid, 1)]})
    assert [e.data.get("case_id") for e in ledger.interactions(brand, customer)] == [None, "3"]
    ledger.close()


def test_racing_requests_for_the_last_frequency_slot_allow_exactly_one(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, {"frequency_cap": 2, **NO_QUIET_HOURS})
    ledger.record(brand, grant(customer))
    first = ledger.decide_push(brand, push(customer=customer), scores(0.5), NOON)
    assert first["outcome"] == "allow"
    start = threading.Barrier(RACERS)
    outcomes: list[str] = []

    def ask() -> None:
        start.wait()
        decision = ledger.decide_push(brand, push(customer=customer), scores(0.5), NOON)
        outcomes.append(decision["outcome"])

    threads = [threading.Thread(target=ask) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["allow"] + ["defer"] * (RACERS - 1)
    recorded = [e.decision["outcome"] for e in decisions(ledger, brand, customer)]
    assert recorded.count("allow") == 2
    assert len(recorded) == RACERS + 1


def test_no_push_decided_after_a_withdrawal_was_acknowledged_is_allowed(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, {"frequency_cap": 1000, **NO_QUIET_HOURS})
    ledger.record(brand, grant(customer))
    first_decided, acknowledged = threading.Event(), threading.Event()
    after_ack: list[str] = []

    def ask_until_nine_decided_after_the_withdrawal() -> None:
        while len(after_ack) < 9:
            seen_ack = acknowledged.is_set()
            try:
                decision = ledger.decide_push(brand, push(customer=customer), scores(), NOON)
            except ConcurrencyConflict:
                continue
            first_decided.set()
            if seen_ack:
                after_ack.append(decision["outcome"])

    threads = [
        threading.Thread(target=ask_until_nine_decided_after_the_withdrawal) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    first_decided.wait(timeout=60)
    objection = posted("consent.withdrawn", customer, purpose="*")
    withdrawal = record_until_done(ledger, brand, objection)
    acknowledged.set()
    for thread in threads:
        thread.join()
    assert after_ack and set(after_ack) == {"deny"}
    recorded = decisions(ledger, brand, customer)
    before = [e for e in recorded if e.originator_version < withdrawal]
    after = [e for e in recorded if e.originator_version > withdrawal]
    assert "allow" in {e.decision["outcome"] for e in before}
    assert {e.decision["outcome"] for e in after} == {"deny"}


def record_until_done(ledger: Ledger, brand: str, event: Any) -> int:
    """Records an event however busy the relationship is; returns its sequence."""
    while True:
        try:
            return ledger.record(brand, event).sequence
        except ConcurrencyConflict:
            continue


def decisions(ledger: Ledger, brand: str, customer: str) -> list[PushDecided]:
    return [e for e in ledger.interactions(brand, customer) if isinstance(e, PushDecided)]


def test_racing_requests_with_one_push_id_get_one_decision(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record(brand, grant(customer))
    request, start = push(customer=customer), threading.Barrier(RACERS)
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        start.wait()
        answers.append(ledger.decide_push(brand, request, scores(), NOON))

    threads = [threading.Thread(target=ask) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == RACERS
    assert all(answer == answers[0] for answer in answers)
    assert len(decisions(ledger, brand, customer)) == 1


def test_racing_customers_for_one_push_id_leave_it_to_one(ledger: Ledger) -> None:
    """The push id's claim is a row written with the first decision: one customer wins it."""
    brand, customers = random_brand(), [random_customer() for _ in range(RACERS)]
    for customer in customers:
        ledger.record(brand, grant(customer))
    request, start = push(), threading.Barrier(RACERS)
    won: list[str] = []
    refused: list[str] = []

    def ask(customer: str) -> None:
        start.wait()
        try:
            ledger.decide_push(brand, replace(request, customer=customer), now=NOON)
            won.append(customer)
        except PushIdConflict:
            refused.append(customer)

    threads = [threading.Thread(target=ask, args=[customer]) for customer in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and sorted(refused) == sorted(set(customers) - set(won))
    assert [len(decisions(ledger, brand, customer)) for customer in customers].count(1) == 1
    assert ledger.audit_push_decision(brand, request.push_id)["reproduced"] is True
