"""The one place that turns errors into answers: RFC 9457 `application/problem+json`.

Domain errors (domain/errors.py), validation errors and HTTP errors all end here; views raise and
never catch. Nothing is stored when any of these is raised: the ledger saves a write in one
transaction, after every check.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from api.schemas.problem import PROBLEM
from domain.errors import (
    BatchRejected,
    ConcurrencyConflict,
    CustomerErased,
    DecisionNotFound,
    DuplicateReference,
    EventIdConflict,
    InvalidPolicy,
    InvalidPushRequest,
    LedgerError,
    MasterKeyError,
    PolicyNotFound,
    PushIdConflict,
    RejectedEvent,
    RelationshipNotFound,
    StoreMigratedAway,
    StoreNotMigrated,
    StoreUnanswered,
    StoreUnavailable,
    UnknownReference,
)
from domain.relationship import ENVELOPE
from domain.storage import DATABASE_ERRORS, unavailable
from domain.timeouts import Unanswered
from projections.paging import BadCursor
from projections.runner import ProjectionFailed

log = logging.getLogger(__name__)
TYPE_BASE = "urn:trustledger:problem:"
ENVELOPE_FIELDS = {*ENVELOPE, "type", "customer", "data"}


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its status, the last part of its type URI, its title."""

    status: int
    name: str
    title: str


DOMAIN: dict[type[LedgerError], Kind] = {
    CustomerErased: Kind(409, "customer-erased", "The customer was erased"),
    EventIdConflict: Kind(409, "event-id-conflict", "Event id already used for other content"),
    ConcurrencyConflict: Kind(409, "concurrency-conflict", "The customer's record kept changing"),
    DuplicateReference: Kind(409, "duplicate-reference", "Already exists"),
    UnknownReference: Kind(422, "unknown-reference", "Refers to nothing open"),
    RejectedEvent: Kind(422, "rejected-event", "Event rejected"),
    RelationshipNotFound: Kind(404, "not-found", "Not found"),
    # The gate's and compliance's errors, for the endpoints that will raise them.
    InvalidPolicy: Kind(422, "invalid-policy", "Invalid policy"),
    PolicyNotFound: Kind(404, "not-found", "Not found"),
    InvalidPushRequest: Kind(422, "invalid-push-request", "Invalid push request"),
    PushIdConflict: Kind(409, "push-id-conflict", "Push id already decided for another request"),
    DecisionNotFound: Kind(404, "not-found", "Not found"),
    MasterKeyError: Kind(503, "not-configured", "The ledger is not configured"),
    StoreNotMigrated: Kind(503, "not-configured", "The ledger is not configured"),
    StoreMigratedAway: Kind(503, "store-migrated", "The database was migrated by another version"),
    StoreUnavailable: Kind(503, "store-unavailable", "The database cannot answer now"),
}
FAILED = "The ledger could not answer; the failure is logged."
RETRY_AFTER: dict[type[LedgerError], str] = {StoreUnavailable: "5", StoreUnanswered: "5"}
"""Seconds to wait before trying again, as the Retry-After header of these answers."""
QUIET: dict[type[LedgerError], str] = {
    RelationshipNotFound: "No such customer for this key's brand.",
    DecisionNotFound: "No such decision for this key's brand.",
    MasterKeyError: "The ledger cannot answer now; the cause is logged.",
    StoreNotMigrated: "The ledger cannot answer now; the cause is logged.",
    StoreUnavailable: "The database cannot answer now; nothing was stored. Try again shortly.",
    StoreUnanswered: (
        "The database did not answer in time; try again shortly. A write may have been stored"
        " or not: sent again unchanged, it gets the first answer."
    ),
}
"""Answers that replace the error's own message: it could hint at another brand's data (the
same words whether another brand has it or nobody does), or at the server's configuration."""
HTTP_DETAILS = {
    400: "The body is not valid JSON.",
    401: "Send a live API key as 'Authorization: Bearer tlk_...'.",
    403: "This key's role may not make this call.",
    404: "Nothing is here.",
    413: "The body is larger than 1 MiB.",
    415: "Send the body as application/json.",
    422: "The request has invalid fields; see errors.",
}


def register(app: Flask) -> None:
    app.register_error_handler(LedgerError, on_ledger_error)
    app.register_error_handler(ProjectionFailed, on_read_models_stopped)
    app.register_error_handler(BadCursor, on_bad_cursor)
    app.register_error_handler(HTTPException, on_http_error)
    for database_error in DATABASE_ERRORS:
        app.register_error_handler(database_error, on_database_error)
    app.log_exception = log_exception  # type: ignore[method-assign]


def log_exception(exc_info: Any) -> None:
    """Flask's line for an unhandled exception (the pages' 500s have no other), by the route:
    Flask's own names the path ("Exception on /v1/customers/<the reference>/...")."""
    log.error("Exception on %s [%s]", route(), request.method, exc_info=exc_info)


def route() -> str:
    """Where a request went, for the log: its route, never its path. A path holds customer
    references (the one identifier an erasure protects, and nothing erases a log)."""
    rule = request.url_rule
    return rule.rule if rule is not None else "(no route)"


def on_database_error(error: Exception) -> Response:
    """The drivers' and the event library's errors that reach a view: 503 and a time to retry
    when the database cannot answer for now (domain/storage.py's `unavailable`), else a 500."""
    if not unavailable(error):
        log.error("%s %s failed", request.method, route(), exc_info=error)
        return problem(500, "Internal Server Error", FAILED)
    if isinstance(error, Unanswered):
        return on_ledger_error(StoreUnanswered(str(error)))
    return on_ledger_error(StoreUnavailable(str(error)))


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    name: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 answer; `instance` is a fresh URN, logged, that echoes nothing of the request."""
    instance = f"urn:uuid:{uuid.uuid4()}"
    body: dict[str, Any] = {
        "type": TYPE_BASE + name if name else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    log.info("%s %s -> %s %s: %s", request.method, route(), status, instance, detail)
    return Response(
        json.dumps(body, ensure_ascii=False), status, headers=dict(headers or {}), mimetype=PROBLEM
    )


def on_ledger_error(error: LedgerError) -> Response:
    if isinstance(error, BatchRejected):
        return batch_rejected(error)
    kind = kind_of(error)
    detail = QUIET.get(type(error), str(error))
    if isinstance(error, MasterKeyError | StoreUnavailable | StoreMigratedAway):
        log.error("%s %s: %s", request.method, route(), error)
    retry = RETRY_AFTER.get(type(error))
    headers = {"Retry-After": retry} if retry else None
    return problem(
        kind.status, kind.title, detail, name=kind.name, errors=field_errors(error), headers=headers
    )


def batch_rejected(error: BatchRejected) -> Response:
    """Every rejected event by its index; 409 when all are conflicts, else 422."""
    statuses = {kind_of(e).status for e in error.errors.values()}
    status = 409 if statuses == {409} else 422
    errors = {
        "events": {
            str(i): field_errors(e) or {"_schema": [str(e)]}
            for i, e in sorted(error.errors.items())
        }
    }
    return problem(
        status,
        "Batch rejected; nothing was stored",
        str(error),
        name="batch-rejected",
        errors=errors,
    )


def kind_of(error: LedgerError) -> Kind:
    for cls in type(error).__mro__:
        if cls in DOMAIN:
            return DOMAIN[cls]
    raise TypeError(f"no answer is defined for {type(error).__name__}") from error


def field_errors(error: LedgerError) -> dict[str, Any] | None:
    """The error under the field of the event it is about, shaped like the request body."""
    if isinstance(error, EventIdConflict):
        return {"event_id": [str(error)]}
    if isinstance(error, InvalidPolicy | InvalidPushRequest):
        return {error.field or "_schema": [str(error)]}
    if not isinstance(error, RejectedEvent):
        return None
    field = error.field or "_schema"
    if field in ENVELOPE_FIELDS or field == "_schema":
        return {field: [str(error)]}
    return {"data": {field: [str(error)]}}


def on_bad_cursor(error: BadCursor) -> Response:
    """A cursor of the right shape that does not fit the query (another list's, or the same list
    under other thresholds): the fields could not tell, the read model can."""
    return problem(422, "Unprocessable Entity", HTTP_DETAILS[422], errors={"cursor": [str(error)]})


def on_read_models_stopped(error: ProjectionFailed) -> Response:
    """A read model cannot apply an event (logged by the runner): reads wait for an operator."""
    detail = "The read models are stopped at an event they cannot apply; nothing was lost."
    return problem(503, "Read models stopped", detail, name="read-models-stopped")


def on_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        log.error(
            "%s %s failed",
            request.method,
            route(),
            exc_info=getattr(error, "original_exception", None),
        )
        return problem(status, error.name, FAILED)
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="trustledger"'
    errors = validation_errors(error) if status == 422 else None
    detail = HTTP_DETAILS.get(status, error.description or error.name)
    return problem(status, error.name, detail, errors=errors, headers=headers)


def validation_errors(error: HTTPException) -> dict[str, Any]:
    """webargs' messages, keyed by location ("json", "query", ...), merged into one mapping."""
    messages = (getattr(error, "data", None) or {}).get("messages", {})
    merged: dict[str, Any] = {}
    for by_field in messages.values():
        merged.update(
            _stringify(by_field) if isinstance(by_field, Mapping) else {"_schema": by_field}
        )
    return merged


def _stringify(messages: Mapping[Any, Any]) -> dict[str, Any]:
    """marshmallow keys list indexes by int; JSON keys are strings."""
    return {str(k): _stringify(v) if isinstance(v, Mapping) else v for k, v in messages.items()}
