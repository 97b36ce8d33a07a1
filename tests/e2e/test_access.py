"""Who may call what: role x endpoint x brand, on both stores.

Every cell a role may not call is denied (403) and appends nothing; another brand's customer is
404 exactly as a customer nobody has; no answer to brand B holds a byte of brand A's data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from api.app import close_app, create_app, resources_of
from api.auth import KeyStore
from domain.storage import Store
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.e2e.test_events import assert_problem
from tests.factories import LATER, posted
from tests.random_refs import random_brand, random_customer, random_event_id

ROLES = ("brand", "agent", "compliance")
CUSTOMER_READS = ("timeline", "consents", "trust", "receipts")
"""Reads of one customer that every role of the brand may make."""
BRAND_READS = ("customers", "brand-trust")
READS = (*CUSTOMER_READS, *BRAND_READS)
BRAND_ONLY = ("event", "batch", "push", "policy", "policy-change")
COMPLIANCE_ONLY = ("audit", "findings", "export", "erasure")
EVERY = (*READS, *BRAND_ONLY, *COMPLIANCE_ONLY)
ALLOWED = {
    "brand": {*READS, *BRAND_ONLY},
    "agent": set(READS),
    "compliance": {*READS, *COMPLIANCE_ONLY},
}
OF_A_CUSTOMER = (*CUSTOMER_READS, "audit", "export", "erasure")
"""Calls that name one of the brand's customers (or pushes): another brand's is not found."""


@dataclass
class BrandA:
    """Brand A's data, with markers that must never reach brand B."""

    customer: str
    event_ids: list[str]
    markers: list[str]
    writer: Client
    push_id: str


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
    push_id = f"{marker}-push"
    decided = writer.post("/v1/push-decisions", json=push_request(push_id, customer, "offer"))
    assert decided.status_code == 200, decided.get_json()
    ids.append(decided_event_id(writer, customer))
    return BrandA(customer, ids, [marker, customer, writer.brand, *ids], writer, push_id)


def push_request(push_id: str, customer: str, kind: str = "service") -> dict[str, Any]:
    purpose = {"purpose": "marketing"} if kind != "service" else {}
    return {"push_id": push_id, "customer": customer, "channel": "email", "kind": kind, **purpose}


def decided_event_id(writer: Client, customer: str) -> str:
    items = writer.get(f"/v1/customers/{customer}/timeline").get_json()["items"]
    return str(items[0]["event_id"])


def call(client: Client, what: str, customer: str, push_id: str = "never-decided") -> TestResponse:
    event = as_json(posted("question.answered", customer, case_id="c", topic="t", resolved=True))
    path = f"/v1/customers/{customer}"
    if what == "event":
        return client.post("/v1/events", json=event)
    if what == "batch":
        return client.post("/v1/events/batch", json={"events": [event]})
    if what == "push":
        return client.post(
            "/v1/push-decisions", json=push_request(f"push-{random_event_id()}", customer)
        )
    if what == "erasure":
        return client.post(f"{path}/erasure", json={"reason": "asked by the customer"})
    if what == "policy-change":
        return client.put("/v1/policy", json={"frequency_cap": 3})
    paths = {
        "receipts": f"{path}/consents/receipts",
        "export": f"{path}/export",
        "customers": "/v1/customers",
        "brand-trust": "/v1/trust",
        "policy": "/v1/policy",
        "audit": f"/v1/audit/push-decisions/{push_id}",
        "findings": "/v1/audit/findings",
    }
    return client.get(paths.get(what, f"{path}/{what}"))


def timeline_of(a: BrandA) -> list[str]:
    answer = a.writer.get(f"/v1/customers/{a.customer}/timeline")
    return [item["event_id"] for item in answer.get_json()["items"]]


def policy_of(a: BrandA) -> int:
    version: int = a.writer.get("/v1/policy").get_json()["version"]
    return version


@pytest.mark.parametrize("what", EVERY)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_of_the_same_brand(
    client_for: ClientFor, brand_a: BrandA, role: str, what: str
) -> None:
    client = client_for(role, brand_a.writer.brand)
    before = timeline_of(brand_a), policy_of(brand_a)
    answer = call(client, what, brand_a.customer, brand_a.push_id)
    if what in ALLOWED[role]:
        assert answer.status_code in (200, 201), answer.get_json()
    else:
        body = assert_problem(answer, 403)
        assert body["detail"] == "This key's role may not make this call."
        assert (timeline_of(brand_a), policy_of(brand_a)) == before, "a denied call wrote nothing"


@pytest.mark.parametrize("what", OF_A_CUSTOMER)
@pytest.mark.parametrize("role", ROLES)
def test_another_brand_sees_nothing_of_brand_a(
    client_for: ClientFor, brand_a: BrandA, role: str, what: str
) -> None:
    other = client_for(role, random_brand("b"))
    theirs = call(other, what, brand_a.customer, brand_a.push_id)
    nobodys = call(other, what, random_customer(), f"push-{random_event_id()}")
    for answer in (theirs, nobodys):
        assert_problem(answer, 404 if what in ALLOWED[role] else 403)
    assert without_instance(theirs) == without_instance(nobodys), "no hint that A's customer exists"
    assert_no_trace_of(brand_a, theirs)
    assert timeline_of(brand_a)[-1] == brand_a.event_ids[0], "A's customer is not erased"


@pytest.mark.parametrize("what", [*BRAND_READS, "findings", "policy"])
@pytest.mark.parametrize("role", ROLES)
def test_another_brands_own_lists_hold_nothing_of_brand_a(
    client_for: ClientFor, brand_a: BrandA, role: str, what: str
) -> None:
    answer = call(client_for(role, random_brand("b")), what, brand_a.customer)
    assert answer.status_code == (200 if what in ALLOWED[role] else 403)
    assert_no_trace_of(brand_a, answer)


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


@pytest.mark.parametrize("what", EVERY)
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
    app: Flask,
    brand_a: BrandA,
    what: str,
    authorization: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    client = Client(app.test_client(), "", "", "")
    monkeypatch.setattr(client, "_headers", lambda extra: {**headers, **(extra or {})})
    before = timeline_of(brand_a), policy_of(brand_a)
    answer = call(client, what, brand_a.customer, brand_a.push_id)
    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert_no_trace_of(brand_a, answer, allowed=[brand_a.customer])
    assert (timeline_of(brand_a), policy_of(brand_a)) == before


def test_a_key_revoked_by_the_server_is_401_from_the_next_request(
    client_for: ClientFor, app: Flask
) -> None:
    client = client_for("agent")
    customer = random_customer()
    assert_problem(call(client, "timeline", customer), 404)
    resources_of(app).keys.revoke(client.key)
    assert_problem(call(client, "timeline", customer), 401)


def test_a_key_revoked_elsewhere_is_401_once_the_key_cache_lapses(
    store: Store, keys: KeyStore
) -> None:
    app = create_app({"database_url": store.url, "key_cache_seconds": "0.2"})
    brand = random_brand()
    issued = keys.create(brand, "agent")
    client = Client(app.test_client(), issued.key, brand, "agent")
    customer = random_customer()
    assert_problem(call(client, "timeline", customer), 404)
    keys.revoke(issued.key)  # as `trustledger keys revoke` does, from another process
    deadline = time.monotonic() + 5
    while call(client, "timeline", customer).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works after 5 s"
        time.sleep(0.05)
    close_app(app)


def test_the_key_is_checked_before_the_body(client_for: ClientFor, app: Flask) -> None:
    assert_problem(
        app.test_client().post("/v1/events", data="{", content_type="application/json"), 401
    )
    agent = client_for("agent")
    assert_problem(agent.post("/v1/events", data="{", content_type="application/json"), 403)


def test_health_and_the_document_need_no_key(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}
    document = client.get("/v1/openapi.json")
    assert document.status_code == 200 and document.get_json()["openapi"].startswith("3.")


def test_every_keyed_operation_documents_401_403_and_503(app: Flask) -> None:
    """A CRM integrating against the document learns that any call may answer 503 (the database
    down) as well as 401 and 403."""
    document = app.test_client().get("/v1/openapi.json").get_json()
    keyed = {
        f"{method.upper()} {path}": set(operation["responses"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and operation.get("security")
    }
    assert len(keyed) >= 15 and "POST /v1/events" in keyed
    assert {
        op: responses for op, responses in keyed.items() if {"401", "403", "503"} - responses
    } == {}
