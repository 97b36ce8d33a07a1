"""The headers of the API's answers, for what a browser or a cache in between may do with them.

Answers hold personal data (a customer's timeline, trust, consents, export): no cache may keep
them, so a shared proxy never serves them again, and none is read as anything but the type it
says. No CORS header is sent: no other site's script may read an answer. Over HTTPS, every
answer (the pages' too) carries Strict-Transport-Security. The pages (/ui) have
their own, stricter set (api/ui/__init__.py).
"""

from __future__ import annotations

from flask import Flask, Response, request

PRIVATE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
HSTS = ("Strict-Transport-Security", "max-age=31536000")
"""Sent on every answer to a request made over HTTPS (as the app sees it: TLS of its own, or a
proxy it is told to believe, TRUSTLEDGER_PROXY_HOPS): for a year the browser asks this host over
HTTPS only, so an http:// link or a typed address cannot be answered by someone on the way with
a forged sign-in page. Never over plain HTTP, where anyone could have written it (RFC 6797 8.1).
Not `includeSubDomains`: the ledger does not know what else its domain serves."""


def register(app: Flask) -> None:
    app.after_request(add_headers)


def add_headers(answer: Response) -> Response:
    """Two header writes per answer of the API (about a microsecond), and HSTS over HTTPS."""
    if not request.path.startswith("/ui"):
        answer.headers.update(PRIVATE)
    if request.is_secure:
        answer.headers[HSTS[0]] = HSTS[1]
    return answer
