"""Per-customer encryption's cost: single-event in-process ingest, sealed vs plaintext, same run.

Two workloads, each on SQLite (and on PostgreSQL when TRUSTLEDGER_BENCH_POSTGRES_URL is set):
appends to relationships that already exist (the common case), and first events, each opening
a relationship (which also creates, wraps and commits its customer key). The baseline is the
same Ledger with the library's plain mapper and an unkeyed fingerprint, so the ratio is what
encryption adds. Rounds alternate between the two; the ratio is the median of each round's
paired ratio, since the machine's load drifts between rounds.

The target (issue 7): encryption costs at most 25% of throughput on appends.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.application import Application

from domain.application import Ledger
from domain.key_table import MemoryKeyTable
from domain.relationship import PostedEvent
from domain.shredding import CustomerKeys, MasterKey
from domain.storage import Store
from migrations import new_postgres_database, upgrade

ROUNDS = 9
EVENTS = 300
CUSTOMERS = 50
NOW = time.time()


class _Unkeyed:
    """What the ledger fingerprinted with before issue 7: a plain sha256."""

    @staticmethod
    def fingerprint(content: bytes) -> str:
        return hashlib.sha256(content).hexdigest()


class PlaintextLedger(Ledger):
    """The same Ledger without encryption: the library's own mapper, and no customer keys."""

    name = "Ledger"  # the same tables

    def construct_mapper(self) -> Any:
        self.customer_keys = CustomerKeys(MemoryKeyTable(), self._master_key)
        return Application.construct_mapper(self)

    def _customer_keys(
        self, brand: str, relationships: dict[Any, Any]
    ) -> tuple[dict[Any, Any], list[Any]]:
        return dict.fromkeys(relationships, _Unkeyed), []


def event(customer: str) -> PostedEvent:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return PostedEvent(
        event_id=f"evt-{uuid.uuid4().hex}",
        type="promise.made",
        customer=customer,
        occurred_at=now,
        actor="Agent Ada Lovelace",
        channel="email",
        data={
            "promise_id": uuid.uuid4().hex,
            "summary": "refund the double charge of 42.00 EUR by Friday, as agreed on the phone",
            "due_at": now + timedelta(days=3),
        },
    )


def ingest(ledger: Ledger, customers: list[str]) -> float:
    """Events per second, one record() call per event."""
    brand = "bench"
    events = [event(customers[i % len(customers)]) for i in range(EVENTS)]
    started = time.perf_counter()
    for posted in events:
        ledger.record(brand, posted)
    return EVENTS / (time.perf_counter() - started)


def fresh_store(kind: str, directory: Path, name: str) -> Store:
    if kind == "postgres":
        server = Store.from_url(os.environ["TRUSTLEDGER_BENCH_POSTGRES_URL"])
        return new_postgres_database(server, f"bench_{name}")
    store = Store.from_url(f"sqlite:///{directory / name}.sqlite3")
    upgrade(store)
    return store


def measure(kind: str, directory: Path) -> dict[str, tuple[float, float, float]]:
    """Per workload: median sealed and plaintext throughput, and the median of paired ratios."""
    key = MasterKey.generate()
    ledgers = {
        "sealed": Ledger(fresh_store(kind, directory, "sealed"), master_key=key),
        "plain": PlaintextLedger(fresh_store(kind, directory, "plain"), master_key=key),
    }
    regulars = [f"cust-{i}" for i in range(CUSTOMERS)]
    for ledger in ledgers.values():  # open the regular customers' relationships, and warm up
        ingest(ledger, regulars)
    runs: dict[str, dict[str, list[float]]] = {"appends": {}, "first events": {}}
    for round_ in range(ROUNDS):
        # Alternate which goes first, and pair each round's two runs: the machine's load drifts.
        for name in ("sealed", "plain") if round_ % 2 == 0 else ("plain", "sealed"):
            ledger = ledgers[name]
            runs["appends"].setdefault(name, []).append(ingest(ledger, regulars))
            newcomers = [f"new-{uuid.uuid4().hex}" for _ in range(EVENTS)]
            runs["first events"].setdefault(name, []).append(ingest(ledger, newcomers))
    for ledger in ledgers.values():
        ledger.close()
    return {
        workload: (
            statistics.median(by["sealed"]),
            statistics.median(by["plain"]),
            statistics.median(s / p for s, p in zip(by["sealed"], by["plain"], strict=True)),
        )
        for workload, by in runs.items()
    }


def main() -> None:
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("TRUSTLEDGER_BENCH_POSTGRES_URL") else [])
    print(f"per-customer encryption: {EVENTS} single-event records x {ROUNDS} rounds (medians)")
    with tempfile.TemporaryDirectory() as directory:
        for kind in kinds:
            for workload, (sealed, plain, ratio) in measure(kind, Path(directory)).items():
                print(
                    f"  {kind:8} {workload:12}  sealed {sealed:7.0f}/s  plaintext {plain:7.0f}/s"
                    f"  ratio {ratio:.2f}  (cost {1 - ratio:+.0%})"
                )


if __name__ == "__main__":
    main()
