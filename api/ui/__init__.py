"""The web pages for people (support agents, compliance), under /ui/."""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.routing import PathConverter

from api.ui import session
from api.ui.pages import blp

DOT_SEGMENTS = {".": "%2F.", "..": "%2F.."}
"""How the pages write a reference that is a whole dot segment: a browser resolves `.` and `..`
away before it asks, even written `%2E` (the WHATWG URL standard), so customer `.` had no link
that reached it. No reference starts with "/" (the API refuses one), so `/.` read back is `.`."""


class CustomerConverter(PathConverter):
    """A customer reference in the pages' paths: read as the API reads it (slashes included),
    written with its slashes encoded, so it stays one segment. A browser resolves `x/../c`
    to `c` before it asks: unencoded, the link to customer `x/../c` opened customer c's pages.
    A reference that is `.` or `..` whole is written `%2F.` or `%2F..` (DOT_SEGMENTS)."""

    regex = r"/\.\.?(?=/)|[^/].*?"

    def to_python(self, value: str) -> str:
        return value[1:] if value in ("/.", "/..") else value

    def to_url(self, value: object) -> str:
        text = str(value)
        return DOT_SEGMENTS.get(text) or quote(text, safe="!$&'()*+,:;=@")


POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'none';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The pages run no script, load only their stylesheet (no inline style either: an injected
`style=` could restyle a page to mislead), post only to themselves and are framed by no one (the
erase form under another site's decoy would be a clickjacking)."""


def _page_headers(response: Response) -> Response:
    """Every page's answer, not the API's: kept by no cache (Back after signing out showed a
    customer's timeline on a shared desk), framed by no site, read as the type it says."""
    if request.path.startswith("/ui"):
        if request.endpoint != "ui.static":
            response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # a page's address names a customer
    return response


def register(app: Flask) -> None:
    session.configure(app)
    app.url_map.converters["customer"] = CustomerConverter
    app.register_blueprint(blp)
    app.after_request(_page_headers)
