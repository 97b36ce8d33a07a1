"""Random histories through the API: events of every type whose ids come from small pools (so
they often refer to an item, often to a missing or closed one), dated at random at several UTC
offsets, posted alone and in batches, repeated as they were and altered, with consents,
preferences, brand policies, push decisions and an erasure among them. Whatever a brand's CRM
sends, each answer is a 2xx or a problem it can act on, never a 5xx; what was accepted reads
back and nothing of what was refused does; and every decision audits as reproduced."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from flask import Flask

from api.auth import KeyStore
from domain.relationship import POSTABLE_TYPES
from tests.e2e.conftest import ClientFor, seeded
from tests.e2e.test_out_of_order import pages, reads
from tests.e2e.test_pages import sign_in
from tests.random_refs import random_brand, random_event_id

TIMEZONES = ("Europe/Paris", "America/New_York", "Pacific/Kiritimati", "Asia/Kathmandu", "UTC")
CATEGORIES = ("purchase_history", "browsing_history", "location", "contact")
CHANNELS = ("push", "email", "sms")
PURPOSES = ("marketing", "service", "research")


def offset(at: datetime, rng: random.Random) -> datetime:
    """The same instant at another UTC offset, as a CRM abroad may send it."""
    hours = rng.choice([-11.0, -3.5, 0.0, 5.75, 14.0])
    return at.astimezone(timezone(timedelta(hours=hours)))


def clock(rng: random.Random) -> str:
    return f"{rng.randrange(24):02d}:{rng.choice([0, 30, 59]):02d}"


def data(type_: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    """A valid body's data for the type: ids from pools of three, dates around now."""
    ref = f"{type_.split('.')[0]}-{rng.randrange(3)}"
    when = offset(now + timedelta(days=rng.uniform(-30, 30)), rng).isoformat()
    some = sorted(set(rng.sample(CATEGORIES, rng.randrange(len(CATEGORIES) + 1))))
    by_type: dict[str, dict[str, Any]] = {
        "promise.made": {"promise_id": ref, "summary": "s", "due_at": when},
        "promise.kept": {"promise_id": ref},
        "promise.broken": {"promise_id": ref, "reason": "r"},
        "promise.released": {"promise_id": ref},
        "offer.made": {"offer_id": ref, "summary": "s", "expires_at": when, "claims": ["c"]},
        "offer.accepted": {"offer_id": ref},
        "offer.declined": {"offer_id": ref},
        "offer.honored": {"offer_id": ref},
        "offer.reneged": {"offer_id": ref, "reason": "r"},
        "error.admitted": {"error_id": ref, "summary": "s", "severity": rng.choice(
            ["minor", "major", "critical"]), "discovered_by": rng.choice(["brand", "customer"])},
        "error.reported": {"error_id": ref, "summary": "s", "reported_by": "customer"},
        "error.disputed": {"error_id": ref, "reason": "r"},
        "error.confirmed": {"error_id": ref, "by": "ombudsman"},
        "error.withdrawn": {"error_id": ref},
        "question.answered": {"case_id": f"case-{rng.randrange(3)}", "topic": "t",
                              "resolved": rng.random() < 0.5, "rating": rng.randint(1, 5)},
        "case.reopened": {"case_id": f"case-{rng.randrange(3)}"},
        "advice.given": {"advice_id": ref, "topic": "t", "summary": "s"},
        "advice.rated": {"advice_id": ref, "helpful": rng.random() < 0.5},
        "consent.granted": {
            "purpose": rng.choice(PURPOSES), "channels": sorted(set(rng.sample(CHANNELS, 2))),
            "data_categories": some, "notice_version": "1", "method": "web_form",
            "expires_at": when if rng.random() < 0.3 else None,
        },
        "consent.withdrawn": {"purpose": rng.choice([*PURPOSES, "*"]),
                              "channels": [rng.choice(CHANNELS)] if rng.random() < 0.5 else None},
        "preferences.updated": {
            "timezone": rng.choice(TIMEZONES),
            "quiet_hours": {"start": clock(rng), "end": clock(rng)} if rng.random() < 0.7 else None,
        },
        "push.sent": {"push_id": f"push-{rng.randrange(3)}"},
        "push.feedback": {"push_id": f"push-{rng.randrange(3)}", "reaction": rng.choice(
            ["opened", "clicked", "dismissed", "unwanted", "unsubscribed"])},
    }  # fmt: skip
    return by_type[type_]


def random_event(rng: random.Random, customer: str, now: datetime) -> dict[str, Any]:
    """A posted event of a random type, dated up to 60 days back at a random offset."""
    type_ = rng.choice(POSTABLE_TYPES)
    return {
        "event_id": random_event_id(),
        "type": type_,
        "customer": customer,
        "occurred_at": offset(now - timedelta(days=rng.uniform(0, 60)), rng).isoformat(),
        "data": {k: v for k, v in data(type_, rng, now).items() if v is not None},
    }


def policy(rng: random.Random) -> dict[str, Any]:
    return {
        "frequency_cap": rng.randint(0, 5),
        "quiet_hours": {"start": clock(rng), "end": clock(rng)},
        "timezone": rng.choice(TIMEZONES),
        "sensitive_categories": [rng.choice(CATEGORIES)],
        "trust_half_life_days": rng.choice([1.0, 30.0, 180.0]),
    }


@seeded(10)
def test_a_random_history_gets_no_5xx_reads_back_and_audits_as_reproduced(
    seed: int, app: Flask, keys: KeyStore, client_for: ClientFor
) -> None:
    rng, now, brand = random.Random(seed), datetime.now(UTC), random_brand()
    crm, compliance = client_for("brand", brand), client_for("compliance", brand)
    customers = ["c-1", "c-2"]
    accepted: dict[str, list[dict[str, Any]]] = {c: [] for c in customers}
    refused: set[str] = set()
    erased: set[str] = set()
    decided: list[str] = []

    def event(customer: str) -> dict[str, Any]:
        return random_event(rng, customer, now)

    for _ in range(60):
        customer, roll = rng.choice(customers), rng.random()
        if roll < 0.05:
            answer = crm.put("/v1/policy", json=policy(rng))
        elif roll < 0.25:
            push_id = f"push-{rng.randrange(3)}" if rng.random() < 0.5 else random_event_id()
            answer = crm.post("/v1/push-decisions", json={
                "push_id": push_id, "customer": customer, "kind": rng.choice(
                    ["service", "offer", "advice"]), "channel": rng.choice(CHANNELS),
                "purpose": rng.choice([*PURPOSES, None]),
                "data_categories": sorted(set(rng.sample(CATEGORIES, rng.randrange(3)))),
            })  # fmt: skip
            if answer.status_code == 200:
                decided.append(push_id)
        elif roll < 0.35:  # a batch: all of it is stored, or none
            batch = [event(rng.choice(customers)) for _ in range(rng.randint(1, 6))]
            answer = crm.post("/v1/events/batch", json={"events": batch})
            for sent in batch:
                if answer.status_code == 201:
                    accepted[sent["customer"]].append(sent)
                else:
                    refused.add(sent["event_id"])
        elif roll < 0.42 and accepted[customer]:  # a repeat: the same answer, or 409 if altered
            again = dict(rng.choice(accepted[customer]))
            altered = rng.random() < 0.5
            if altered:
                again["occurred_at"] = offset(now - timedelta(days=61), rng).isoformat()
            answer = crm.post("/v1/events", json=again)
            # (once the customer is erased, its key is gone: no content can be compared)
            expected = 409 if altered or customer in erased else 201
            assert answer.status_code == expected, (altered, customer in erased, answer.text)
        elif roll < 0.44 and customer == "c-2":  # c-1 is never erased
            erasure = {"reason": "Art. 17 request"}
            answer = compliance.post(f"/v1/customers/{customer}/erasure", json=erasure)
            if answer.status_code == 200:
                erased.add(customer)
        else:
            sent = event(customer)
            answer = crm.post("/v1/events", json=sent)
            if answer.status_code == 201:
                accepted[customer].append(sent)
            else:
                refused.add(sent["event_id"])
        assert answer.status_code < 500, answer.text
        assert answer.status_code < 300 or answer.mimetype == "application/problem+json"
    assert any(accepted.values())  # the history is not all refusals (one customer's can be:
    # seed 7455 sent c-1 only references to things never made, and a push id c-2 held)
    moments = [datetime.now(UTC).isoformat(), (now - timedelta(days=1)).isoformat()]
    for customer in customers:
        for url in reads(customer, moments):
            answer = compliance.get(url)
            assert answer.status_code < 500, (url, answer.text)
        path = f"/v1/customers/{quote(customer)}/timeline?limit=200"
        found = compliance.get(path)
        listed = {item["event_id"] for item in (found.json or {}).get("items", [])}
        assert {e["event_id"] for e in accepted[customer]} <= listed, found.text
        assert not refused & listed  # nothing of a refused event or batch was stored
    for push_id in set(decided):
        audit = compliance.get(f"/v1/audit/push-decisions/{quote(push_id)}")
        assert audit.status_code == 200 and (audit.json or {}).get("reproduced") is True, audit.text
    browser = app.test_client()
    assert sign_in(browser, keys.create(brand, "compliance").key) == 302
    for customer in customers:
        for url in pages(customer, moments):
            answer = browser.get(url)
            assert answer.status_code < 500, (url, answer.text[:2000])
