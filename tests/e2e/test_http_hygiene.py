"""Headers of every answer: personal data is never cached, nothing is sniffed, the pages are
never framed (the erase form) and run no script, and no other site may read an answer (CORS)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from api.app import close_app, create_app
from api.auth import KeyStore
from api.settings import BadSetting
from domain.relationship import relationship_id
from domain.storage import Store
from projections import paging
from tests.e2e.conftest import ClientFor
from tests.factories import story
from tests.random_refs import random_brand, random_customer

PAGE_POLICY = {
    "default-src": "'none'",
    "script-src": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
}


def policy(answer: TestResponse) -> dict[str, str]:
    directives = answer.headers.get("Content-Security-Policy", "").split(";")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in directives if d.strip()}


def assert_private(answer: TestResponse) -> None:
    assert answer.headers.get("Cache-Control") == "no-store", answer.headers
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", answer.headers
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_api_answers_are_neither_cached_nor_sniffed(client_for: ClientFor) -> None:
    crm = client_for("brand")
    customer = random_customer()
    for answer in crm.record(*story(customer)[:2]):
        assert answer.status_code == 201
        assert_private(answer)
    origin = {"Origin": "https://elsewhere.example"}
    for path, status in (
        (f"/v1/customers/{customer}/timeline", 200),
        (f"/v1/customers/{customer}/trust", 200),
        ("/v1/customers/nobody/timeline", 404),
        ("/v1/nothing-here", 404),
    ):
        answer = crm.get(path, headers=origin)
        assert answer.status_code == status
        assert_private(answer)
    assert_private(crm.http.get("/v1/trust", headers=origin))  # no key: 401
    preflight = crm.http.options(
        "/v1/trust", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize(
    "path",
    [
        "/ui/sign-in",
        "/ui/customers",
        "/ui/customers/{customer}/timeline",
        "/ui/customers/{customer}/trust",
        "/ui/customers/{customer}/erase",
        "/ui/customers/{customer}/export?download=1",
        "/ui/customers/nobody/timeline",
        "/ui/nothing-here",
    ],
)
def test_pages_are_never_framed_cached_or_scripted(
    app: Flask, keys: KeyStore, client_for: ClientFor, path: str
) -> None:
    brand, customer = random_brand(), random_customer()
    for answer in client_for("brand", brand).record(*story(customer)[:2]):
        assert answer.status_code == 201
    http = app.test_client()
    form = http.get("/ui/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    key = keys.create(brand, "compliance").key
    signed_in = http.post("/ui/sign-in", data={"key": key, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302
    for answer in (form, signed_in, http.get(path.format(customer=customer))):
        assert_private(answer)
        assert answer.headers.get("X-Frame-Options") == "DENY"
        assert answer.headers.get("Referrer-Policy") == "same-origin"
        found = policy(answer)
        for directive, value in PAGE_POLICY.items():
            assert found.get(directive) == value, (directive, found)


HSTS = "Strict-Transport-Security"


@pytest.mark.parametrize("path", ["/healthz", "/v1/openapi.json", "/ui/sign-in", "/ui/nothing",
                                  "/ui/static/ui.css", "/v1/trust"])  # fmt: skip
def test_answers_over_https_tell_the_browser_to_keep_to_https(app: Flask, path: str) -> None:
    """No answer said Strict-Transport-Security: a person who once typed the address without
    https:// (or followed an old http:// link) could be served a forged sign-in page on the
    way. Over HTTPS every answer says it, for a year; over plain HTTP none does (RFC 6797
    8.1: a header there could be anyone's)."""
    http = app.test_client()
    secure = http.get(path, base_url="https://localhost")
    assert secure.headers.get(HSTS) == "max-age=31536000"
    assert HSTS not in http.get(path).headers


@pytest.mark.parametrize(("hops", "secure"), [(None, False), ("1", True), ("2", True)])
def test_a_forwarded_scheme_is_believed_only_from_the_configured_proxies(
    store: Store, hops: str | None, secure: bool
) -> None:
    """Behind a TLS-terminating proxy (TRUSTLEDGER_PROXY_HOPS of them), the request reaches the
    app over plain HTTP and the proxy's `X-Forwarded-Proto` says how the browser asked. Without
    that setting the header is anyone's, and ignored."""
    app = create_app({"database_url": store.url, **({"proxy_hops": hops} if hops else {})})
    try:
        chain = {"1": "https", "2": "https, http"}.get(hops or "", "https")
        answer = app.test_client().get("/healthz", headers={"X-Forwarded-Proto": chain})
        assert (HSTS in answer.headers) is secure
        if hops == "2":  # a client's own claim, left of what the proxies say: not believed
            spoofed = {"X-Forwarded-Proto": "https, http, http"}
            assert HSTS not in app.test_client().get("/healthz", headers=spoofed).headers
    finally:
        close_app(app)


def test_a_forwarded_scheme_is_read_whatever_its_case(store: Store) -> None:
    """A scheme is case-blind (RFC 3986, 3.1): a proxy's `HTTPS` is `https`. Werkzeug compares
    it as sent, so `HTTPS` got no HSTS and its redirects and cookies were the plain-HTTP ones."""
    app = create_app({"database_url": store.url, "proxy_hops": "1"})
    try:
        for sent in ("HTTPS", "Https"):
            answer = app.test_client().get("/healthz", headers={"X-Forwarded-Proto": sent})
            assert HSTS in answer.headers, sent
    finally:
        close_app(app)


@pytest.mark.parametrize("hops", ["-1", "x", "11", "1.5"])
def test_a_proxy_count_the_app_cannot_use_stops_it_at_start(store: Store, hops: str) -> None:
    with pytest.raises(BadSetting, match="TRUSTLEDGER_PROXY_HOPS"):
        create_app({"database_url": store.url, "proxy_hops": hops})


def test_the_style_sheet_may_be_cached(app: Flask) -> None:
    answer = app.test_client().get("/ui/static/ui.css")
    assert answer.status_code == 200
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    assert answer.headers.get("Cache-Control") != "no-store"


def forged(position: dict[str, Any]) -> str:
    return paging.encode(position)


@pytest.mark.parametrize(
    ("role", "path", "position"),
    [
        ("agent", "/v1/customers", {"by": "last_at", "after": ["\x00", "r"]}),
        ("agent", "/v1/customers", {"by": "last_at", "after": ["2026", "r\x00"]}),
        ("compliance", "/v1/audit/findings", {"after": ["\x00", "p"]}),
        ("compliance", "/v1/audit/findings", {"after": ["2026", "p\x00"]}),
        ("agent", "/v1/customers", {"by": "last_at", "after": ["\ud800", "r"]}),
        ("agent", "/v1/customers", {"by": "last_at", "after": ["2026", "r\udfff"]}),
        ("compliance", "/v1/audit/findings", {"after": ["\ud800", "p"]}),
        ("compliance", "/v1/audit/findings", {"after": ["2026", "p\udfff"]}),
    ],
)
def test_a_forged_cursor_holding_what_no_store_can_is_422_not_a_failure(
    client_for: ClientFor, role: str, path: str, position: dict[str, Any]
) -> None:
    """PostgreSQL's text cannot hold NUL, nor either store's a lone surrogate (which JSON's
    `\\ud800` escape decodes to): the query failed (500) on a cursor made by hand."""
    answer = client_for(role).get(path, query_string={"cursor": forged(position)})
    assert answer.status_code == 422, answer.text
    assert "cursor" in answer.get_json()["errors"]


def test_a_cursor_forged_with_another_brands_ids_shows_only_ones_own(
    client_for: ClientFor,
) -> None:
    """A cursor is base64 JSON anyone can write: one holding brand A's relationship ids and
    sort keys, sent with brand B's key, pages through brand B's customers alone."""
    brand_a, brand_b = random_brand(), random_brand()
    theirs = [random_customer() for _ in range(3)]
    ours = random_customer()
    for customer in theirs:
        assert client_for("brand", brand_a).record(*story(customer)[:1])[0].status_code == 201
    assert client_for("brand", brand_b).record(*story(ours)[:1])[0].status_code == 201
    reader = client_for("agent", brand_b)
    for customer in theirs:
        rid = str(relationship_id(brand_a, customer))
        for by, key in (("last_at", "9999"), ("consistency", 0.0)):
            cursor = forged({"by": by, "after": [key, rid]})
            query = {"cursor": cursor, **({"consistency": 1.0} if by != "last_at" else {})}
            answer = reader.get("/v1/customers", query_string=query)
            assert answer.status_code in (200, 422), answer.text
            listed = [c["customer"] for c in (answer.get_json().get("customers") or [])]
            assert set(listed) <= {ours}, listed
