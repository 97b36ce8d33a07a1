"""schemathesis against /v1/openapi.json: no 5xx, and no answer the document does not allow.

Every operation gets at least 200 generated requests, valid and invalid by the document, sent
with a brand key whose brand has a customer with events and consents; every other valid request
is steered (at that customer and its decided push, with fresh event and push ids) so success
answers are checked too. Each operation is called with a key of a role it allows (compliance
for the audit, export and erasure; brand for the rest). The run
takes about a minute per store, so it runs on both.

Every check but one: `positive_data_acceptance` wants a schema-valid request accepted, but a
valid shape can still break a rule of the ledger (keeping a promise never made), which the
document answers with 422. Those answers are still checked against the document.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, reject, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.factories import story
from tests.random_refs import random_customer, random_event_id

EXAMPLES = 200


@dataclass
class Seeded:
    """A brand with a customer with events and consents, one decided push, and a key per role."""

    keys: dict[str, Client]
    customer: str
    push_id: str

    def key_for(self, case: Any) -> str:
        """The key of a role the operation allows, so valid requests get past the role check."""
        path = case.operation.path
        role = (
            "compliance" if path.startswith("/v1/audit") or path.endswith(COMPLIANCE) else "brand"
        )
        return self.keys[role].key


COMPLIANCE = ("/export", "/erasure")


@pytest.fixture
def seeded(client_for: ClientFor) -> Seeded:
    brand = client_for("brand")
    customer = random_customer()
    answer = brand.post("/v1/events/batch", json={"events": [as_json(e) for e in story(customer)]})
    assert answer.status_code == 201, answer.get_json()
    push_id = f"push-{random_event_id()}"
    request = {"push_id": push_id, "customer": customer, "kind": "offer", "channel": "email",
               "purpose": "marketing", "data_categories": ["purchase_history"]}  # fmt: skip
    assert brand.post("/v1/push-decisions", json=request).status_code == 200
    keys = {"brand": brand, "compliance": client_for("compliance", brand.brand)}
    return Seeded(keys, customer, push_id)


class Serving:
    """A WSGI app that hands each request to the app of the running test (its store's)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


# Loading the document builds no ledger and opens no database: create_app builds nothing.
SERVING = Serving(create_app({"database_url": "sqlite:///never-opened.sqlite3"}))
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", SERVING)


@pytest.fixture
def serving(app: Flask) -> Iterator[None]:
    previous, SERVING.app = SERVING.app, app
    yield
    SERVING.app = previous


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_answers_as_its_document_says(case: Any, serving: None, seeded: Seeded) -> None:
    if not valid(case) and unsent(case):
        reject()
    if valid(case) and next(TURNS) % 2:
        steer(case, seeded)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {seeded.key_for(case)}"},
        excluded_checks=[positive_data_acceptance],
    )


TURNS = itertools.count()


def valid(case: Any) -> bool:
    return bool(case.meta is None or case.meta.generation.mode.name == "POSITIVE")


def unsent(case: Any) -> bool:
    """Whether a query parameter's value is an empty list, which puts nothing on the wire.

    A negative case whose fault is such a parameter (`{"": []}` as an unknown one) reaches the
    API as a valid request. schemathesis excuses a fault that is only unknown query parameters,
    unless another location is negated as well; when that one is the Authorization header, which
    this test replaces with a live key, it wants the valid request that was sent refused.
    """
    return any(value == [] for value in (case.query or {}).values())


def steer(case: Any, seeded: Seeded) -> None:
    """Keeps a valid request valid but lets it reach further: the seeded customer and push,
    fresh event and push ids."""
    if "customer" in (case.path_parameters or {}):
        case.path_parameters["customer"] = seeded.customer
        for name in ("cursor", "as_of"):  # optional; a generated one never names a real page
            (case.query or {}).pop(name, None)
    if "push_id" in (case.path_parameters or {}):
        case.path_parameters["push_id"] = seeded.push_id
    body = case.body if isinstance(case.body, dict) else {}
    if "push_id" in body:
        body.update(push_id=f"push-{random_event_id()}", customer=seeded.customer)
        body.pop("send_at", None)  # a generated one is almost never within minutes of now
    for event in [body, *body.get("events", [])]:
        if isinstance(event, dict) and "event_id" in event:
            event["event_id"] = random_event_id()
