"""`trustledger serve`: in process, and gunicorn with sync workers that each build their own app."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api.auth import KeyStore
from api.server import host_and_port
from domain.storage import Store
from migrations import upgrade
from tests.random_refs import random_brand, random_customer, random_event_id

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    store: Store,
    workers: int,
    env: Mapping[str, str] | None = None,
    output: list[str] | None = None,
) -> Iterator[str]:
    """`trustledger serve` on a free port, with `env` added to this process's environment;
    what it wrote (stdout and stderr) is appended to `output` once it has stopped."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api",
            "--database-url",
            store.url,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        written = process.communicate(timeout=30)[0]
        if output is not None:
            output.append(written)
    assert "Traceback" not in written, written


def request(url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data, headers), timeout=10
        ) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_records_and_reads_over_http(store: Store, workers: int) -> None:
    keys = KeyStore(store)
    key = keys.create(random_brand(), "brand").key
    keys.close()
    customer = random_customer()
    with serving(store, workers) as base:
        for i in range(6):  # enough requests to reach both workers
            event = {
                "event_id": random_event_id(),
                "type": "case.reopened" if i else "question.answered",
                "customer": customer,
                "occurred_at": "2026-01-01T00:00:00Z",
                "data": {"case_id": "c"} if i else {"case_id": "c", "topic": "t", "resolved": True},
            }
            status, body = request(base + "/v1/events", key, event)
            assert status == 201, body
            status, page = request(f"{base}/v1/customers/{customer}/timeline", key)
            assert status == 200 and page["items"][0]["event_id"] == event["event_id"]
        assert request(base + "/v1/events", "tlk_nope", {})[0] == 401


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("where", ["in use", "unknown host"])
def test_an_address_it_cannot_listen_on_stops_serve_in_one_line(
    tmp_path: Path, workers: int, where: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        host, port = ("127.0.0.1", taken.getsockname()[1]) if where == "in use" else ("%%", 8000)
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        args = ["serve", "--host", host, "--port", str(port), "--workers", str(workers)]
        done = subprocess.run(
            [sys.executable, "-m", "api", "--database-url", url, *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(f"trustledger: cannot listen on {host}:{port}: ")
    assert "Traceback" not in done.stderr and "[ERROR]" not in done.stderr


@pytest.mark.slow
def test_clients_that_keep_their_answered_connections_open_hold_up_no_worker(store: Store) -> None:
    """gunicorn's sync worker waits after each answer, up to 2 s, for the client to close; the
    ledger's closes at once when it read the whole request (api/server.py). Two clients keep
    their answered connections open, one worker each: a third is still answered."""
    with serving(store, 2) as base:
        port = int(base.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            for connection in held:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n\r\n")
                answer = b""
                while chunk := connection.recv(4096):  # to the server's end of the answer
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200"), answer
            with urllib.request.urlopen(base + "/healthz", timeout=1) as third:  # < gunicorn's 2 s
                assert third.status == 200
        finally:
            for connection in held:
                connection.close()


def test_each_gunicorn_worker_gets_the_masters_table_of_known_versions(tmp_path: Path) -> None:
    """The table is made once, in the master, before the workers fork: every app a worker loads
    gets that one, so the workers see each other's versions (domain/versions.py)."""
    from api.app import close_app, resources_of
    from api.server import Gunicorn
    from tests.conftest import new_sqlite_database

    store = new_sqlite_database(tmp_path)
    server = Gunicorn({"database_url": store.url}, {"workers": 2})
    apps = [server.load(), server.load()]  # as each worker does, after its fork
    try:
        tables = {id(resources_of(app).ledger.known_versions) for app in apps}
        assert tables == {id(server.known_versions)}
    finally:
        for app in apps:
            close_app(app)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_what_the_server_refuses_itself_is_answered_as_problem_json(
    store: Store, workers: int
) -> None:
    """A URL or a header over the server's limits, or a request line that is not one, never
    reaches the app: gunicorn and werkzeug's development server (in process) answered an HTML
    page, where README says every answer that is not a success is problem+json."""
    with serving(store, workers) as base:
        port = int(base.rsplit(":", 1)[1])
        for request_line, headers, status in (
            (b"GET /v1/events?" + b"a" * 70_000 + b" HTTP/1.1", b"", 414),
            (b"GET /healthz HTTP/1.1", b"X-Long: " + b"b" * 70_000 + b"\r\n", 431),
            (b"NOT-A-REQUEST-LINE", b"", 400),
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(request_line + b"\r\nHost: x\r\n" + headers + b"\r\n")
                answer = http.client.HTTPResponse(connection)
                answer.begin()
                text = answer.read()
            assert answer.status == status, (answer.status, text[:200])
            assert answer.getheader("Content-Type") == "application/problem+json", text[:200]
            assert answer.getheader("X-Content-Type-Options") == "nosniff"  # api/headers.py
            assert answer.getheader("Cache-Control") == "no-store"
            body = json.loads(text)
            assert body["status"] == status and body["title"] == answer.reason, body


def test_an_ipv6_address_is_bound_and_named_in_brackets() -> None:
    assert host_and_port("::1", 8000) == "[::1]:8000"
    assert host_and_port("127.0.0.1", 8000) == "127.0.0.1:8000"
    assert host_and_port("localhost", 80) == "localhost:80"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_on_an_ipv6_address(tmp_path: Path, workers: int) -> None:
    """gunicorn was bound to `::1:PORT`, which it refuses, and the banner's URL lacked brackets.
    On a host without an IPv6 loopback, serve says so in one line, the address in brackets."""
    from tests.conftest import new_sqlite_database

    store = new_sqlite_database(tmp_path)
    if not ipv6_loopback():
        args = ["serve", "--host", "::1", "--port", "8000", "--workers", str(workers)]
        done = subprocess.run(
            [sys.executable, "-m", "api", "--database-url", store.url, *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout
        assert done.stderr.splitlines()[-1].startswith("trustledger: cannot listen on [::1]:8000: ")
        return
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    args = ["serve", "--host", "::1", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--database-url", store.url, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith(f"Trust Ledger on http://[::1]:{port}/ "), banner
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://[::1]:{port}/healthz", timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "Traceback" not in output, output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_server_writes_no_customer_reference_nor_key_to_its_output(
    store: Store, workers: int
) -> None:
    """The reference is the one identifier erasure protects, and nothing erases a log: the
    in-process server wrote an access line per request, with the path and query in clear."""
    keys = KeyStore(store)
    key = keys.create(random_brand(), "agent").key
    keys.close()
    customer = random_customer("jane.doe")
    output: list[str] = []
    with serving(store, workers, output=output) as base:
        for path in (
            f"/v1/customers/{customer}/timeline",
            f"/v1/customers/{customer}/nothing-here",
            f"/ui/customers/{customer}/timeline",
            f"/ui/customers?customer={customer}",
            f"/v1/trust?key={key}",
        ):
            status, _ = http_get(base + path, key)
            assert status in (302, 401, 404, 422), path
        # A reference with a space a client did not encode: a request line the server refuses
        # itself (400), which werkzeug logged as it came.
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            line = f"GET /v1/customers/{customer} x/timeline HTTP/1.1\r\nHost: x\r\n\r\n"
            connection.sendall(line.encode())
            answer = http.client.HTTPResponse(connection)
            answer.begin()
            assert answer.status == 400
    assert customer not in output[0] and key not in output[0], output[0]


def http_get(url: str, key: str) -> tuple[int, bytes]:
    """A GET that follows no redirect."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers={"Authorization": f"Bearer {key}"})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("hops", "secure"), [("", False), ("1", True)])
def test_the_scheme_a_proxy_forwards_is_believed_as_configured_under_either_server(
    tmp_path: Path, workers: int, hops: str, secure: bool
) -> None:
    """gunicorn believed `X-Forwarded-Proto: https` from any client on 127.0.0.1 (its default
    forwarded_allow_ips), the in-process server from none: the same request was over HTTPS or
    not depending on --workers. Both now leave it to TRUSTLEDGER_PROXY_HOPS."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    upgrade(store)
    with serving(store, workers, env={"TRUSTLEDGER_PROXY_HOPS": hops}) as base:
        asked = urllib.request.Request(base + "/healthz", headers={"X-Forwarded-Proto": "https"})
        with urllib.request.urlopen(asked, timeout=10) as answer:
            sent = answer.headers.get("Strict-Transport-Security")
        with urllib.request.urlopen(base + "/healthz", timeout=10) as answer:
            assert answer.headers.get("Strict-Transport-Security") is None
    assert (sent == "max-age=31536000") is secure
