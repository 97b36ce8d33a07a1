"""The decision audit: every recorded decision is evaluated again from what was known then."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from domain.application import Ledger
from domain.errors import DecisionNotFound
from domain.storage import Store
from tests.factories import posted
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def history(rng: random.Random, customer: str, start: int) -> list[object]:
    """Interactions that move trust and consent, in an order the rules allow."""
    at = NOON - timedelta(days=40 - start)
    events: list[object] = [
        grant(customer, at=at - timedelta(days=1), categories=("purchase_history", "location"))
    ]
    for n in range(rng.randint(1, 6)):
        kind = rng.choice(["answered", "admitted", "promise", "reported"])
        when = at + timedelta(hours=n)
        if kind == "answered":
            events.append(
                posted(
                    "question.answered",
                    customer,
                    at=when,
                    case_id=f"c{start}-{n}",
                    topic="t",
                    resolved=rng.random() < 0.6,
                )
            )
        elif kind == "admitted":
            events.append(
                posted(
                    "error.admitted",
                    customer,
                    at=when,
                    error_id=f"e{start}-{n}",
                    summary="s",
                    severity=rng.choice(["minor", "major"]),
                    discovered_by="brand",
                )
            )
        elif kind == "promise":
            events.append(
                posted(
                    "promise.made",
                    customer,
                    at=when,
                    promise_id=f"p{start}-{n}",
                    summary="s",
                    due_at=when + timedelta(days=rng.randint(-3, 3)),
                )
            )
        else:
            events.append(
                posted(
                    "error.reported",
                    customer,
                    at=when,
                    error_id=f"r{start}-{n}",
                    summary="s",
                    reported_by="customer",
                )
            )
    return events


@pytest.mark.parametrize("seed", range(6))
def test_every_decision_of_a_random_history_reproduces(memory_ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    memory_ledger.set_policy("brand-a", {**NO_QUIET_HOURS, "frequency_cap": rng.randint(1, 6)})
    memory_ledger.base_rates = lambda brand, at: {
        "consistency": 0.7,
        "honesty": 0.6,
        "expertise": 0.65,
    }
    for round_ in range(4):
        for customer in ("c1", "c2"):
            memory_ledger.record_batch("brand-a", history(rng, customer, round_ * 8))  # type: ignore[arg-type]
            kind = rng.choice(["offer", "advice", "service"])
            categories = tuple(
                rng.sample(["purchase_history", "location", "browsing_history"], rng.randint(0, 2))
            )
            memory_ledger.decide_push(
                "brand-a", push(kind, categories, customer), now=NOON + timedelta(hours=round_)
            )
    audits = [
        memory_ledger.audit_decision(rid, seq) for _, rid, seq in memory_ledger.decisions("brand-a")
    ]
    assert len(audits) == 8
    assert all(a["reproduced"] for a in audits), [
        a["differences"] for a in audits if not a["reproduced"]
    ]


def test_a_later_policy_change_does_not_change_the_audit(memory_ledger: Ledger) -> None:
    memory_ledger.set_policy("brand-a", NO_QUIET_HOURS)
    memory_ledger.record("brand-a", grant())
    request = push()
    decision = memory_ledger.decide_push("brand-a", request, now=NOON)
    before = memory_ledger.audit_push_decision("brand-a", request.push_id)
    memory_ledger.set_policy(
        "brand-a", {"thresholds": {"offer": {"consistency": 0.99, "honesty": 0.99}}}
    )
    after = memory_ledger.audit_push_decision("brand-a", request.push_id)
    assert before == after
    assert after["reproduced"] and after["recorded"] == decision


def test_a_tampered_decision_is_not_reproduced(memory_ledger: Ledger) -> None:
    memory_ledger.set_policy("brand-a", NO_QUIET_HOURS)
    memory_ledger.record("brand-a", grant())
    request = push()
    memory_ledger.decide_push("brand-a", request, now=NOON)
    _, rid, sequence = next(iter(memory_ledger.decisions("brand-a")))
    decided = memory_ledger._decision_event(rid, sequence)
    actual = decided.decision["outcome"]
    forged = "deny" if actual == "allow" else "allow"
    decided.decision["outcome"] = forged  # as if the stored decision said otherwise
    memory_ledger._decision_event = lambda *_: decided  # type: ignore[method-assign]
    audit = memory_ledger.audit_decision(rid, sequence)
    assert not audit["reproduced"]
    assert audit["differences"] == [f"outcome: recorded {forged!r}, re-evaluated {actual!r}"]


def test_auditing_an_unknown_push_is_not_found(memory_ledger: Ledger) -> None:
    with pytest.raises(DecisionNotFound):
        memory_ledger.audit_push_decision("brand-a", "never-asked")


def test_the_decisions_of_a_brand_made_since_a_moment(memory_ledger: Ledger) -> None:
    for brand in ("brand-a", "brand-b"):
        memory_ledger.set_policy(brand, NO_QUIET_HOURS)
        memory_ledger.record(brand, grant())
        for hours in range(3):
            memory_ledger.decide_push(brand, push(), now=NOON + timedelta(hours=hours))
    since = NOON + timedelta(hours=1)
    found = list(memory_ledger.decisions("brand-a", since))
    assert {brand for brand, _, _ in found} == {"brand-a"}
    assert [memory_ledger._decision_event(rid, n).occurred_at for _, rid, n in found] == [
        since,
        since + timedelta(hours=1),
    ]
    assert len(list(memory_ledger.decisions(since=since))) == 4
    assert len(list(memory_ledger.decisions())) == 6
