"""The web pages for people (support agents, compliance), under /ui/."""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask
from werkzeug.routing import PathConverter

from api.ui import session
from api.ui.pages import blp


class CustomerConverter(PathConverter):
    """A customer reference in the pages' paths: read as the API reads it (slashes included),
    written with its slashes encoded, so it stays one segment. A browser resolves `x/../c`
    to `c` before it asks: unencoded, the link to customer `x/../c` opened customer c's pages."""

    def to_url(self, value: object) -> str:
        return quote(str(value), safe="!$&'()*+,:;=@")


def register(app: Flask) -> None:
    session.configure(app)
    app.url_map.converters["customer"] = CustomerConverter
    app.register_blueprint(blp)
