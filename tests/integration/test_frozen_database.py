"""PostgreSQL frozen under a serving ledger: every process of the cluster stopped (SIGSTOP), as a
hung host or a network that drops packets leaves it. It takes what is sent and never answers,
where a stopped server refuses (test_database_restart.py). Every call that needs it is answered
503 problem+json within the statement timeout (or the 5 s a new connection is waited for), and
once it wakes the next calls answer at once. A cluster of the test's own; never a mock."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from domain.storage import Store
from domain.timeouts import Unanswered, answering_within
from projections.db import Database
from tests.integration.test_database_restart import cluster, event, new_key
from tests.integration.test_serve import serving

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
_ = cluster  # the fixture

PATIENCE = 20.0
"""How long the test waits for an answer: several times what the ledger may take, and less
than gunicorn's 30 s, after which it kills a worker stuck on the database."""
SERVING = {"TRUSTLEDGER_STATEMENT_TIMEOUT_SECONDS": "1", "TRUSTLEDGER_KEY_CACHE_SECONDS": "60"}


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent` (PostgreSQL's backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat and int(stat.rpartition(")")[2].split()[1]) == parent:
            found.append(int(entry.name))
    return found


@contextmanager
def frozen(directory: Path) -> Iterator[None]:
    """Every process of the cluster stopped until the block ends: the postmaster first, so that
    it starts no new backend meanwhile, then its children (each its own process group)."""
    postmaster = int((directory / "data" / "postmaster.pid").read_text().split()[0])
    stopped = [postmaster]
    os.kill(postmaster, signal.SIGSTOP)
    try:
        for child in children(postmaster):
            os.kill(child, signal.SIGSTOP)
            stopped.append(child)
        yield
    finally:
        for pid in reversed(stopped):
            os.kill(pid, signal.SIGCONT)


def call(
    base: str, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, str, str, dict[str, Any]]:
    """The status, content type, Retry-After and JSON body of one call; a call not answered
    within PATIENCE fails the test (it hung)."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=PATIENCE)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        connection.request(method, path, json.dumps(body) if body else None, headers)
        answer = connection.getresponse()
        text = answer.read()
    except TimeoutError:
        pytest.fail(f"{method} {path}: no answer in {PATIENCE:g} s: it hung on the frozen server")
    finally:
        connection.close()
    retry = answer.getheader("Retry-After", "")
    return answer.status, answer.getheader("Content-Type", ""), retry, json.loads(text)


@pytest.mark.parametrize("workers", [1, 2])  # in process; gunicorn with sync workers
def test_calls_answer_503_while_the_server_is_frozen_and_at_once_when_it_wakes(
    cluster: tuple[Store, Path], workers: int
) -> None:
    store, directory = cluster
    key, unchecked = new_key(store), new_key(store)
    known = "/v1/customers/c-known/timeline"
    with serving(store, workers, SERVING) as base:
        before = [event("c-known") for _ in range(4)]  # enough to reach both workers
        for posted in before:
            assert call(base, "POST", "/v1/events", key, posted)[0] == 201
        assert call(base, "GET", known, key)[0] == 200
        to_known, to_new = event("c-known"), event("c-new")
        during = [
            # a customer written before: its insert may be the statement left unanswered, and
            # carried out when the server wakes, or not
            ("POST", "/v1/events", key, to_known),
            ("POST", "/v1/events", key, to_new),  # a new customer: read first, nothing sent
            ("GET", known, key, None),  # the read models
            ("GET", "/v1/trust", unchecked, None),  # a key not checked yet: the key store
        ]
        with frozen(directory), ThreadPoolExecutor(len(during)) as threads:
            answers = list(threads.map(lambda c: call(base, *c), during))
        for (method, path, *_), (status, kind, retry, body) in zip(during, answers, strict=True):
            assert (status, kind, retry) == (503, "application/problem+json", "5"), (path, body)
            assert body["type"] == "urn:trustledger:problem:store-unavailable", (method, body)
        # Awake: the very next calls answer, and the 503s stored nothing they did not say
        # they may have.
        assert call(base, "GET", "/v1/customers/c-new/timeline", key)[0] == 404
        for repeated in (to_known, to_new):  # unchanged, as the 503 says
            status, _, _, body = call(base, "POST", "/v1/events", key, repeated)
            assert status == 201, body
        status, _, _, page = call(base, "GET", known, key)
        assert status == 200, page
        ids = [item["event_id"] for item in page["items"]]
        assert sorted(ids) == sorted(e["event_id"] for e in [*before, to_known])  # each once
        assert call(base, "GET", "/v1/trust", unchecked)[0] == 200


def test_only_a_thread_answering_a_call_has_its_statements_cut_short(
    migrated_postgres: Store,
) -> None:
    """The timeout is the thread's, set for each HTTP request: a statement it outlasts fails and
    its connection is closed (the next statement runs on a new one); another thread's, as the
    projection thread of `serve` or a command's, runs as long as it needs."""
    answering, other = Database(migrated_postgres), Database(migrated_postgres)
    outcome: list[object] = []
    meanwhile = threading.Thread(
        target=lambda: outcome.extend(other.query("SELECT 7, pg_sleep(1)"))
    )
    before = answering_within(0.2)
    try:
        meanwhile.start()
        with pytest.raises(Unanswered):
            answering.query("SELECT pg_sleep(2)")
        assert answering.scalar("SELECT 1") == 1
    finally:
        answering_within(before)
        meanwhile.join()
        answering.close()
        other.close()
    assert outcome == [(7, "")]  # (pg_sleep's void, as text)
