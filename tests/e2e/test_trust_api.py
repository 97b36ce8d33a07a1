"""GET /v1/customers/{customer}/trust, GET /v1/trust and GET /v1/customers?..._lt=, on both stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from api.app import resources_of
from domain.relationship import Interaction, Relationship, relationship_id
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.e2e.test_events import assert_problem
from tests.factories import posted, story
from tests.random_refs import random_customer

DIMENSIONS = ("consistency", "honesty", "expertise")
OPINION = {"b", "d", "u", "a", "P", "evidence", "top_events"}


def answered(client: Client, customer: str, n: int, resolved: bool) -> None:
    events = [
        as_json(
            posted("question.answered", customer, case_id=f"c{i}", topic="t", resolved=resolved)
        )
        for i in range(n)
    ]
    assert client.post("/v1/events/batch", json={"events": events}).status_code == 201


@pytest.mark.parametrize("role", ["brand", "agent", "compliance"])
def test_a_customers_trust_shows_the_opinion_and_the_events_that_moved_it(
    client_for: ClientFor, role: str
) -> None:
    brand = client_for("brand")
    customer = random_customer()
    events = story(customer)
    assert (
        brand.post("/v1/events/batch", json={"events": [as_json(e) for e in events]}).status_code
        == 201
    )
    answer = client_for(role, brand.brand).get(f"/v1/customers/{customer}/trust")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    for dimension in DIMENSIONS:
        opinion = body[dimension]
        assert set(opinion) == OPINION
        assert opinion["b"] + opinion["d"] + opinion["u"] == pytest.approx(1)
        assert opinion["P"] == pytest.approx(opinion["b"] + opinion["a"] * opinion["u"])
    assert body["overall"] == pytest.approx(sum(body[d]["P"] for d in DIMENSIONS) / 3)
    kept = next(e for e in events if e.type == "promise.kept")
    top = {t["event_id"]: t["type"] for t in body["consistency"]["top_events"]}
    assert top.get(kept.event_id) == "promise.kept"
    datetime.fromisoformat(body["evaluated_at"])


def test_a_relationships_base_rate_is_its_brands_p(client_for: ClientFor) -> None:
    brand = client_for("brand")
    old, new = random_customer("old"), random_customer("new")
    answered(brand, old, 6, resolved=False)
    answered(brand, new, 1, resolved=True)
    brand_p = brand.get("/v1/trust").get_json()["expertise"]["P"]
    assert brand_p < 0.5, "the brand's own expertise fell"
    mine = brand.get(f"/v1/customers/{new}/trust").get_json()["expertise"]
    assert mine["a"] == pytest.approx(brand_p, abs=1e-6)


def test_as_of_answers_as_the_ledger_knew_it_then(client_for: ClientFor) -> None:
    brand = client_for("brand")
    customer = random_customer()
    answered(brand, customer, 2, resolved=True)
    time.sleep(0.01)
    then = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    answered(brand, customer, 5, resolved=False)
    earlier = brand.get(f"/v1/customers/{customer}/trust", query_string={"as_of": then}).get_json()
    now = brand.get(f"/v1/customers/{customer}/trust").get_json()
    assert earlier["expertise"]["P"] > now["expertise"]["P"]
    assert earlier["expertise"]["evidence"]["negative"] == 0
    brand_then = brand.get("/v1/trust", query_string={"as_of": then}).get_json()
    assert earlier["expertise"]["a"] == pytest.approx(brand_then["expertise"]["P"], abs=1e-6)


def test_an_unknown_customer_or_one_not_yet_known_at_as_of_is_404(client_for: ClientFor) -> None:
    brand = client_for("brand")
    assert_problem(brand.get(f"/v1/customers/{random_customer()}/trust"), 404)
    customer = random_customer()
    answered(brand, customer, 1, resolved=True)
    before = "2001-01-01T00:00:00Z"
    assert_problem(
        brand.get(f"/v1/customers/{customer}/trust", query_string={"as_of": before}), 404
    )
    assert_problem(brand.get(f"/v1/customers/{customer}/trust?as_of=yesterday"), 422)


def test_as_of_between_the_opening_and_the_first_event_is_404_as_on_the_timeline(
    app: Flask, client_for: ClientFor
) -> None:
    """A relationship opens with an event of its own, recorded microseconds before its first
    interaction: an `as_of` between the two answered the trust 200 (scores of no evidence)
    where the timeline and the consents answered 404. Nothing of the customer was known then."""
    brand = client_for("brand")
    customer = random_customer()
    answered(brand, customer, 1, resolved=True)
    opened, first = list(
        resources_of(app).ledger.events.get(relationship_id(brand.brand, customer))
    )
    assert isinstance(opened, Relationship.Opened) and isinstance(first, Interaction)
    assert opened.timestamp < first.timestamp
    between = {"as_of": opened.timestamp.isoformat()}
    for read in ("trust", "timeline", "consents"):
        assert_problem(brand.get(f"/v1/customers/{customer}/{read}", query_string=between), 404)
    at_first = {"as_of": first.timestamp.isoformat()}
    for read in ("trust", "timeline", "consents"):
        answer = brand.get(f"/v1/customers/{customer}/{read}", query_string=at_first)
        assert answer.status_code == 200, (read, answer.get_json())


def test_a_new_brand_scores_one_half(client_for: ClientFor) -> None:
    body = client_for("agent").get("/v1/trust").get_json()
    assert {body[d]["P"] for d in DIMENSIONS} == {0.5}
    assert body["overall"] == 0.5


def reneged(client: Client, customer: str, n: int, at: datetime | None = None) -> None:
    """`n` offers made and reneged: each lowers the customer's honesty."""
    at = (at or datetime.now(UTC)).replace(microsecond=0)
    for i in range(n):
        answers = client.record(
            posted("offer.made", customer, at=at, offer_id=f"o{i}", summary="s"),
            posted("offer.reneged", customer, at=at, offer_id=f"o{i}", reason="r"),
        )
        assert [a.status_code for a in answers] == [201, 201]


def every_page(client: Client, url: str, key: str, cursor: str | None = None) -> list[list[str]]:
    """The list at `url` a page at a time from `cursor`, following `next_cursor` to the end:
    each page's `key` values (a customer or a push id)."""
    pages, items = [], url.split("?")[0].split("/")[-1]
    while True:
        answer = client.get(f"{url}{'&' if '?' in url else '?'}cursor={cursor}" if cursor else url)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        pages.append([row[key] for row in body[items]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_customers_below_a_threshold_lowest_first_a_page_at_a_time(client_for: ClientFor) -> None:
    brand = client_for("brand")
    good, bad, worse = random_customer("good"), random_customer("bad"), random_customer("worse")
    answered(brand, good, 3, resolved=True)
    answered(brand, bad, 2, resolved=False)
    answered(brand, worse, 5, resolved=False)
    agent = client_for("agent", brand.brand)
    body = agent.get("/v1/customers?expertise_lt=0.4").get_json()
    assert [row["customer"] for row in body["customers"]] == [worse, bad]
    assert body["next_cursor"] is None
    pages = every_page(agent, "/v1/customers?expertise_lt=0.4&limit=1", "customer")
    assert pages == [[worse], [bad]]
    everyone = agent.get("/v1/customers").get_json()["customers"]
    assert {r["customer"] for r in everyone} == {good, bad, worse}


@pytest.mark.parametrize("order", ["", "honesty_lt=1&"])
def test_paging_the_customers_repeats_no_one_while_customers_move_up(
    client_for: ClientFor, order: str
) -> None:
    """Pages went by offset: a customer who became the most recent (or the least honest) between
    two pages pushed every row down one, and the next page repeated the last row of the one
    before. A page now starts after the last row of the one before."""
    brand = client_for("brand")
    agent = client_for("agent", brand.brand)
    customers = [random_customer(f"c{n}") for n in range(5)]
    for n, customer in enumerate(customers):
        reneged(brand, customer, 1, at=datetime.now(UTC) - timedelta(hours=10 - n))
    first = agent.get(f"/v1/customers?{order}limit=2").get_json()
    reneged(brand, random_customer("newcomer"), 3)  # now the most recent, and the least honest
    later = every_page(agent, f"/v1/customers?{order}limit=2", "customer", first["next_cursor"])
    seen = [row["customer"] for row in first["customers"]] + [c for page in later for c in page]
    assert sorted(seen) == sorted(customers)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "offset=2",
        "cursor=nope",
        "cursor=eyJiZWZvcmUiOiAzfQ",  # a timeline's cursor
        "consistency_lt=2",
        "honesty_lt=x",
        "charm_lt=1",
    ],
)
def test_bad_customer_queries_are_422(client_for: ClientFor, query: str) -> None:
    assert_problem(client_for("agent").get(f"/v1/customers?{query}"), 422)
