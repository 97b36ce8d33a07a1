"""GET /v1/audit/...: compliance re-evaluates decisions and lists pushes sent without an allow."""

from __future__ import annotations

from typing import Any

from api import reads
from api.context import caller, ledger, read_side
from api.resources import ApiBlueprint
from api.schemas.gate import AuditSchema, FindingsQuery, FindingsSchema, PushPath

blp = ApiBlueprint("audit", __name__, url_prefix="/v1/audit", description="Audit the gate.")


@blp.route("/push-decisions/<path:push_id>", methods=["GET"])
@blp.allow("compliance")
@blp.arguments(PushPath, location="path")
@blp.response(200, AuditSchema)
@blp.alt_response(404, response="NOT_FOUND")
def decision(path: dict[str, str], **_: str) -> Any:
    """A recorded decision next to its re-evaluation from the events known at its time, under
    the policy version it names; `reproduced` says whether they agree.

    Role: compliance.
    """
    return ledger().audit_push_decision(caller().brand, path["push_id"])


@blp.route("/findings", methods=["GET"])
@blp.allow("compliance")
@blp.query(FindingsQuery)
@blp.response(200, FindingsSchema)
def findings(query: dict[str, Any]) -> Any:
    """Pushes the brand reported sent without an allow (no decision, denied, or deferred and
    sent before `retry_after`), newest first.

    Role: compliance.
    """
    return reads.findings(
        read_side(), caller().brand, limit=query["limit"], cursor=query.get("cursor")
    )
