"""GET /healthz: the process is up; GET /readyz: it can serve, its database answers (no key
needed for either)."""

from __future__ import annotations

from typing import Any

from api.context import read_side
from api.resources import ApiBlueprint
from api.schemas.reads import HealthSchema

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
    """The process can serve: it is configured and its database answers (else 503, as every
    call then answers, with Retry-After). For a load balancer choosing where to send calls."""
    read_side().db.scalar("SELECT 1")
    return {"status": "ready"}
