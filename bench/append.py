"""In-process append rate of the Ledger, single events and batches of 100, on both stores, next
to plain sqlite3 / psycopg inserting the same payload; and the append cost for a relationship
with 10 vs 100,000 past events."""

from __future__ import annotations

import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from bench.common import open_ledger, postgres_store, rate, row, sqlite_store
from domain.application import Ledger
from domain.relationship import PostedEvent
from domain.storage import Store

N_SINGLE = 1500
N_BATCHES = 40
NOW = datetime.now(UTC)


def answered(customer: str, n: int) -> PostedEvent:
    return PostedEvent(
        event_id=f"e-{uuid.uuid4().hex}",
        type="question.answered",
        customer=customer,
        occurred_at=NOW,
        actor="agent-7",
        channel="phone",
        data={"case_id": f"case-{n}", "topic": "billing", "resolved": n % 3 != 0, "rating": 4},
    )


def payload(ledger: Ledger) -> bytes:
    """The stored state of one such event, so the raw baseline writes the same bytes."""
    return ledger.mapper.to_stored_event(_one_event(ledger)).state


def _one_event(ledger: Ledger) -> Any:
    from domain.relationship import Relationship

    relationship = Relationship("bench", "payload")
    ledger.customer_keys.create(
        "bench", relationship.id
    )  # the mapper seals with the customer's key
    relationship.record(answered("payload", 0))
    return relationship.collect_events()[-1]


def raw_sqlite(path: str, state: bytes, rows_per_commit: int, commits: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE raw (id TEXT, version INTEGER, topic TEXT, state BLOB, PRIMARY KEY (id, version))"
    )

    def run() -> None:
        for _ in range(commits):
            key = uuid.uuid4().hex
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO raw VALUES (?, ?, ?, ?)",
                [(key, v, "t", state) for v in range(rows_per_commit)],
            )
            conn.execute("COMMIT")

    return rate(rows_per_commit * commits, run)


def raw_postgres(store: Store, state: bytes, rows_per_commit: int, commits: int) -> float:
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw (id uuid, version bigint, topic text, state bytea, PRIMARY KEY (id, version))"
        )

        def run() -> None:
            for _ in range(commits):
                key = uuid.uuid4()
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO raw VALUES (%s, %s, %s, %s)",
                        [(key, v, "t", state) for v in range(rows_per_commit)],
                    )

        return rate(rows_per_commit * commits, run)


def ledger_single(ledger: Ledger, count: int) -> float:
    customers = [f"c-{uuid.uuid4().hex[:8]}" for _ in range(50)]
    return rate(
        count,
        lambda: [ledger.record("bench", answered(customers[i % 50], i)) for i in range(count)],
    )


def ledger_batches(ledger: Ledger, batches: int) -> float:
    def run() -> None:
        for b in range(batches):
            ledger.record_batch("bench", [answered(f"b-{b}-{i % 20}", i) for i in range(100)])

    return rate(100 * batches, run)


def prepared_relationship(ledger: Ledger, past: int) -> str:
    """A customer whose relationship already has `past` events."""
    customer = f"h-{past}-{uuid.uuid4().hex[:6]}"
    for start in range(0, past, 500):
        ledger.record_batch(
            "bench", [answered(customer, n) for n in range(start, min(past, start + 500))]
        )
    return customer


def interleaved(run: dict[str, object], rounds: int) -> dict[str, float]:
    """Median seconds per call of each callable, called in turn, so both see the same machine."""
    samples: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(rounds):
        for name, call in run.items():
            started = time.perf_counter()
            call()  # type: ignore[operator]
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(found) for name, found in samples.items()}


def history_costs(ledger: Ledger, rounds: int = 300) -> dict[str, float]:
    """Seconds per append to a relationship with 10 and with 100,000 past events."""
    customers = {past: prepared_relationship(ledger, past) for past in (10, 100_000)}
    counter = iter(range(10**9))
    return interleaved(
        {
            f"{past}": (lambda c=c: ledger.record("bench", answered(c, 200_000 + next(counter))))
            for past, c in customers.items()
        },
        rounds,
    )


def main() -> None:
    for kind, make in (("sqlite", sqlite_store), ("postgres", postgres_store)):
        store = make()
        ledger = open_ledger(store)
        state = payload(ledger)
        print(
            f"\n{kind}: in-process append (payload {len(state)} bytes; an event also writes its idempotency key)"
        )
        if kind == "sqlite":
            base_single = raw_sqlite(store.path + ".raw", state, 1, N_SINGLE)
            base_batch = raw_sqlite(store.path + ".raw2", state, 100, N_BATCHES)
        else:
            base_single = raw_postgres(postgres_store(), state, 1, N_SINGLE)
            base_batch = raw_postgres(postgres_store(), state, 100, N_BATCHES)
        row("raw insert, one row per transaction (baseline)", base_single, "rows/s")
        row(
            "Ledger.record, one event per call",
            ledger_single(ledger, N_SINGLE),
            "events/s",
            base_single,
        )
        row("raw insert, 100 rows per transaction (baseline)", base_batch, "rows/s")
        row(
            "Ledger.record_batch, 100 events per call",
            ledger_batches(ledger, N_BATCHES),
            "events/s",
            base_batch,
        )
        costs = history_costs(ledger)
        short, long = costs["10"], costs["100000"]
        row("append to a relationship with 10 past events", short * 1000, "ms")
        row(
            "append to a relationship with 100,000 past events",
            long * 1000,
            "ms",
            short * 1000,
            "goal <= 1.2x",
        )
        ledger.close()


if __name__ == "__main__":
    main()
