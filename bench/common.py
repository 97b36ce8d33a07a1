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


@dataclass(frozen=True)
class Server:
    """A server under load: its port, and the session its processes share (the first one's pid)."""

    port: int
    session: int


def cpu_seconds(session: int) -> dict[str, float]:
    """CPU time used so far: by the whole machine (busy, not idle), by the server's processes,
    and by PostgreSQL's. What a run adds to these says where each request's CPU goes."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    used = {"machine": (sum(ticks) - ticks[3] - ticks[4]) / tick, "server": 0.0, "postgres": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                name, fields = stat.read().rsplit(")", 1)
        except OSError:  # gone meanwhile
            continue
        values = fields.split()
        seconds = (int(values[11]) + int(values[12])) / tick
        if int(values[3]) == session:
            used["server"] += seconds
        elif name.endswith("(postgres"):
            used["postgres"] += seconds
    return used


@dataclass
class Run:
    name: str
    requests: int
    events: int
    seconds: float
    latencies_ms: list[float]
    failures: dict[int, int]
    """The answers that were not a success, counted by status."""
    tallies: dict[str, int] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU per request, in ms: the whole machine's, the server's, PostgreSQL's, and the rest's
    (the bench's clients and the kernel's share of the machine)."""

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
            + "".join(f"   FAILED {n} with {status}" for status, n in sorted(self.failures.items()))
        )

    def cpu_line(self) -> str:
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in self.cpu_ms.items())
        busy = (
            self.cpu_ms["machine"] * self.requests / 1000 / (self.seconds * (os.cpu_count() or 1))
        )
        return f"  CPU per request (ms): {parts}; the machine {busy:.0%} busy"


def _client(
    port: int,
    key: str,
    requests: Requests,
    tally: Tally | None,
    seconds: float,
    client: int,
    results: Any,
) -> None:
    latencies: list[float] = []
    failures: dict[int, int] = {}
    tallies: dict[str, int] = {}
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
            failures[answer.status] = failures.get(answer.status, 0) + 1
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
    server: Server,
    key: str,
    requests: Requests,
    seconds: float,
    clients: int,
    events_per_request: int = 1,
    tally: Tally | None = None,
) -> Run:
    """`clients` processes posting `requests` for `seconds`, after a second to warm up the
    server's workers and connections; and where the CPU went meanwhile."""
    port = server.port
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
    before, started = cpu_seconds(server.session), time.monotonic()
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed, after = time.monotonic() - started, cpu_seconds(server.session)
    latencies = [ms for part, _, _ in collected for ms in part]
    tallies: dict[str, int] = {}
    failures: dict[int, int] = {}
    for _, failed, seen in collected:
        for label, count in seen.items():
            tallies[label] = tallies.get(label, 0) + count
        for status, count in failed.items():
            failures[status] = failures.get(status, 0) + count
    used = {part: (after[part] - before[part]) * 1000 / max(1, len(latencies)) for part in after}
    used["rest"] = used["machine"] - used["server"] - used["postgres"]
    return Run(
        name,
        len(latencies),
        len(latencies) * events_per_request,
        elapsed,
        latencies,
        failures,
        tallies,
        used,
    )
