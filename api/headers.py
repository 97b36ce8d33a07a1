"""The headers of the API's answers, for what a browser or a cache in between may do with them.

Answers hold personal data (a customer's timeline, trust, consents, export): no cache may keep
them, so a shared proxy never serves them again, and none is read as anything but the type it
says. No CORS header is sent: no other site's script may read an answer. The pages (/ui) have
their own, stricter set (api/ui/__init__.py).
"""

from __future__ import annotations

from flask import Flask, Response, request

PRIVATE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def register(app: Flask) -> None:
    app.after_request(add_headers)


def add_headers(answer: Response) -> Response:
    """Two header writes per answer of the API (about a microsecond)."""
    if not request.path.startswith("/ui"):
        answer.headers.update(PRIVATE)
    return answer
