"""The push gate: a brand's question, the gate's answer, the brand's policy, and their audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from api.schemas.events import ID, NAME, Strict, names, optional
from api.schemas.fields import (
    Choice,
    Cursor,
    Pattern,
    PlainDict,
    PlainList,
    Reference,
    StrictInteger,
    StrictNumber,
    Text,
    Timestamp,
    next_page_cursor,
)
from api.schemas.trust import Paging
from domain.brand import (
    CONTROLLER_LIMITS,
    MAX_CATEGORIES,
    MAX_DECLINES_PER_HALVING,
    MAX_FREQUENCY_CAP,
    MAX_HALF_LIFE_DAYS,
)
from domain.gate import KINDS
from projections.decisions import FINDINGS, findings_cursor

SEND_AT_HORIZON = timedelta(minutes=5)
"""How far ahead a push may be decided: the ledger records no event dated further ahead (the
same bound as an event's occurred_at), and consent or trust may change before then anyway: a
push scheduled later is asked about when it is about to go."""
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class PushRequestSchema(Strict):
    push_id = Reference(ID, required=True, metadata={"description": "The brand's id of this push."})
    customer = Reference(ID, required=True)
    kind = Choice(KINDS, required=True)
    channel = Text(NAME, required=True)
    purpose = optional(
        Text(
            NAME,
            # '*' is a withdrawal's "every purpose", which no grant covers: a push so asked was
            # decided, denied and recorded. Refused here, not in the domain, whose audits must
            # still read the decisions recorded so before.
            validate=validate.NoneOf(["*"], error="A push has one purpose, not '*'."),
            metadata={"description": "Required for offer and advice.", "not": {"enum": ["*"]}},
        )
    )
    data_categories = names(load_default=list, metadata={"description": "The data it uses."})
    send_at = Timestamp(
        metadata={
            "description": "When it is sent (decided as at then); default now. Within 5 "
            "minutes of now: ask about a scheduled push when it is about to go."
        }
    )

    @validates("send_at")
    def _not_ahead(self, value: datetime, **_: Any) -> None:
        """How far back is checked only if the push is decided anew (Ledger.decide_push's
        `earliest`): a repeat of a decided request is answered its decision whenever it comes."""
        if value > datetime.now(UTC) + SEND_AT_HORIZON:
            raise ValidationError(
                "Must not be more than 5 minutes ahead: ask when the push is about to go."
            )


class ReasonSchema(Schema):
    rule = fields.String(required=True)
    passed = fields.Boolean(required=True)
    detail = fields.String(required=True)
    evidence = fields.List(fields.String(), required=True, metadata={"description": "Event ids."})
    retry_after = fields.DateTime()


class DecisionSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(("allow", "deny", "defer")))
    retry_after = fields.DateTime(metadata={"description": "Present on defer."})
    reasons = PlainList(fields.Nested(ReasonSchema), required=True)
    scores = PlainDict(required=True, metadata={"description": "b, d, u, a, P per dimension."})
    policy_version = fields.Integer(required=True)


# --- the policy -----------------------------------------------------------------------------------


def fraction(**kwargs: Any) -> fields.Float:
    return StrictNumber(validate=validate.Range(0.0, 1.0), **kwargs)


class OfferThresholds(Strict):
    consistency = fraction()
    honesty = fraction()


class AdviceThresholds(Strict):
    expertise = fraction()


class Thresholds(Strict):
    offer = fields.Nested(OfferThresholds)
    advice = fields.Nested(AdviceThresholds)


class PolicyDepth(Strict):
    per_category = fraction()
    sensitive_weight = StrictNumber(validate=validate.Range(1.0, 100.0))
    cap = fraction()


class PolicyQuietHours(Strict):
    start = fields.String(validate=Pattern(CLOCK), metadata={"example": "21:00"})
    end = fields.String(validate=Pattern(CLOCK), metadata={"example": "08:00"})


def _controller(name: str, example: str) -> Text:
    """A controller field: its text, or null to clear it (absent: left as it is)."""
    return Text(CONTROLLER_LIMITS[name], allow_none=True, metadata={"example": example})


class PolicyController(Strict):
    """Who the brand is as the customers' data controller, as consent receipts name it (Kantara
    v1.1 piiControllers and policyUrl); a field set to null is left out of them."""

    name = _controller("name", "Northwind Broadband Ltd")
    contact = _controller("contact", "Data Protection Officer")
    address = _controller("address", "1 Harbour Street, Leith")
    email = _controller("email", "dpo@brand.example")
    phone = _controller("phone", "+44 131 555 0100")
    url = _controller("url", "https://brand.example/")
    privacy_policy_url = _controller("privacy_policy_url", "https://brand.example/privacy")


DECLINES_PER_HALVING = (
    "Every this many `offer.declined` in the 30 days before a decision halve the frequency"
    " allowance, as each `unwanted` reaction does; null (version 0's): declines are not counted."
    " 3 is a value to start from (docs/gate.md)."
)


class PolicyChangesSchema(Strict):
    """The fields to change; objects merge, lists and values replace."""

    thresholds = fields.Nested(Thresholds)
    personalisation_depth = fields.Nested(PolicyDepth)
    frequency_cap = StrictInteger(validate=validate.Range(0, MAX_FREQUENCY_CAP))
    quiet_hours = fields.Nested(PolicyQuietHours)
    timezone = Text(NAME, metadata={"description": "An IANA time zone, e.g. Europe/Paris."})
    sensitive_categories = fields.List(Text(128), validate=validate.Length(0, MAX_CATEGORIES))
    trust_half_life_days = StrictNumber(validate=validate.Range(1.0, MAX_HALF_LIFE_DAYS))
    declines_per_halving = StrictInteger(
        validate=validate.Range(1, MAX_DECLINES_PER_HALVING),
        allow_none=True,
        metadata={"description": DECLINES_PER_HALVING, "example": 3},
    )
    controller = fields.Nested(PolicyController)


class PolicySchema(Schema):
    version = fields.Integer(required=True, metadata={"description": "0: the defaults."})
    set_at = fields.String(required=True, allow_none=True)
    thresholds = PlainDict(required=True)
    personalisation_depth = PlainDict(required=True)
    frequency_cap = fields.Integer(required=True)
    quiet_hours = PlainDict(required=True)
    timezone = fields.String(required=True)
    sensitive_categories = fields.List(fields.String(), required=True)
    trust_half_life_days = fields.Float(required=True)
    declines_per_halving = fields.Integer(
        required=True, allow_none=True, metadata={"description": DECLINES_PER_HALVING}
    )
    controller = PlainDict(required=True)


# --- the audit ------------------------------------------------------------------------------------


class PushPath(Schema):
    push_id = Text(ID, required=True)


class AuditSchema(Schema):
    push_id = fields.String(required=True)
    event_id = fields.String(required=True)
    decided_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)
    request = PlainDict(required=True)
    recorded = PlainDict(required=True, metadata={"description": "The decision as recorded."})
    reevaluated = PlainDict(
        required=True,
        metadata={
            "description": "The decision again, from the events before it, under its policy."
        },
    )
    reproduced = fields.Boolean(required=True)
    differences = fields.List(fields.String(), required=True)


class FindingSchema(Schema):
    push_id = fields.String(required=True)
    customer = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The customer the push went to; `[erased]` once erased (null only"
            " for a relationship the read models do not hold yet)."
        },
    )
    finding = fields.String(
        required=True,
        validate=validate.OneOf(FINDINGS),
        metadata={
            "description": "What is wrong with the send. `sent after its consent was withdrawn`:"
            " an offer or advice push allowed (or deferred) on the customer's consent, sent when,"
            " in event time, the customer's latest act on its purpose and channel was a"
            " withdrawal (an objection on the channel, an `unsubscribed` reaction included)."
            " `sent after its consent expired`: the same, that act a grant whose `expires_at`"
            " had come. `sent before it was decided`: dated more than 5 minutes (the clocks'"
            " tolerance) before its decision. `sent again under the same decision`: a send of"
            " the push after its first in event time. Each send is named by the first of the"
            " values that applies, in the order listed."
        },
    )
    outcome = fields.String(required=True, allow_none=True)
    decided_at = fields.DateTime(required=True, allow_none=True)
    retry_after = fields.DateTime(required=True, allow_none=True)
    sent_at = fields.DateTime(required=True, allow_none=True)
    channel = fields.String(required=True, allow_none=True)
    event_id = fields.String(
        required=True, allow_none=True, metadata={"description": "The `push.sent` event."}
    )
    withdrawn_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "Event time of the withdrawal the send came after, or of the expiry"
            " of the consent it relied on; else null."
        },
    )
    withdrawn_by = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The event that ended the consent the decision relied on, before"
            " the send: a `consent.withdrawn` or an `unsubscribed` `push.feedback`, or the"
            " `consent.granted` that expired; else null."
        },
    )


FINDINGS_CURSOR = 2048
"""The longest cursor of the findings: a time, a push id (its characters escaped in JSON) and,
at a push's later send, its sequence."""


class FindingsQuery(Paging):
    cursor = Cursor(
        findings_cursor,
        FINDINGS_CURSOR,
        metadata={"description": "`next_cursor` of the page before."},
    )


class FindingsSchema(Schema):
    findings = fields.List(fields.Nested(FindingSchema), required=True)
    next_cursor = next_page_cursor(findings_cursor, FINDINGS_CURSOR)
