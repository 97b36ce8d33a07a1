"""Reads from a real streaming replica (TRUSTLEDGER_REPLICA_URL): served by the standby when it
holds what the primary's read models held, from the primary when it lags, has its replay paused
or is down, and never stale. A primary and a hot standby of the suite's own, made by
tools/throwaway-postgres (pg_basebackup -R); never a mock."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import replica as replica_module
from api.app import close_app, create_app, resources_of
from api.auth import KeyStore
from domain.relationship import relationship_id
from domain.storage import Store
from migrations import upgrade
from tests.conftest import TEST_MASTER_KEY
from tests.integration.test_database_restart import event
from tests.integration.test_frozen_database import frozen
from tests.integration.test_master_key import cli
from tests.random_refs import random_brand, random_customer, random_event_id

ROOT = Path(__file__).parents[2]
TOOL = ROOT / "tools" / "throwaway-postgres"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def tool(*args: str | Path) -> str:
    """Runs tools/throwaway-postgres; its last line (a URL, for start and replica)."""
    done = subprocess.run([str(TOOL), *map(str, args)], check=True, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    return (done.stdout.splitlines() or [""])[-1]


@dataclass
class Pair:
    primary: Store
    replica: Store
    directory: Path
    """Where the clusters live: `primary`, `replica`, and the test's own standbys."""


@pytest.fixture(scope="session")
def pair() -> Iterator[Pair]:
    """A primary (migrated) and a hot standby streaming from it, for the session: of the suite's
    own, so that the tests may pause the standby's replay, in a directory the `postgres` user
    can reach when the suite runs as root (pytest's are 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="trustledger-replica-"))
    directory.chmod(0o755)
    try:
        primary = Store.from_url(tool("start", directory / "primary"))
        upgrade(primary)
        replica = Store.from_url(tool("replica", directory / "replica", directory / "primary"))
        yield Pair(primary, replica, directory)
    finally:
        for cluster in ("replica", "primary"):
            subprocess.run([str(TOOL), "stop", str(directory / cluster)], capture_output=True,
                           timeout=60)  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Api:
    """The HTTP API on the pair's primary with `replica_url` set, and one brand's key."""

    pair: Pair
    app: Flask
    http: FlaskClient
    brand: str
    headers: dict[str, str]

    def post(self, body: dict[str, Any]) -> None:
        answer = self.http.post("/v1/events", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text

    def get(self, path: str) -> Any:
        answer = self.http.get(path, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json


@contextmanager
def api(pair: Pair, replica_url: str, wait: float, **config: float) -> Iterator[Api]:
    keys = KeyStore(pair.primary, cache_seconds=0)
    try:
        issued = keys.create(random_brand(), "brand")
    finally:
        keys.close()
    settings = {"database_url": pair.primary.url, "replica_url": replica_url}
    app = create_app({**settings, "replica_wait_seconds": wait, **config})
    try:
        headers = {"Authorization": f"Bearer {issued.key}"}
        yield Api(pair, app, app.test_client(), issued.info.brand, headers)
    finally:
        close_app(app)


def grant(customer: str, purpose: str) -> dict[str, Any]:
    return {
        "event_id": random_event_id(),
        "type": "consent.granted",
        "customer": customer,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {
            "purpose": purpose,
            "channels": ["email"],
            "data_categories": ["contact"],
            "notice_version": "v1",
            "method": "web-form",
        },
    }


def timeline(ledger: Api, customer: str) -> list[str]:
    """The event ids of the customer's timeline, newest first."""
    found = ledger.get(f"/v1/customers/{customer}/timeline")
    return [item["event_id"] for item in found["items"]]


def purposes(ledger: Api, customer: str) -> set[str]:
    found = ledger.get(f"/v1/customers/{customer}/consents")
    return {consent["purpose"] for consent in found["consents"]}


def rows_of(store: Store, brand: str, customer: str) -> int:
    """The customer's timeline rows in that database."""
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM timeline WHERE relationship_id = %s",
            [str(relationship_id(brand, customer))],
        ).fetchone()
    return int(row[0]) if row else 0


def replayed(pair: Pair) -> None:
    """Returns once the standby's read models hold what the primary's held when called (a
    precondition, not what is tested: 30 s is only there to end a broken run)."""
    query = "SELECT name, position FROM projection_positions"
    with (
        psycopg.connect(pair.primary.conninfo(), autocommit=True) as primary,
        psycopg.connect(pair.replica.conninfo(), autocommit=True) as replica,
    ):
        held: dict[str, int] = dict(primary.execute(query).fetchall())
        for _ in range(3000):
            found: dict[str, int] = dict(replica.execute(query).fetchall())
            if all(found.get(name, -1) >= position for name, position in held.items()):
                return
            time.sleep(0.01)
    pytest.fail("the standby did not replay the primary's read models in 30 s")


@contextmanager
def replay_paused(replica: Store) -> Iterator[None]:
    """The standby receives the primary's WAL and applies none of it until the block ends."""
    with psycopg.connect(replica.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


@contextmanager
def paused_once_held(ledger: Api, customer: str) -> Iterator[dict[str, Any]]:
    """Writes an event of the customer and reads it; then, once the standby holds it, pauses
    its replay for the block."""
    written = event(customer)
    ledger.post(written)
    assert timeline(ledger, customer) == [written["event_id"]]
    replayed(ledger.pair)
    with replay_paused(ledger.pair.replica):
        yield written


def test_reads_are_answered_by_the_standby_when_it_holds_the_log_head(pair: Pair) -> None:
    """The standby's replay is paused once it holds the customer's event, and the primary's
    rows of the customer are then deleted behind the ledger's back, moving no log position: the
    reads still show the event, so they were the standby's (the primary's would be a 404)."""
    customer = random_customer()
    with (
        api(pair, pair.replica.url, wait=5) as ledger,
        paused_once_held(ledger, customer) as written,
    ):
        with psycopg.connect(pair.primary.conninfo(), autocommit=True) as conn:
            conn.execute(
                "DELETE FROM timeline WHERE relationship_id = %s",
                [str(relationship_id(ledger.brand, customer))],
            )
        assert rows_of(pair.primary, ledger.brand, customer) == 0
        assert timeline(ledger, customer) == [written["event_id"]]
        trust = ledger.get(f"/v1/customers/{customer}/trust")  # its types: the timeline's
        assert [top["type"] for top in trust["expertise"]["top_events"]] == [written["type"]]


def test_a_write_the_paused_standby_lacks_is_read_from_the_primary(pair: Pair) -> None:
    """Read-your-writes when the standby cannot catch up: its replay is paused, so it never
    holds the write; the read waits its bounded while, then answers from the primary."""
    customer = random_customer()
    with (
        api(pair, pair.replica.url, wait=0.2) as ledger,
        paused_once_held(ledger, customer) as first,
    ):
        second = event(customer)
        ledger.post(second)
        ledger.post(grant(customer, "marketing"))
        assert rows_of(pair.replica, ledger.brand, customer) == 1  # the standby lacks it
        assert timeline(ledger, customer)[1:] == [second["event_id"], first["event_id"]]
        assert purposes(ledger, customer) == {"marketing"}


def test_every_read_after_a_write_includes_it_with_a_standby(pair: Pair) -> None:
    """README: "a timeline or consents read right after a 2xx write for the same customer
    includes it", whichever database answers it."""
    customer = random_customer()
    written: list[str] = []
    with api(pair, pair.replica.url, wait=0.5) as ledger:
        for n in range(8):
            posted = event(customer)
            ledger.post(posted)
            written.insert(0, posted["event_id"])
            assert timeline(ledger, customer) == written
            consent = grant(customer, f"purpose-{n}")
            ledger.post(consent)
            written.insert(0, consent["event_id"])
            assert purposes(ledger, customer) == {f"purpose-{i}" for i in range(n + 1)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_standby_that_is_not_there_leaves_the_reads_to_the_primary(pair: Pair) -> None:
    customer = random_customer()
    down = f"postgresql://trustledger@127.0.0.1:{free_port()}/trustledger"
    with api(pair, down, wait=0.5) as ledger:
        for _ in range(3):
            posted = event(customer)
            ledger.post(posted)
            assert timeline(ledger, customer)[0] == posted["event_id"]


@contextmanager
def stopped(directory: Path) -> Iterator[None]:
    tool("stop", directory)
    yield


@contextmanager
def own_standby(pair: Pair, customer: str) -> Iterator[tuple[Path, Api]]:
    """A standby of the test's own (to stop or freeze), and the API reading from it, which has
    read one event of the customer; the standby is stopped when the block ends."""
    own = pair.directory / f"standby-{random_event_id()}"
    standby = tool("replica", own, pair.directory / "primary")
    try:
        with api(pair, standby, wait=5, statement_timeout_seconds=1) as ledger:
            ledger.post(event(customer))
            assert len(timeline(ledger, customer)) == 1
            yield own, ledger
    finally:
        tool("stop", own)


@pytest.mark.parametrize("failing", [stopped, frozen])
def test_a_standby_that_fails_leaves_the_reads_to_the_primary_said_once(
    pair: Pair,
    caplog: pytest.LogCaptureFixture,
    failing: Callable[[Path], AbstractContextManager[None]],
) -> None:
    """A standby of the test's own, read from, then stopped (it refuses) or frozen (it takes
    what is sent and never answers): the reads go on from the primary, the frozen one's first
    within the statement timeout, and the log says so once, not at every read."""
    customer = random_customer()
    with own_standby(pair, customer) as (own, ledger):
        caplog.set_level(logging.WARNING, logger="trustledger.replica")
        with failing(own):
            for n in range(2, 5):
                ledger.post(event(customer))
                assert len(timeline(ledger, customer)) == n
    said = [r.getMessage() for r in caplog.records if r.name == "trustledger.replica"]
    assert len(said) == 1 and "reading from the primary" in said[0], said


@pytest.mark.parametrize("failing", [stopped, frozen])
def test_a_standby_that_fails_during_a_read_leaves_that_read_to_the_primary(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, failing: Callable[[Path], Any]
) -> None:
    """The standby holds the head when the read asks, then stops or freezes before the read's
    own queries: the read is answered whole, from the primary, rather than with a 503 (the path
    a query the standby's replay cancels takes too, rather than a 500)."""
    customer = random_customer()
    with own_standby(pair, customer) as (own, ledger), contextlib.ExitStack() as failed:
        replica = resources_of(ledger.app).reads.replica
        assert replica is not None
        holding = replica.holding

        def held_then_failing(head: int) -> Any:
            found = holding(head)
            assert found is not None  # the standby was asked, and held the head
            failed.enter_context(failing(own))
            return found

        monkeypatch.setattr(replica, "holding", held_then_failing)
        posted = event(customer)
        ledger.post(posted)
        assert timeline(ledger, customer)[0] == posted["event_id"]


CHECK_NAME = "trustledger replica check"
"""The application_name of the replica's checks (in the standby's pg_stat_activity)."""


class Standin:
    """A standby's address that takes every connection and, until `forward_to` is set, answers
    none (a hung host, a firewall that drops, a frozen server), after that hands each to
    `forward_to` (a real standby). It notes who each connection came from: the application_name
    of its startup message (no SSL or GSS asked first: the URL disables them)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.forward_to: tuple[str, int] | None = None
        self.names: list[str] = []
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accepting, daemon=True).start()

    def url(self) -> str:
        params = "sslmode=disable&gssencmode=disable&connect_timeout=2"
        return f"postgresql://trustledger@127.0.0.1:{self.port}/trustledger?{params}"

    def connections(self, *, checks: bool) -> int:
        """The connections the replica's checks made (or those they did not: the reads')."""
        with self.lock:
            return sum((name == CHECK_NAME) == checks for name in self.names)

    def _accepting(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                with self.lock:
                    self.sockets.append(client)
                threading.Thread(target=self._serving, args=(client,), daemon=True).start()

    def _serving(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            head = client.recv(4, socket.MSG_WAITALL)
            startup = head + client.recv(struct.unpack("!i", head)[0] - 4, socket.MSG_WAITALL)
            fields = startup[8:].split(b"\0")
            params = dict(zip(fields[0::2], fields[1::2], strict=False))
            with self.lock:
                self.names.append(params.get(b"application_name", b"").decode())
                target = self.forward_to
            if target is None:
                return  # held open, never answered
            upstream = socket.create_connection(target)
            with self.lock:
                self.sockets.append(upstream)
            upstream.sendall(startup)
            threading.Thread(target=_piped, args=(upstream, client), daemon=True).start()
            _piped(client, upstream)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for held in self.sockets:
                held.close()


def _piped(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    """A Standin, with the replica's checks every 0.2 s rather than 5 (the reads never wait on
    them, so how often they come changes no read)."""
    monkeypatch.setattr(replica_module, "CHECK_SECONDS", 0.2, raising=False)
    found = Standin()
    yield found
    found.close()


def reads_until(ledger: Api, customer: str, done: Callable[[], bool]) -> int:
    """Writes an event of the customer and reads it back, again and again, until `done` (or 20 s
    have passed, to end a broken run): how many times."""
    deadline, n = time.monotonic() + 20, 0
    while not done() and time.monotonic() < deadline:
        posted = event(customer)
        ledger.post(posted)
        assert timeline(ledger, customer)[0] == posted["event_id"]
        n += 1
    return n


def test_a_standby_that_takes_connections_and_never_answers_holds_up_one_read_only(
    pair: Pair, standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    """The first read finds the standby dead (after the connection's timeout); every later read
    goes straight to the primary while a thread of the replica's own checks the standby, so no
    read opens a connection to it again, however long it stays dead."""
    customer = random_customer()
    caplog.set_level(logging.WARNING, logger="trustledger.replica")
    with api(pair, standin.url(), wait=0.5, statement_timeout_seconds=1) as ledger:
        ledger.post(event(customer))
        assert len(timeline(ledger, customer)) == 1  # the read that finds it dead
        assert standin.connections(checks=False) == 1
        reads = reads_until(ledger, customer, lambda: standin.connections(checks=True) >= 3)
        assert reads > 0
        assert standin.connections(checks=False) == 1, "a later read waited on the dead standby"
    said = [r.getMessage() for r in caplog.records if r.name == "trustledger.replica"]
    assert len(said) == 1 and "reading from the primary" in said[0], said


def test_a_standby_found_answering_again_is_read_again(
    pair: Pair, standin: Standin, caplog: pytest.LogCaptureFixture
) -> None:
    """The standby answers no connection, then (the address handed to a real standby) answers
    again: a check finds it, says so, and the reads ask it again."""
    customer = random_customer()
    caplog.set_level(logging.WARNING, logger="trustledger.replica")
    with api(pair, standin.url(), wait=5, statement_timeout_seconds=1) as ledger:
        ledger.post(event(customer))
        assert len(timeline(ledger, customer)) == 1  # finds it dead
        replica = resources_of(ledger.app).reads.replica
        assert replica is not None and replica.failing
        standin.forward_to = ("127.0.0.1", pair.replica.port)
        assert reads_until(ledger, customer, lambda: not replica.failing) > 0
        posted = event(customer)
        ledger.post(posted)
        assert timeline(ledger, customer)[0] == posted["event_id"]
        assert standin.connections(checks=False) == 2  # the read asked the standby again
        assert not replica.failing  # and it answered
    said = [r.getMessage() for r in caplog.records if r.name == "trustledger.replica"]
    assert len(said) == 2 and "answers again" in said[1], said


def lag(pair: Pair, replica_url: str) -> subprocess.CompletedProcess[str]:
    return cli(
        *("--database-url", pair.primary.url, "lag"),
        TRUSTLEDGER_REPLICA_URL=replica_url,
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
    )


def test_lag_shows_the_standby_behind_while_its_replay_is_paused(pair: Pair) -> None:
    customer = random_customer()
    with api(pair, pair.replica.url, wait=0) as ledger, paused_once_held(ledger, customer):
        ledger.post(event(customer))
        assert len(timeline(ledger, customer)) == 2  # the primary's read models hold it
        done = lag(pair, pair.replica.url)
    assert done.returncode == 0, done.stderr
    primary, standby = done.stdout.split(f"on the standby 127.0.0.1:{pair.replica.port}:\n")
    behind = [int(line.rsplit(" ", 1)[1]) for line in standby.splitlines()]
    assert [line.rsplit(" ", 1)[1] for line in primary.splitlines()] == ["0"] * len(behind)
    assert len(behind) == 4 and min(behind) > 0, done.stdout


def test_lag_says_in_one_line_that_a_standby_cannot_be_read(pair: Pair) -> None:
    down = f"postgresql://trustledger@127.0.0.1:{free_port()}/trustledger"
    done = lag(pair, down)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot be read" in done.stderr, done.stderr
