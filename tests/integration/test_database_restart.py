"""PostgreSQL stops and starts again under a running ledger: while it is down every call answers
503 with a time to retry, within the pool's wait; once it is back, the very next calls answer,
and a projection follower picks up where it was. A cluster of the test's own, stopped and
started by pg_ctl; never a mock."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import close_app, create_app
from api.auth import KeyStore
from api.server import Gunicorn
from domain.storage import CONNECT_TIMEOUT, Store
from migrations import upgrade
from projections.db import Database
from projections.runner import Runner
from tests.conftest import open_ledger
from tests.factories import posted
from tests.random_refs import random_event_id

ROOT = Path(__file__).parents[2]
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def pg_ctl(directory: Path, *args: str) -> None:
    owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    subprocess.run([*owner, PG_CTL, "-D", str(directory / "data"), *args], check=True,
                   capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture
def cluster() -> Iterator[tuple[Store, Path]]:
    """A throwaway cluster of this test's own (tools/throwaway-postgres), and its directory: in
    one the `postgres` user can reach when the suite runs as root (pytest's are 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="trustledger-restart-"))
    parent.chmod(0o755)
    directory = parent / "pg"
    tool = ROOT / "tools" / "throwaway-postgres"
    started = subprocess.run([str(tool), "start", str(directory)], check=True,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    store = Store.from_url(started.stdout.splitlines()[-1])
    upgrade(store)
    yield store, directory
    subprocess.run([str(tool), "stop", str(directory)], capture_output=True, timeout=60)
    shutil.rmtree(parent, ignore_errors=True)


def restart(directory: Path, store: Store) -> None:
    """Starts the cluster again on its port. PostgreSQL starts even when it cannot bind the TCP
    port (it keeps its Unix socket), as happens when the port was taken meanwhile as some
    connection's local port: then it is stopped and started again, up to three times."""
    options = f"-p {store.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
    for _ in range(3):
        pg_ctl(directory, "-w", "-l", str(directory / "server.log"), "-o", options, "start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", store.port), 5):
            return
        pg_ctl(directory, "-m", "fast", "stop")
        time.sleep(1)
    log = (directory / "server.log").read_text()
    raise AssertionError(f"the cluster did not listen on port {store.port} again:\n{log[-2000:]}")


def new_key(store: Store) -> str:
    """A brand key, through a key store closed at once: one left to the garbage collector may
    be collected in its pool's own worker thread, whose `__del__` then cannot join itself (an
    unraisable error that failed a later test)."""
    keys = KeyStore(store, cache_seconds=0)
    try:
        return keys.create("acme", "brand").key
    finally:
        keys.close()


def event(customer: str) -> dict[str, Any]:
    return {
        "event_id": random_event_id(),
        "type": "question.answered",
        "customer": customer,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"case_id": random_event_id(), "topic": "billing", "resolved": True},
    }


def test_calls_answer_503_while_the_server_is_down_and_answer_at_once_when_it_is_back(
    cluster: tuple[Store, Path],
) -> None:
    store, directory = cluster
    key = new_key(store)
    app = create_app({"database_url": store.url, "key_cache_seconds": 0})
    http: FlaskClient = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    timeline = "/v1/customers/c-1/timeline"
    assert http.post("/v1/events", json=event("c-1"), headers=headers).status_code == 201
    assert http.get(timeline, headers=headers).status_code == 200
    assert http.get("/readyz").status_code == 200
    pg_ctl(directory, "-m", "immediate", "stop")
    assert http.get("/healthz").status_code == 200  # alive: restarting it would not help
    for answer in (
        http.post("/v1/events", json=event("c-1"), headers=headers),
        http.get(timeline, headers=headers),
        http.get("/readyz"),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.mimetype == "application/problem+json" and answer.headers["Retry-After"]
    restart(directory, store)
    assert http.get("/readyz").status_code == 200
    written = http.post("/v1/events", json=event("c-1"), headers=headers)
    assert written.status_code == 201, written.text
    read = http.get(timeline, headers=headers)
    assert read.status_code == 200, read.text
    assert read.json is not None and len(read.json["items"]) == 2  # the 503's event: not stored
    close_app(app)


def test_a_worker_that_boots_while_the_server_is_down_serves_once_it_is_back(
    cluster: tuple[Store, Path],
) -> None:
    """gunicorn replaces a worker that dies; one booted during an outage failed to open the
    ledger, and gunicorn shut the whole server down ("Worker failed to boot")."""
    store, directory = cluster
    key = new_key(store)
    pg_ctl(directory, "-m", "fast", "stop")  # (the cluster commits asynchronously: not a crash)
    worker = Gunicorn({"database_url": store.url, "key_cache_seconds": 0}, {})
    app = worker.load()  # raised StoreUnavailable
    http: FlaskClient = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert http.post("/v1/events", json=event("c-3"), headers=headers).status_code == 503
    restart(directory, store)
    written = http.post("/v1/events", json=event("c-3"), headers=headers)
    assert written.status_code == 201, written.text
    close_app(app)


def test_the_pools_give_a_reconnection_up_after_the_connect_timeout(
    migrated_postgres: Store,
) -> None:
    """psycopg_pool backs off from a server that is down by doubling its waits, for up to five
    minutes: after a 40 s outage under `serve --workers 2`, calls answered 503 for 10 s more
    with the server back (and at once with this). Given up after CONNECT_TIMEOUT, a try makes
    way for the next call's. (An outage long enough to show it is too long for the suite.)"""
    ledger, keys = open_ledger(migrated_postgres), KeyStore(migrated_postgres)
    keys.every()  # opens the keys' pool
    assert ledger.recorder.datastore.pool.reconnect_timeout == CONNECT_TIMEOUT  # type: ignore[attr-defined]
    assert keys._postgres_pool().reconnect_timeout == CONNECT_TIMEOUT
    keys.close()
    ledger.close()


def test_a_projection_follower_goes_on_after_the_server_is_back(
    cluster: tuple[Store, Path],
) -> None:
    store, directory = cluster
    ledger = open_ledger(store)
    runner = Runner(ledger)
    halt = runner.start()
    try:
        pg_ctl(directory, "-m", "immediate", "stop")
        time.sleep(1)  # the follower meets the stopped server
        restart(directory, store)
        answered = posted("question.answered", "c-2", case_id="q", topic="t", resolved=True)
        recorded = ledger.record("acme", answered)
        watcher, deadline = Database(store), time.monotonic() + 30
        while watcher.scalar("SELECT min(position) FROM projection_positions") < recorded.position:
            assert time.monotonic() < deadline, "the follower did not go on"
            time.sleep(0.1)
        watcher.close()
    finally:
        halt()
        runner.close()
        ledger.close()
