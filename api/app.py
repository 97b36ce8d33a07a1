"""The HTTP API's composition root: `create_app` builds nothing at import time.

The ledger, the key store and the read side are built on first use, once per process, so a
gunicorn worker builds its own after the fork; `close_app` (or the worker's exit) closes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from api import errors, headers, openapi, ui
from api.context import EXTENSION, Resources
from api.json_provider import OrjsonProvider
from api.resources import audit, customers, events, health, policy, pushes, trust
from api.settings import Settings
from domain.application import Ledger
from domain.timeouts import answering_within
from domain.versions import KnownVersions

MAX_BODY = 1024 * 1024


def create_app(
    config: Mapping[str, Any] | None = None,
    ledger: Ledger | None = None,
    *,
    known_versions: KnownVersions | None = None,
) -> Flask:
    """Builds the Flask app from `Settings` (environment, then `config`); `ledger` is for tests;
    `known_versions` is the table the server's worker processes share (api/server.py)."""
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    settings = Settings.load(config)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY, **openapi.settings())
    # A customer reference may hold "//"; merging slashes would redirect to another customer.
    app.url_map.merge_slashes = False
    app.extensions[EXTENSION] = Resources(settings, ledger, known_versions)
    errors.register(app)
    headers.register(app)
    app.before_request(_refuse_if_migrated_away)
    api = openapi.LedgerApi(app)
    for blueprint in (
        health.blp,
        events.blp,
        customers.blp,
        trust.blp,
        pushes.blp,
        policy.blp,
        audit.blp,
    ):
        api.register_blueprint(blueprint)
    ui.register(app)
    app.wsgi_app = answered_in_time(app.wsgi_app, settings.statement_timeout_seconds)  # type: ignore[method-assign,assignment]
    if settings.proxy_hops:  # the scheme and client address the proxies saw, not their own
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(scheme_lowered(app.wsgi_app), x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app


def _refuse_if_migrated_away() -> None:
    """Every call but the liveness probe answers 503 once this process found its store migrated
    by another version (api/errors.py): its reads too, which could show rows it cannot read."""
    if request.endpoint != "health.healthz":
        resources_of(current_app).refuse_if_migrated_away()


def scheme_lowered(wsgi_app: Wsgi) -> Wsgi:
    """`wsgi_app` reading the scheme in lower case, as RFC 3986 (3.1) reads it: ProxyFix passes
    a proxy's `X-Forwarded-Proto` on as sent, and werkzeug knows `HTTPS` for no secure scheme."""

    def lowered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.url_scheme"] = environ["wsgi.url_scheme"].lower()
        return wsgi_app(environ, start_response)

    return lowered


Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def answered_in_time(wsgi_app: Wsgi, seconds: float) -> Wsgi:
    """`wsgi_app` with the statements of each request given `seconds` each for PostgreSQL's
    answer (TRUSTLEDGER_STATEMENT_TIMEOUT_SECONDS, domain/timeouts.py): a frozen database is
    answered 503, not waited on. Only requests: what the process runs besides (the projection
    thread of `serve`) waits as long as its statements need. No answer here is streamed, so
    each request's statements are all run within the call."""

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        before = answering_within(seconds)
        try:
            return wsgi_app(environ, start_response)
        finally:
            answering_within(before)

    return answer


def resources_of(app: Flask) -> Resources:
    """What `app` uses in this process: the ledger, the key store, the read side."""
    found: Resources = app.extensions[EXTENSION]
    return found


def close_app(app: Flask) -> None:
    """Closes what this process opened for `app`."""
    resources_of(app).close()
