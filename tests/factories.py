"""Posted events for tests: one valid example per catalogue type, and a builder for the rest."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.relationship import PostedEvent
from tests.random_refs import random_event_id

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=3)


def posted(
    type_: str, customer: str = "cust-1", *, at: datetime | None = None, **data: Any
) -> PostedEvent:
    return PostedEvent(
        event_id=random_event_id(),
        type=type_,
        customer=customer,
        occurred_at=at or NOW,
        actor="agent-7",
        channel="email",
        data=data,
    )


def story_push_id(customer: str) -> str:
    """The story's push: one of its own per customer (a push id names a push to one customer),
    which does not spell the customer out (push ids are not personal data)."""
    return "push-" + hashlib.sha256(customer.encode()).hexdigest()[:12]


def story(customer: str = "cust-1") -> list[PostedEvent]:
    """Every postable type once, in an order the rules allow."""
    consent: dict[str, Any] = {
        "purpose": "marketing",
        "channels": ["email", "push"],
        "data_categories": ["purchase_history"],
        "notice_version": "2026-01",
        "method": "web_form",
        "expires_at": None,
        "jurisdiction": "EU",
    }
    # fmt: off
    return [
        posted("promise.made", customer, promise_id="p1", summary="refund by Friday", due_at=LATER),
        posted("promise.kept", customer, promise_id="p1"),
        posted("promise.made", customer, promise_id="p2", summary="call back", due_at=LATER),
        posted("promise.broken", customer, promise_id="p2", reason="forgot"),
        posted("promise.made", customer, promise_id="p3", summary="visit", due_at=LATER),
        posted("promise.released", customer, promise_id="p3", reason="customer moved"),
        posted("offer.made", customer, offer_id="o1", summary="10% off", expires_at=LATER, claims=["cheapest"]),
        posted("offer.accepted", customer, offer_id="o1"),
        posted("offer.honored", customer, offer_id="o1"),
        posted("offer.made", customer, offer_id="o2", summary="upgrade"),
        posted("offer.declined", customer, offer_id="o2"),
        posted("offer.made", customer, offer_id="o3", summary="free month"),
        posted("offer.reneged", customer, offer_id="o3", reason="promo ended"),
        posted("error.admitted", customer, error_id="x1", summary="double charge", severity="major", discovered_by="brand"),
        posted("error.reported", customer, error_id="x2", summary="wrong bill", reported_by="customer"),
        posted("error.disputed", customer, error_id="x2", reason="bill was right"),
        posted("error.confirmed", customer, error_id="x2", by="ombudsman"),
        posted("error.reported", customer, error_id="x3", summary="late parcel", reported_by="customer"),
        posted("error.withdrawn", customer, error_id="x3"),
        posted("question.answered", customer, case_id="c1", topic="billing", resolved=True, rating=5),
        posted("case.reopened", customer, case_id="c1"),
        posted("advice.given", customer, advice_id="a1", topic="tariff", summary="switch to flex"),
        posted("advice.rated", customer, advice_id="a1", helpful=True),
        posted("consent.granted", customer, **consent),
        posted("preferences.updated", customer, timezone="Europe/Paris", quiet_hours={"start": "21:00", "end": "08:00"}),
        posted("push.sent", customer, push_id=story_push_id(customer)),
        posted("push.feedback", customer, push_id=story_push_id(customer), reaction="opened"),
        posted("consent.withdrawn", customer, purpose="marketing", channels=["push"]),
    ]
    # fmt: on


def interleaved(rng: random.Random, brand_customers: int) -> list[PostedEvent]:
    """The stories of several customers, interleaved at random, each in its own order."""
    stories = [story(f"c{i}") for i in range(brand_customers)]
    events = []
    while any(stories):
        chosen = rng.choice([s for s in stories if s])
        events.append(chosen.pop(0))
    return events
