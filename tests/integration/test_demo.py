"""The demo data: as big as issue 8 asks, reproducible, accepted whole, and telling its stories."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import KeyStore
from api.demo import SPAN, Loaded, Plan, Record, holds_demo, load, plan
from api.demo_brands import BRIGHTLINE, NORTHWIND, PULSE
from domain.application import Ledger
from domain.relationship import POSTABLE_TYPES
from domain.storage import Store
from projections.decisions import findings
from projections.runner import Runner
from projections.trust import brand_scores
from tests.conftest import new_sqlite_database, open_ledger

ROOT = Path(__file__).parents[2]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
"""A fixed end of the two years, so the tests see the same data whatever the day."""
CUSTOMERS = 20
"""Per brand: the stories already show at this size, and it loads in a couple of seconds."""


@dataclass
class Demo:
    ledger: Ledger
    runner: Runner
    plan: Plan
    loaded: Loaded


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One small demo on SQLite, loaded and projected once for the tests that only read it."""
    ledger = open_ledger(new_sqlite_database(tmp_path_factory.mktemp("demo")))
    planned = plan(now=NOW, customers_per_brand=CUSTOMERS)
    loaded = load(ledger, planned)
    runner = Runner(ledger)
    runner.run_once()
    yield Demo(ledger, runner, planned, loaded)
    runner.close()
    ledger.close()


def timelines(ledger: Ledger, demo_plan: Plan) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every demo relationship's events as the ledger shows them, but for their record times."""
    return {
        (brand, customer): [
            {k: v for k, v in event.as_dict().items() if k != "recorded_at"}
            for event in ledger.interactions(brand, customer)
        ]
        for brand, customers in demo_plan.customers.items()
        for customer in customers
    }


# --- the plan, pure --------------------------------------------------------------------------


def test_the_default_demo_is_as_big_as_the_issue_asks() -> None:
    default = plan(now=NOW)
    times = [step.at for step in default.steps]
    assert sum(len(refs) for refs in default.customers.values()) >= 1_000
    assert default.events + default.asks >= 50_000  # every ask records at least its decision
    assert len(default.brands) >= 3
    assert NOW - SPAN <= min(times) < NOW - SPAN + timedelta(days=31)
    assert NOW - timedelta(days=7) < max(times) <= NOW


def test_one_seed_plans_the_same_steps_and_another_seed_other_ones() -> None:
    first, again = plan(8, NOW, 5), plan(8, NOW, 5)
    assert first.steps == again.steps
    assert plan(9, NOW, 5).steps != first.steps


def test_steps_are_in_order_of_event_time_with_one_event_id_each() -> None:
    small = plan(now=NOW, customers_per_brand=5)
    times = [step.at for step in small.steps]
    assert times == sorted(times)
    events = [s.event for s in small.steps if isinstance(s, Record)]
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.event_id.startswith("demo-") for e in events)
    assert all(e.customer.removeprefix("cust-") in e.event_id for e in events)


# --- loading through the ledger ----------------------------------------------------------------


def test_two_fresh_stores_loaded_with_one_seed_hold_the_same_events(tmp_path: Path) -> None:
    demo_plan = plan(8, NOW, 8)
    held = []
    for name in ("first", "second"):
        ledger = open_ledger(new_sqlite_database(tmp_path / name))
        load(ledger, demo_plan)
        held.append(timelines(ledger, demo_plan))
        ledger.close()
    assert held[0] == held[1]
    assert sum(len(events) for events in held[0].values()) > 8 * 3 * 20


def test_every_planned_event_is_recorded_and_every_push_decided(demo: Demo) -> None:
    held = timelines(demo.ledger, demo.plan)
    stored = [event for events in held.values() for event in events]
    ids = {event["event_id"] for event in stored}
    planned = {s.event.event_id for s in demo.plan.steps if isinstance(s, Record)}
    assert planned <= ids
    assert len(stored) == demo.loaded.events + demo.loaded.decisions
    assert demo.loaded.decisions >= demo.plan.asks
    assert all(NOW - SPAN <= datetime.fromisoformat(e["occurred_at"]) <= NOW for e in stored)


def test_the_demo_holds_every_kind_of_event(demo: Demo) -> None:
    held = timelines(demo.ledger, demo.plan).values()
    types = {event["type"] for events in held for event in events}
    assert types == {*POSTABLE_TYPES, "push.decided"}


def test_promises_are_kept_on_time_late_and_broken(demo: Demo) -> None:
    due: dict[tuple[str, str], datetime] = {}
    closings: Counter[str] = Counter()
    for (_, customer), events in timelines(demo.ledger, demo.plan).items():
        for event in events:
            key = (customer, event["data"].get("promise_id", ""))
            if event["type"] == "promise.made":
                due[key] = datetime.fromisoformat(event["data"]["due_at"])
            elif event["type"] == "promise.kept":
                late = datetime.fromisoformat(event["occurred_at"]) > due[key]
                closings["kept late" if late else "kept on time"] += 1
            elif event["type"] == "promise.broken":
                closings["broken"] += 1
    assert closings["kept on time"] > closings["kept late"] > 0
    assert closings["broken"] > 0


def test_every_decision_of_the_demo_reproduces_in_the_audit(demo: Demo) -> None:
    decisions = list(demo.ledger.decisions())
    assert len(decisions) == demo.loaded.decisions
    for _, rid, sequence in decisions:
        audit = demo.ledger.audit_decision(rid, sequence)
        assert audit["reproduced"], audit["differences"]


# --- the stories ------------------------------------------------------------------------------


def scores(demo: Demo, brand: str) -> dict[str, float]:
    found = brand_scores(demo.runner.db, brand, at=NOW)
    return {name: score.opinion.P for name, score in found.dimensions.items()}


def test_the_brand_that_admits_its_errors_is_more_honest_than_the_one_that_never_does(
    demo: Demo,
) -> None:
    admits, never = scores(demo, NORTHWIND.slug), scores(demo, BRIGHTLINE.slug)
    assert admits["honesty"] > 0.8 > 0.3 > never["honesty"]


def test_the_brand_that_keeps_its_promises_is_more_consistent_than_the_late_and_broken_one(
    demo: Demo,
) -> None:
    keeper, late_and_broken = scores(demo, NORTHWIND.slug), scores(demo, BRIGHTLINE.slug)
    assert keeper["consistency"] > late_and_broken["consistency"] + 0.2


def decisions_of(demo: Demo, brand: str) -> list[tuple[str, dict[str, Any]]]:
    rows = demo.runner.db.query(
        "SELECT outcome, decision FROM decisions WHERE brand = ? AND decision IS NOT NULL", [brand]
    )
    return [(outcome, json.loads(decision)) for outcome, decision in rows]


def test_the_over_pusher_is_denied_for_data_categories_nobody_consented_to(demo: Demo) -> None:
    uncovered = [
        reason["detail"]
        for outcome, decision in decisions_of(demo, PULSE.slug)
        if outcome == "deny"
        for reason in decision["reasons"]
        if reason["rule"] == "consent" and "does not cover" in reason["detail"]
    ]
    assert any("browsing_history" in detail for detail in uncovered)
    assert any("location" in detail for detail in uncovered)


def test_only_the_over_pusher_sends_what_the_gate_did_not_allow(demo: Demo) -> None:
    found = Counter(f["finding"] for f in findings(demo.runner.db, PULSE.slug, limit=10_000).items)
    assert found["sent although denied"] > 0
    assert found["sent inside its defer window"] > 0
    assert findings(demo.runner.db, NORTHWIND.slug).items == []
    assert findings(demo.runner.db, BRIGHTLINE.slug).items == []


def test_the_over_pusher_asks_the_most_and_its_customers_mind(demo: Demo) -> None:
    asked = {brand: len(decisions_of(demo, brand)) for brand in demo.plan.customers}
    assert asked[PULSE.slug] > 2 * max(asked[NORTHWIND.slug], asked[BRIGHTLINE.slug])
    assert unwelcome_share(demo, PULSE.slug) > 2 * unwelcome_share(demo, NORTHWIND.slug)


def unwelcome_share(demo: Demo, brand: str) -> float:
    rows = demo.runner.db.query(
        "SELECT data FROM timeline WHERE brand = ? AND type = 'push.feedback'", [brand]
    )
    reactions = Counter(json.loads(data)["reaction"] for (data,) in rows)
    return (reactions["unwanted"] + reactions["unsubscribed"]) / max(1, sum(reactions.values()))


# --- once -------------------------------------------------------------------------------------


def test_a_ledger_holds_the_demo_once_it_is_loaded(empty_store: Store) -> None:
    ledger = open_ledger(empty_store)
    try:
        assert not holds_demo(ledger)
        load(ledger, plan(now=NOW, customers_per_brand=3))
        assert holds_demo(ledger)
    finally:
        ledger.close()


def trustledger(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "api", "--database-url", database, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_demo_command_loads_once_and_says_where_to_look(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'trustledger.sqlite3'}"
    assert trustledger(database, "migrate").returncode == 0
    first = trustledger(database, "demo", "--customers-per-brand", "4", "--now", "2026-06-01")
    assert first.returncode == 0, first.stderr
    assert "loaded " in first.stdout
    for brand in (NORTHWIND, BRIGHTLINE, PULSE):
        assert brand.slug in first.stdout
    assert "http://127.0.0.1:8000/ui/" in first.stdout
    keys = KeyStore(Store.from_url(database))
    printed = [line.split() for line in first.stdout.splitlines() if " key tlk_" in line]
    callers = [keys.authenticate(words[-1]) for words in printed]
    brands = (NORTHWIND, BRIGHTLINE, PULSE)
    assert {(c.brand, c.role) for c in callers if c} == {
        (brand.slug, role) for brand in brands for role in ("agent", "compliance")
    }
    keys.close()
    ledger = open_ledger(Store.from_url(database))
    held = timelines(ledger, plan(now=NOW, customers_per_brand=4))
    again = trustledger(database, "demo", "--customers-per-brand", "4")
    assert again.returncode == 0, again.stderr
    assert "already holds the demo" in again.stdout
    assert timelines(ledger, plan(now=NOW, customers_per_brand=4)) == held
    runner = Runner(ledger)
    assert runner.positions()["timeline"] == runner.head()  # projected once, by the command
    runner.close()
    ledger.close()


def test_a_demo_stopped_before_it_finished_is_refused_in_one_line(tmp_path: Path) -> None:
    """A Ctrl-C during `make run`'s minute of loading left part of the demo, which the next run
    called the demo ("already holds the demo data: nothing loaded") and served as it was."""
    database = f"sqlite:///{tmp_path / 'trustledger.sqlite3'}"
    assert trustledger(database, "migrate").returncode == 0
    ledger = open_ledger(Store.from_url(database))
    whole = plan(now=NOW, customers_per_brand=4)
    load(ledger, dataclasses.replace(whole, steps=whole.steps[: len(whole.steps) // 3]))
    held = recorded(ledger)
    assert held
    again = trustledger(database, "demo", "--customers-per-brand", "4", "--now", "2026-06-01")
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert "part of the demo" in again.stderr and "new database" in again.stderr
    assert recorded(ledger) == held
    ledger.close()


def recorded(ledger: Ledger) -> dict[tuple[str, str], int]:
    """How many events each demo customer the ledger holds has."""
    return {
        (brand.slug, customer): len(list(ledger.interactions(brand.slug, customer)))
        for brand in (NORTHWIND, BRIGHTLINE, PULSE)
        for customer in ledger.customers(brand.slug)
    }


def test_the_demo_command_refuses_a_future_now_in_one_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'trustledger.sqlite3'}"
    result = trustledger(database, "demo", "--now", "2999-01-01")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--now" in result.stderr and "future" in result.stderr
