"""The web pages for people (support agents, compliance), under /ui/."""

from __future__ import annotations

from flask import Flask

from api.ui import session
from api.ui.pages import blp


def register(app: Flask) -> None:
    session.configure(app)
    app.register_blueprint(blp)
