"""POST /v1/push-decisions, GET/PUT /v1/policy, and the audit endpoints, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from api.context import ledger
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.e2e.test_events import assert_problem
from tests.e2e.test_trust_api import every_page
from tests.factories import posted
from tests.random_refs import random_customer, random_event_id

RULES = {
    "consent",
    "objection",
    "open_breaches",
    "trust",
    "personalisation_depth",
    "frequency",
    "quiet_hours",
}


def push(customer: str, **overrides: Any) -> dict[str, Any]:
    return {
        "push_id": f"push-{random_event_id()}",
        "customer": customer,
        "purpose": "marketing",
        "channel": "email",
        "kind": "offer",
        "data_categories": ["purchase_history"],
        **overrides,
    }


def consented(
    brand: Client, customer: str, categories: list[str], at: datetime | None = None
) -> None:
    event = posted(
        "consent.granted",
        customer,
        at=at,
        purpose="marketing",
        channels=["email"],
        data_categories=categories,
        notice_version="2026-01",
        method="web_form",
    )
    assert brand.post("/v1/events", json=as_json(event)).status_code == 201


def test_the_creepy_offer_is_denied_and_the_reason_names_the_category(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    consented(brand, customer, ["purchase_history"])
    answer = brand.post(
        "/v1/push-decisions", json=push(customer, data_categories=["browsing_history"])
    )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["outcome"] == "deny"
    consent = next(r for r in body["reasons"] if r["rule"] == "consent")
    assert not consent["passed"] and "browsing_history" in consent["detail"]
    assert {r["rule"] for r in body["reasons"]} >= {"consent", "trust", "frequency"}
    assert body["policy_version"] == 0
    assert set(body["scores"]) >= {"consistency", "honesty", "expertise", "overall"}


def quiet(brand: Client, *, now: bool) -> None:
    """Sets the brand's quiet hours to hold the present moment, or to leave it out."""
    hour = datetime.now(UTC).hour
    start, end = ((hour - 1) % 24, (hour + 2) % 24) if now else ((hour + 3) % 24, (hour + 4) % 24)
    window = {"start": f"{start:02d}:00", "end": f"{end:02d}:00"}
    assert brand.put("/v1/policy", json={"quiet_hours": window}).status_code == 200


def test_a_service_push_is_allowed_and_a_repeat_answers_the_recorded_decision(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    quiet(brand, now=False)
    customer = random_customer()
    soon = datetime.now(UTC) + timedelta(minutes=1)
    request = push(
        customer, kind="service", purpose=None, data_categories=[], send_at=soon.isoformat()
    )
    first = brand.post("/v1/push-decisions", json=request)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["outcome"] == "allow"
    assert "Idempotent-Replayed" not in first.headers
    again = brand.post("/v1/push-decisions", json=request)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"  # as a repeated event's answer says
    timeline = brand.get(f"/v1/customers/{customer}/timeline").get_json()["items"]
    assert [item["type"] for item in timeline] == ["push.decided"]


def test_a_repeat_whose_send_at_has_left_the_window_answers_the_recorded_decision(
    app: Flask, client_for: ClientFor
) -> None:
    """A CRM retrying a decision (after a timeout, say) gets the recorded one back, even once
    its send_at is more than 5 minutes old: that bound is for deciding, and this was decided
    (it was 422, as if the push were asked about anew so far back)."""
    brand = client_for("brand")
    customer = random_customer()
    request = push(customer, kind="service", purpose=None, data_categories=[])
    then = datetime.now(UTC) - timedelta(minutes=6)
    with app.app_context():
        recorded = ledger().decide_push(brand.brand, request, now=then)
    again = brand.post("/v1/push-decisions", json={**request, "send_at": then.isoformat()})
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["outcome"] == recorded["outcome"]
    timeline = brand.get(f"/v1/customers/{customer}/timeline").get_json()["items"]
    assert [item["type"] for item in timeline] == ["push.decided"]
    other = push(customer, kind="service", purpose=None, data_categories=[])
    late = brand.post("/v1/push-decisions", json={**other, "send_at": then.isoformat()})
    assert list(assert_problem(late, 422)["errors"]) == ["send_at"]


def test_a_push_sent_before_the_consent_was_given_is_denied(client_for: ClientFor) -> None:
    """`send_at` decides as at that moment: a consent granted after it did not cover the push."""
    brand = client_for("brand")
    quiet(brand, now=False)
    customer = random_customer()
    consented(brand, customer, ["purchase_history"], at=datetime.now(UTC))
    before = datetime.now(UTC) - timedelta(minutes=3)
    answer = brand.post("/v1/push-decisions", json=push(customer, send_at=before.isoformat()))
    assert answer.status_code == 200, answer.get_json()
    consent = next(r for r in answer.get_json()["reasons"] if r["rule"] == "consent")
    assert not consent["passed"] and "granted only from" in consent["detail"]


def test_a_first_push_to_a_new_customer_under_a_policys_own_half_life_is_decided(
    client_for: ClientFor,
) -> None:
    """Scores at a half-life other than the default are folded again from the relationship's
    events; a customer the brand never wrote about has none stored yet (this was a 500)."""
    brand = client_for("brand")
    assert brand.put("/v1/policy", json={"trust_half_life_days": 30}).status_code == 200
    quiet(brand, now=False)
    customer = random_customer()
    request = push(customer, kind="service", purpose=None, data_categories=[])
    answer = brand.post("/v1/push-decisions", json=request)
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "allow", answer.text
    compliance = client_for("compliance", brand.brand)
    audit = compliance.get(f"/v1/audit/push-decisions/{request['push_id']}").get_json()
    assert audit["reproduced"] is True, audit


def test_the_trust_answer_is_the_gates_under_a_policys_own_half_life(
    client_for: ClientFor,
) -> None:
    """The gate decides on scores decayed with the policy's half-life; the trust answer shows
    the same (it showed them at the default half-life, which the decision did not use)."""
    brand = client_for("brand")
    quiet(brand, now=False)
    customer = random_customer()
    events = [
        posted("question.answered", customer, at=datetime.now(UTC) - timedelta(days=days),
               case_id=f"c{days}", topic="t", resolved=days > 50)
        for days in (120, 90, 60, 30, 5)
    ]  # fmt: skip
    assert (
        brand.post("/v1/events/batch", json={"events": [as_json(e) for e in events]}).status_code
        == 201
    )
    assert brand.put("/v1/policy", json={"trust_half_life_days": 30}).status_code == 200
    request = push(customer, kind="service", purpose=None, data_categories=[])
    decided = brand.post("/v1/push-decisions", json=request).get_json()["scores"]
    shown = brand.get(f"/v1/customers/{customer}/trust").get_json()
    assert brand.put("/v1/policy", json={"trust_half_life_days": 180}).status_code == 200
    default = brand.get(f"/v1/customers/{customer}/trust").get_json()
    for name in ("b", "d", "u"):  # not P: the gate's base rate may lag the brand's latest
        assert shown["expertise"][name] == pytest.approx(decided["expertise"][name], rel=1e-5)
    assert shown["expertise"]["d"] > default["expertise"]["d"] + 0.01  # recent failures count more


def test_quiet_hours_defer_with_retry_after(client_for: ClientFor) -> None:
    brand = client_for("brand")
    quiet(brand, now=True)
    request = push(random_customer(), kind="service", purpose=None, data_categories=[])
    body = brand.post("/v1/push-decisions", json=request).get_json()
    assert body["outcome"] == "defer", body
    assert datetime.fromisoformat(body["retry_after"]) > datetime.now(UTC)
    assert next(r for r in body["reasons"] if r["rule"] == "quiet_hours")["passed"] is False


def test_the_same_push_id_for_another_request_is_409(client_for: ClientFor) -> None:
    brand = client_for("brand")
    request = push(random_customer(), kind="service", purpose=None)
    assert brand.post("/v1/push-decisions", json=request).status_code == 200
    other = {**request, "channel": "sms"}
    assert_problem(brand.post("/v1/push-decisions", json=other), 409)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "gossip"},
        {"purpose": None},
        {"purpose": "*"},  # no consent is granted for '*': it was decided, denied and recorded
        {"kind": "service", "purpose": "*"},
        {"send_at": "2001-01-01T00:00:00Z"},
        {"send_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()},
        {"extra": 1},
        {"data_categories": "all"},
        {"customer": "/c"},  # no route could read it back, nor audit the push
        {"push_id": "p\nq"},
    ],
)
def test_an_invalid_push_request_is_422_and_decides_nothing(
    client_for: ClientFor, change: dict[str, Any]
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    request = {k: v for k, v in {**push(customer), **change}.items() if v is not None}
    assert_problem(brand.post("/v1/push-decisions", json=request), 422)
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


@pytest.mark.parametrize("kind", ["offer", "advice"])
@pytest.mark.parametrize("purpose", [{}, {"purpose": None}], ids=["absent", "null"])
def test_an_offer_or_advice_without_a_purpose_is_422_saying_it_is_required(
    client_for: ClientFor, kind: str, purpose: dict[str, Any]
) -> None:
    """Not "must be a string of 1 to 128 characters": the API's bound is 64, and none was sent."""
    brand = client_for("brand")
    customer = random_customer()
    request = {k: v for k, v in push(customer, kind=kind).items() if k != "purpose"}
    answer = brand.post("/v1/push-decisions", json={**request, **purpose})
    assert_problem(answer, 422)
    assert answer.get_json()["errors"] == {"purpose": [f"purpose is required for {kind} pushes"]}
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def test_the_policy_reads_its_defaults_and_changes_by_version(client_for: ClientFor) -> None:
    brand = client_for("brand")
    default = brand.get("/v1/policy").get_json()
    assert default["version"] == 0 and default["set_at"] is None
    assert default["thresholds"]["offer"] == {"consistency": 0.5, "honesty": 0.5}
    changed = brand.put(
        "/v1/policy", json={"frequency_cap": 2, "thresholds": {"advice": {"expertise": 0.7}}}
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["version"] == 1 and body["frequency_cap"] == 2
    assert body["thresholds"] == {
        "offer": {"consistency": 0.5, "honesty": 0.5},
        "advice": {"expertise": 0.7},
    }
    assert brand.get("/v1/policy").get_json() == body
    assert brand.put("/v1/policy", json={"frequency_cap": 2}).get_json()["version"] == 1
    decided = brand.post(
        "/v1/push-decisions", json=push(random_customer(), kind="service", purpose=None)
    )
    assert decided.get_json()["policy_version"] == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"frequency_cap": -1},
        {"frequency_cap": True},
        {"thresholds": {"offer": {"consistency": 1.5}}},
        {"thresholds": {"offer": {"charm": 0.5}}},
        {"timezone": "Mars/Olympus"},
        {"timezone": "localtime"},
        {"timezone": "posix/Europe/Paris"},
        {"quiet_hours": {"start": "25:00"}},
        {"sensitive_categories": ["health", "health"]},
        {"colour": "red"},
    ],
)
def test_an_invalid_policy_change_is_422_and_makes_no_version(
    client_for: ClientFor, changes: dict[str, Any]
) -> None:
    brand = client_for("brand")
    body = assert_problem(brand.put("/v1/policy", json=changes), 422)
    assert body["errors"]
    assert brand.get("/v1/policy").get_json()["version"] == 0


def test_declines_per_halving_reads_null_until_set_and_can_be_cleared(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    assert brand.get("/v1/policy").get_json()["declines_per_halving"] is None
    counted = brand.put("/v1/policy", json={"declines_per_halving": 3})
    assert counted.status_code == 200, counted.get_json()
    assert (counted.get_json()["version"], counted.get_json()["declines_per_halving"]) == (1, 3)
    assert brand.get("/v1/policy").get_json()["declines_per_halving"] == 3
    cleared = brand.put("/v1/policy", json={"declines_per_halving": None}).get_json()
    assert (cleared["version"], cleared["declines_per_halving"]) == (2, None)
    assert brand.put("/v1/policy", json={"declines_per_halving": None}).get_json()["version"] == 2


@pytest.mark.parametrize("value", [0, 101, -3, 2.5, 3.0, True, "3", [3], {"every": 3}])
def test_a_bad_declines_per_halving_is_422_naming_it_and_makes_no_version(
    client_for: ClientFor, value: Any
) -> None:
    brand = client_for("brand")
    body = assert_problem(brand.put("/v1/policy", json={"declines_per_halving": value}), 422)
    assert list(body["errors"]) == ["declines_per_halving"], body
    assert brand.get("/v1/policy").get_json()["version"] == 0


def test_a_decision_audited_after_the_brand_counts_declines_is_reproduced(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    compliance = client_for("compliance", brand.brand)
    customer = random_customer()
    consented(brand, customer, [])
    declines = []
    for ago in (3, 2):
        at, offer_id = datetime.now(UTC) - timedelta(days=ago), f"o-{ago}"
        made = posted("offer.made", customer, at=at, offer_id=offer_id, summary="s")
        declined = posted("offer.declined", customer, at=at, offer_id=offer_id)
        assert [a.status_code for a in brand.record(made, declined)] == [201, 201]
        declines.append(declined.event_id)
    window = {"quiet_hours": {"start": "00:00", "end": "00:00"}}
    assert brand.put("/v1/policy", json=window).status_code == 200
    before = push(customer, data_categories=[])
    assert brand.post("/v1/push-decisions", json=before).get_json()["policy_version"] == 1
    assert brand.put("/v1/policy", json={"declines_per_halving": 2}).status_code == 200
    after = push(customer, data_categories=[])
    assert brand.post("/v1/push-decisions", json=after).get_json()["policy_version"] == 2
    for request, counted in ((before, []), (after, declines)):
        audit = compliance.get(f"/v1/audit/push-decisions/{request['push_id']}").get_json()
        assert audit["reproduced"] is True, audit["differences"]
        frequency = next(r for r in audit["recorded"]["reasons"] if r["rule"] == "frequency")
        assert [e for e in frequency["evidence"] if e in declines] == counted
        assert ("2 declined in 30 days" in frequency["detail"]) is bool(counted)


def test_compliance_audits_a_decision_and_it_is_reproduced(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    consented(brand, customer, ["purchase_history"])
    request = push(customer)
    decision = brand.post("/v1/push-decisions", json=request).get_json()
    compliance = client_for("compliance", brand.brand)
    answer = compliance.get(f"/v1/audit/push-decisions/{request['push_id']}")
    assert answer.status_code == 200, answer.get_json()
    audit = answer.get_json()
    assert audit["reproduced"] is True and audit["differences"] == []
    assert audit["recorded"] == decision
    assert audit["reevaluated"]["outcome"] == decision["outcome"]
    assert audit["push_id"] == request["push_id"]
    assert_problem(compliance.get("/v1/audit/push-decisions/never-asked"), 404)
    other = client_for("compliance")
    assert_problem(other.get(f"/v1/audit/push-decisions/{request['push_id']}"), 404)


def test_findings_list_pushes_sent_without_an_allow(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    consented(brand, customer, ["purchase_history"])
    denied = push(customer, data_categories=["browsing_history"])
    assert brand.post("/v1/push-decisions", json=denied).get_json()["outcome"] == "deny"
    sent = [
        posted("push.sent", customer, push_id=denied["push_id"]),
        posted("push.sent", customer, push_id="undecided"),
    ]
    assert [a.status_code for a in brand.record(*sent)] == [201, 201]
    compliance = client_for("compliance", brand.brand)
    body = compliance.get("/v1/audit/findings").get_json()
    assert {(f["push_id"], f["finding"], f["customer"]) for f in body["findings"]} == {
        (denied["push_id"], "sent although denied", customer),
        ("undecided", "sent without a decision", customer),
    }
    assert body["next_cursor"] is None
    erased = compliance.post(f"/v1/customers/{customer}/erasure", json={"reason": "asked to"})
    assert erased.status_code == 200, erased.get_json()
    after = compliance.get("/v1/audit/findings").get_json()["findings"]
    assert {f["customer"] for f in after} == {"[erased]"}
    pages = every_page(compliance, "/v1/audit/findings?limit=1", "push_id")
    assert len(pages) == 2 and {p for page in pages for p in page} == {
        denied["push_id"],
        "undecided",
    }


def test_paging_the_findings_repeats_none_while_new_ones_come(client_for: ClientFor) -> None:
    """Pages went by offset: a finding recorded between two pages (the newest, listed first)
    pushed every row down one, and the next page repeated the last of the one before."""
    brand = client_for("brand")
    compliance = client_for("compliance", brand.brand)
    customer = random_customer()
    now = datetime.now(UTC).replace(microsecond=0)
    sends = [
        posted("push.sent", customer, at=now - timedelta(minutes=10 - n), push_id=f"p{n}")
        for n in range(5)
    ]
    assert {a.status_code for a in brand.record(*sends)} == {201}
    first = compliance.get("/v1/audit/findings?limit=2").get_json()
    assert (
        brand.record(posted("push.sent", customer, at=now, push_id="newest"))[0].status_code == 201
    )
    later = every_page(compliance, "/v1/audit/findings?limit=2", "push_id", first["next_cursor"])
    seen = [f["push_id"] for f in first["findings"]] + [p for page in later for p in page]
    assert seen == [f"p{n}" for n in reversed(range(5))]


@pytest.mark.parametrize("order", ["decided first", "sent first"])
def test_findings_list_pushes_sent_again_or_before_they_were_decided(
    client_for: ClientFor, order: str
) -> None:
    """A second send under one decision, and a send dated more than 5 minutes (the clocks'
    tolerance, as for `send_at`) before its decision, were no findings; 4 minutes is within it."""
    brand = client_for("brand")
    compliance = client_for("compliance", brand.brand)
    quiet(brand, now=False)
    customer, now = random_customer(), datetime.now(UTC)
    again, early, tolerated = (
        push(customer, kind="service", purpose=None, data_categories=[]) for _ in range(3)
    )
    sends = [
        posted("push.sent", customer, at=now - timedelta(minutes=m), push_id=p["push_id"])
        for m, p in ((2, again), (1, again), (6, early), (4, tolerated))
    ]
    for step in ("decide", "send") if order == "decided first" else ("send", "decide"):
        if step == "send":
            assert [a.status_code for a in brand.record(*sends)] == [201] * 4
        for request in (again, early, tolerated) if step == "decide" else ():
            answer = brand.post("/v1/push-decisions", json=request)
            assert answer.get_json()["outcome"] == "allow", answer.get_json()
    body = compliance.get("/v1/audit/findings").get_json()
    assert [(f["push_id"], f["finding"], f["event_id"]) for f in body["findings"]] == [
        (again["push_id"], "sent again under the same decision", sends[1].event_id),
        (early["push_id"], "sent before it was decided", sends[2].event_id),
    ]
    pages = every_page(compliance, "/v1/audit/findings?limit=1", "event_id")
    assert pages == [[sends[1].event_id], [sends[2].event_id]]


@pytest.mark.parametrize("query", ["offset=1", "cursor=nope", "cursor=eyJiZWZvcmUiOiAzfQ"])
def test_bad_findings_queries_are_422(client_for: ClientFor, query: str) -> None:
    assert_problem(client_for("compliance").get(f"/v1/audit/findings?{query}"), 422)


def test_a_push_id_belongs_to_the_customer_of_its_first_decision_or_send(
    client_for: ClientFor,
) -> None:
    """A send reported for one customer under a push id decided for another was merged into the
    other's decision, so it was never a finding; a decision for another customer under the push
    id of a send without one made that finding vanish. Both are now refused, storing nothing."""
    brand = client_for("brand")
    compliance = client_for("compliance", brand.brand)
    quiet(brand, now=False)
    a, b, c, d = (random_customer(x) for x in "abcd")
    decided = push(a, kind="service", purpose=None, data_categories=[])
    assert brand.post("/v1/push-decisions", json=decided).get_json()["outcome"] == "allow"
    [to_b] = brand.record(posted("push.sent", b, push_id=decided["push_id"]))
    assert_problem(to_b, 409)
    assert to_b.get_json()["detail"] == (
        f"push_id {decided['push_id']!r} belongs to another customer's push"
    )
    assert brand.get(f"/v1/customers/{b}/timeline").status_code == 404  # nothing stored
    assert [r.status_code for r in brand.record(posted("push.sent", c, push_id="unasked"))] == [201]
    again = push(d, kind="service", purpose=None, data_categories=[], push_id="unasked")
    assert_problem(brand.post("/v1/push-decisions", json=again), 409)
    findings = compliance.get("/v1/audit/findings").get_json()["findings"]
    assert [(f["push_id"], f["finding"]) for f in findings] == [
        ("unasked", "sent without a decision")
    ]
    both = [posted("push.sent", x, push_id="twice") for x in (a, b)]
    answer = brand.post("/v1/events/batch", json={"events": [as_json(e) for e in both]})
    assert_problem(answer, 409)
    assert set(answer.get_json()["errors"]["events"]) == {"1"}
    later = push(c, kind="service", purpose=None, data_categories=[], push_id="unasked")
    assert brand.post("/v1/push-decisions", json=later).status_code == 200  # its own customer


def test_the_gate_reads_a_relationships_base_rate_from_its_brands_trust(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    events = [
        as_json(
            posted(
                "question.answered", random_customer(), case_id=f"c{i}", topic="t", resolved=False
            )
        )
        for i in range(6)
    ]
    assert brand.post("/v1/events/batch", json={"events": events}).status_code == 201
    brand_p = brand.get("/v1/trust").get_json()  # also brings the read models to the log's head
    assert brand_p["expertise"]["P"] < 0.5
    body = brand.post("/v1/push-decisions", json=push(random_customer(), kind="advice")).get_json()
    for dimension in ("consistency", "honesty", "expertise"):
        assert body["scores"][dimension]["a"] == pytest.approx(brand_p[dimension]["P"], abs=1e-3)
