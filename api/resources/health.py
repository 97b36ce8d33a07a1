"""GET /healthz: the process is up (no key needed)."""

from __future__ import annotations

from typing import Any

from api.resources import ApiBlueprint
from api.schemas.reads import HealthSchema

blp = ApiBlueprint("health", __name__, description="Liveness.")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}
