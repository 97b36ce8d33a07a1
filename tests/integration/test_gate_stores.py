"""The push gate on real SQLite and PostgreSQL: racing requests cannot break the rules."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from domain.application import Ledger
from domain.errors import ConcurrencyConflict, PushIdConflict
from domain.relationship import PushDecided
from tests.factories import posted
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push, scores
from tests.random_refs import random_brand, random_customer

RACERS = 5
"""At most Ledger.max_attempts: each racer can lose a save only to each other racer once."""


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
