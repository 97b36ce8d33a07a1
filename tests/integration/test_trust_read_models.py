"""Trust in the read models: brand scores, as-of replay, and finding the lowest-scored customers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.context import BrandBaseRates
from domain import trust
from domain.application import Ledger
from domain.relationship import PostedEvent
from projections.relationships import customers
from projections.runner import Runner
from projections.trust import base_rates, brand_scores, event_types, scores_as_dict, top_event_ids
from tests.factories import NOW, posted, story
from tests.random_refs import random_brand, random_customer


def admitted(customer: str, n: int) -> PostedEvent:
    return posted(
        "error.admitted",
        customer,
        error_id=f"e{n}",
        summary="s",
        severity="minor",
        discovered_by="brand",
    )


def test_brand_scores_sum_the_relationships_evidence(ledger: Ledger) -> None:
    brand = random_brand()
    customers_ = [random_customer() for _ in range(3)]
    ledger.record_batch(brand, [admitted(c, n) for c in customers_ for n in range(2)])
    runner = Runner(ledger)
    runner.run_once()
    at = NOW + timedelta(days=1)
    by_projection = brand_scores(runner.db, brand, at=at)
    by_relationships = trust.brand_scores(
        [ledger.relationship(brand, c).trust(at) for c in customers_], at
    )
    for name in trust.DIMENSIONS:
        assert by_projection.dimensions[name].opinion.positive == pytest.approx(
            by_relationships.dimensions[name].opinion.positive, abs=1e-9
        )
    assert by_projection.dimensions["honesty"].opinion.positive == pytest.approx(
        6 * 2 ** (-1 / 180), abs=1e-9
    )
    runner.close()


def test_a_new_brand_scores_one_half_and_its_new_customer_too(ledger: Ledger) -> None:
    runner = Runner(ledger)
    scores = brand_scores(runner.db, random_brand())
    assert [s.opinion.P for s in scores.dimensions.values()] == [0.5, 0.5, 0.5]
    runner.close()


def test_a_brand_as_of_a_record_time_replays_what_was_known(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record_batch(brand, [admitted(customer, n) for n in range(3)])
    between = datetime.now(UTC)
    ledger.record_batch(
        brand,
        [
            posted("offer.made", customer, offer_id="o", summary="s"),
            posted("offer.reneged", customer, offer_id="o", reason="r"),
        ],
    )
    runner = Runner(ledger)
    runner.run_once()
    then = brand_scores(runner.db, brand, at=between, as_of=between)
    fresh = Runner(ledger)
    assert then.dimensions["honesty"].opinion.negative == 0
    assert then.dimensions["honesty"].opinion.positive == pytest.approx(3.0, abs=1e-4)
    now = brand_scores(runner.db, brand, at=between)
    assert now.dimensions["honesty"].opinion.negative > 0
    assert brand_scores(runner.db, brand, at=between, as_of=datetime.now(UTC)).dimensions[
        "honesty"
    ].opinion.negative == (pytest.approx(now.dimensions["honesty"].opinion.negative, abs=1e-9))
    runner.close()
    fresh.close()


def test_the_answer_names_the_events_that_moved_each_dimension(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    events = story(customer)
    ledger.record_batch(brand, events)
    runner = Runner(ledger)
    runner.run_once()
    scores = brand_scores(runner.db, brand)
    answer = scores_as_dict(scores, event_types(runner.db, brand, top_event_ids(scores)))
    kept = next(e for e in events if e.type == "promise.kept")
    assert {"event_id": kept.event_id, "type": "promise.kept"}.items() <= answer["consistency"][
        "top_events"
    ][0].items() or any(
        t["event_id"] == kept.event_id and t["type"] == "promise.kept"
        for t in answer["consistency"]["top_events"]
    )
    assert set(answer["honesty"]) == {"b", "d", "u", "a", "P", "evidence", "top_events"}
    assert answer["overall"] == pytest.approx(sum(answer[d]["P"] for d in trust.DIMENSIONS) / 3)
    runner.close()


def test_customers_below_a_score_are_one_indexed_query_lowest_first(ledger: Ledger) -> None:
    brand = random_brand()
    good, bad, worse = random_customer("good"), random_customer("bad"), random_customer("worse")
    ledger.record_batch(
        brand,
        [
            *[
                posted("question.answered", good, case_id=f"g{i}", topic="t", resolved=True)
                for i in range(3)
            ],
            *[
                posted("question.answered", bad, case_id=f"b{i}", topic="t", resolved=False)
                for i in range(2)
            ],
            *[
                posted("question.answered", worse, case_id=f"w{i}", topic="t", resolved=False)
                for i in range(5)
            ],
        ],
    )
    runner = Runner(ledger)
    runner.run_once()
    low = customers(runner.db, brand, below={"expertise": 0.4})
    assert [row["customer"] for row in low] == [worse, bad]
    assert all(row["expertise"] < 0.4 for row in low)
    with pytest.raises(ValueError, match="dimension"):
        customers(runner.db, brand, below={"charm": 0.4})
    assert base_rates(brand_scores(runner.db, brand)).keys() == set(trust.DIMENSIONS)
    runner.close()


def test_the_gate_reuses_a_brands_base_rates_only_within_its_window(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    rates = BrandBaseRates(ledger.store, seconds=60)
    runner = Runner(ledger)
    at = NOW + timedelta(days=1)
    before = rates(brand, at)
    ledger.record_batch(brand, [admitted(customer, n) for n in range(3)])
    runner.run_once()
    assert rates(brand, at + timedelta(seconds=30)) == before, "kept, for a decision 30 s later"
    after = rates(brand, at + timedelta(minutes=2))
    assert after["honesty"] > before["honesty"], "read again, for a decision 2 minutes later"
    assert after == base_rates(brand_scores(runner.db, brand, at + timedelta(minutes=2)))
    rates.close()
    runner.close()
