"""Trust: score evaluation for a relationship with 10 vs 100,000 past events, and the rate of the
read model that keeps trust (relationships and brand evidence) next to the timeline's."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.*, domain.*: the root

from bench.append import interleaved, prepared_relationship
from bench.common import open_ledger, postgres_store, row, sqlite_store
from bench.read_models import load
from domain.application import Ledger
from domain.storage import Store
from projections.relationships import Relationships
from projections.runner import Runner
from projections.timeline import Timeline

EVALUATIONS = 500


def evaluation_costs(ledger: Ledger) -> dict[str, float]:
    """Seconds to load a relationship and evaluate its trust, with 10 and 100,000 past events."""
    rates = {"consistency": 0.7, "honesty": 0.6, "expertise": 0.8}
    customers = {past: prepared_relationship(ledger, past) for past in (10, 100_000)}
    return interleaved(
        {
            f"{p}": (lambda c=c: ledger.relationship("bench", c).trust(datetime.now(UTC), rates))
            for p, c in customers.items()
        },
        EVALUATIONS,
    )


def model_rate(store: Store, model: object) -> float:
    runner = Runner(open_ledger(store), [model])  # type: ignore[list-item]
    started = time.perf_counter()
    runner.rebuild()
    rate = runner.head() / (time.perf_counter() - started)
    runner.close()
    return rate


def main() -> None:
    for kind, make in (("postgres", postgres_store), ("sqlite", sqlite_store)):
        store = make()
        ledger = open_ledger(store)
        print(f"\n{kind}: trust")
        costs = evaluation_costs(ledger)
        short, long = costs["10"], costs["100000"]
        row("evaluate a relationship's trust, 10 past events", short * 1000, "ms")
        row(
            "evaluate a relationship's trust, 100,000 past events",
            long * 1000,
            "ms",
            short * 1000,
            "goal <= 1.2x",
        )
        load(ledger, 30_000)
        timeline = model_rate(store, Timeline())
        row("timeline read model, rebuilt alone (baseline)", timeline, "notifications/s")
        row(
            "relationships + brand trust read model, rebuilt alone",
            model_rate(store, Relationships()),
            "notifications/s",
            timeline,
        )
        ledger.close()


if __name__ == "__main__":
    main()
