"""The trust chart's lines, each drawn after each write of 100,000 events, folded on by the process
that drew it before, next to the same drawing folded from the first row (what every drawing after
a write cost before projections/trust_line.py kept the line): a brand's line (1,000 customers),
and a relationship's (one customer, in a brand of its own)."""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from api.ui import chart
from bench.common import open_ledger, postgres_store, row, sqlite_store
from domain.application import Ledger
from domain.relationship import PostedEvent, relationship_id
from projections.runner import Runner
from projections.trust_line import BRANDS, RELATIONSHIPS, Lines, TrustLines, brand_line

EVENTS = 100_000
CUSTOMERS = 1_000
LIFE = timedelta(days=730)
DRAWINGS = 20


def event(n: int, at: datetime, customer: str | None = None) -> PostedEvent:
    """Ten events a customer in a row: a promise made, kept five events later, and answers."""
    step, promise = n % 10, f"p{n // 10}"
    customer = customer or f"c{n // 10 % CUSTOMERS}"
    if step == 0:
        type_, data = "promise.made", {"promise_id": promise, "summary": "call back",
                                       "due_at": at + timedelta(days=3)}  # fmt: skip
    elif step == 5:
        type_, data = "promise.kept", {"promise_id": promise}
    else:
        type_, data = "question.answered", {"case_id": f"q{n}", "topic": "t", "resolved": True}
    return PostedEvent(f"e-{uuid.uuid4().hex}", type_, customer, at, data=data)


def history(ledger: Ledger, brand: str, customer: str | None = None) -> None:
    start = datetime.now(UTC) - LIFE
    for first in range(0, EVENTS, 500):
        ledger.record_batch(
            brand,
            [event(n, start + LIFE * n / EVENTS, customer) for n in range(first, first + 500)],
        )


Drawing = Callable[[Lines], object]


def after_writes(
    ledger: Ledger, runner: Runner, brand: str, customer: str | None, kept: Lines, draw: Drawing
) -> tuple[float, float]:
    """Medians (ms) of a drawing after each of DRAWINGS writes: by `kept`, folded on, and by a
    new Lines of its kind, folded from the first row."""
    folded_on: list[float] = []
    from_first_row: list[float] = []
    for n in range(DRAWINGS):
        ledger.record(brand, event(EVENTS + n * 10 + 1, datetime.now(UTC), customer))
        runner.run_once()
        for samples, lines in ((folded_on, kept), (from_first_row, Lines(kept.kind))):
            started = time.perf_counter()
            draw(lines)
            samples.append(time.perf_counter() - started)
    return statistics.median(folded_on) * 1000, statistics.median(from_first_row) * 1000


def timed(draw: Callable[[], object]) -> float:
    started = time.perf_counter()
    draw()
    return (time.perf_counter() - started) * 1000


def report(what: str, first: float, found: float, fresh: float) -> None:
    print(f"\n  {what}")
    row("first drawing in a process", first, "ms")
    row("after a write, folded from the first row (as before)", fresh, "ms")
    row("after a write, folded on by the same process", found, "ms")
    print(f"  folded on: {fresh / found:,.0f} times faster (medians of {DRAWINGS})")


def measure(kind: str, ledger: Ledger) -> None:
    history(ledger, "bench")
    history(ledger, "solo", "solo")
    runner = Runner(ledger)
    runner.run_once()
    db = runner.db
    print(f"\n{kind}: the trust chart's lines, {EVENTS:,} events over two years")

    brands = Lines(BRANDS)
    first = timed(lambda: brand_line(brands, db, "bench", datetime.now(UTC)))
    found, fresh = after_writes(
        ledger, runner, "bench", None, brands,
        lambda lines: brand_line(lines, db, "bench", datetime.now(UTC)),
    )  # fmt: skip
    report(f"a brand's line ({CUSTOMERS:,} customers)", first, found, fresh)

    rid = str(relationship_id("solo", "solo"))
    relationships = Lines(RELATIONSHIPS)
    first = timed(lambda: relationships.line(db, rid, datetime.now(UTC)))
    found, fresh = after_writes(
        ledger, runner, "solo", "solo", relationships,
        lambda lines: lines.line(db, rid, datetime.now(UTC)),
    )  # fmt: skip
    report("a relationship's line (one customer)", first, found, fresh)

    page, samples = TrustLines(), []
    chart.series(ledger, db, page, "solo", "solo", None)
    for n in range(DRAWINGS):
        ledger.record("solo", event(EVENTS + DRAWINGS * 10 + n * 10 + 1, datetime.now(UTC), "solo"))
        runner.run_once()
        samples.append(timed(lambda: chart.series(ledger, db, page, "solo", "solo", None)))
    print("\n  the customer's chart: both lines, the relationship's erasure and policy read")
    row("after a write, folded on by the same process", statistics.median(samples), "ms")
    runner.close()


def main() -> None:
    for kind, make in (("postgres", postgres_store), ("sqlite", sqlite_store)):
        ledger = open_ledger(make())
        measure(kind, ledger)
        ledger.close()


if __name__ == "__main__":
    main()
