"""The push gate: in-process evaluation time, and decide-and-record for a relationship with 10 vs
100,000 past events, in a process that holds the relationship (the goal's case: a worker that has
served the customer) and in one that has not read it yet (which reads its latest snapshot and the
events since: first while the long one holds few recent pushes, then once it
holds the 260-320 it allowed in 7 days). (Decision latency over HTTP is in bench/http_gate.py.)"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from bench.append import answered, interleaved
from bench.common import open_ledger, postgres_store, row, sqlite_store
from domain.application import Ledger
from domain.gate import PushRequest, evaluate
from domain.relationship import PostedEvent
from domain.storage import Store

RUNS = 400
COLD_RUNS = 60


def consent(customer: str) -> PostedEvent:
    return PostedEvent(
        event_id=f"g-{uuid.uuid4().hex}", type="consent.granted", customer=customer,
        occurred_at=datetime.now(UTC) - timedelta(days=1), data={
            "purpose": "marketing", "channels": ["push"], "data_categories": ["purchase_history"],
            "notice_version": "1", "method": "web_form"},
    )  # fmt: skip


def request(customer: str) -> PushRequest:
    return PushRequest(
        f"p-{uuid.uuid4().hex}", customer, "offer", "push", "marketing", ("purchase_history",)
    )


def prepared(ledger: Ledger, past: int) -> str:
    customer = f"g-{past}-{uuid.uuid4().hex[:6]}"
    ledger.record("bench", consent(customer))
    for start in range(0, past, 500):
        ledger.record_batch(
            "bench", [answered(customer, n) for n in range(start, min(past, start + 500))]
        )
    return customer


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    for kind, make in (("sqlite", sqlite_store), ("postgres", postgres_store)):
        ledger = open_ledger(make())
        ledger.set_policy(
            "bench", {"frequency_cap": 1000, "quiet_hours": {"start": "00:00", "end": "00:00"}}
        )
        print(f"\n{kind}: the push gate in-process")
        customer = prepared(ledger, 10)
        relationship = ledger.relationship("bench", customer)
        policy, now = ledger.policy("bench"), datetime.now(UTC)
        scores = ledger.gate_scores(relationship, now)
        samples = []
        for _ in range(RUNS):
            started = time.perf_counter()
            evaluate(relationship, scores, policy, request(customer), now)
            samples.append(time.perf_counter() - started)
        p50, p99 = percentiles(samples)
        row("evaluate the seven rules (pure), p50", p50, "ms", None, "goal <= 0.2 ms")
        row("evaluate the seven rules (pure), p99", p99, "ms")
        customers = {past: prepared(ledger, past) for past in (10, 100_000)}
        # First in a process that has not read them, while the long one's last 7 days hold no
        # more allowed pushes than these runs make (0-59): its length is what is measured.
        cold_rows(cold_costs(ledger.store, customers[100_000]), "")
        costs = interleaved(
            {
                f"{p}": (lambda c=c, led=ledger: led.decide_push("bench", request(c)))
                for p, c in customers.items()
            },
            RUNS // 2,
        )
        row("decide and record, 10 past events, median", costs["10"] * 1000, "ms")
        row(
            "decide and record, 100,000 past events, median",
            costs["100000"] * 1000,
            "ms",
            costs["10"] * 1000,
            "goal <= 1.2x",
        )
        # Again once the long one holds the 260-320 pushes it allowed in 7 days, each of which
        # the frequency rule reads and a decision names: what recent pushes cost, at any length.
        cold_rows(cold_costs(ledger.store, customers[100_000]), ", 260-320 pushes")
        ledger.close()


def cold_rows(cold: dict[str, float], held: str) -> None:
    row("  not read yet in the process, 10 past events", cold["10"] * 1000, "ms")
    row(
        f"  not read yet in the process, 100,000 past events{held}",
        cold["100000"] * 1000,
        "ms",
        cold["10"] * 1000,
    )


def cold_costs(store: Store, long_customer: str) -> dict[str, float]:
    """Median seconds of a decision in a ledger that has not read the relationship yet: a fresh
    one each time, warmed by a decision on another customer (its connection open, its statements
    prepared), on a relationship of 10 past events (a new one each time) and on the long one
    (its latest snapshot and the events since)."""
    samples: dict[str, list[float]] = {"10": [], "100000": []}
    for _ in range(COLD_RUNS):
        writer = open_ledger(store)
        other, short = prepared(writer, 10), prepared(writer, 10)
        writer.close()
        for past, customer in (("10", short), ("100000", long_customer)):
            ledger = open_ledger(store)
            ledger.decide_push("bench", request(other))
            started = time.perf_counter()
            ledger.decide_push("bench", request(customer))
            samples[past].append(time.perf_counter() - started)
            ledger.close()
    return {past: statistics.median(found) for past, found in samples.items()}


if __name__ == "__main__":
    main()
