"""Who may call what: role x endpoint x brand, on both stores.

Every cell a role may not call is denied (403) and appends nothing; another brand's customer is
404 exactly as a customer nobody has; no answer to brand B holds a byte of brand A's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from api.auth import KeyStore
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.e2e.test_events import assert_problem
from tests.factories import LATER, posted
from tests.random_refs import random_brand, random_customer, random_event_id

ROLES = ("brand", "agent", "compliance")
READS = ("timeline", "consents")
WRITES = ("event", "batch")
ALLOWED = {"brand": {*READS, *WRITES}, "agent": set(READS), "compliance": set(READS)}


@dataclass
class BrandA:
    """Brand A's data, with markers that must never reach brand B."""

    customer: str
    event_ids: list[str]
    markers: list[str]
    writer: Client


@pytest.fixture
def brand_a(client_for: ClientFor) -> BrandA:
    writer = client_for("brand", random_brand("a"))
    customer = random_customer("secret")
    marker = f"marker-{random_event_id()}"
    events = [
        posted(
            "promise.made",
            customer,
            promise_id=f"{marker}-p",
            summary=f"{marker} refund",
            due_at=LATER,
        ),
        posted(
            "consent.granted",
            customer,
            purpose=f"{marker}-purpose",
            channels=["email"],
            data_categories=[f"{marker}-category"],
            notice_version="v1",
            method="web",
        ),
    ]
    answers = writer.record(*events)
    assert [a.status_code for a in answers] == [201, 201]
    ids = [e.event_id for e in events]
    return BrandA(customer, ids, [marker, customer, writer.brand, *ids], writer)


def call(client: Client, what: str, customer: str) -> TestResponse:
    event = as_json(posted("question.answered", customer, case_id="c", topic="t", resolved=True))
    if what == "event":
        return client.post("/v1/events", json=event)
    if what == "batch":
        return client.post("/v1/events/batch", json={"events": [event]})
    return client.get(f"/v1/customers/{customer}/{what}")


def timeline_of(a: BrandA) -> list[str]:
    answer = a.writer.get(f"/v1/customers/{a.customer}/timeline")
    return [item["event_id"] for item in answer.get_json()["items"]]


@pytest.mark.parametrize("what", [*WRITES, *READS])
@pytest.mark.parametrize("role", ROLES)
def test_each_role_of_the_same_brand(
    client_for: ClientFor, brand_a: BrandA, role: str, what: str
) -> None:
    client = client_for(role, brand_a.writer.brand)
    before = timeline_of(brand_a)
    answer = call(client, what, brand_a.customer)
    if what in ALLOWED[role]:
        assert answer.status_code in (200, 201), answer.get_json()
    else:
        body = assert_problem(answer, 403)
        assert body["detail"] == "This key's role may not make this call."
        assert timeline_of(brand_a) == before, "a denied write appended nothing"


@pytest.mark.parametrize("what", READS)
@pytest.mark.parametrize("role", ROLES)
def test_another_brand_sees_nothing_of_brand_a(
    client_for: ClientFor, brand_a: BrandA, role: str, what: str
) -> None:
    other = client_for(role, random_brand("b"))
    theirs = call(other, what, brand_a.customer)
    nobodys = call(other, what, random_customer())
    for answer in (theirs, nobodys):
        assert_problem(answer, 404)
    assert without_instance(theirs) == without_instance(nobodys), "no hint that A's customer exists"
    assert_no_trace_of(brand_a, theirs)


@pytest.mark.parametrize("role", ROLES)
def test_another_brand_writing_the_same_references_writes_its_own(
    client_for: ClientFor, brand_a: BrandA, role: str
) -> None:
    other = client_for(role, random_brand("b"))
    reused = []
    for event_id in brand_a.event_ids:
        event = as_json(
            posted("question.answered", brand_a.customer, case_id="c", topic="t", resolved=True)
        )
        reused.append({**event, "event_id": event_id})
    answers = [
        other.post("/v1/events", json=reused[0]),
        other.post("/v1/events/batch", json={"events": [reused[1]]}),
    ]
    for answer in answers:
        if role == "brand":
            assert answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers
        else:
            assert_problem(answer, 403)
        assert_no_trace_of(brand_a, answer, allowed=[brand_a.customer, *brand_a.event_ids])
    assert timeline_of(brand_a) == list(reversed(brand_a.event_ids)), "A's customer is untouched"


def without_instance(answer: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = answer.get_json(force=True)
    return {k: v for k, v in body.items() if k != "instance"}


def assert_no_trace_of(a: BrandA, answer: TestResponse, allowed: list[str] | None = None) -> None:
    """Not a byte of A's data; `allowed` are values B sent itself, which its answer may repeat."""
    raw = answer.get_data(as_text=True) + str(answer.headers)
    for marker in a.markers:
        if marker not in (allowed or []):
            assert marker not in raw


# --- no key, a bad key, a revoked key ----------------------------------------------------------


@pytest.mark.parametrize("what", [*WRITES, *READS])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer nonsense",
        "Basic dGxrOg==",
        "Bearer tlk_000000000000_" + "A" * 43,
    ],
)
def test_no_key_or_a_bad_one_is_401(
    app: Flask, brand_a: BrandA, what: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    client = Client(app.test_client(), "", "", "")
    client._headers = lambda extra: {**headers, **(extra or {})}  # type: ignore[method-assign]
    before = timeline_of(brand_a)
    answer = call(client, what, brand_a.customer)
    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert_no_trace_of(brand_a, answer, allowed=[brand_a.customer])
    assert timeline_of(brand_a) == before


def test_a_revoked_key_is_401_from_the_next_request(client_for: ClientFor, keys: KeyStore) -> None:
    client = client_for("agent")
    customer = random_customer()
    assert_problem(call(client, "timeline", customer), 404)
    keys.revoke(client.key)
    assert_problem(call(client, "timeline", customer), 401)


def test_the_key_is_checked_before_the_body(client_for: ClientFor, app: Flask) -> None:
    assert_problem(
        app.test_client().post("/v1/events", data="{", content_type="application/json"), 401
    )
    agent = client_for("agent")
    assert_problem(agent.post("/v1/events", data="{", content_type="application/json"), 403)


def test_health_and_the_document_need_no_key(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    document = client.get("/v1/openapi.json")
    assert document.status_code == 200 and document.get_json()["openapi"].startswith("3.")
