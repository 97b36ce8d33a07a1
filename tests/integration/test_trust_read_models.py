"""Trust in the read models: brand scores, as-of replay, and finding the lowest-scored customers."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.context import BrandBaseRates
from domain import trust
from domain.application import Ledger
from domain.relationship import PostedEvent
from projections import relationships as relationship_model
from projections.relationships import customers
from projections.runner import Runner
from projections.trust import (
    _replayed,
    base_rates,
    brand_scores,
    event_types,
    scores_as_dict,
    top_event_ids,
)
from tests.conftest import new_postgres_database, new_sqlite_database, open_ledger
from tests.factories import LATER, NOW, interleaved, posted, story
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
    decayed = 2 ** (-(between - NOW) / trust.HALF_LIFE)  # since the admissions, dated NOW
    assert then.dimensions["honesty"].opinion.positive == pytest.approx(3 * decayed, abs=1e-9)
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
    low = customers(runner.db, brand, below={"expertise": 0.4}).items
    assert [row["customer"] for row in low] == [worse, bad]
    assert all(row["expertise"] < 0.4 for row in low)
    with pytest.raises(ValueError, match="dimension"):
        customers(runner.db, brand, below={"charm": 0.4})
    assert base_rates(brand_scores(runner.db, brand)).keys() == set(trust.DIMENSIONS)
    runner.close()


def test_a_customers_row_scores_its_last_interaction_whatever_that_event_carries(
    ledger: Ledger,
) -> None:
    """A row was scored only after an event that carried evidence: a customer whose only
    failing was a promise left overdue, or who had no evidence at all under a brand of low
    repute, kept the neutral 0.5 in the lists, far from their trust answer and the gate's."""
    brand = random_brand()
    reneger, forgotten, newcomer = (random_customer(n) for n in ("reneger", "forgotten", "new"))
    week_ago = NOW - timedelta(days=7)
    granted: dict[str, Any] = {"purpose": "m", "channels": ["email"], "data_categories": []}
    granted |= {"notice_version": "1", "method": "web"}
    ledger.record_batch(
        brand,
        [
            *[
                posted("offer.made", reneger, at=week_ago, offer_id=f"o{i}", summary="s")
                for i in range(3)
            ],
            *[
                posted("offer.reneged", reneger, at=week_ago, offer_id=f"o{i}", reason="r")
                for i in range(3)
            ],
            posted(
                "promise.made", forgotten, at=week_ago, promise_id="p", summary="s", due_at=week_ago
            ),
            posted("consent.granted", forgotten, **granted),
            posted("consent.granted", newcomer, **granted),
        ],
    )
    runner = Runner(ledger)
    runner.run_once()
    rows = {row["customer"]: row for row in customers(runner.db, brand, limit=10).items}
    brand_p = trust.projected(relationship_model.brand_evidence(runner.db, brand), NOW)[
        "consistency"
    ]
    assert brand_p < 0.5
    assert rows[newcomer]["consistency"] == pytest.approx(brand_p, abs=1e-9)
    assert rows[forgotten]["consistency"] < brand_p
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


def replays_agree(ledger: Ledger, rng: random.Random) -> None:
    """Several customers' stories for each brand, interleaved, recorded in batches of random
    sizes and projected in pages of random sizes (checkpoints as often as the caller set
    CHECKPOINT_EVERY), a record time noted after each batch. Each brand's first customer keeps
    a promise and an error report open throughout, so most checkpoints hold open items of a
    relationship that the page taking them does not. Then, every brand at every record time:
    the same evidence and open items to the last bit, whether replayed from the latest
    checkpoint or from the first row; and a rebuild, paged otherwise, writes the same
    checkpoints."""
    brands = ["acme", "globex"]
    held_open = [
        posted("promise.made", "keeper", promise_id="open", summary="s", due_at=LATER),
        posted("error.reported", "keeper", error_id="open", summary="s", reported_by="customer"),
    ]
    stories = {brand: [*held_open, *interleaved(rng, 3)] for brand in brands}
    events = []
    while any(stories.values()):  # the brands interleaved too, each story in its order
        brand = rng.choice([b for b, left in stories.items() if left])
        events.append((brand, stories[brand].pop(0)))
    runner, moments = Runner(ledger, page_size=rng.randint(1, 30)), []
    while events:
        size = rng.randint(1, 15)
        for brand in brands:
            batch = [e for b, e in events[:size] if b == brand]
            if batch:
                ledger.record_batch(brand, batch)
        events = events[size:]
        moments.append(datetime.now(UTC))
        runner.run_once(max_pages=rng.randint(0, 3))
    runner.run_once()
    assert runner.db.scalar("SELECT count(*) FROM brand_trust_checkpoints") > 0
    for brand in brands:
        for as_of in moments:
            from_checkpoint = _replayed(runner.db, brand, as_of)
            assert from_checkpoint == _replayed(runner.db, brand, as_of, checkpoints=False)
    assert runner.rebuild(verify=True) == {}
    runner.close()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), every=st.integers(2, 12))
def test_a_replay_from_a_checkpoint_equals_the_replay_from_the_start(seed: int, every: int) -> None:
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(relationship_model, "CHECKPOINT_EVERY", every)
        ledger = open_ledger(new_sqlite_database(Path(directory)))
        replays_agree(ledger, random.Random(seed))
        ledger.close()


@pytest.mark.postgres
def test_a_replay_from_a_checkpoint_on_postgres_equals_the_replay_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relationship_model, "CHECKPOINT_EVERY", 5)
    ledger = open_ledger(new_postgres_database())
    replays_agree(ledger, random.Random(7))
    ledger.close()
