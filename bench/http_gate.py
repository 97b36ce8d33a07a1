"""HTTP gate: push-decision latency p50/p99, next to a bare-Flask endpoint doing one indexed lookup.

gunicorn with 2 sync workers, 4 concurrent clients (processes), PostgreSQL (the cluster of
`make bench`, or a throwaway one). The brand has CUSTOMERS customers, each with a consent and a
few interactions; every request asks about an offer to one of them, with a fresh push_id, so
each is a full decision: load the relationship, read the brand's base rates from its read model,
evaluate every rule, record `push.decided`. Prints both servers' figures and the ratios against
the goal (p99 <= 5 ms). It asserts nothing. Under 2 minutes.

    .venv/bin/python bench/http_gate.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.auth import KeyStore  # noqa: E402
from bench.common import load, open_ledger  # noqa: E402  (sets the master key)
from bench.http_ingest import (  # noqa: E402
    CLIENTS,
    WORKERS,
    baseline_server,
    fresh_database,
    ledger_server,
)
from domain.relationship import PostedEvent  # noqa: E402
from domain.storage import Store  # noqa: E402

BRAND = "bench-gate"
CUSTOMERS = 1000
BASELINE_ROWS = 10_000


def seed(store: Store) -> None:
    """The brand's customers, a quiet-hours window away from now, and the baseline's rows."""
    ledger = open_ledger(store)
    now = datetime.now(UTC) - timedelta(minutes=1)
    batch: list[PostedEvent] = []
    for c in range(CUSTOMERS):
        customer = f"cust-{c}"
        batch.append(
            PostedEvent(
                f"consent-{c}", "consent.granted", customer, now, None, "web",
                {"purpose": "marketing", "channels": ["email"],
                 "data_categories": ["purchase_history"], "notice_version": "v1",
                 "method": "web_form", "expires_at": None, "jurisdiction": "EU"},
            )
        )  # fmt: skip
        for i in range(4):
            data = {"case_id": f"{c}-{i}", "topic": "t", "resolved": i != 3, "rating": None}
            batch.append(
                PostedEvent(f"q-{c}-{i}", "question.answered", customer, now, None, "chat", data)
            )
        if len(batch) >= 500:
            ledger.record_batch(BRAND, batch)
            batch = []
    if batch:
        ledger.record_batch(BRAND, batch)
    hour = datetime.now(UTC).hour
    quiet = {"start": f"{(hour + 6) % 24:02d}:00", "end": f"{(hour + 7) % 24:02d}:00"}
    ledger.set_policy(BRAND, {"quiet_hours": quiet, "frequency_cap": 1000})
    ledger.close()
    with psycopg.connect(store.conninfo()) as conn:
        conn.execute(
            "INSERT INTO bench_baseline (event_id, body)"
            " SELECT 'row-' || g, '{}'::jsonb FROM generate_series(1, %s) g",
            [BASELINE_ROWS],
        )


def request(client: int, i: int) -> dict[str, Any]:
    return {
        "push_id": f"push-{uuid.uuid4().hex}",
        "customer": f"cust-{random.randrange(CUSTOMERS)}",
        "purpose": "marketing",
        "channel": "email",
        "kind": "offer",
        "data_categories": ["purchase_history"],
        "row": random.randrange(1, BASELINE_ROWS + 1),
    }


def decisions(client: int, i: int) -> tuple[str, Any]:
    asked = request(client, i)
    asked.pop("row")
    return "/v1/push-decisions", asked


def lookups(client: int, i: int) -> tuple[str, Any]:
    return "/v1/push-decisions", request(client, i)


def outcome(answer: Any) -> str:
    return str(answer["outcome"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement (default 8)")
    seconds = parser.parse_args().seconds
    store = fresh_database()
    seed(store)
    keys = KeyStore(store)
    key = keys.create(BRAND, "brand").key
    keys.close()
    print(
        f"HTTP gate: gunicorn {WORKERS} sync workers, {CLIENTS} clients, PostgreSQL,"
        f" {CUSTOMERS} customers, {seconds:.0f} s each"
    )
    with baseline_server(store, lock=False) as served:
        base = load("baseline (one indexed lookup)", served, key, lookups, seconds, CLIENTS)
    print(base.line(), flush=True)
    print(base.cpu_line(), flush=True)
    with baseline_server(store, lock=True) as served:
        recording = load("baseline, lookup + locked insert", served, key, lookups, seconds, CLIENTS)
    print(recording.line(), flush=True)
    print(recording.cpu_line(), flush=True)
    with ledger_server(store) as served:
        gate = load(
            "ledger, POST /v1/push-decisions",
            served,
            key,
            decisions,
            seconds,
            CLIENTS,
            tally=outcome,
        )
    print(gate.line(), flush=True)
    print(gate.cpu_line(), flush=True)
    print(f"  outcomes: {gate.tallies}")
    print()
    p50, p99 = gate.percentile(50), gate.percentile(99)
    print(
        f"decision latency: p50 {p50:.2f} ms ({p50 / base.percentile(50):.1f}x the baseline's),"
        f" p99 {p99:.2f} ms ({p99 / base.percentile(99):.1f}x the baseline's; goal p99 <= 5 ms:"
        f" {'met' if p99 <= 5 else 'not met'})"
    )
    print(
        f"the baseline that also records its answer under the library's lock (the least a gate"
        f" that records its decisions does): p99 {recording.percentile(99):.2f} ms; the"
        f" ledger's is {p99 / recording.percentile(99):.1f}x it"
    )
    print(f"throughput: {gate.rps / base.rps:.0%} of the baseline's")
    print()
    breakdown(store, key)


def breakdown(store: Store, key: str) -> None:
    """Each step of a decision alone, in this process, one thread: where the time goes."""
    from api.context import BrandBaseRates

    ledger = open_ledger(store)
    rates = BrandBaseRates(store)
    ledger.base_rates = rates
    keys = KeyStore(store)
    now = datetime.now(UTC)

    def decide(i: int) -> None:
        asked = request(0, i)
        asked.pop("row")
        ledger.decide_push(BRAND, asked)

    steps: list[tuple[str, Callable[[int], object]]] = [
        ("check a key (one indexed SELECT)", lambda i: keys.authenticate(key)),
        ("the brand's base rates (read model)", lambda i: rates(BRAND, now)),
        ("load a relationship", lambda i: ledger.relationship(BRAND, f"cust-{i % CUSTOMERS}")),
        ("Ledger.decide_push (all of it)", decide),
    ]
    print("where the time goes (one thread, in process, ms per call):")
    for name, step in steps:
        started = time.perf_counter()
        for i in range(100):
            step(i)
        print(f"  {name:<38} {(time.perf_counter() - started) * 10:8.2f}")
    rates.close()
    keys.close()
    ledger.close()


if __name__ == "__main__":
    main()
