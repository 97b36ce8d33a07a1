"""POST /v1/events and /v1/events/batch: a brand's CRM records what happened with its customers."""

from __future__ import annotations

from typing import Any

from api.context import caller, ledger
from api.resources import ApiBlueprint
from api.schemas.events import BatchRecordingSchema, BatchSchema, EventSchema, RecordingSchema
from domain.application import Recording
from domain.relationship import PostedEvent

blp = ApiBlueprint("events", __name__, url_prefix="/v1/events", description="Record interactions.")

REPLAYED = {
    "Idempotent-Replayed": {
        "description": "Present, and true, when this answers a repeat of an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def replayed(recordings: list[Recording]) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if all(r.replayed for r in recordings) else {}


@blp.route("", methods=["POST"])
@blp.allow("brand")
@blp.body(EventSchema)
@blp.response(201, RecordingSchema, headers=REPLAYED)
@blp.alt_response(409, response="CONFLICT")
def record(event: PostedEvent) -> Any:
    """Record one event (role: brand).

    A repeat of an `event_id` with the same content gets the first answer again, with
    `Idempotent-Replayed: true`; with other content, 409.
    """
    recording = ledger().record(caller().brand, event)
    return recording, 201, replayed([recording])


@blp.route("/batch", methods=["POST"])
@blp.allow("brand")
@blp.body(BatchSchema)
@blp.response(201, BatchRecordingSchema, headers=REPLAYED)
@blp.alt_response(409, response="CONFLICT")
def record_batch(batch: dict[str, list[PostedEvent]]) -> Any:
    """Record up to 500 events together (role: brand).

    All of them are stored, or none, and the answer names every rejected event by its index.
    """
    recordings = ledger().record_batch(caller().brand, batch["events"])
    return {"events": recordings}, 201, replayed(recordings)
