"""schemathesis against /v1/openapi.json: no 5xx, and no answer the document does not allow.

Every operation gets at least 200 generated requests, valid and invalid by the document, sent
with a brand key whose brand has a customer with events and consents; every other valid request
is steered (at that customer, with fresh event ids) so success answers are checked too. The run
takes about a minute per store, so it runs on both.

Every check but one: `positive_data_acceptance` wants a schema-valid request accepted, but a
valid shape can still break a rule of the ledger (keeping a promise never made), which the
document answers with 422. Those answers are still checked against the document.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from tests.e2e.conftest import Client, ClientFor, as_json
from tests.factories import story
from tests.random_refs import random_customer, random_event_id

EXAMPLES = 200


@pytest.fixture
def seeded(client_for: ClientFor) -> tuple[Client, str]:
    brand = client_for("brand")
    customer = random_customer()
    answer = brand.post("/v1/events/batch", json={"events": [as_json(e) for e in story(customer)]})
    assert answer.status_code == 201, answer.get_json()
    return brand, customer


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
def test_the_api_answers_as_its_document_says(
    case: Any, serving: None, seeded: tuple[Client, str]
) -> None:
    brand, customer = seeded
    if valid(case) and next(TURNS) % 2:
        steer(case, customer)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {brand.key}"},
        excluded_checks=[positive_data_acceptance],
    )


TURNS = itertools.count()


def valid(case: Any) -> bool:
    return bool(case.meta is None or case.meta.generation.mode.name == "POSITIVE")


def steer(case: Any, customer: str) -> None:
    """Keeps a valid request valid but lets it reach further: the seeded customer, fresh ids."""
    if "customer" in (case.path_parameters or {}):
        case.path_parameters["customer"] = customer
        for name in ("cursor", "as_of"):  # optional; a generated one never names a real page
            (case.query or {}).pop(name, None)
    body = case.body if isinstance(case.body, dict) else {}
    for event in [body, *body.get("events", [])]:
        if isinstance(event, dict) and "event_id" in event:
            event["event_id"] = random_event_id()
