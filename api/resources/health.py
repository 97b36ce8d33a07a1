"""GET /healthz: the process is up; GET /readyz: it can serve, its database answers (no key
needed for either)."""

from __future__ import annotations

from typing import Any

from api.context import ledger, read_side
from api.resources import ApiBlueprint
from api.schemas.reads import HealthSchema
from domain.key_table import BOUND, rotated_away
from domain.storage import REVISION_QUERY

blp = ApiBlueprint("health", __name__, description="Liveness and readiness.")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz() -> Any:
    """The process is up (whatever the database's state: restarting it would not help that)."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def readyz() -> Any:
    """The process can serve: it is configured, its database answers, and its master key is the
    one the customer keys are wrapped by (after a rotation, a process left on the old key
    answers every keyed call 503 until restarted), and its database is at the revision its code
    knows (not migrated by another version since it started), else 503 as those calls then
    answer. For a load balancer choosing where to send calls."""
    bound, revision = read_side().db.query(f"SELECT ({BOUND}), ({REVISION_QUERY})")[0]
    ledger().store.guard.verify(revision)  # a database migrated by another version: 503
    ours = ledger().customer_keys.master_key.key_id
    if bound is not None and bound != ours:
        raise rotated_away(str(bound), ours)
    return {"status": "ready"}
