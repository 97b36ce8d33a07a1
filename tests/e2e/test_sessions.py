"""How long a page session lasts, by its cookie and by the server's record of it."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from api.auth import KeyStore, digest
from api.ui.session import SESSION_ID, SESSION_LIFETIME
from domain.storage import Store
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


def signed_in_values(app: Flask, keys: KeyStore) -> dict[str, str]:
    """What a fresh sign-in's cookie holds (its session id and CSRF token)."""
    http = app.test_client()
    form = http.get("/ui/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    key = keys.create(random_brand(), "compliance").key
    assert http.post("/ui/sign-in", data={"key": key, "csrf_token": token[1]}).status_code == 302
    cookie = http.get_cookie("trustledger_session", path="/ui")
    assert cookie is not None
    made = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    values: dict[str, str] = made.loads(cookie.value)
    return values


@pytest.mark.parametrize(
    ("age", "status"),
    [(timedelta(minutes=5), 200), (SESSION_LIFETIME + timedelta(minutes=5), 302)],
)
def test_a_session_cookie_older_than_its_lifetime_signs_out(
    app: Flask, keys: KeyStore, age: timedelta, status: int
) -> None:
    """A copied cookie kept working after its owner signed out, for 31 days (Flask's default).
    The cookie's own age is still checked, besides the server's record of the session."""
    values = signed_in_values(app, keys)
    http = app.test_client()
    http.set_cookie("trustledger_session", signed_cookie(app, values, age), path="/ui")
    answer = http.get("/ui/customers")
    assert answer.status_code == status
    if status == 302:
        assert re.match(r"/ui/sign-in", answer.headers["Location"])


def test_a_session_past_its_end_on_the_server_signs_out(
    app: Flask, keys: KeyStore, store: Store
) -> None:
    """The server's record ends a session SESSION_LIFETIME after signing in, whatever the
    cookie says (a cookie re-signed with TRUSTLEDGER_SECRET_KEY, say)."""
    values = signed_in_values(app, keys)
    http = app.test_client()
    http.set_cookie("trustledger_session", signed_cookie(app, values, timedelta()), path="/ui")
    assert http.get("/ui/customers").status_code == 200
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with connected(store) as db:
        db.execute(
            "UPDATE page_sessions SET expires_at = ? WHERE session_hash = ?"
            if store.is_sqlite
            else "UPDATE page_sessions SET expires_at = %s WHERE session_hash = %s",
            [ended, digest(values[SESSION_ID])],
        )
    assert http.get("/ui/customers").status_code == 302


@contextmanager
def connected(store: Store) -> Iterator[Any]:
    """A plain connection to the store, committed at the end."""
    if store.is_sqlite:
        with closing(sqlite3.connect(store.path)) as lite, lite:
            yield lite
    else:
        with psycopg.connect(store.conninfo()) as postgres:
            yield postgres


def test_the_server_keeps_only_a_hash_of_the_session_id(
    app: Flask, keys: KeyStore, store: Store
) -> None:
    """As API keys: a copy of the table opens no session."""
    values = signed_in_values(app, keys)
    with connected(store) as db:
        stored = [row[0] for row in db.execute("SELECT session_hash FROM page_sessions")]
    assert digest(values[SESSION_ID]) in [str(s).strip() for s in stored]
    assert values[SESSION_ID] not in stored
