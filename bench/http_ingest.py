"""HTTP ingest: single events and batches of 100, next to a bare-Flask baseline of the same run.

gunicorn with 2 sync workers, 4 concurrent clients (processes), PostgreSQL: the cluster of
`make bench` (TRUSTLEDGER_BENCH_POSTGRES_URL) or a throwaway one this script starts. Prints
requests/s, events/s and latency percentiles of each server, and the ratios the issue sets
as goals: single events at least 70% of the baseline with p99 at most 10 ms, and batches at
least 20,000 events/s. The baseline (bench/baseline/app.py) is also run with the table lock the
eventsourcing library takes on every save, to tell that lock's share from the rest, and with
the ledger's own marshmallow schemas validating what it is sent, to tell theirs; and each
step of the ledger's path is timed alone, in this process, to show where the time goes.
It prints; it asserts nothing.

    .venv/bin/python bench/http_ingest.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.auth import KeyStore  # noqa: E402
from bench.common import Run, Server, load, open_ledger, postgres_store  # noqa: E402  (sets the master key)
from domain.storage import Store  # noqa: E402

CLIENTS = 4
WORKERS = 2
BATCH = 100
CUSTOMERS = 2000


# --- the database and the servers -------------------------------------------------------------


def fresh_database() -> Store:
    """A fresh, migrated database with the baseline's table beside the ledger's."""
    store = postgres_store()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, event_id text, body jsonb)"
        )
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], env: dict[str, str]) -> Iterator[Server]:
    """The server, its log in a file (a pipe nobody reads would block it once full), whose
    last lines are printed when it stops, if it logged anything (an error answer, a crash)."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
            cwd=ROOT,
            env={**os.environ, **env},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None:
                        log.seek(0)
                        raise SystemExit(f"server failed: {log.read()}") from None
                    time.sleep(0.1)
            yield Server(port, process.pid)  # its own session: start_new_session
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            log.seek(0)
            logged = log.read().splitlines()
            if logged:
                print("  the server logged:", *logged[-20:], sep="\n    ", file=sys.stderr)


def ledger_server(store: Store) -> Any:
    # fmt: off
    return server(
        [sys.executable, "-m", "api", "--database-url", store.url, "serve",
         "--port", "{port}", "--workers", str(WORKERS)],
        {},
    )
    # fmt: on


def baseline_server(store: Store, lock: bool = False, schemas: bool = False) -> Any:
    """The baseline under the ledger's own gunicorn worker (api/server.SyncWorker): with the stock
    `sync` one it served 13-24% fewer single events a second (three alternating runs), which made
    the ledger's ratio look that much better than it is."""
    # fmt: off
    return server(
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS),
         "--worker-class", "api.server.SyncWorker", "--bind", "127.0.0.1:{port}",
         "--log-level", "warning", "bench.baseline.app:create()"],
        {
            "BENCH_BASELINE_URL": store.conninfo(),
            "BENCH_BASELINE_LOCK": "y" if lock else "n",
            "BENCH_BASELINE_SCHEMAS": "y" if schemas else "n",
        },
    )
    # fmt: on


# --- the clients ------------------------------------------------------------------------------


def event(client: int, i: int) -> dict[str, Any]:
    return {
        "event_id": f"bench-{uuid.uuid4().hex}",
        "type": "question.answered",
        "customer": f"cust-{(client * 7919 + i) % CUSTOMERS}",
        "occurred_at": "2026-01-01T00:00:00Z",
        "actor": "agent-7",
        "channel": "chat",
        "data": {"case_id": f"c-{client}-{i}", "topic": "billing", "resolved": True, "rating": 5},
    }


def singles(client: int, i: int) -> tuple[str, Any]:
    return "/v1/events", event(client, i)


def batches(client: int, i: int) -> tuple[str, Any]:
    return "/v1/events/batch", {"events": [event(client, i * BATCH + j) for j in range(BATCH)]}


def ingest(name: str, served: Server, key: str, per_request: int, seconds: float) -> Run:
    requests = singles if per_request == 1 else batches
    return load(name, served, key, requests, seconds, CLIENTS, per_request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement (default 8)")
    seconds = parser.parse_args().seconds
    store = fresh_database()
    keys = KeyStore(store)
    key = keys.create("bench", "brand").key
    keys.close()
    runs: dict[str, Run] = {}
    measure: list[tuple[str, Callable[[], Any], int]] = [
        ("baseline, single", lambda: baseline_server(store), 1),
        ("baseline + table lock, single", lambda: baseline_server(store, lock=True), 1),
        ("baseline + schemas, single", lambda: baseline_server(store, schemas=True), 1),
        ("ledger, single", lambda: ledger_server(store), 1),
        ("baseline, batch of 100", lambda: baseline_server(store), BATCH),
        ("baseline + schemas, batch of 100", lambda: baseline_server(store, schemas=True), BATCH),
        ("ledger, batch of 100", lambda: ledger_server(store), BATCH),
    ]
    print(
        f"HTTP ingest: gunicorn {WORKERS} sync workers, {CLIENTS} clients, PostgreSQL,"
        f" {seconds:.0f} s each"
    )
    for name, serve, per_request in measure:
        with serve() as served:
            runs[name] = ingest(name, served, key, per_request, seconds)
        print(runs[name].line(), flush=True)
        print(runs[name].cpu_line(), flush=True)
    report(runs)
    print()
    breakdown(store)


def report(runs: dict[str, Run]) -> None:
    single = runs["ledger, single"]
    base = runs["baseline, single"]
    locked = runs["baseline + table lock, single"]
    parsed = runs["baseline + schemas, single"]
    batch = runs["ledger, batch of 100"]
    base_batch = runs["baseline, batch of 100"]
    parsed_batch = runs["baseline + schemas, batch of 100"]
    print()
    print(
        f"single events: ledger / baseline = {single.rps / base.rps:.0%} (goal >= 70%),"
        f" p99 {single.percentile(99):.2f} ms (goal <= 10 ms)"
    )
    print(
        f"the library's table lock alone: baseline + lock / baseline = {locked.rps / base.rps:.0%};"
        f" ledger / (baseline + lock) = {single.rps / locked.rps:.0%}"
    )
    print(
        f"the ledger's schemas alone: baseline + schemas / baseline = {parsed.rps / base.rps:.0%};"
        f" ledger / (baseline + schemas) = {single.rps / parsed.rps:.0%}"
    )
    print(
        f"batches: {batch.eps:,.0f} events/s (goal >= 20,000),"
        f" {batch.eps / base_batch.eps:.0%} of the baseline's batch"
    )
    print(
        f"the ledger's schemas alone: baseline + schemas, batches {parsed_batch.eps:,.0f} events/s"
        f" ({parsed_batch.eps / base_batch.eps:.0%} of the baseline's);"
        f" ledger / (baseline + schemas) = {batch.eps / parsed_batch.eps:.0%}"
    )


# --- where the time goes: each step alone, in this process, one thread ------------------------


def per_call_ms(step: Callable[[int], Any], times: int) -> float:
    started = time.perf_counter()
    for i in range(times):
        step(i)
    return (time.perf_counter() - started) / times * 1000


def breakdown(store: Store) -> None:
    from api.schemas.events import BatchSchema, EventSchema

    keys = KeyStore(store)
    key = keys.create("bench-steps", "brand").key
    ledger = open_ledger(store)
    raw = psycopg.connect(store.conninfo())
    one, many = EventSchema(), BatchSchema()

    def insert(i: int, lock: bool = False) -> None:
        with raw.transaction():
            if lock:
                raw.execute("LOCK TABLE bench_baseline IN EXCLUSIVE MODE")
            raw.execute(
                "INSERT INTO bench_baseline (event_id, body) VALUES (%s, %s)",
                [f"x{i}", json.dumps(event(7, i))],
            )

    def record(posted: Any) -> None:
        ledger.record("bench-steps", posted)

    def record_all(batch: dict[str, Any]) -> None:
        ledger.record_batch("bench-steps", many.load(batch)["events"])

    batches = [{"events": [event(8, i * BATCH + j) for j in range(BATCH)]} for i in range(20)]
    lone = [
        {"events": [{**event(8, j), "customer": f"lone-{i}"} for j in range(BATCH)]}
        for i in range(20)
    ]
    steps = [
        ("raw INSERT and commit", lambda i: insert(i), 300),
        ("raw INSERT inside LOCK TABLE", lambda i: insert(i, lock=True), 300),
        ("check a key (one indexed SELECT)", lambda i: keys.authenticate(key), 300),
        ("parse one event (marshmallow)", lambda i: one.load(event(9, i)), 300),
        ("Ledger.record, a new customer", lambda i: record(one.load(event(9, i))), 300),
        ("Ledger.record, the same customers again", lambda i: record(one.load(event(9, i))), 300),
        ("parse a batch of 100", lambda i: many.load(batches[i]), 20),
        ("Ledger.record_batch, 100 customers", lambda i: record_all(batches[i]), 20),
        ("Ledger.record_batch, 1 customer", lambda i: record_all(lone[i]), 20),
    ]
    print("where the time goes (one thread, in process, ms per call):")
    for name, step, times in steps:
        print(f"  {name:<38} {per_call_ms(step, times):8.2f}")
    raw.close()
    ledger.close()
    keys.close()


if __name__ == "__main__":
    main()
