"""Shared by the benchmarks: stores to run on, and timing. Each figure is printed next to a
baseline measured in the same run, as a ratio, since these machines are shared and noisy."""

from __future__ import annotations

import atexit
import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """A fresh, migrated SQLite file, removed when the benchmark ends."""
    directory = tempfile.mkdtemp(prefix="trustledger-bench-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
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


# --- HTTP load: client processes posting to a server, timed -----------------------------------

Requests = Callable[[int, int], tuple[str, Any]]
"""(client, i) -> the path and JSON body of that client's i-th request."""
Tally = Callable[[Any], str]
"""An answer's JSON body -> the label it is counted under (e.g. a decision's outcome)."""


@dataclass
class Run:
    name: str
    requests: int
    events: int
    seconds: float
    latencies_ms: list[float]
    failures: int
    tallies: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def eps(self) -> float:
        return self.events / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rps:>8.0f} req/s {self.eps:>9.0f} events/s"
            f"   p50 {self.percentile(50):6.2f} ms   p99 {self.percentile(99):6.2f} ms"
            + (f"   FAILED {self.failures}" if self.failures else "")
        )


def _client(
    port: int, key: str, requests: Requests, tally: Tally | None, seconds: float, client: int,
    results: Any,
) -> None:
    latencies: list[float] = []
    failures, tallies = 0, {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deadline = time.monotonic() + seconds
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < deadline:
        path, body = requests(client, i)
        i += 1
        started = time.perf_counter()
        conn.request("POST", path, json.dumps(body), headers)
        answer = conn.getresponse()
        content = answer.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if answer.status not in (200, 201):
            failures += 1
        elif tally is not None:
            label = tally(json.loads(content))
            tallies[label] = tallies.get(label, 0) + 1
        if answer.will_close:  # gunicorn's sync workers close every connection
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()
    results.put((latencies, failures, tallies))


def load(
    name: str,
    port: int,
    key: str,
    requests: Requests,
    seconds: float,
    clients: int,
    events_per_request: int = 1,
    tally: Tally | None = None,
) -> Run:
    """`clients` processes posting `requests` for `seconds`, after a second to warm up the
    server's workers and connections."""
    warm = multiprocessing.Queue()  # type: ignore[var-annotated]
    _client(port, key, requests, tally, 1.0, clients, warm)
    warm.get()
    results = multiprocessing.Queue()  # type: ignore[var-annotated]
    processes = [
        multiprocessing.Process(
            target=_client, args=(port, key, requests, tally, seconds, c, results)
        )
        for c in range(clients)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.monotonic() - started
    latencies = [ms for part, _, _ in collected for ms in part]
    tallies: dict[str, int] = {}
    for _, _, seen in collected:
        for label, count in seen.items():
            tallies[label] = tallies.get(label, 0) + count
    failures = sum(f for _, f, _ in collected)
    return Run(
        name, len(latencies), len(latencies) * events_per_request, elapsed, latencies, failures,
        tallies,
    )
