"""What a brand posts: the envelope, one data schema per catalogue type, and the ledger's answers.

An event is loaded by the schema of its own `type` (`EVENTS[type]`: the envelope with that type's
data nested), so errors in `data` name the field, and the OpenAPI document shows each type's data
as a `oneOf` branch chosen by `type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from api.schemas.fields import (
    EARLIEST,
    Choice,
    Pattern,
    Reference,
    StrictBoolean,
    StrictInteger,
    Text,
    Timestamp,
)
from domain.brand import is_timezone
from domain.relationship import (
    DISCOVERERS,
    POSTABLE_TYPES,
    REACTIONS,
    SEVERITIES,
    PostedEvent,
)

ID = 128
"""Longest id: event ids, customer references and the brand's own ids of promises, offers, ..."""
NAME = 64
"""Longest short name: channels, topics, purposes, categories, notice versions, methods."""
PROSE = 2000
"""Longest free text: summaries and reasons."""
LIST = 50
"""Most items in a list: channels, data categories, claims."""
BATCH = 500
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Strict(Schema):
    class Meta:
        unknown = RAISE


def optional(field: fields.Field[Any]) -> fields.Field[Any]:
    """An optional data field: absent and null both mean "not given"."""
    field.allow_none = True
    field.load_default = None
    return field


def names(min_items: int = 0, **kwargs: Any) -> fields.List[Any]:
    return fields.List(Text(NAME), validate=validate.Length(min_items, LIST), **kwargs)


def each_once(items: list[str]) -> None:
    """A list of what a consent covers names each item once: a receipt (and the consents)
    listing a channel or a category twice reads as if the customer agreed to it twice."""
    twice = sorted({item for n, item in enumerate(items) if item in items[:n]})
    if twice:
        raise ValidationError(f"Names {', '.join(map(repr, twice))} more than once.")


def distinct_names(min_items: int = 0, **kwargs: Any) -> fields.List[Any]:
    """`names`, each at most once (JSON Schema's uniqueItems)."""
    field = names(min_items, **kwargs)
    field.validators.append(each_once)
    field.metadata = {**field.metadata, "uniqueItems": True}
    return field


# --- one data schema per postable type --------------------------------------------------------


class PromiseMadeData(Strict):
    promise_id = Text(ID, required=True)
    summary = Text(PROSE, required=True)
    due_at = Timestamp(required=True, earliest=EARLIEST)


class PromiseRef(Strict):
    promise_id = Text(ID, required=True)


class PromiseClosedData(PromiseRef):
    reason = optional(Text(PROSE))


class OfferMadeData(Strict):
    offer_id = Text(ID, required=True)
    summary = Text(PROSE, required=True)
    expires_at = optional(Timestamp(earliest=EARLIEST))
    claims = optional(fields.List(Text(PROSE), validate=validate.Length(max=LIST)))


class OfferRef(Strict):
    offer_id = Text(ID, required=True)


class OfferRenegedData(OfferRef):
    reason = Text(PROSE, required=True)


class ErrorAdmittedData(Strict):
    error_id = Text(ID, required=True)
    summary = Text(PROSE, required=True)
    severity = Choice(SEVERITIES, required=True)
    discovered_by = Choice(DISCOVERERS, required=True)


class ErrorReportedData(Strict):
    error_id = Text(ID, required=True)
    summary = Text(PROSE, required=True)
    reported_by = Text(ID, required=True)


class ErrorRef(Strict):
    error_id = Text(ID, required=True)


class ErrorDisputedData(ErrorRef):
    reason = Text(PROSE, required=True)


class ErrorConfirmedData(ErrorRef):
    by = Text(ID, required=True)


class QuestionAnsweredData(Strict):
    case_id = Text(ID, required=True)
    topic = Text(NAME, required=True)
    resolved = StrictBoolean(required=True)
    rating = optional(StrictInteger(validate=validate.Range(1, 5)))


class CaseRef(Strict):
    case_id = Text(ID, required=True)


class AdviceGivenData(Strict):
    advice_id = Text(ID, required=True)
    topic = Text(NAME, required=True)
    summary = Text(PROSE, required=True)


class AdviceRatedData(Strict):
    advice_id = Text(ID, required=True)
    helpful = StrictBoolean(required=True)


class ConsentGrantedData(Strict):
    purpose = Text(NAME, required=True, metadata={"description": "One purpose; not '*'."})
    channels = distinct_names(1, required=True)
    data_categories = distinct_names(required=True)
    notice_version = Text(NAME, required=True)
    method = Text(NAME, required=True)
    expires_at = optional(Timestamp(earliest=EARLIEST))
    jurisdiction = optional(Text(NAME))


class ConsentWithdrawnData(Strict):
    purpose = Text(NAME, required=True, metadata={"description": "A purpose, or '*' for all."})
    channels = optional(distinct_names())


class QuietHours(Strict):
    start = fields.String(required=True, validate=Pattern(CLOCK), metadata={"example": "21:00"})
    end = fields.String(required=True, validate=Pattern(CLOCK), metadata={"example": "08:00"})


def time_zone(name: str) -> None:
    if not is_timezone(name):
        raise ValidationError("Not an IANA time zone, like Europe/Paris.")


class PreferencesUpdatedData(Strict):
    timezone = optional(
        Text(NAME, validate=time_zone, metadata={"description": "An IANA time zone."})
    )
    quiet_hours = optional(fields.Nested(QuietHours))


class PushRef(Strict):
    push_id = Reference(ID, required=True)


class PushFeedbackData(PushRef):
    reaction = Choice(REACTIONS, required=True)


DATA: dict[str, type[Schema]] = {
    "promise.made": PromiseMadeData,
    "promise.kept": PromiseRef,
    "promise.broken": PromiseClosedData,
    "promise.released": PromiseClosedData,
    "offer.made": OfferMadeData,
    "offer.accepted": OfferRef,
    "offer.declined": OfferRef,
    "offer.honored": OfferRef,
    "offer.reneged": OfferRenegedData,
    "error.admitted": ErrorAdmittedData,
    "error.reported": ErrorReportedData,
    "error.disputed": ErrorDisputedData,
    "error.confirmed": ErrorConfirmedData,
    "error.withdrawn": ErrorRef,
    "question.answered": QuestionAnsweredData,
    "case.reopened": CaseRef,
    "advice.given": AdviceGivenData,
    "advice.rated": AdviceRatedData,
    "consent.granted": ConsentGrantedData,
    "consent.withdrawn": ConsentWithdrawnData,
    "preferences.updated": PreferencesUpdatedData,
    "push.sent": PushRef,
    "push.feedback": PushFeedbackData,
}


# --- the envelope ---------------------------------------------------------------------------


class Envelope(Strict):
    """What every event carries; `data` is checked against the schema of `type`."""

    event_id = Text(
        ID, required=True, metadata={"description": "The brand's own id: the idempotency key."}
    )
    type = Choice(POSTABLE_TYPES, required=True)
    customer = Reference(
        ID, required=True, metadata={"description": "The brand's pseudonymous reference."}
    )
    occurred_at = Timestamp(
        required=True,
        earliest=EARLIEST,
        metadata={"description": "Event time: from 1970 to at most 5 minutes ahead."},
    )
    actor = optional(Text(ID))
    channel = optional(Text(NAME))
    data = fields.Dict(required=True)

    @post_load
    def posted_event(self, envelope: dict[str, Any], **_: Any) -> PostedEvent:
        return PostedEvent(**envelope)


def event_schema(type_: str, data: type[Schema]) -> type[Envelope]:
    """The envelope for one type: `type` pinned to it, `data` its own schema."""
    name = "".join(part.title() for part in type_.split(".")) + "Event"
    return Envelope.from_dict(
        {"type": Choice([type_], required=True), "data": fields.Nested(data, required=True)},
        name=name,
    )  # type: ignore[return-value]


EVENTS: dict[str, Schema] = {type_: event_schema(type_, data)() for type_, data in DATA.items()}


class EventSchema(Envelope):
    """One posted event, loaded by the schema of its `type` (a `oneOf` in the OpenAPI document)."""

    def load(self, data: Any, **kwargs: Any) -> Any:
        chosen = EVENTS.get(str(data.get("type"))) if isinstance(data, Mapping) else None
        if chosen is None or kwargs.get("many"):
            return super().load(data, **kwargs)
        return chosen.load(data, **kwargs)


class BatchSchema(Strict):
    events = fields.List(
        fields.Nested(EventSchema), required=True, validate=validate.Length(1, BATCH)
    )


# --- the ledger's answers -------------------------------------------------------------------


class RecordingSchema(Schema):
    """Where the event went: the same answer again for a repeat of it."""

    event_id = fields.String(required=True)
    customer = fields.String(required=True)
    sequence = fields.Integer(
        required=True, metadata={"description": "Its place in the customer's stream."}
    )
    recorded_at = fields.DateTime(
        required=True, metadata={"description": "Record time, set by the ledger."}
    )


class BatchRecordingSchema(Schema):
    events = fields.List(fields.Nested(RecordingSchema), required=True)
