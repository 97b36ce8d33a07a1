"""Serving the app: in this process (one worker), or under gunicorn with sync workers.

Under gunicorn each worker calls `create_app` itself after the fork (the app is never preloaded
in the master), so every worker builds its own ledger and connection pools, and closes them as
it exits. In process, a projection runner follows the log in a background thread, as the
embedded default has no separate `trustledger project` worker; either way a read catches the
read models up itself first (api/reads.py), so it never misses an acknowledged write.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from api.app import close_app, create_app, resources_of


def serve_in_process(config: Mapping[str, Any], host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from projections.runner import Runner

    app = create_app(config)
    # Opening the ledger now stops the service at start on a wrong master key.
    runner = Runner(resources_of(app).ledger)
    settle_garbage_collection()
    stop_projections = runner.start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        stop_projections()
        runner.close()
        close_app(app)


class Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code, loading the app in each worker."""

    def __init__(self, config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self.app_config = dict(config)
        self.options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        """In the worker, after the fork: the app, with its ledger opened (so a wrong master
        key fails the worker's boot, and gunicorn stops, rather than every request)."""
        app = create_app(self.app_config)
        _ = resources_of(app).ledger
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


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's hook: the worker's app closes its ledger and key store."""
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        close_app(app)


def serve_with_gunicorn(config: Mapping[str, Any], host: str, port: int, workers: int) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "preload_app": False,
        "worker_exit": worker_exit,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "trustledger",
    }
    Gunicorn(config, options).run()
