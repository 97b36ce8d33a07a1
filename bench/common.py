"""Shared by the benchmarks: stores to run on, and timing. Each figure is printed next to a
baseline measured in the same run, as a ratio, since these machines are shared and noisy."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


from domain.application import Ledger  # noqa: E402
from domain.shredding import MasterKey  # noqa: E402
from domain.storage import Store  # noqa: E402
from migrations import new_postgres_database, upgrade  # noqa: E402

_server_url: str | None = None
BENCH_MASTER_KEY = MasterKey.generate()
os.environ["TRUSTLEDGER_MASTER_KEY"] = (
    BENCH_MASTER_KEY.encoded()
)  # for the scripts run as processes


def open_ledger(store: Store) -> Ledger:
    return Ledger(store, master_key=BENCH_MASTER_KEY)


def postgres_server() -> str:
    """TRUSTLEDGER_BENCH_POSTGRES_URL (as `make bench` sets it), else a throwaway cluster of our own."""
    global _server_url
    if _server_url is None:
        _server_url = os.environ.get("TRUSTLEDGER_BENCH_POSTGRES_URL")
        if not _server_url:
            directory = str(ROOT / "var" / f"bench-postgres-{os.getpid()}")
            tool = str(ROOT / "tools" / "throwaway-postgres")
            out = subprocess.run(
                [tool, "start", directory], check=True, capture_output=True, text=True
            )
            _server_url = out.stdout.strip().splitlines()[-1]
            atexit.register(subprocess.run, [tool, "stop", directory], check=False)
    return _server_url


def postgres_store() -> Store:
    """A fresh, migrated PostgreSQL database."""
    return new_postgres_database(Store.from_url(postgres_server()), "bench")


def sqlite_store() -> Store:
    directory = tempfile.mkdtemp(prefix="trustledger-bench-")
    store = Store.from_url(f"sqlite:///{directory}/bench.sqlite3")
    upgrade(store)
    return store


def rate(count: int, run: Callable[[], object]) -> float:
    """Operations per second of `run`, which performs `count` operations."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def row(label: str, value: float, unit: str, baseline: float | None = None, goal: str = "") -> None:
    ratio = f"{value / baseline:6.2f}x baseline" if baseline else " " * 17
    print(f"  {label:<58} {value:>12,.1f} {unit:<10} {ratio}  {goal}", flush=True)
