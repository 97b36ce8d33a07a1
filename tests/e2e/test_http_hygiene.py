"""Headers of every answer: personal data is never cached, nothing is sniffed, the pages are
never framed (the erase form) and run no script, and no other site may read an answer (CORS)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from api.auth import KeyStore
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


def test_the_style_sheet_may_be_cached(app: Flask) -> None:
    answer = app.test_client().get("/ui/static/ui.css")
    assert answer.status_code == 200
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"
    assert answer.headers.get("Cache-Control") != "no-store"
