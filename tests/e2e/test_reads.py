"""GET a customer's timeline and consents over HTTP, on both stores: paging, filters, as_of."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.e2e.conftest import Client, ClientFor, as_json, seeded
from tests.e2e.test_events import assert_problem, made
from tests.e2e.test_gate_api import consented, push
from tests.factories import posted
from tests.random_refs import random_customer, random_event_id


def page(client: Client, customer: str, **query: Any) -> dict[str, Any]:
    answer = client.get(f"/v1/customers/{customer}/timeline", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def recorded(client: Client, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answers = client.record(*events)
    assert all(a.status_code == 201 for a in answers), [a.get_json() for a in answers]
    return [a.get_json() for a in answers]


def test_pages_walk_the_timeline_newest_first(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = [made(customer, f"p{i}") for i in range(7)]
    recorded(brand, *events)
    seen, cursor, sizes = [], None, []
    while True:
        body = page(brand, customer, limit=3, **({"cursor": cursor} if cursor else {}))
        sizes.append(len(body["items"]))
        seen += [item["event_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == [e["event_id"] for e in reversed(events)]


def test_a_cursor_stays_put_while_new_events_arrive(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = [made(customer, f"p{i}") for i in range(4)]
    recorded(brand, *events)
    first = page(brand, customer, limit=2)
    recorded(brand, made(customer, "later-1"), made(customer, "later-2"))
    second = page(brand, customer, limit=2, cursor=first["next_cursor"])
    assert [i["event_id"] for i in second["items"]] == [
        events[1]["event_id"],
        events[0]["event_id"],
    ]
    assert second["next_cursor"] is None


def test_the_default_page_is_50_and_the_limit_at_most_200(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    brand.post("/v1/events/batch", json={"events": [made(customer, f"p{i}") for i in range(205)]})
    assert len(page(brand, customer)["items"]) == 50
    assert len(page(brand, customer, limit=200)["items"]) == 200
    body = assert_problem(brand.get(f"/v1/customers/{customer}/timeline?limit=201"), 422)
    assert list(body["errors"]) == ["limit"]


def test_types_choose_which_events_are_listed(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    offer = as_json(posted("offer.made", customer, offer_id="o1", summary="10% off"))
    answered = as_json(posted("question.answered", customer, case_id="c", topic="t", resolved=True))
    recorded(brand, made(customer), offer, answered)
    body = page(brand, customer, types="offer.made,question.answered")
    assert [i["type"] for i in body["items"]] == ["question.answered", "offer.made"]
    assert page(brand, customer, types="push.sent")["items"] == []
    limited = page(brand, customer, types="promise.made,offer.made", limit=1)
    assert [i["type"] for i in limited["items"]] == ["offer.made"]
    rest = page(brand, customer, types="promise.made,offer.made", cursor=limited["next_cursor"])
    assert [i["type"] for i in rest["items"]] == ["promise.made"] and rest["next_cursor"] is None


def test_as_of_answers_what_the_ledger_knew_then(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    first = recorded(brand, made(customer, "p1"))[0]
    later = made(customer, "p2")
    recorded(brand, later)
    then = page(brand, customer, as_of=first["recorded_at"])
    assert [i["event_id"] for i in then["items"]] == [first["event_id"]]
    before = (datetime.fromisoformat(first["recorded_at"]) - timedelta(seconds=1)).isoformat()
    assert_problem(
        brand.get(f"/v1/customers/{customer}/timeline", query_string={"as_of": before}), 404
    )


def test_timeline_items_carry_every_documented_field(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    sent = recorded(brand, made(customer))[0]
    item = page(brand, customer)["items"][0]
    assert set(item) == {
        "event_id",
        "type",
        "occurred_at",
        "recorded_at",
        "actor",
        "channel",
        "summary",
        "data",
    }
    assert item["recorded_at"] == sent["recorded_at"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("cursor=bm9wZQ", "cursor"),
        ("cursor=" + "A" * 65, "cursor"),
        ("types=promise.made,nope", "types"),
        ("as_of=2026-01-01", "as_of"),
        ("as_of=now", "as_of"),
    ],
)
def test_a_bad_query_is_422_naming_it(client_for: ClientFor, query: str, field: str) -> None:
    brand = client_for("brand")
    customer = random_customer()
    recorded(brand, made(customer))
    body = assert_problem(brand.get(f"/v1/customers/{customer}/timeline?{query}"), 422)
    assert list(body["errors"]) == [field]


def test_a_customer_never_seen_is_404(client_for: ClientFor) -> None:
    brand = client_for("brand")
    for what in ("timeline", "consents"):
        body = assert_problem(brand.get(f"/v1/customers/{random_customer()}/{what}"), 404)
        assert body["detail"] == "No such customer for this key's brand."


def test_a_customer_reference_with_nul_is_422(client_for: ClientFor) -> None:
    brand = client_for("brand")
    for what in ("timeline", "consents"):
        body = assert_problem(brand.get(f"/v1/customers/c%00x/{what}"), 422)
        assert list(body["errors"]) == ["customer"]


def test_a_customer_reference_may_hold_slashes_and_spaces(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = f"crm//{random_customer()}/ a b/"
    recorded(brand, made(customer))
    assert len(page(brand, customer.replace("/", "%2F").replace(" ", "%20"))["items"]) == 1
    assert len(page(brand, customer)["items"]) == 1


# --- query parameters --------------------------------------------------------------------------

GETS = {
    "/v1/customers": "agent",
    "/v1/customers/<path:customer>/timeline": "agent",
    "/v1/customers/<path:customer>/consents": "agent",
    "/v1/customers/<path:customer>/consents/receipts": "agent",
    "/v1/customers/<path:customer>/trust": "agent",
    "/v1/customers/<path:customer>/export": "compliance",
    "/v1/trust": "agent",
    "/v1/policy": "brand",
    "/v1/audit/findings": "compliance",
    "/v1/audit/push-decisions/<path:push_id>": "compliance",
}
"""Every GET under /v1 but the OpenAPI document, with a role that may call it."""
NOW_ONLY = [rule for rule in GETS if not rule.endswith(("/timeline", "/consents", "/trust"))]
"""The GETs that answer only as of now: they take no `as_of`."""


def test_the_gets_under_v1_are_all_listed(app: Flask) -> None:
    rules = {r.rule for r in app.url_map.iter_rules() if "GET" in (r.methods or ())}
    assert {r for r in rules if r.startswith("/v1/")} - {"/v1/openapi.json"} == set(GETS)


def caller_and_path(client_for: ClientFor, rule: str) -> tuple[Client, str]:
    """A client of a role that may GET `rule`, and `rule` at a customer with a decided push."""
    brand = client_for("brand")
    customer = random_customer()
    consented(brand, customer, ["purchase_history"])
    request = push(customer, kind="service")
    assert brand.post("/v1/push-decisions", json=request).status_code == 200
    path = rule.replace("<path:customer>", customer).replace("<path:push_id>", request["push_id"])
    return client_for(GETS[rule], brand.brand), path


@pytest.mark.parametrize("rule", sorted(GETS))
def test_every_get_refuses_an_unknown_query_parameter(client_for: ClientFor, rule: str) -> None:
    client, path = caller_and_path(client_for, rule)
    assert client.get(path).status_code == 200
    body = assert_problem(client.get(path, query_string={"bogus": "1"}), 422)
    assert list(body["errors"]) == ["bogus"]


@pytest.mark.parametrize(
    ("rule", "query", "field"),
    [
        ("/v1/customers/<path:customer>/timeline", "limit=1&limit=2", "limit"),
        ("/v1/customers/<path:customer>/timeline", "types=push.decided&types=nope", "types"),
        ("/v1/customers", "consistency_lt=0.9&consistency_lt=0.1", "consistency_lt"),
        ("/v1/trust", "as_of=2000-01-01T00:00:00Z&as_of=2001-01-01T00:00:00Z", "as_of"),
        ("/v1/policy", "x=1&x=2", "x"),
    ],
)
def test_a_query_parameter_given_twice_is_422_naming_it(
    client_for: ClientFor, rule: str, query: str, field: str
) -> None:
    """The first was read and the others dropped: a client that appends `&cursor=` to the URL
    it paged from gets its first page again, for ever."""
    client, path = caller_and_path(client_for, rule)
    body = assert_problem(client.get(f"{path}?{query}"), 422)
    assert list(body["errors"]) == [field]


@pytest.mark.parametrize("rule", sorted(NOW_ONLY))
def test_asking_a_now_only_read_as_of_a_past_time_is_422(client_for: ClientFor, rule: str) -> None:
    """A compliance officer asking for a historical export must not get today's one."""
    client, path = caller_and_path(client_for, rule)
    body = assert_problem(client.get(path, query_string={"as_of": "2000-01-01T00:00:00Z"}), 422)
    assert list(body["errors"]) == ["as_of"]


QUERY_INTEGERS = [
    ("/v1/customers/<path:customer>/timeline", "limit"),
    ("/v1/customers", "limit"),
    ("/v1/audit/findings", "limit"),
]


@pytest.mark.parametrize(("rule", "field"), QUERY_INTEGERS)
def test_a_query_integer_is_plain_ascii_digits(
    client_for: ClientFor, rule: str, field: str
) -> None:
    """What the document calls an integer, not whatever Python's int() reads."""
    client, path = caller_and_path(client_for, rule)
    assert client.get(path, query_string={field: "3"}).status_code == 200
    for value in (" 1", "1 ", "+5", "\uff11", "\u0663", "1_0", "0x10", "1.0", ""):
        body = assert_problem(client.get(path, query_string={field: value}), 422)
        assert list(body["errors"]) == [field], value


@pytest.mark.parametrize("field", ["consistency_lt", "honesty_lt", "expertise_lt"])
def test_a_query_threshold_is_a_plain_ascii_number(client_for: ClientFor, field: str) -> None:
    """What the document calls a number, not whatever Python's float() reads ("0_1" is 1.0)."""
    client, path = caller_and_path(client_for, "/v1/customers")
    for value in ("0.4", "1", "0"):
        assert client.get(path, query_string={field: value}).status_code == 200, value
    for value in (" 0.4", "+0.4", "0_1", "\u0660.\u0664", ".4", "4e-1", "nan", "0.4 ", ""):
        body = assert_problem(client.get(path, query_string={field: value}), 422)
        assert list(body["errors"]) == [field], value


PURPOSES = ("marketing", "advice")

# --- consents ----------------------------------------------------------------------------------


def granted(customer: str, purpose: str, channels: list[str], **data: Any) -> dict[str, Any]:
    return as_json(
        posted(
            "consent.granted",
            customer,
            purpose=purpose,
            channels=channels,
            data_categories=["purchase_history"],
            notice_version="2026-01",
            method="web_form",
            **data,
        )
    )


def dated(event: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {**event, "occurred_at": at.isoformat()}


def consents(client: Client, customer: str, **query: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/customers/{customer}/consents", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    found: list[dict[str, Any]] = answer.get_json()["consents"]
    return found


def test_consents_are_listed_per_purpose_and_channel(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    grant = granted(customer, "marketing", ["email", "push"])
    withdrawal = as_json(
        posted("consent.withdrawn", customer, purpose="marketing", channels=["push"])
    )
    recorded(brand, grant, withdrawal)
    listed = consents(brand, customer)
    assert [(c["purpose"], c["channel"], c["status"]) for c in listed] == [
        ("marketing", "email", "granted"),
        ("marketing", "push", "withdrawn"),
    ]
    email, push = listed
    assert email["event_id"] == grant["event_id"] and push["event_id"] == withdrawal["event_id"]
    assert email["data_categories"] == ["purchase_history"]
    assert (email["notice_version"], email["method"]) == ("2026-01", "web_form")
    assert datetime.fromisoformat(email["since"]) == datetime.fromisoformat(grant["occurred_at"])
    assert set(email) >= {
        "purpose",
        "channel",
        "status",
        "data_categories",
        "notice_version",
        "method",
        "since",
        "event_id",
    }


def test_a_consent_past_its_expiry_is_reported_expired(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    answer = recorded(brand, granted(customer, "service", ["sms"], expires_at=expires_at))[0]
    assert [c["status"] for c in consents(brand, customer, as_of=answer["recorded_at"])] == [
        "granted"
    ]
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
    assert [c["status"] for c in consents(brand, customer)] == ["expired"]


def test_consents_as_of_a_record_time(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    grant = recorded(brand, granted(customer, "marketing", ["email"]))[0]
    recorded(brand, as_json(posted("consent.withdrawn", customer, purpose="*")))
    assert [c["status"] for c in consents(brand, customer)] == ["withdrawn"]
    assert [c["status"] for c in consents(brand, customer, as_of=grant["recorded_at"])] == [
        "granted"
    ]


def test_an_objection_is_answered_beside_the_consents_as_the_gate_reads_it(
    client_for: ClientFor,
) -> None:
    """A withdrawal of `*` on one channel withdrew that channel's rows, and the answer went on
    saying `granted` for the others, while the gate denied every offer and advice push for the
    objection (GDPR Art. 21): an agent read a consent the gate no longer honoured. The answer
    now says when the customer objected and on which channels, as known at as_of, until a new
    grant lifts it; and the gate objects on those channels only (it used to deny the others
    too, although the customer had withdrawn nothing there)."""
    brand = client_for("brand")
    customer = random_customer()
    grant = recorded(brand, granted(customer, "marketing", ["email", "sms"]))[0]
    objected = as_json(posted("consent.withdrawn", customer, purpose="*", channels=["sms"]))
    objection = recorded(brand, objected)[0]

    def answer(**query: Any) -> dict[str, Any]:
        found = brand.get(f"/v1/customers/{customer}/consents", query_string=query)
        assert found.status_code == 200, found.get_json()
        body: dict[str, Any] = found.get_json()
        return body

    def decide(channel: str) -> str:
        decided = brand.post(
            "/v1/push-decisions",
            json={"push_id": random_event_id(), "customer": customer, "purpose": "marketing",
                  "channel": channel, "kind": "offer", "data_categories": []},
        ).get_json()  # fmt: skip
        gate = {r["rule"]: r for r in decided["reasons"]}
        return "passed" if gate["objection"]["passed"] else "objected"

    now = answer()
    assert [c["status"] for c in now["consents"]] == ["granted", "withdrawn"]
    (standing,) = now["objections"]
    assert (standing["event_id"], standing["channels"]) == (objected["event_id"], ["sms"])
    assert datetime.fromisoformat(standing["since"]) == datetime.fromisoformat(
        objected["occurred_at"]
    )
    assert (decide("sms"), decide("email")) == ("objected", "passed")
    assert answer(as_of=grant["recorded_at"])["objections"] == []
    assert answer(as_of=objection["recorded_at"])["objections"] != []
    everywhere = recorded(brand, as_json(posted("consent.withdrawn", customer, purpose="*")))[0]
    assert [o["channels"] for o in answer()["objections"]] == [None, ["sms"]]
    assert answer()["objections"][0]["event_id"] == everywhere["event_id"]
    assert (decide("sms"), decide("email")) == ("objected", "objected")
    recorded(brand, granted(customer, "news", ["email"]))  # a new grant lifts the objections
    assert answer()["objections"] == []


def test_an_unsubscribe_withdraws_a_grant_posted_after_it_but_dated_before_it(
    client_for: ClientFor,
) -> None:
    """A customer unsubscribed from a marketing push on sms, a channel the brand held no consent
    for yet; the CRM then synced the grant the customer had given on sms before. In event time
    the grant came first, so the unsubscribe withdrew it; but the unsubscribe was kept nowhere
    (it had no consent to withdraw), so the late grant read `granted` and the gate allowed
    marketing on sms again."""
    brand = client_for("brand")
    customer = random_customer()
    quiet = {"quiet_hours": {"start": "00:00", "end": "00:00"}}
    assert brand.put("/v1/policy", json=quiet).status_code == 200
    now = datetime.now(UTC)
    recorded(brand, dated(granted(customer, "marketing", ["email"]), now - timedelta(days=9)))
    asked = push(customer, channel="sms", data_categories=[])
    assert brand.post("/v1/push-decisions", json=asked).status_code == 200
    sent = as_json(posted("push.sent", customer, push_id=asked["push_id"]))
    unsubscribed = as_json(
        posted("push.feedback", customer, push_id=asked["push_id"], reaction="unsubscribed")
    )
    recorded(brand, {**sent, "channel": "sms"}, dated(unsubscribed, now - timedelta(hours=1)))
    late = dated(granted(customer, "marketing", ["sms"]), now - timedelta(days=2))
    recorded(brand, late)
    assert_sms_withdrawn_until_granted_after(
        brand, {**asked, "push_id": random_event_id()}, unsubscribed, now
    )


def assert_sms_withdrawn_until_granted_after(
    brand: Client, asked: dict[str, Any], unsubscribed: dict[str, Any], now: datetime
) -> None:
    """Marketing on sms reads withdrawn by the unsubscribe, to the consents and the gate alike,
    until a grant dated after it."""
    customer = asked["customer"]
    listed = {c["channel"]: c for c in consents(brand, customer)}
    assert (listed["sms"]["status"], listed["sms"]["event_id"]) == (
        "withdrawn",
        unsubscribed["event_id"],
    )
    decision = brand.post("/v1/push-decisions", json=asked)
    gate = {r["rule"]: r for r in decision.get_json()["reasons"]}
    assert (gate["consent"]["passed"], gate["consent"]["evidence"]) == (
        False,
        [unsubscribed["event_id"]],
    )
    later = dated(granted(customer, "marketing", ["sms"]), now - timedelta(minutes=1))
    recorded(brand, later)  # a grant dated after the unsubscribe is consent again
    assert {c["channel"]: c["status"] for c in consents(brand, customer)}["sms"] == "granted"


def test_an_unsubscribe_from_a_push_of_no_purpose_withdraws_a_grant_posted_after_it(
    client_for: ClientFor,
) -> None:
    """A push sent without a decision (so of no purpose) and unsubscribed from withdraws every
    purpose on its channel, as its receipt (purpose `*`) says: posted before the grant it
    withdrew in event time, it withdrew nothing, and the late grant read `granted` to the
    consents and the gate alike, which posted in time order read `withdrawn`."""
    brand = client_for("brand")
    customer = random_customer()
    quiet = {"quiet_hours": {"start": "00:00", "end": "00:00"}}
    assert brand.put("/v1/policy", json=quiet).status_code == 200
    now = datetime.now(UTC)
    sent = as_json(posted("push.sent", customer, push_id=random_event_id()))
    unsubscribed = as_json(
        posted("push.feedback", customer, push_id=sent["data"]["push_id"], reaction="unsubscribed")
    )
    recorded(
        brand,
        dated({**sent, "channel": "sms"}, now - timedelta(hours=2)),
        dated(unsubscribed, now - timedelta(hours=1)),
    )
    recorded(brand, dated(granted(customer, "marketing", ["sms"]), now - timedelta(days=2)))
    asked = push(customer, channel="sms", data_categories=[])
    assert_sms_withdrawn_until_granted_after(brand, asked, unsubscribed, now)


def test_an_unsubscribe_withdraws_on_the_channel_the_push_came_by(client_for: ClientFor) -> None:
    """A push the gate allowed on email, sent by sms (a finding of its own), unsubscribed from:
    the customer unsubscribed from the text message they got. The withdrawal fell on email, the
    channel of the decision, and the brand could go on texting them."""
    brand = client_for("brand")
    customer = random_customer()
    quiet = {"quiet_hours": {"start": "00:00", "end": "00:00"}}
    assert brand.put("/v1/policy", json=quiet).status_code == 200
    grant = granted(customer, "marketing", ["email", "sms"])
    recorded(brand, dated(grant, datetime.now(UTC) - timedelta(days=1)))
    asked = push(customer, channel="email", data_categories=[])
    assert brand.post("/v1/push-decisions", json=asked).get_json()["outcome"] == "allow"
    sent = as_json(posted("push.sent", customer, push_id=asked["push_id"]))
    unsubscribed = as_json(
        posted("push.feedback", customer, push_id=asked["push_id"], reaction="unsubscribed")
    )
    now = datetime.now(UTC)
    recorded(brand, dated({**sent, "channel": "sms"}, now), dated(unsubscribed, now))
    listed = {c["channel"]: (c["status"], c["event_id"]) for c in consents(brand, customer)}
    assert listed["sms"] == ("withdrawn", unsubscribed["event_id"])
    assert listed["email"][0] == "granted"
    for channel, allowed in (("sms", False), ("email", True)):
        again = {**asked, "push_id": random_event_id(), "channel": channel}
        gate = {
            r["rule"]: r for r in brand.post("/v1/push-decisions", json=again).get_json()["reasons"]
        }
        assert gate["consent"]["passed"] is allowed, channel


@seeded(6)
def test_consents_posted_out_of_time_order_read_as_the_gate_decides(
    seed: int, client_for: ClientFor
) -> None:
    """The latest act in event time holds on each purpose and channel, in the read model as in
    the gate, whatever order the CRM posted them in: a grant synced late does not revive a
    consent withdrawn after it (it used to read `granted`, and the gate allowed it)."""
    rng, now = random.Random(seed), datetime.now(UTC)
    brand = client_for("brand")
    quiet = {"quiet_hours": {"start": "00:00", "end": "00:00"}}
    assert brand.put("/v1/policy", json=quiet).status_code == 200
    start = now - timedelta(days=30)
    acts = [dated(granted("", p, ["email", "push"]), start) for p in PURPOSES]
    for n in range(rng.randint(1, 8)):
        at = start + timedelta(days=1, hours=n)
        purpose, channels = rng.choice(PURPOSES), rng.choice([["email"], ["push"], None])
        if rng.random() < 0.5:
            acts.append(dated(granted("", purpose, channels or ["email", "push"]), at))
        else:
            data = {"purpose": rng.choice([purpose, "*"]), "channels": channels}
            acts.append(as_json(posted("consent.withdrawn", "", at=at, **data)))
    late = acts[len(PURPOSES) :]
    rng.shuffle(late)
    in_order, posted_late = random_customer(), random_customer()
    recorded(
        brand, *({**act, "customer": in_order, "event_id": act["event_id"] + "-b"} for act in acts)
    )
    recorded(brand, *({**act, "customer": posted_late} for act in acts[: len(PURPOSES)] + late))
    answers = {customer: read_and_gate(brand, customer) for customer in (in_order, posted_late)}
    assert answers[posted_late] == {
        key: (passed, [event_id.removesuffix("-b") for event_id in evidence])
        for key, (passed, evidence) in answers[in_order].items()
    }


def read_and_gate(brand: Client, customer: str) -> dict[tuple[str, str], tuple[bool, list[str]]]:
    """Each purpose and channel's consent, and the objection, as the read model and the gate
    give them, which agree."""
    answer = brand.get(f"/v1/customers/{customer}/consents").get_json()
    listed = {(c["purpose"], c["channel"]): c for c in answer["consents"]}
    objected = answer["objections"]
    found = {}
    for purpose in PURPOSES:
        for channel in ("email", "push"):
            request = push(customer, purpose=purpose, channel=channel)
            decision = brand.post("/v1/push-decisions", json=request).get_json()
            gate = {r["rule"]: r for r in decision["reasons"]}
            read = listed[(purpose, channel)]
            assert (read["status"] == "granted", [read["event_id"]]) == (
                gate["consent"]["passed"],
                gate["consent"]["evidence"],
            ), (purpose, channel)
            on = [o for o in objected if o["channels"] is None or channel in o["channels"]]
            assert (not on, [on[0]["event_id"]] if on else []) == (
                gate["objection"]["passed"],
                gate["objection"]["evidence"],
            )
            found[(purpose, channel)] = (gate["consent"]["passed"], gate["consent"]["evidence"])
            found[("objection", channel)] = (
                gate["objection"]["passed"],
                gate["objection"]["evidence"],
            )
    return found


def test_a_customer_without_consents_has_an_empty_list(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    recorded(brand, made(customer))
    assert consents(brand, customer) == []
