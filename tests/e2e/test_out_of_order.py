"""A brand's CRM may post a customer's events dated in any order (a backfill, a late sync, clocks
that disagree): every answer about that customer, through the API and the pages, is still one
the client can use, never a 500, and every push decision among them audits as reproduced."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient

from api.auth import KeyStore
from tests.e2e.conftest import Client, ClientFor, seeded
from tests.e2e.test_pages import sign_in
from tests.factories import posted, story
from tests.random_refs import random_brand, random_customer, random_event_id

REACTIONS = ("opened", "clicked", "dismissed", "unwanted", "unsubscribed")


def reads(customer: str, moments: list[str]) -> list[str]:
    """Every read about the customer (and the brand's lists), now and as of each moment."""
    path = f"/v1/customers/{quote(customer)}"
    now = [
        f"{path}/timeline?limit=200",
        f"{path}/consents",
        f"{path}/consents/receipts",
        f"{path}/trust",
        "/v1/trust",
        "/v1/customers?consistency_lt=0.9",
        "/v1/audit/findings",
        f"{path}/export",
    ]
    then = [
        f"{url}{'&' if '?' in url else '?'}as_of={quote(moment)}"
        for moment in moments
        for url in (f"{path}/timeline", f"{path}/consents", f"{path}/trust", "/v1/trust")
    ]
    return now + then


def pages(customer: str, moments: list[str]) -> list[str]:
    path = f"/ui/customers/{quote(customer)}"
    now = [f"{path}/{page}" for page in ("timeline", "trust", "decisions", "audit", "export")]
    then = [f"{path}/{page}?as_of={quote(m)}" for m in moments for page in ("timeline", "trust")]
    return now + then


def asked(brand: Client, customer: str, rng: random.Random, now: datetime) -> str:
    """A push decision, sent and reacted to with events dated at random; its push id."""
    push_id = f"push-{random_event_id()}"
    send_at = (
        datetime.now(UTC) + timedelta(minutes=rng.uniform(-4, 4)) if rng.random() < 0.5 else None
    )
    request = {
        "push_id": push_id,
        "customer": customer,
        "purpose": "marketing",
        "channel": "push",
        "kind": rng.choice(["offer", "service", "advice"]),
        "data_categories": ["purchase_history"],
        **({"send_at": send_at.isoformat()} if send_at else {}),
    }
    answer = brand.post("/v1/push-decisions", json=request)
    assert answer.status_code == 200, answer.text
    return push_id


@seeded(8)
def test_every_answer_about_a_story_posted_out_of_time_order_is_usable(
    seed: int, app: Flask, keys: KeyStore, client_for: ClientFor
) -> None:
    rng, now = random.Random(seed), datetime.now(UTC)
    brand, customer = random_brand(), random_customer()
    crm = client_for("brand", brand)
    events = [
        dataclasses.replace(e, occurred_at=now - timedelta(days=rng.uniform(0, 400)))
        for e in story(customer)
    ]
    moments, pushes = [], []
    for event in events:
        assert crm.record(event)[0].status_code == 201, event
        if rng.random() < 0.3:
            push_id = asked(crm, customer, rng, now)
            pushes.append(push_id)
            for type_, data in (
                ("push.sent", {}),
                ("push.feedback", {"reaction": rng.choice(REACTIONS)}),
            ):
                at = now - timedelta(days=rng.uniform(0, 400))
                sent = posted(type_, customer, at=at, push_id=push_id, **data)
                assert crm.record(sent)[0].status_code == 201
        if rng.random() < 0.2:
            moments.append(datetime.now(UTC).isoformat())
    moments.append((now - timedelta(days=500)).isoformat())  # before any record: nothing known
    compliance = client_for("compliance", brand)
    for url in reads(customer, moments):
        answer = compliance.get(url)
        assert answer.status_code < 500, (url, answer.text)
    for push_id in pushes:  # each decision, evaluated again from what was known then, agrees
        audit = compliance.get(f"/v1/audit/push-decisions/{quote(push_id)}")
        assert audit.status_code == 200 and (audit.json or {}).get("reproduced") is True, audit.text
    browser: FlaskClient = app.test_client()
    assert sign_in(browser, keys.create(brand, "compliance").key) == 302
    for url in pages(customer, moments):
        answer = browser.get(url)
        assert answer.status_code < 500, (url, answer.text[:2000])


# Keeps the reads honest: a story posted in time order answers 200 everywhere.
def test_every_read_of_a_story_in_time_order_answers_200(
    app: Flask, keys: KeyStore, client_for: ClientFor
) -> None:
    brand, customer = random_brand(), random_customer()
    crm = client_for("brand", brand)
    assert all(a.status_code == 201 for a in crm.record(*story(customer)))
    moment = [datetime.now(UTC).isoformat()]
    compliance = client_for("compliance", brand)
    assert {url: compliance.get(url).status_code for url in reads(customer, moment)} == {
        url: 200 for url in reads(customer, moment)
    }
    browser = app.test_client()
    assert sign_in(browser, keys.create(brand, "compliance").key) == 302
    assert {url: browser.get(url).status_code for url in pages(customer, moment)} == {
        url: 200 for url in pages(customer, moment)
    }
