"""The trust chart's brand line: drawing it after each write to a brand of 100,000 events, folded
on by the process that drew it before, next to the same drawing folded from the brand's first row
(what every drawing after a write cost before projections/trust_line.py)."""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from bench.common import open_ledger, postgres_store, row, sqlite_store
from domain.application import Ledger
from domain.relationship import PostedEvent
from projections.runner import Runner
from projections.trust_line import BrandLines

EVENTS = 100_000
CUSTOMERS = 1_000
LIFE = timedelta(days=730)
DRAWINGS = 20


def event(n: int, at: datetime) -> PostedEvent:
    """Ten events a customer in a row: a promise made, kept five events later, and answers."""
    customer, step, promise = f"c{n // 10 % CUSTOMERS}", n % 10, f"p{n // 10}"
    if step == 0:
        type_, data = "promise.made", {"promise_id": promise, "summary": "call back",
                                       "due_at": at + timedelta(days=3)}  # fmt: skip
    elif step == 5:
        type_, data = "promise.kept", {"promise_id": promise}
    else:
        type_, data = "question.answered", {"case_id": f"q{n}", "topic": "t", "resolved": True}
    return PostedEvent(f"e-{uuid.uuid4().hex}", type_, customer, at, data=data)


def history(ledger: Ledger, brand: str) -> None:
    start = datetime.now(UTC) - LIFE
    for first in range(0, EVENTS, 500):
        ledger.record_batch(
            brand, [event(n, start + LIFE * n / EVENTS) for n in range(first, first + 500)]
        )


def main() -> None:
    for kind, make in (("postgres", postgres_store), ("sqlite", sqlite_store)):
        ledger = open_ledger(make())
        history(ledger, "bench")
        runner = Runner(ledger)
        runner.run_once()
        print(f"\n{kind}: the trust chart's brand line, {EVENTS:,} events over two years")
        lines = BrandLines()
        started = time.perf_counter()
        lines.line(runner.db, "bench", datetime.now(UTC))
        row("first drawing in a process", (time.perf_counter() - started) * 1000, "ms")
        folded_on: list[float] = []
        from_first_row: list[float] = []
        for n in range(DRAWINGS):
            ledger.record("bench", event(EVENTS + n * 10 + 1, datetime.now(UTC)))
            runner.run_once()
            for samples, drawing in ((folded_on, lines), (from_first_row, BrandLines())):
                started = time.perf_counter()
                drawing.line(runner.db, "bench", datetime.now(UTC))
                samples.append(time.perf_counter() - started)
        fresh = statistics.median(from_first_row) * 1000
        found = statistics.median(folded_on) * 1000
        row("after a write, folded from the first row (as before)", fresh, "ms")
        row("after a write, folded on by the same process", found, "ms")
        print(f"  folded on: {fresh / found:,.0f} times faster (medians of {DRAWINGS})")
        runner.close()
        ledger.close()


if __name__ == "__main__":
    main()
