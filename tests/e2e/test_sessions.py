"""How long a page session lasts: a cookie copied before signing out must not last a month."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from api.auth import KeyStore
from api.ui.session import SESSION_LIFETIME
from tests.random_refs import random_brand


def signed_cookie(app: Flask, values: dict[str, str], age: timedelta) -> str:
    """A session cookie as the app signs it, signed `age` ago."""
    interface = app.session_interface
    assert isinstance(interface, SecureCookieSessionInterface)
    made = interface.get_signing_serializer(app)
    assert made is not None

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age.total_seconds())

    earlier = URLSafeTimedSerializer(
        made.secret_keys[-1],
        salt=made.salt,
        serializer=made.serializer,
        signer=Earlier,
        signer_kwargs=made.signer_kwargs,
    )
    return earlier.dumps(values)


def test_a_session_lasts_a_working_day_not_a_month() -> None:
    assert timedelta(hours=1) <= SESSION_LIFETIME <= timedelta(hours=12)


@pytest.mark.parametrize(
    ("age", "status"),
    [(timedelta(minutes=5), 200), (SESSION_LIFETIME + timedelta(minutes=5), 302)],
)
def test_a_session_cookie_older_than_its_lifetime_signs_out(
    app: Flask, keys: KeyStore, age: timedelta, status: int
) -> None:
    """A copied cookie kept working after its owner signed out, for 31 days (Flask's default):
    the cookie is signed, not stored, so signing out only drops the browser's copy."""
    issued = keys.create(random_brand(), "compliance")
    session = {"key_id": issued.info.key_id, "brand": issued.info.brand, "role": "compliance"}
    http = app.test_client()
    http.set_cookie("trustledger_session", signed_cookie(app, session, age), path="/ui")
    answer = http.get("/ui/customers")
    assert answer.status_code == status
    if status == 302:
        assert re.match(r"/ui/sign-in", answer.headers["Location"])
