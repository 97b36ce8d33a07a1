"""Serving the app: in this process (one worker), or under gunicorn with sync workers.

Under gunicorn each worker calls `create_app` itself after the fork (the app is never preloaded
in the master), so every worker builds its own ledger and connection pools, and closes them as
it exits. In process, a projection runner follows the log in a background thread, as the
embedded default has no separate `trustledger project` worker; either way a read catches the
read models up itself first (api/reads.py), so it never misses an acknowledged write.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from flask import Flask
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.http.body import EOFReader, LengthReader
from gunicorn.workers import sync
from werkzeug.serving import WSGIRequestHandler

from api.app import close_app, create_app, resources_of
from api.headers import PRIVATE
from api.schemas.problem import PROBLEM
from domain.errors import StoreUnavailable
from domain.storage import DATABASE_ERRORS, unavailable
from domain.versions import KnownVersions

CORK: int | None = getattr(socket, "TCP_CORK", None)
"""Linux's; elsewhere answers are written as gunicorn writes them."""


def serve_in_process(config: Mapping[str, Any], host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from projections.runner import Runner

    app = create_app(config)
    # Opening the ledger now stops the service at start on a wrong master key.
    runner = Runner(resources_of(app).ledger)
    settle_garbage_collection()
    stop_projections = runner.start()
    try:
        run_simple(
            host,
            port,
            app,
            threaded=True,
            use_reloader=False,
            request_handler=ProblemRequestHandler,
        )
    finally:
        stop_projections()
        runner.close()
        close_app(app)


class ProblemRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, answering what it refuses before the app sees it (a request
    line over 64 KiB: 414, a header line too long or too many headers: 431, a malformed request
    line: 400) as problem+json, where http.server writes an HTML page: the in-process
    counterpart of the gunicorn worker's `handle_error` below."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        status = HTTPStatus(code)
        # A request line that is not one (a single word) left the handler at HTTP/0.9, which
        # writes no status line or headers: the client could not have read the status.
        self.request_version = "HTTP/1.1"
        # The code and its phrase alone: http.server's message quotes the request line, which
        # names the customer (as log_request below says, nothing erases a log).
        self.log_error("code %d, %s", code, status.phrase)
        self.send_response(code, status.phrase)  # never the request's text in the status line
        self.send_header("Connection", "close")
        for name, value in PRIVATE.items():  # the app's answers' (api/headers.py)
            self.send_header(name, value)
        body = problem_body(code, status.phrase, message)
        self.send_header("Content-Type", PROBLEM)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access line: a request's path and query hold customer references (the one
        identifier an erasure protects, and nothing erases a log) and whatever a client put
        there, a key included. gunicorn writes none either (`accesslog`); errors are logged."""


class Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code, loading the app in each worker.

    The workers share one table of the relationships' latest versions (domain/versions.py),
    made here, in the master, before they are forked: a worker's command then reads a
    relationship only if another worker wrote to it since this one last did."""

    def __init__(self, config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self.app_config = dict(config)
        self.options = dict(options)
        self.known_versions = KnownVersions()
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        """In the worker, after the fork: the app, with its ledger opened (so a wrong master
        key fails the worker's boot, and gunicorn stops, rather than every request). A database
        that cannot answer now is no reason to stop: a worker replaced during an outage failed
        its boot, and gunicorn then shut the whole server down for good. It opens the ledger at
        its first call instead, which answers 503 until the database is back."""
        app = create_app(self.app_config, known_versions=self.known_versions)
        try:
            _ = resources_of(app).ledger
        except (*DATABASE_ERRORS, StoreUnavailable) as error:
            if not unavailable(error):
                raise
            logging.getLogger("trustledger").warning(
                "the database cannot answer (%s): the ledger opens at the first call", error
            )
        settle_garbage_collection()
        return app


def settle_garbage_collection() -> None:
    """Keeps the cycle collector off the request path as much as it can be.

    What the worker built to serve (modules, the app, pools) is moved out of the collector's
    sight, and it runs a tenth as often: with thousands of relationships cached, its older
    generations take milliseconds to scan, which a request waiting behind it would pay; the
    ledger's objects are freed by reference counting, so few cycles wait longer for it.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young * 10, middle, old)


class SyncWorker(sync.SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, closing a connection at once when nothing is left to read on it.

    After every answer gunicorn half-closes the connection and waits until the client closes
    its side (up to 2 s): request bytes left unread when a socket closes make the kernel reset
    the connection, which can lose the answer (RFC 9112, 9.6). Only a request not read whole
    (an answer given before its body was, such as 401 or 413) or more bytes already waiting can
    leave any; otherwise the worker waited on the client for nothing, and the next client
    waited on the worker. In alternating HTTP runs (3 each), closing at once served 6.9% more
    single events and 6.1% more decisions a second, the gate's p99 4.9-5.0 ms against 5.2-5.6.
    nginx's `lingering_close` decides the same way."""

    def handle_request(self, listener: Any, req: Any, client: socket.socket, addr: Any) -> None:
        with sent_whole(client):
            super().handle_request(listener, req, client, addr)
        if nothing_left_to_read(req, client):
            client.shutdown(socket.SHUT_WR)
            client.close()  # gunicorn's lingering close then finds it closed, and returns

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to what it refuses before the app sees it (a URL over its limit:
        414, headers too large: 431, a malformed request line or header: 400), written as
        problem+json like every other answer, where gunicorn writes an HTML page. One request
        at a time in this worker, so the writer is swapped for the call alone."""
        written = gunicorn_util.write_error
        gunicorn_util.write_error = write_problem
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            gunicorn_util.write_error = written


def write_problem(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """gunicorn's util.write_error, in RFC 9457's shape (the app's own answers: api/errors.py),
    with the headers of the app's answers (api/headers.py): its message echoes the request."""
    body = problem_body(status, reason, message)
    private = "".join(f"{name}: {value}\r\n" for name, value in PRIVATE.items())
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n{private}"
        f"Content-Type: {PROBLEM}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin1") + body)


def problem_body(status: int, title: str, detail: str | None) -> bytes:
    """An error the server writes itself, before any app answers, in RFC 9457's shape."""
    problem = {"type": "about:blank", "title": title, "status": status, "detail": detail or title}
    return json.dumps(problem, ensure_ascii=False).encode()


@contextmanager
def sent_whole(client: socket.socket) -> Iterator[None]:
    """Holds back what is written to a TCP socket in the block, and sends it when the block ends
    (Linux's TCP_CORK; nginx's `tcp_nopush`): gunicorn writes an answer's headers and body
    apart, which went as two packets, each waking the client; corked, one packet carries both.
    In alternating HTTP runs (3 each): 1.5% more decisions and single events a second, and the
    machine's CPU per decision 1.5% lower. A socket that cannot cork (not TCP) is written to as
    it is."""
    corked = _cork(client, 1)
    try:
        yield
    finally:
        if corked:
            _cork(client, 0)


def _cork(client: socket.socket, on: int) -> bool:
    if CORK is None:
        return False
    try:
        client.setsockopt(socket.IPPROTO_TCP, CORK, on)
    except OSError:  # not a TCP socket (a Unix one), or closed
        return False
    return True


def nothing_left_to_read(req: Any, client: socket.socket) -> bool:
    """True when the request's body was read whole (a request with neither Content-Length nor
    chunked coding has none: RFC 9112, 6.3) and no more bytes wait on the socket (the client's
    close, read as b"", is nothing). A chunked body is left to gunicorn's lingering close."""
    reader = getattr(getattr(req, "body", None), "reader", None)
    read_whole = isinstance(reader, EOFReader) or (
        isinstance(reader, LengthReader) and reader.length == 0
    )
    if not read_whole:
        return False
    try:
        return not client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's hook: the worker's app closes its ledger and key store."""
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        close_app(app)


def host_and_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 literal in brackets (`[::1]:8000`), as gunicorn and URLs want it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve_with_gunicorn(config: Mapping[str, Any], host: str, port: int, workers: int) -> None:
    options = {
        "bind": host_and_port(host, port),
        "workers": workers,
        "worker_class": f"{__name__}.SyncWorker",
        "preload_app": False,
        "worker_exit": worker_exit,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "trustledger",
        # gunicorn believed X-Forwarded-Proto from 127.0.0.1 and ::1 itself, the in-process server
        # from no one: the app decides, by TRUSTLEDGER_PROXY_HOPS (api/app.py), in both.
        "secure_scheme_headers": {},
    }
    Gunicorn(config, options).run()
