"""Erasure, consent receipts and the export over HTTP, on both stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from api.app import resources_of
from domain.brand import policy_id
from domain.storage import Store
from projections.db import Database
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.e2e.test_events import assert_problem
from tests.factories import NOW, posted
from tests.random_refs import random_customer

RECEIPT_FIELDS = {
    "version", "jurisdiction", "consentTimestamp", "collectionMethod", "consentReceiptID",
    "language", "piiPrincipalId", "piiControllers", "policyUrl", "services", "sensitive", "spiCat",
    "status", "channels", "event_id",
}  # fmt: skip
EXPIRES = (datetime.now(UTC) + timedelta(days=365)).replace(microsecond=0)


def consent_story(brand: Client, customer: str, canary: str) -> list[dict[str, object]]:
    events = [
        posted(
            "consent.granted",
            customer,
            purpose="marketing",
            channels=["email", "push"],
            data_categories=["purchase_history"],
            notice_version="2026-01",
            method="web_form",
            jurisdiction="EU",
            expires_at=EXPIRES,
        ),
        posted("consent.withdrawn", customer, purpose="marketing", channels=["push"]),
        posted(
            "promise.made",
            customer,
            promise_id="p1",
            summary=f"call {canary} back",
            due_at=EXPIRES,
        ),
    ]
    bodies = [as_json(e) for e in events]
    assert brand.post("/v1/events/batch", json={"events": bodies}).status_code == 201
    return bodies


@pytest.mark.parametrize("role", ["brand", "agent", "compliance"])
def test_one_receipt_per_consent_event_with_every_field(client_for: ClientFor, role: str) -> None:
    brand = client_for("brand")
    customer = random_customer()
    granted, withdrawn, _ = consent_story(brand, customer, "x")
    answer = client_for(role, brand.brand).get(f"/v1/customers/{customer}/consents/receipts")
    assert answer.status_code == 200, answer.get_json()
    receipts = answer.get_json()["receipts"]
    assert [r["event_id"] for r in receipts] == [granted["event_id"], withdrawn["event_id"]]
    for receipt, event in zip(receipts, (granted, withdrawn), strict=True):
        assert set(receipt) == RECEIPT_FIELDS
        assert receipt["version"] == "KI-CR-v1.1.0"
        assert receipt["piiPrincipalId"] == customer
        assert receipt["piiControllers"] == [{"piiController": brand.brand}]
        assert receipt["jurisdiction"] == "EU"
        assert receipt["policyUrl"].endswith(":2026-01")
        moment = datetime.fromisoformat(str(event["occurred_at"]))
        assert receipt["consentTimestamp"] == int(moment.timestamp())
        uuid.UUID(receipt["consentReceiptID"])
        (service,) = receipt["services"]
        (purpose,) = service["purposes"]
        assert service["service"] == purpose["purpose"] == "marketing"
        assert purpose["consentType"] == "EXPLICIT"
        assert purpose["piiCategory"] == ["purchase_history"]
    assert receipts[0]["collectionMethod"] == "web_form"
    assert receipts[0]["status"] == "granted" and receipts[0]["channels"] == ["email", "push"]
    assert (
        datetime.fromisoformat(receipts[0]["services"][0]["purposes"][0]["termination"]) == EXPIRES
    )
    assert receipts[1]["status"] == "withdrawn" and receipts[1]["channels"] == ["push"]
    again = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert [r["consentReceiptID"] for r in again] == [r["consentReceiptID"] for r in receipts]
    assert len({r["consentReceiptID"] for r in receipts}) == 2


CONTROLLER = {
    "name": "Northwind Broadband Ltd",
    "contact": "Data Protection Officer",
    "address": "1 Harbour Street, Leith EH6 6AB, UK",
    "email": "dpo@northwind.example",
    "phone": "+44 131 555 0100",
    "url": "https://northwind.example/",
    "privacy_policy_url": "https://northwind.example/privacy",
}


def test_a_receipt_names_the_controller_as_it_stood_when_the_consent_was_recorded(
    client_for: ClientFor,
) -> None:
    """Kantara v1.1 asks each receipt for the controller's contact, address, email and phone and
    a policyUrl: a receipt named the brand's slug alone, and an URN no one can open. A brand now
    sets them in its policy (versioned), and a receipt reads them as they stood at its consent."""
    brand = client_for("brand")
    before, after = random_customer("before"), random_customer("after")
    consent_story(brand, before, "x")
    answer = brand.put("/v1/policy", json={"controller": CONTROLLER})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["controller"] == CONTROLLER
    consent_story(brand, after, "y")
    receipts = {
        customer: brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
        for customer in (before, after)
    }
    assert receipts[before][0]["piiControllers"] == [{"piiController": brand.brand}]
    assert receipts[before][0]["policyUrl"].endswith(":2026-01")
    for receipt in receipts[after]:
        assert receipt["piiControllers"] == [
            {
                "piiController": CONTROLLER["name"],
                "contact": CONTROLLER["contact"],
                "address": CONTROLLER["address"],
                "email": CONTROLLER["email"],
                "phone": CONTROLLER["phone"],
                "piiControllerUrl": CONTROLLER["url"],
            }
        ]
        assert receipt["policyUrl"] == CONTROLLER["privacy_policy_url"]


@pytest.mark.parametrize(
    "controller",
    [
        {"email": "not an address"},
        {"url": "javascript:alert(1)"},
        {"privacy_policy_url": "ftp://northwind.example/"},
        {"phone": "x" * 65},
        {"name": ""},
        {"name": "   "},  # a receipt's piiController read blank, where the slug stands in for none
        {"contact": " "},
        {"address": "\u3000"},
        {"fax": "+44"},
    ],
)
def test_a_controller_that_no_receipt_could_carry_is_422(
    client_for: ClientFor, controller: dict[str, str]
) -> None:
    brand = client_for("brand")
    assert_problem(brand.put("/v1/policy", json={"controller": controller}), 422)
    assert brand.get("/v1/policy").get_json()["version"] == 0


def test_an_unsubscribe_is_a_withdrawal_with_its_receipt(client_for: ClientFor) -> None:
    """DESIGN.md: `unsubscribed` "withdraws that purpose on that channel". The consents read it
    as a withdrawal by the feedback event, and the receipts, one per consent change, had none."""
    brand = client_for("brand")
    customer = random_customer()
    granted, withdrawn, _ = consent_story(brand, customer, "x")
    push = {
        "push_id": f"push-{customer}", "customer": customer, "kind": "offer",
        "purpose": "marketing", "channel": "email", "data_categories": [],
    }  # fmt: skip
    assert brand.post("/v1/push-decisions", json=push).status_code == 200
    sent = posted("push.sent", customer, push_id=push["push_id"])
    unsubscribed = posted(
        "push.feedback", customer, push_id=push["push_id"], reaction="unsubscribed"
    )
    assert [a.status_code for a in brand.record(sent, unsubscribed)] == [201, 201]
    consents = brand.get(f"/v1/customers/{customer}/consents").get_json()["consents"]
    assert {(c["channel"], c["status"], c["event_id"]) for c in consents} == {
        ("email", "withdrawn", unsubscribed.event_id),
        ("push", "withdrawn", withdrawn["event_id"]),
    }
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert [r["event_id"] for r in receipts] == [
        granted["event_id"],
        withdrawn["event_id"],
        unsubscribed.event_id,
    ]
    receipt = receipts[-1]
    assert set(receipt) == RECEIPT_FIELDS
    assert (receipt["status"], receipt["channels"], receipt["collectionMethod"]) == (
        "withdrawn",
        ["email"],
        "withdrawal",
    )
    (service,) = receipt["services"]
    assert service["service"] == "marketing"
    assert service["purposes"][0]["termination"] == "withdrawn"
    assert receipt["jurisdiction"] == "EU"


def test_a_withdrawals_receipt_carries_the_terms_of_the_grant_on_its_channel(
    client_for: ClientFor,
) -> None:
    """A purpose granted on email and, later and on other terms, on sms; then withdrawn on
    email. Its receipt named the sms grant's categories, notice and jurisdiction, which the
    customer never gave on email: proof of a consent that was not the one withdrawn."""
    brand = client_for("brand")
    customer = random_customer()
    terms: dict[str, Any] = {"purpose": "marketing", "method": "web_form"}
    events = [
        posted(
            "consent.granted", customer, channels=["email"], data_categories=["purchase_history"],
            notice_version="email-1", jurisdiction="FR", **terms,
        ),
        posted(
            "consent.granted", customer, channels=["sms"], data_categories=["location"],
            notice_version="sms-9", jurisdiction="DE", **terms,
        ),
        posted("consent.withdrawn", customer, purpose="marketing", channels=["email"]),
        posted("consent.withdrawn", customer, purpose="marketing"),
    ]  # fmt: skip
    assert [a.status_code for a in brand.record(*events)] == [201] * 4
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    shown = [
        (
            r["status"],
            r["channels"],
            r["services"][0]["purposes"][0]["piiCategory"],
            r["jurisdiction"],
            r["policyUrl"].rsplit(":", 1)[-1],
        )
        for r in receipts
    ]
    assert shown == [
        ("granted", ["email"], ["purchase_history"], "FR", "email-1"),
        ("granted", ["sms"], ["location"], "DE", "sms-9"),
        ("withdrawn", ["email"], ["purchase_history"], "FR", "email-1"),
        ("withdrawn", None, ["location"], "DE", "sms-9"),  # every channel
    ]


def test_a_grant_without_expiry_terminates_on_withdrawal(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = posted(
        "consent.granted", customer, purpose="service", channels=["sms"], data_categories=[],
        notice_version="v2", method="call",
    )  # fmt: skip
    assert brand.record(event)[0].status_code == 201
    (receipt,) = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert receipt["services"][0]["purposes"][0]["termination"] == "on withdrawal"
    assert receipt["jurisdiction"] == "unspecified"
    assert receipt["sensitive"] is False and receipt["spiCat"] == []


def test_a_receipt_names_the_sensitive_categories_of_the_brands_policy(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = posted(
        "consent.granted", customer, purpose="care", channels=["sms"],
        data_categories=["health", "purchase_history"], notice_version="v2", method="call",
    )  # fmt: skip
    assert brand.record(event)[0].status_code == 201
    (receipt,) = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert receipt["sensitive"] is True and receipt["spiCat"] == ["health"]


def test_a_receipt_reads_the_same_after_the_policy_changes_what_is_sensitive(
    client_for: ClientFor,
) -> None:
    """`sensitive` and `spiCat` came from the brand's policy as it is now, while
    `piiControllers` came from the version in force when the consent was recorded: a later
    `PUT /v1/policy` rewrote receipts already issued. Proof must not change after the fact."""
    brand = client_for("brand")
    customer = random_customer()
    events = [
        posted(
            "consent.granted", customer, purpose="care", channels=["sms"],
            data_categories=["health", "location"], notice_version="v2", method="call",
        ),
        posted("consent.withdrawn", customer, purpose="care", channels=["sms"]),
    ]  # fmt: skip
    assert [a.status_code for a in brand.record(*events)] == [201, 201]
    path = f"/v1/customers/{customer}/consents/receipts"
    before = brand.get(path).get_json()["receipts"]
    assert [(r["sensitive"], r["spiCat"]) for r in before] == [(True, ["health"])] * 2
    answer = brand.put("/v1/policy", json={"sensitive_categories": ["location"]})
    assert answer.status_code == 200, answer.get_json()
    assert brand.get(path).get_json()["receipts"] == before
    later = posted(
        "consent.granted", customer, purpose="care", channels=["sms"],
        data_categories=["health", "location"], notice_version="v3", method="call",
    )  # fmt: skip
    assert brand.record(later)[0].status_code == 201
    *same, new = brand.get(path).get_json()["receipts"]
    assert same == before
    assert (new["sensitive"], new["spiCat"]) == (True, ["location"])


def test_receipts_read_each_policy_version_once_an_answer(
    app: Flask, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each consent act recorded before the policy's current version read the version then in
    force back from the log: for each act, the policy's events (to find the version) and the
    version itself, so a customer's receipts cost two policy reads an act. Counted here as the
    reads of the policy's events from the store: once when each version was set, once each
    version the acts were recorded under, and the current one."""
    brand = client_for("brand")
    customer = random_customer()
    terms: dict[str, Any] = {"purpose": "care", "channels": ["sms"], "method": "call"}
    terms |= {"data_categories": ["health", "location"], "notice_version": "v2"}
    for sensitive in (["health"], ["location"]):
        assert brand.put("/v1/policy", json={"sensitive_categories": sensitive}).status_code == 200
        acts = [posted("consent.granted", customer, **terms) for _ in range(4)]
        assert [a.status_code for a in brand.record(*acts)] == [201] * 4
    assert brand.put("/v1/policy", json={"sensitive_categories": []}).status_code == 200
    ledger = resources_of(app).ledger
    policy = policy_id(brand.brand)
    reads: list[object] = []
    get = ledger.events.get

    def counted(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("originator_id", args[0] if args else None) == policy:
            reads.append(kwargs)
        return get(*args, **kwargs)

    monkeypatch.setattr(ledger.events, "get", counted)
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert [r["spiCat"] for r in receipts] == [["health"]] * 4 + [["location"]] * 4
    assert len(reads) <= 4, reads  # when each was set; versions 1 and 2; the current one


def test_a_withdrawal_of_every_purpose_on_every_channel_names_every_channel(
    client_for: ClientFor,
) -> None:
    """A withdrawal of `*` naming no channel (an objection to all offers and advice, on every
    channel) had a receipt with `channels: []`, as if it withdrew nothing. It names them as the
    consents' `objections` do: `channels` null for every channel; one naming channels, those."""
    brand = client_for("brand")
    customer = random_customer()
    events = [
        posted(
            "consent.granted", customer, purpose="marketing", channels=["email"],
            data_categories=["purchase_history"], notice_version="v1", method="web_form",
        ),
        posted("consent.withdrawn", customer, purpose="*", channels=["sms"]),
        posted("consent.withdrawn", customer, purpose="*"),
    ]  # fmt: skip
    assert [a.status_code for a in brand.record(*events)] == [201] * 3
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    shown = [(r["status"], r["services"][0]["service"], r["channels"]) for r in receipts]
    assert shown == [
        ("granted", "marketing", ["email"]),
        ("withdrawn", "*", ["sms"]),
        ("withdrawn", "*", None),
    ]
    consents = brand.get(f"/v1/customers/{customer}/consents").get_json()
    assert [o["channels"] for o in consents["objections"]] == [shown[-1][-1], shown[-2][-1]]


def test_a_withdrawal_of_one_purpose_naming_no_channel_names_every_channel(
    client_for: ClientFor,
) -> None:
    """A withdrawal of one purpose naming no channel withdraws it on every channel: the consents
    (and the gate, which folds the same way) hold a grant on sms posted after it but dated before
    it withdrawn by it. Its receipt listed the channels granted when it was recorded (email):
    a receipt states what the ledger enforces, so it says `channels` null, every channel."""
    brand = client_for("brand")
    customer = random_customer()
    terms: dict[str, Any] = {"purpose": "marketing", "data_categories": ["purchase_history"]}
    terms |= {"notice_version": "v1", "method": "web_form"}
    email = posted(
        "consent.granted", customer, at=NOW - timedelta(hours=2), channels=["email"], **terms
    )
    withdrawn = posted(
        "consent.withdrawn", customer, at=NOW - timedelta(hours=1), purpose="marketing"
    )
    sms = posted(
        "consent.granted", customer, at=NOW - timedelta(hours=3), channels=["sms"], **terms
    )
    assert [a.status_code for a in brand.record(email, withdrawn, sms)] == [201] * 3
    consents = brand.get(f"/v1/customers/{customer}/consents").get_json()["consents"]
    assert {(c["channel"], c["status"], c["event_id"]) for c in consents} == {
        ("email", "withdrawn", withdrawn.event_id),
        ("sms", "withdrawn", withdrawn.event_id),
    }
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    shown = [(r["event_id"], r["status"], r["channels"]) for r in receipts]
    assert shown == [
        (email.event_id, "granted", ["email"]),
        (withdrawn.event_id, "withdrawn", None),
        (sms.event_id, "granted", ["sms"]),
    ]
    assert receipts[1]["services"][0]["purposes"][0]["piiCategory"] == ["purchase_history"]


def test_export_holds_everything_about_the_customer(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    bodies = consent_story(brand, customer, "canary")
    decided = brand.post(
        "/v1/push-decisions",
        json={"push_id": "p-x", "customer": customer, "purpose": "marketing", "channel": "email",
              "kind": "offer", "data_categories": ["browsing_history"]},
    )  # fmt: skip
    assert decided.status_code == 200
    compliance = client_for("compliance", brand.brand)
    answer = compliance.get(f"/v1/customers/{customer}/export")
    assert answer.status_code == 200, answer.get_json()
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    assert answer.headers["Content-Disposition"].endswith('.json"')
    document = answer.get_json()
    assert document["customer"] == customer and document["brand"] == brand.brand
    assert [e["event_id"] for e in document["events"]][:3] == [b["event_id"] for b in bodies]
    assert document["events"][-1]["type"] == "push.decided"
    assert len(document["consent_receipts"]) == 2
    assert {c["channel"]: c["status"] for c in document["consents"]} == {
        "email": "granted",
        "push": "withdrawn",
    }
    assert [d["push_id"] for d in document["decisions"]] == ["p-x"]
    assert document["decisions"][0]["outcome"] == "deny"
    assert set(document["trust"]) >= {"consistency", "honesty", "expertise", "overall"}
    assert "canary" in answer.get_data(as_text=True)


def test_erasure_over_http_then_timeline_and_export_hold_no_canary(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer("canary")
    consent_story(brand, customer, "canary-words")
    asked = {"push_id": "before", "customer": customer, "channel": "email", "kind": "service"}
    assert brand.post("/v1/push-decisions", json=asked).status_code == 200
    compliance = client_for("compliance", brand.brand)
    erased = compliance.post(
        f"/v1/customers/{customer}/erasure", json={"reason": "Art. 17 request"}
    )
    assert erased.status_code == 200, erased.get_json()
    receipt = erased.get_json()
    assert receipt["requested_by"].startswith("key:") and receipt["reason"] == "Art. 17 request"
    assert receipt["replayed"] is False and receipt["events_shredded"] == 5  # opened, and the four
    again = compliance.post(f"/v1/customers/{customer}/erasure", json={"reason": "again"})
    assert again.get_json() == {**receipt, "replayed": True}
    timeline = brand.get(f"/v1/customers/{customer}/timeline").get_json()["items"]
    promise = next(i for i in timeline if i["type"] == "promise.made")
    assert "[erased]" in str(promise["data"]) or "[erased]" in promise["summary"]
    exported = compliance.get(f"/v1/customers/{customer}/export")
    assert exported.status_code == 200
    text = exported.get_data(as_text=True)
    assert "canary" not in text
    assert exported.get_json()["customer"] == "[erased]"
    receipts = brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"]
    assert {r["piiPrincipalId"] for r in receipts} == {"[erased]"}
    named = posted("question.answered", "[erased]", case_id="c", topic="t", resolved=True)
    assert brand.post("/v1/events", json=as_json(named)).status_code == 201  # a live customer
    listed = brand.get("/v1/customers").get_json()["customers"]
    assert sorted((row["customer"], row["erased"]) for row in listed) == [
        ("[erased]", False),
        ("[erased]", True),
    ]
    later = posted("question.answered", customer, case_id="c", topic="t", resolved=True)
    body = assert_problem(brand.post("/v1/events", json=as_json(later)), 409)
    assert body["type"].endswith("customer-erased")
    for push_id in ("after", "before"):  # a repeat too: its request reads "[erased]" now
        body = assert_problem(
            brand.post("/v1/push-decisions", json={**asked, "push_id": push_id}), 409
        )
        assert body["type"].endswith("customer-erased"), body


def test_the_api_reads_sealed_values_whole_and_erased_after_the_erasure(
    client_for: ClientFor, store: Store
) -> None:
    """The read models hold the customer's values sealed (tests/integration/
    test_erasure_read_models.py); every read opens them: the timeline, the customers list, the
    export's decisions. After the erasure they read "[erased]"."""
    brand = client_for("brand")
    customer = random_customer("canary")
    actor, words = f"agent-{uuid.uuid4().hex[:8]}", f"canary-{uuid.uuid4().hex[:8]}"
    made = posted("promise.made", customer, promise_id="p1", summary=words, due_at=EXPIRES)
    assert brand.post("/v1/events", json={**as_json(made), "actor": actor}).status_code == 201
    asked = {"push_id": "sealed", "customer": customer, "channel": "email", "kind": "service"}
    assert brand.post("/v1/push-decisions", json=asked).status_code == 200
    compliance = client_for("compliance", brand.brand)

    def shown() -> list[object]:
        items = brand.get(f"/v1/customers/{customer}/timeline").get_json()["items"]
        promise = next(i for i in items if i["type"] == "promise.made")
        listed = brand.get("/v1/customers").get_json()["customers"]
        exported = compliance.get(f"/v1/customers/{customer}/export").get_json()
        return [
            promise["actor"],
            promise["summary"],
            promise["data"]["summary"],
            [row["customer"] for row in listed],
            [d["request"]["customer"] for d in exported["decisions"]],
        ]

    due = f"due {EXPIRES:%Y-%m-%d}"
    assert shown() == [actor, f"Promised: {words}, {due}", words, [customer], [customer]]
    db = Database(store)  # without keys: the rows as stored, which the reads above caught up
    stored = repr([db.query(f"SELECT * FROM {t}") for t in ("timeline", "relationships")])
    stored += repr(db.query("SELECT * FROM decisions WHERE brand = ?", [brand.brand]))
    db.close()
    assert brand.brand in stored and "sealed" in stored, "the search reads the brand's rows"
    assert customer not in stored and actor not in stored and words not in stored
    erasure = {"reason": "Art. 17 request"}
    assert compliance.post(f"/v1/customers/{customer}/erasure", json=erasure).status_code == 200
    erased = "[erased]"
    assert shown() == [erased, f"Promised: {erased}, {due}", erased, [erased], [erased]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "\n\t "},
        {"reason": "\u200b\u2060\u200b"},  # zero-width: says nothing, was kept as the why
        {"reason": "\u3000\u00a0"},
        {"reason": "x", "more": 1},
        {"reason": 5},
    ],
)
def test_an_erasure_needs_a_reason(client_for: ClientFor, body: dict[str, object]) -> None:
    brand = client_for("brand")
    customer = random_customer()
    consent_story(brand, customer, "x")
    compliance = client_for("compliance", brand.brand)
    assert_problem(compliance.post(f"/v1/customers/{customer}/erasure", json=body), 422)
    assert (
        brand.get(f"/v1/customers/{customer}/consents/receipts").get_json()["receipts"][0][
            "piiPrincipalId"
        ]
        == customer
    )


def test_an_unknown_customer_is_404_everywhere(client_for: ClientFor) -> None:
    compliance = client_for("compliance")
    customer = random_customer()
    for answer in (
        compliance.get(f"/v1/customers/{customer}/export"),
        compliance.get(f"/v1/customers/{customer}/consents/receipts"),
        compliance.post(f"/v1/customers/{customer}/erasure", json={"reason": "asked"}),
    ):
        assert_problem(answer, 404)
