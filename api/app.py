"""The HTTP API's composition root: `create_app` builds nothing at import time.

The ledger, the key store and the read side are built on first use, once per process, so a
gunicorn worker builds its own after the fork; `close_app` (or the worker's exit) closes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import errors, openapi, ui
from api.context import EXTENSION, Resources
from api.json_provider import OrjsonProvider
from api.resources import audit, customers, events, health, policy, pushes, trust
from api.settings import Settings
from domain.application import Ledger
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
    return app


def resources_of(app: Flask) -> Resources:
    """What `app` uses in this process: the ledger, the key store, the read side."""
    found: Resources = app.extensions[EXTENSION]
    return found


def close_app(app: Flask) -> None:
    """Closes what this process opened for `app`."""
    resources_of(app).close()
