"""What brands, agents and compliance read: a customer's timeline and consents."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from api.schemas.events import ID
from api.schemas.fields import Choice, Cursor, QueryInteger, Text, Timestamp, next_page_cursor
from domain.relationship import CATALOGUE
from projections.timeline import decode_cursor

LIMIT = 200
CONSENT_STATUSES = ("granted", "withdrawn", "expired")


class AsOf(Schema):
    as_of = Timestamp(metadata={"description": "Answer as the ledger knew it at this record time."})


class TimelineQuery(AsOf):
    limit = QueryInteger(load_default=50, validate=validate.Range(1, LIMIT))
    cursor = Cursor(decode_cursor, metadata={"description": "`next_cursor` of the page before."})
    types = DelimitedList(
        Choice(tuple(CATALOGUE)),
        validate=validate.Length(1, len(CATALOGUE)),
        metadata={"description": "Only these event types, comma-separated."},
    )


class CustomerPath(Schema):
    customer = Text(
        ID, required=True, metadata={"description": "The brand's reference for the customer."}
    )


class TimelineItemSchema(Schema):
    event_id = fields.String(required=True)
    type = fields.String(required=True)
    occurred_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)
    actor = fields.String(required=True, allow_none=True)
    channel = fields.String(required=True, allow_none=True)
    summary = fields.String(
        required=True, metadata={"description": "One line for a person to read."}
    )
    data = fields.Dict(required=True)


class TimelinePageSchema(Schema):
    items = fields.List(
        fields.Nested(TimelineItemSchema), required=True, metadata={"description": "Newest first."}
    )
    next_cursor = next_page_cursor(decode_cursor)


class ConsentSchema(Schema):
    purpose = fields.String(required=True)
    channel = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CONSENT_STATUSES))
    data_categories = fields.List(fields.String(), required=True)
    notice_version = fields.String(required=True)
    method = fields.String(required=True)
    since = fields.DateTime(
        required=True, metadata={"description": "Event time of the grant or withdrawal."}
    )
    expires_at = fields.DateTime(required=True, allow_none=True)
    event_id = fields.String(
        required=True, metadata={"description": "The event that set this status."}
    )


class ObjectionSchema(Schema):
    since = fields.DateTime(required=True, metadata={"description": "Event time of the objection."})
    event_id = fields.String(
        required=True, metadata={"description": "The withdrawal of `*` that objected."}
    )
    channels = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={"description": "The channels objected on; null: every channel."},
    )


class ConsentsSchema(Schema):
    consents = fields.List(fields.Nested(ConsentSchema), required=True)
    objections = fields.List(
        fields.Nested(ObjectionSchema),
        required=True,
        metadata={
            "description": "The customer's standing objections to all offers and advice"
            " (withdrawals of `*`, each the latest on the channels it names), the latest first,"
            " until a later grant lifts them: the gate then denies every offer and advice push"
            " on their channels, whatever the consents say. Empty without one."
        },
    )


class HealthSchema(Schema):
    status = fields.String(required=True)
