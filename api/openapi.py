"""The OpenAPI document, generated from the schemas by flask-smorest and apispec.

Two things the libraries do not do on their own: an event is a `oneOf` of one schema per type
(chosen by `type`), and every error answer is documented as `application/problem+json`.
"""

from __future__ import annotations

import http
from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from api.schemas.events import EVENTS, EventSchema
from api.schemas.fields import StrictBoolean, StrictInteger, StrictNumber, Timestamp
from api.schemas.problem import PROBLEM, ProblemSchema

TITLE = "Trust Ledger"
VERSION = "1"
BEARER = {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key: tlk_..."}}


class EventConverter(OpenAPIConverter):
    """Documents `EventSchema` as the `oneOf` of the per-type event schemas it dispatches to."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        if not isinstance(schema, EventSchema):
            return super().schema2jsonschema(schema)  # type: ignore[no-any-return,no-untyped-call]
        branches = {t: self.resolve_nested_schema(one) for t, one in EVENTS.items()}  # type: ignore[no-untyped-call]
        return {
            "oneOf": list(branches.values()),
            "discriminator": {
                "propertyName": "type",
                "mapping": {type_: ref["$ref"] for type_, ref in branches.items()},
            },
        }


class EventPlugin(MarshmallowPlugin):
    Converter = EventConverter


class LedgerApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with problem+json errors and no catch-all `default` answer."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # every operation lists the error statuses it can answer

    def __init__(self, app: Any) -> None:
        super().__init__(
            app,
            spec_kwargs={
                "marshmallow_plugin": EventPlugin(),
                "components": {"securitySchemes": BEARER},
            },
        )
        for field, mapping in (
            (Timestamp, ("string", "date-time")),
            (StrictBoolean, ("boolean", None)),
            (StrictInteger, ("integer", None)),
            (StrictNumber, ("number", None)),
        ):
            self.register_field(field, *mapping)

    def _register_error_handlers(self) -> None:
        """api/errors.py registers them: one place maps every error to an answer."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if status >= 400:
                response = {"description": status.phrase, "schema": self.ERROR_SCHEMA}
                prepare_response(response, self.spec, PROBLEM)
                self.spec.components.response(status.name, response, lazy=True)


def settings() -> dict[str, Any]:
    """The flask-smorest configuration: the document at /v1/openapi.json."""
    return {
        "API_TITLE": TITLE,
        "API_VERSION": VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
