"""Trust answers: per dimension b, d, u, a, P, the evidence and the events that moved it most."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.events import Strict
from api.schemas.fields import Cursor, QueryInteger, QueryNumber, next_page_cursor
from projections import paging

LIMIT = 200
DIMENSIONS = ("consistency", "honesty", "expertise")


class EvidenceSchema(Schema):
    positive = fields.Float(required=True, metadata={"description": "Decayed positive evidence r."})
    negative = fields.Float(required=True, metadata={"description": "Decayed negative evidence s."})


class TopEventSchema(Schema):
    event_id = fields.String(required=True)
    type = fields.String(required=True)
    contribution = fields.Float(
        required=True, metadata={"description": "Its positive minus negative evidence, decayed."}
    )


class OpinionSchema(Schema):
    b = fields.Float(required=True, metadata={"description": "Belief r/(r+s+W)."})
    d = fields.Float(required=True, metadata={"description": "Disbelief s/(r+s+W)."})
    u = fields.Float(required=True, metadata={"description": "Uncertainty W/(r+s+W)."})
    a = fields.Float(
        required=True, metadata={"description": "Base rate: the brand's P (0.5 for a brand)."}
    )
    P = fields.Float(required=True, metadata={"description": "Projected score b + a·u."})
    evidence = fields.Nested(EvidenceSchema, required=True)
    top_events = fields.List(fields.Nested(TopEventSchema), required=True)


class TrustSchema(Schema):
    consistency = fields.Nested(OpinionSchema, required=True)
    honesty = fields.Nested(OpinionSchema, required=True)
    expertise = fields.Nested(OpinionSchema, required=True)
    overall = fields.Float(required=True, metadata={"description": "The mean of the three P's."})
    evaluated_at = fields.DateTime(required=True, metadata={"description": "The evaluation time."})


def _below(dimension: str) -> QueryNumber:
    return QueryNumber(
        data_key=f"{dimension}_lt",
        validate=validate.Range(0.0, 1.0),
        metadata={"description": f"Only customers whose {dimension} P is below this."},
    )


CUSTOMERS_CURSOR = 256
"""The longest cursor of the customers list: a score or a time, and a relationship id."""


def customers_cursor(cursor: str) -> object:
    return paging.decode(cursor, "by", "after")


class Paging(Strict):
    limit = QueryInteger(load_default=50, validate=validate.Range(1, LIMIT))


class CustomersQuery(Paging):
    cursor = Cursor(
        customers_cursor,
        CUSTOMERS_CURSOR,
        metadata={"description": "`next_cursor` of the page before, under the same thresholds."},
    )
    consistency = _below("consistency")
    honesty = _below("honesty")
    expertise = _below("expertise")


class CustomerRowSchema(Schema):
    customer = fields.String(required=True)
    erased = fields.Boolean(
        required=True,
        metadata={"description": "Erased: `customer` then reads [erased] and names no one."},
    )
    events = fields.Integer(required=True)
    first_at = fields.DateTime(required=True, allow_none=True)
    last_at = fields.DateTime(required=True, allow_none=True)
    consistency = fields.Float(required=True)
    honesty = fields.Float(required=True)
    expertise = fields.Float(required=True)


class CustomersSchema(Schema):
    customers = fields.List(
        fields.Nested(CustomerRowSchema),
        required=True,
        metadata={"description": "Lowest first on the first threshold given; else most recent."},
    )
    next_cursor = next_page_cursor(customers_cursor, CUSTOMERS_CURSOR)
