"""The one mapping of errors to answers: every domain error's status, type and field errors."""

from __future__ import annotations

from typing import NoReturn

import pytest
from flask import Flask

from api import errors
from domain.errors import (
    BatchRejected,
    ConcurrencyConflict,
    CustomerErased,
    DuplicateReference,
    EventIdConflict,
    LedgerError,
    MasterKeyError,
    PushIdConflict,
    RejectedEvent,
    RelationshipNotFound,
    StoreUnanswered,
    StoreUnavailable,
    UnknownReference,
)


def answer_to(error: LedgerError) -> tuple[int, dict[str, object]]:
    app = Flask(__name__)
    errors.register(app)

    @app.post("/raise")
    def raising() -> NoReturn:
        raise error

    response = app.test_client().post("/raise")
    assert response.mimetype == "application/problem+json"
    return response.status_code, response.get_json(force=True)


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (ConcurrencyConflict("kept changing"), 409, "concurrency-conflict"),
        (EventIdConflict("e1"), 409, "event-id-conflict"),
        (DuplicateReference("exists", field="promise_id"), 409, "duplicate-reference"),
        (UnknownReference("never made", field="promise_id"), 422, "unknown-reference"),
        (RejectedEvent("in the future", field="occurred_at"), 422, "rejected-event"),
        (RelationshipNotFound("no relationship with customer 'c-secret'"), 404, "not-found"),
        (CustomerErased(), 409, "customer-erased"),
        (PushIdConflict("push-1"), 409, "push-id-conflict"),
        (MasterKeyError("no master key for the postgres store"), 503, "not-configured"),
    ],
)
def test_each_domain_error_has_its_status(error: LedgerError, status: int, name: str) -> None:
    code, body = answer_to(error)
    assert (code, body["status"], body["type"]) == (
        status,
        status,
        f"urn:trustledger:problem:{name}",
    )
    assert str(body["instance"]).startswith("urn:uuid:")


def test_field_errors_are_shaped_like_the_body() -> None:
    assert answer_to(UnknownReference("never", field="promise_id"))[1]["errors"] == {
        "data": {"promise_id": ["never"]}
    }
    assert answer_to(RejectedEvent("ahead", field="occurred_at"))[1]["errors"] == {
        "occurred_at": ["ahead"]
    }
    assert answer_to(RejectedEvent("no rule field"))[1]["errors"] == {"_schema": ["no rule field"]}


def test_not_found_never_echoes_the_customer_nor_configuration() -> None:
    body = answer_to(RelationshipNotFound("no relationship with customer 'c-secret'"))[1]
    assert "c-secret" not in str(body)
    assert "postgres" not in str(
        answer_to(MasterKeyError("no master key for the postgres store"))[1]
    )


@pytest.mark.parametrize(
    ("inner", "status"),
    [
        ({0: EventIdConflict("a"), 3: DuplicateReference("b", field="offer_id")}, 409),
        ({0: EventIdConflict("a"), 3: UnknownReference("b", field="offer_id")}, 422),
        ({2: ConcurrencyConflict("c")}, 409),
    ],
)
def test_a_rejected_batch_is_409_only_when_every_error_is_a_conflict(
    inner: dict[int, LedgerError], status: int
) -> None:
    code, body = answer_to(BatchRejected(inner))
    assert code == status
    assert list(body["errors"]["events"]) == [str(i) for i in sorted(inner)]  # type: ignore[index]


def test_a_statement_left_unanswered_says_a_write_may_have_been_stored() -> None:
    """A frozen server may yet carry out the write it was sent when it wakes (domain/timeouts.py):
    the answer must not say nothing was stored, as one for a server that refused does."""
    app = Flask(__name__)
    errors.register(app)

    @app.post("/raise/<name>")
    def raising(name: str) -> NoReturn:
        raise {"refused": StoreUnavailable, "unanswered": StoreUnanswered}[name]("x")

    http = app.test_client()
    refused, unanswered = http.post("/raise/refused"), http.post("/raise/unanswered")
    for answer in (refused, unanswered):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert answer.get_json(force=True)["type"] == "urn:trustledger:problem:store-unavailable"
    assert "nothing was stored" in refused.get_json(force=True)["detail"]
    detail = unanswered.get_json(force=True)["detail"]
    assert "may have been stored" in detail and "nothing was stored" not in detail


@pytest.mark.parametrize("name", ["refused", "key", "bug", "not-found"])
def test_the_log_names_the_route_never_the_customer_in_the_path(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A path holds a customer reference, the one identifier erasure protects; nothing erases a
    log, so the failures logged at error (the database down, the master key, a bug) and every
    answer logged at info name the route the request took."""
    app = Flask(__name__)
    errors.register(app)
    raised: dict[str, Exception] = {
        "refused": StoreUnavailable("x"),
        "key": MasterKeyError("x"),
        "bug": RuntimeError("a bug"),
        "not-found": RelationshipNotFound("x"),
    }

    @app.get("/v1/customers/<path:customer>/raise/<name>")
    def raising(customer: str, name: str) -> NoReturn:
        raise raised[name]

    caplog.set_level("DEBUG")
    http = app.test_client()
    assert http.get(f"/v1/customers/jane.doe@example.com/raise/{name}").status_code >= 400
    assert http.get("/v1/customers/jane.doe@example.com/nowhere").status_code == 404
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/customers/<path:customer>/raise/<name>" in logged
    assert "jane.doe" not in logged, logged
