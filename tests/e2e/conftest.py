"""The API through Flask's test client, on both stores, with real keys made by the key store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from api.app import close_app, create_app
from api.auth import KeyStore
from domain.relationship import PostedEvent
from domain.storage import Store
from tests.random_refs import random_brand


@dataclass
class Client:
    """A test client that sends one brand's key with every request."""

    http: FlaskClient
    key: str
    brand: str
    role: str

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **(headers or {})}

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        return self.http.get(path, headers=self._headers(headers), **kwargs)

    def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        return self.http.post(path, headers=self._headers(headers), **kwargs)

    def put(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        return self.http.put(path, headers=self._headers(headers), **kwargs)

    def record(self, *events: PostedEvent | dict[str, Any]) -> list[TestResponse]:
        return [self.post("/v1/events", json=as_json(e)) for e in events]


def as_json(event: PostedEvent | dict[str, Any]) -> dict[str, Any]:
    """A posted event as a brand's CRM sends it: RFC 3339 strings, no needless nulls."""
    if isinstance(event, dict):
        return event
    body = {
        "event_id": event.event_id,
        "type": event.type,
        "customer": event.customer,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "channel": event.channel,
        "data": {
            k: v.isoformat() if hasattr(v, "isoformat") else v
            for k, v in event.data.items()
            if v is not None
        },
    }
    return body


@pytest.fixture
def app(store: Store) -> Iterator[Flask]:
    app = create_app({"database_url": store.url})
    yield app
    close_app(app)


@pytest.fixture
def keys(store: Store) -> Iterator[KeyStore]:
    keys = KeyStore(store)
    yield keys
    keys.close()


ClientFor = Callable[..., Client]


@pytest.fixture
def client_for(app: Flask, keys: KeyStore) -> ClientFor:
    """`client_for(role, brand=None)`: a client with a new key (of a new brand by default)."""

    def make(role: str, brand: str | None = None) -> Client:
        issued = keys.create(brand or random_brand(), role)
        return Client(app.test_client(), issued.key, issued.info.brand, role)

    return make


def seeded(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A test run for `examples` random seeds (its `seed` argument) on the same fixtures: each
    example keeps apart by its own brand."""
    checks = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

    def decorator(test: Callable[..., None]) -> Callable[..., None]:
        found: Callable[..., None] = settings(
            max_examples=examples, deadline=None, suppress_health_check=checks
        )(given(seed=st.integers(0, 2**32))(test))
        return found

    return decorator
