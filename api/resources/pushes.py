"""POST /v1/push-decisions: a brand asks the gate whether it may push to a customer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.context import caller, ledger
from api.resources import ApiBlueprint
from api.resources.events import REPLAYED
from api.schemas.gate import DecisionSchema, PushRequestSchema
from domain.gate import SEND_AT_TOLERANCE

blp = ApiBlueprint(
    "push-decisions", __name__, url_prefix="/v1/push-decisions", description="Ask the push gate."
)


@blp.route("", methods=["POST"])
@blp.allow("brand")
@blp.body(PushRequestSchema)
@blp.response(200, DecisionSchema, headers=REPLAYED)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def decide(push: dict[str, Any]) -> Any:
    """Decide a push: allow, deny or defer, every rule's reason, the scores, the policy version.

    Role: brand. The decision is recorded; asking again with the same `push_id` and request
    answers the recorded decision, with `Idempotent-Replayed: true` (a defer whose
    `retry_after` has come is decided again).
    """
    send_at = push.pop("send_at", None)
    earliest = datetime.now(UTC) - SEND_AT_TOLERANCE if send_at else None
    decision = ledger().decide_push(caller().brand, push, now=send_at, earliest=earliest)
    return decision, 200, {"Idempotent-Replayed": "true"} if decision.replayed else {}
