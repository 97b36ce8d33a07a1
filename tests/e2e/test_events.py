"""POST /v1/events and /v1/events/batch over HTTP, on both stores: answers, errors, replays."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from domain.relationship import POSTABLE_TYPES
from domain.timeline import summarise
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.factories import LATER, NOW, posted, story
from tests.random_refs import random_customer, random_event_id

PROBLEM = "application/problem+json"


def made(customer: str, promise_id: str = "p1", **overrides: Any) -> dict[str, Any]:
    return {
        **as_json(
            posted("promise.made", customer, promise_id=promise_id, summary="refund", due_at=LATER)
        ),
        **overrides,
    }


def timeline_ids(client: Client, customer: str) -> list[str]:
    answer = client.get(f"/v1/customers/{customer}/timeline?limit=200")
    assert answer.status_code == 200, answer.get_json()
    return [item["event_id"] for item in answer.get_json()["items"]]


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM
    body: dict[str, Any] = answer.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    assert "Traceback" not in answer.get_data(as_text=True)
    return body


# --- recording ---------------------------------------------------------------------------------


def test_every_event_type_is_recorded_and_read_back(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = story(customer)
    answers = brand.record(*events)
    assert [a.status_code for a in answers] == [201] * len(events)
    assert {e.type for e in events} == set(POSTABLE_TYPES)
    sequences = [a.get_json()["sequence"] for a in answers]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    for event, answer in zip(events, answers, strict=True):
        body = answer.get_json()
        assert set(body) == {"event_id", "customer", "sequence", "recorded_at"}
        assert (body["event_id"], body["customer"]) == (event.event_id, customer)
        assert datetime.fromisoformat(body["recorded_at"]).tzinfo is not None
        assert "Idempotent-Replayed" not in answer.headers
    assert timeline_ids(brand, customer) == [e.event_id for e in reversed(events)]


def test_a_read_right_after_a_write_includes_it(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    for i in range(5):
        event = made(customer, f"p{i}")
        assert brand.record(event)[0].status_code == 201
        assert timeline_ids(brand, customer)[0] == event["event_id"]


def test_the_envelope_and_data_come_back_as_sent(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = made(
        customer, actor="agent-9", channel="phone", occurred_at="2026-01-02T03:04:05.123456+02:00"
    )
    brand.record(event)
    item = brand.get(f"/v1/customers/{customer}/timeline").get_json()["items"][0]
    assert item["actor"] == "agent-9" and item["channel"] == "phone"
    assert datetime.fromisoformat(item["occurred_at"]) == datetime.fromisoformat(
        event["occurred_at"]
    )
    assert item["data"]["summary"] == "refund" and item["data"]["promise_id"] == "p1"
    assert item["summary"] == summarise("promise.made", event["data"])


# --- idempotency -------------------------------------------------------------------------------


def test_a_repeated_event_gets_the_first_answer_with_the_replayed_header(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = made(customer)
    first, again = brand.record(event, event)
    assert again.status_code == first.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert timeline_ids(brand, customer) == [event["event_id"]]


def test_the_same_content_written_differently_is_the_same_event(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = made(customer, occurred_at="2026-01-01T00:00:00Z")
    same = {**event, "occurred_at": "2026-01-01T01:00:00+01:00"}
    first, again = brand.record(event, same)
    assert again.get_data() == first.get_data() and again.headers["Idempotent-Replayed"] == "true"


def test_a_reused_event_id_with_other_content_is_a_conflict(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = made(customer)
    brand.record(event)
    body = assert_problem(
        brand.record({**event, "data": {**event["data"], "summary": "other"}})[0], 409
    )
    assert body["errors"] == {
        "event_id": [f"event_id {event['event_id']!r} was already recorded with other content"]
    }
    assert timeline_ids(brand, customer) == [event["event_id"]]


def test_a_repeated_batch_gets_the_first_answer(client_for: ClientFor) -> None:
    brand = client_for("brand")
    batch = {"events": [as_json(e) for e in story(random_customer())]}
    first = brand.post("/v1/events/batch", json=batch)
    again = brand.post("/v1/events/batch", json=batch)
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers


def test_a_batch_reusing_an_id_for_other_content_is_a_conflict_naming_it(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    event = made(customer)
    brand.record(event)
    changed = {**event, "data": {**event["data"], "summary": "other"}}
    body = assert_problem(
        brand.post("/v1/events/batch", json={"events": [made(customer, "p2"), changed]}), 409
    )
    assert list(body["errors"]["events"]) == ["1"]
    assert timeline_ids(brand, customer) == [event["event_id"]]


def test_a_batch_names_a_reused_id_beside_an_event_the_ledger_rejects(
    client_for: ClientFor,
) -> None:
    """Every rejected event by its index: the conflict went unnamed while another event broke a
    rule (or its customer was erased), so a CRM that fixed that one was then refused for it."""
    brand = client_for("brand")
    customer = random_customer()
    event = made(customer)
    brand.record(event)
    changed = {**event, "data": {**event["data"], "summary": "other"}}
    never = as_json(posted("offer.honored", customer, offer_id="never-made"))
    for events, rejected in (([changed, never], {"0", "1"}), ([never, changed], {"0", "1"})):
        body = assert_problem(brand.post("/v1/events/batch", json={"events": events}), 422)
        assert set(body["errors"]["events"]) == rejected
        assert "other content" in json.dumps(body["errors"]["events"][str(events.index(changed))])
    assert timeline_ids(brand, customer) == [event["event_id"]]


# --- batches -----------------------------------------------------------------------------------


def test_a_batch_is_recorded_whole_across_customers(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customers = [random_customer(), random_customer()]
    events = story(customers[0]) + story(customers[1])
    answer = brand.post("/v1/events/batch", json={"events": [as_json(e) for e in events]})
    assert answer.status_code == 201
    assert [r["event_id"] for r in answer.get_json()["events"]] == [e.event_id for e in events]
    assert [r["customer"] for r in answer.get_json()["events"]] == [e.customer for e in events]
    for customer in customers:
        assert len(timeline_ids(brand, customer)) == len(story())


def test_one_invalid_event_rejects_the_whole_batch_with_errors_by_index(
    client_for: ClientFor,
) -> None:
    brand = client_for("brand")
    customers = [random_customer(), random_customer()]
    good = [as_json(e) for e in story(customers[0])]
    bad_shape = {**made(customers[1]), "data": {"promise_id": "p"}}
    bad_rule = as_json(posted("offer.honored", customers[1], offer_id="never-made"))
    body = assert_problem(brand.post("/v1/events/batch", json={"events": [*good, bad_shape]}), 422)
    assert set(body["errors"]["events"]) == {str(len(good))}
    assert set(body["errors"]["events"][str(len(good))]["data"]) == {"summary", "due_at"}
    body = assert_problem(brand.post("/v1/events/batch", json={"events": [*good, bad_rule]}), 422)
    assert body["errors"]["events"] == {
        str(len(good)): {"data": {"offer_id": ["offer 'never-made' was never made"]}}
    }
    for customer in customers:
        assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def test_a_batch_names_every_bad_event(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = [
        made(customer, "p1"),
        {**made(customer, "p2"), "type": "nope"},
        made(customer, "p3", unknown=1),
    ]
    body = assert_problem(brand.post("/v1/events/batch", json={"events": events}), 422)
    assert body["errors"]["events"] == {
        "1": {"type": body["errors"]["events"]["1"]["type"]},
        "2": {"unknown": ["Unknown field."]},
    }


def test_a_batch_repeating_an_event_id_is_rejected(client_for: ClientFor) -> None:
    brand = client_for("brand")
    event = made(random_customer())
    body = assert_problem(brand.post("/v1/events/batch", json={"events": [event, event]}), 422)
    assert list(body["errors"]["events"]) == ["1"]


@pytest.mark.parametrize("size", [0, 501])
def test_a_batch_holds_1_to_500_events(client_for: ClientFor, size: int) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = [made(customer, f"p{i}") for i in range(size)]
    body = assert_problem(brand.post("/v1/events/batch", json={"events": events}), 422)
    assert "events" in body["errors"]


def test_a_batch_of_500_is_recorded(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    answer = brand.post(
        "/v1/events/batch", json={"events": [made(customer, f"p{i}") for i in range(500)]}
    )
    assert answer.status_code == 201 and len(answer.get_json()["events"]) == 500


# --- what is rejected, and how -----------------------------------------------------------------


def test_malformed_json_is_400(client_for: ClientFor) -> None:
    """Strict JSON (RFC 8259, I-JSON): no NaN, no lone surrogate, no number beyond a double."""
    brand = client_for("brand")
    for body in (
        '{"event_id": ',
        "[" * 100_000,
        '{"n": ' + "1" * 5000 + "}",
        b"\xff\xfe{}",
        '{"customer": "\\ud800"}',
        '{"n": NaN}',
    ):
        assert_problem(brand.post("/v1/events", data=body, content_type="application/json"), 400)


def test_a_body_that_is_not_json_is_415(client_for: ClientFor) -> None:
    brand = client_for("brand")
    assert_problem(brand.post("/v1/events", data="event_id=1", content_type="text/plain"), 415)
    assert_problem(brand.post("/v1/events/batch"), 415)


def test_a_compressed_body_is_415(client_for: ClientFor) -> None:
    """The ledger reads JSON as sent: a gzip body was read as JSON, and refused as malformed."""
    brand = client_for("brand")
    customer = random_customer()
    body = gzip.compress(json.dumps(made(customer)).encode())
    answer = brand.http.post(
        "/v1/events",
        data=body,
        headers={
            "Authorization": f"Bearer {brand.key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert_problem(answer, 415)
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def test_a_body_over_1_mib_is_413(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    big = {
        "events": [
            made(
                customer,
                f"p{i}",
                data={"promise_id": "p", "summary": "x" * 1990, "due_at": LATER.isoformat()},
            )
            for i in range(500)
        ]
    }
    assert len(json.dumps(big)) > 1024 * 1024
    assert_problem(brand.post("/v1/events/batch", json=big), 413)
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def streamed(client: Client, body: bytes, length: int | None = None) -> Any:
    """A POST whose body the server reads as a stream it terminates (gunicorn's chunked bodies,
    `wsgi.input_terminated`), with the Content-Length given, if any."""
    headers = {"Authorization": f"Bearer {client.key}", "Content-Type": "application/json"}
    declared = (
        {"CONTENT_LENGTH": str(length)}
        if length is not None
        else {"HTTP_TRANSFER_ENCODING": "chunked"}  # and no length: werkzeug ignores it then
    )
    return client.http.post(
        "/v1/events",
        input_stream=io.BytesIO(body),
        headers=headers,
        environ_overrides={"wsgi.input_terminated": True, **declared},
    )


def test_a_streamed_body_over_1_mib_is_413_not_cut_to_fit(client_for: ClientFor) -> None:
    """A chunked body was read up to the limit and the rest ignored: a valid event padded past
    1 MiB with text that is not JSON was stored (201)."""
    brand = client_for("brand")
    customer = random_customer()
    event = json.dumps(made(customer)).encode()
    answer = streamed(brand, event + b" " * (1024 * 1024) + b"this is not JSON")
    assert_problem(answer, 413)
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)
    assert streamed(brand, json.dumps(made(customer)).encode()).status_code == 201


def test_a_body_shorter_than_its_content_length_is_400(client_for: ClientFor) -> None:
    """The client stopped sending: what arrived may parse, but it is not what was sent."""
    brand = client_for("brand")
    customer = random_customer()
    event = json.dumps(made(customer)).encode() + b" " * 40
    assert_problem(streamed(brand, event, length=len(event) + 50), 400)
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def in_minutes(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"type": "promise.invented"}, {"type"}),
        ({"type": "push.decided"}, {"type"}),
        ({"surprise": 1}, {"surprise"}),
        ({"event_id": ""}, {"event_id"}),
        ({"event_id": "e" * 129}, {"event_id"}),
        ({"customer": "c" * 129}, {"customer"}),
        ({"customer": None}, {"customer"}),
        ({"occurred_at": "2026-01-01T00:00:00"}, {"occurred_at"}),
        ({"occurred_at": "2026-01-01"}, {"occurred_at"}),
        ({"occurred_at": "yesterday"}, {"occurred_at"}),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, {"occurred_at"}),
        ({"occurred_at": in_minutes(60)}, {"occurred_at"}),
        ({"occurred_at": "1969-12-31T23:59:59Z"}, {"occurred_at"}),
        ({"actor": "agent\x00"}, {"actor"}),
        ({"customer": "c\x00"}, {"customer"}),
        ({"customer": "/c"}, {"customer"}),  # no route could read it back
        ({"customer": "c\nx"}, {"customer"}),
        ({"customer": "c\tx"}, {"customer"}),
        ({"actor": 7}, {"actor"}),
        ({"data": {"promise_id": "p", "summary": "s", "due_at": "soon"}}, {"data"}),
        (
            {"data": {"promise_id": "p", "summary": "s" * 2001, "due_at": LATER.isoformat()}},
            {"data"},
        ),
        ({"data": "promise"}, {"data"}),
        # Expired before it began: an expiry at or before the event's own time.
        (
            {
                "type": "offer.made",
                "data": {"offer_id": "o", "summary": "s", "expires_at": "2026-01-01T00:00:00Z"},
            },
            {"data"},
        ),
        (
            {
                "type": "consent.granted",
                "data": {
                    "purpose": "m",
                    "channels": ["email"],
                    "data_categories": [],
                    "notice_version": "1",
                    "method": "web",
                    "expires_at": "2026-01-01T00:00:00Z",
                },
            },
            {"data"},
        ),
    ],
)
def test_an_invalid_event_is_422_naming_the_field(
    client_for: ClientFor, change: dict[str, Any], errors: set[str]
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    body = assert_problem(brand.post("/v1/events", json={**made(customer), **change}), 422)
    assert set(body["errors"]) == errors
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


@pytest.mark.parametrize(
    "customer", ["a/b", "a//b/", "..", ".", "a/..", "a?b#c", "%2F", "a\u2028b"]
)
def test_a_customer_reference_that_reads_oddly_in_a_url_is_read_exported_and_erased(
    client_for: ClientFor, customer: str
) -> None:
    """Every reference the ledger accepts names its customer in every path (a reference starting
    with "/" or holding a line feed was accepted, then 404 on every read, export and erasure)."""
    brand = client_for("brand")
    compliance = client_for("compliance", brand.brand)
    assert brand.post("/v1/events", json=made(customer)).status_code == 201
    # As a client that resolves dot segments (curl, browsers' fetch) must send it: `.` as %2E.
    path = f"/v1/customers/{quote(customer, safe='').replace('.', '%2E')}"
    for read in ("timeline", "consents", "trust", "consents/receipts"):
        assert brand.get(f"{path}/{read}").status_code == 200, read
    assert compliance.get(f"{path}/export").status_code == 200
    erasure = compliance.post(f"{path}/erasure", json={"reason": "asked by the customer"})
    assert erasure.status_code == 200


def test_a_query_parameter_is_422_and_stores_nothing(client_for: ClientFor) -> None:
    """No write reads a query string: `?dry_run=1` must not record the event all the same."""
    brand = client_for("brand")
    customer = random_customer()
    body = assert_problem(brand.post("/v1/events?dry_run=1", json=made(customer)), 422)
    assert list(body["errors"]) == ["dry_run"]
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def grant_data(**changes: Any) -> dict[str, Any]:
    """A consent grant's data, with `changes`."""
    data = {"purpose": "m", "channels": ["e"], "data_categories": [], "notice_version": "1"}
    return {**data, "method": "web", **changes}


@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        ("question.answered", {"case_id": "c", "topic": "t", "resolved": 1}, "resolved"),
        ("question.answered", {"case_id": "c", "topic": "t", "resolved": "yes"}, "resolved"),
        (
            "question.answered",
            {"case_id": "c", "topic": "t", "resolved": True, "rating": 6},
            "rating",
        ),
        (
            "question.answered",
            {"case_id": "c", "topic": "t", "resolved": True, "rating": True},
            "rating",
        ),
        (
            "question.answered",
            {"case_id": "c", "topic": "t", "resolved": True, "rating": 4.0},
            "rating",
        ),
        (
            "error.admitted",
            {"error_id": "x", "summary": "s", "severity": "huge", "discovered_by": "brand"},
            "severity",
        ),
        ("push.feedback", {"push_id": "x", "reaction": "angry"}, "reaction"),
        ("consent.granted", grant_data(channels=[]), "channels"),
        ("consent.granted", grant_data(channels=["e"] * 51), "channels"),
        ("consent.granted", grant_data(channels=["email", "push", "email"]), "channels"),
        (
            "consent.granted",
            grant_data(data_categories=["location", "location"]),
            "data_categories",
        ),
        ("consent.withdrawn", {"purpose": "m", "channels": ["sms", "sms"]}, "channels"),
        ("preferences.updated", {"timezone": "Mars/Olympus"}, "timezone"),
        ("preferences.updated", {"timezone": "localtime"}, "timezone"),
        (
            "preferences.updated",
            {"quiet_hours": {"start": "21:00\n", "end": "08:00"}},
            "quiet_hours",
        ),
        ("preferences.updated", {"quiet_hours": {"start": "24:00", "end": "08:00"}}, "quiet_hours"),
    ],
)
def test_data_is_checked_against_its_type(
    client_for: ClientFor, type_: str, data: dict[str, Any], field: str
) -> None:
    brand = client_for("brand")
    event = {
        "event_id": random_event_id(),
        "type": type_,
        "customer": random_customer(),
        "occurred_at": NOW.isoformat(),
        "data": data,
    }
    body = assert_problem(brand.post("/v1/events", json=event), 422)
    assert list(body["errors"]["data"]) == [field]


@pytest.mark.parametrize(
    ("event", "status", "field"),
    [
        (lambda c: posted("promise.kept", c, promise_id="never"), 422, "promise_id"),
        (lambda c: posted("consent.withdrawn", c, purpose="never-granted"), 422, "purpose"),
        (
            lambda c: posted("push.feedback", c, push_id="never-sent", reaction="opened"),
            422,
            "push_id",
        ),
        (lambda c: posted("preferences.updated", c), 422, "data"),
        (
            lambda c: posted(
                "consent.granted",
                c,
                purpose="*",
                channels=["email"],
                data_categories=[],
                notice_version="1",
                method="web",
            ),
            422,
            "purpose",
        ),
    ],
)
def test_a_broken_domain_rule_is_answered_with_the_field_and_stores_nothing(
    client_for: ClientFor, event: Any, status: int, field: str
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    body = assert_problem(brand.record(event(customer))[0], status)
    assert field in body["errors"] or field in body["errors"].get("data", {})
    assert_problem(brand.get(f"/v1/customers/{customer}/timeline"), 404)


def test_events_dated_decades_apart_keep_every_read_working(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    old = made(customer, "old", occurred_at="1970-01-01T00:00:00Z")
    assert [a.status_code for a in brand.record(made(customer, "new"), old)] == [201, 201]
    assert timeline_ids(brand, customer)[0] == old["event_id"]
    other = random_customer()  # every customer's reads, not only this one's
    brand.record(made(other))
    assert len(timeline_ids(brand, other)) == 1


def test_a_promise_due_at_the_end_of_the_calendar_keeps_every_read_and_the_gate_working(
    client_for: ClientFor,
) -> None:
    """Its 24 h of grace end past year 9999: counted naively, that overflowed, the gate's
    answer was a 500 and the read models stopped for every brand."""
    brand = client_for("brand")
    customer = random_customer()
    last = made(customer, "last")
    last["data"]["due_at"] = "9999-12-31T23:59:59Z"
    assert brand.record(last)[0].status_code == 201
    push = {"push_id": random_event_id(), "customer": customer, "channel": "email"}
    decided = brand.post("/v1/push-decisions", json={**push, "kind": "offer", "purpose": "m"})
    assert decided.status_code == 200, decided.get_json()
    assert "open_breaches" not in [
        r["rule"] for r in decided.get_json()["reasons"] if not r["passed"]
    ]
    for path in (f"/v1/customers/{customer}/trust", "/v1/customers", "/v1/trust"):
        assert brand.get(path).status_code == 200, path
    other = client_for("brand")  # another brand's reads, not only this one's
    customer = random_customer()
    other.record(made(customer))
    assert len(timeline_ids(other, customer)) == 1


def test_opening_something_twice_is_a_409(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    brand.record(made(customer, "p1"))
    body = assert_problem(brand.record(made(customer, "p1"))[0], 409)
    assert body["type"] == "urn:trustledger:problem:duplicate-reference"
    assert list(body["errors"]["data"]) == ["promise_id"]
    assert len(timeline_ids(brand, customer)) == 1


def test_unknown_paths_and_methods_are_problems(client_for: ClientFor) -> None:
    brand = client_for("brand")
    assert_problem(brand.get("/v1/nothing"), 404)
    answer = assert_problem(brand.get("/v1/events"), 405)
    assert answer["title"] == "Method Not Allowed"
