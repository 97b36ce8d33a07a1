"""The HTTP API's composition root: `create_app` builds nothing at import time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api.settings import Settings
from domain.application import Ledger


def create_app(config: Mapping[str, Any] | None = None, ledger: Ledger | None = None) -> Flask:
    """Builds the Flask app; the ledger is built lazily, once per process (so after a fork)."""
    app = Flask(__name__)
    settings = Settings.load(config)
    app.config["SETTINGS"] = settings
    app.extensions["trustledger.ledger"] = ledger

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
