"""What the read models' sealed personal values cost: per event applied by the projections (the
timeline, relationships and decisions read models, each rebuilt alone in one process), and per
row read by a timeline page and a customers page, each next to a baseline measured in the same
run: the same code with sealing (or opening) made a pass-through. Each figure is the median of
REPEATS."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from bench.common import open_ledger, postgres_store, row, sqlite_store
from domain.relationship import Envelope
from domain.storage import Store
from projections.relationships import customers
from projections.runner import READ_MODELS, Runner
from projections.timeline import timeline_page
from tests.factories import NOW, story

CUSTOMERS = 2000
"""Each tells the story of every type (29 events), and has 3 push decisions: 64,000 events."""
REPEATS = 5
READS = 200
PAGE = 50


def load(store: Store) -> None:
    ledger = open_ledger(store)
    for c in range(CUSTOMERS):
        customer = f"customer-{c:05d}"
        ledger.record_batch("bench", story(customer))
        relationship = ledger.relationship("bench", customer)
        for p in range(3):
            request = {"customer": customer, "purpose": "marketing", "channel": "email"}
            relationship.record_push_decision(
                Envelope(f"gate-{c}-{p}", NOW, actor="gate"),
                f"push-{c}-{p}",
                request=request,
                decision={"outcome": "allow"},
            )
        ledger.save(relationship)
    ledger.close()


def per_item(run: Callable[[], int]) -> float:
    """Microseconds per item of `run` (which returns how many it handled), median of REPEATS."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        count = run()
        times.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(times)


SEALING_MODULES = ("projections.timeline", "projections.relationships", "projections.decisions")


@contextmanager
def in_clear(name: str) -> Iterator[None]:
    """The projections' `seal` or `opened` (projections/personal.py) made a pass-through: the
    baseline, the same work less the sealing or the opening."""

    def passed(*args: Any) -> Any:
        return (
            args[1] if name == "seal" else args[2]
        )  # seal(key, value, ...), opened(keys, rid, value, ...)

    with ExitStack() as stack:
        for module in SEALING_MODULES:
            stack.enter_context(mock.patch(f"{module}.{name}", passed))
        yield


def compared(label: str, run: Callable[[], int], name: str) -> None:
    """`run` per item with `name` in clear (the baseline), then as it is (last, so what it
    wrote stays), printed as a ratio."""
    with in_clear(name):
        baseline = per_item(run)
    row(label, per_item(run), "us", baseline)


def figures(kind: str, store: Store) -> None:
    load(store)
    ledger = open_ledger(store)
    runner = Runner(ledger)
    runner.run_once()
    print(f"\n{kind}: {runner.head():,} notifications, {CUSTOMERS} customers")
    for model in READ_MODELS:
        if model.name == "consents":
            continue
        alone = Runner(ledger, [model])

        def rebuild(alone: Runner = alone) -> int:
            alone.rebuild(processes=1)
            return alone.head()

        compared(f"{model.name} rebuilt alone, per event of the log", rebuild, "seal")
        alone.close()
    db = runner.db

    def timelines() -> int:
        n = 0
        for i in range(READS):
            n += len(timeline_page(db, "bench", f"customer-{i % CUSTOMERS:05d}", limit=PAGE).items)
        return n

    def lists() -> int:
        return sum(len(customers(db, "bench", limit=PAGE).items) for _ in range(READS))

    compared(f"timeline page of {PAGE}, per row", timelines, "opened")
    compared(f"customers page of {PAGE}, per row", lists, "opened")
    runner.close()
    ledger.close()


def main() -> None:
    which = sys.argv[1:] or ["postgres", "sqlite"]
    for kind, make in (("postgres", postgres_store), ("sqlite", sqlite_store)):
        if kind in which:
            figures(kind, make())


if __name__ == "__main__":
    main()
