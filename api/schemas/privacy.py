"""Erasure, consent receipts (Kantara Consent Receipt v1.1 fields) and the customer's export."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields

from api.schemas.events import PROSE, Strict
from api.schemas.fields import PlainDict, PlainList, Text


def _says_why(reason: str) -> None:
    """An erasure cannot be undone: its reason is the record of why, so not spaces alone (the
    pages refuse those too), nor characters that show nothing (zero-width spaces and joiners)."""
    if not any(char.isprintable() and not char.isspace() for char in reason):
        raise ValidationError("Must say why: not spaces or invisible characters alone.")


class ErasureRequestSchema(Strict):
    reason = Text(
        PROSE,
        required=True,
        validate=_says_why,
        metadata={"description": "Why; kept readable after the erasure, so no personal data."},
    )


class ErasureReceiptSchema(Schema):
    brand = fields.String(required=True)
    relationship_id = fields.UUID(required=True)
    requested_by = fields.String(required=True, metadata={"description": "The API key's id."})
    reason = fields.String(required=True)
    erased_at = fields.DateTime(required=True)
    sequence = fields.Integer(required=True)
    events_shredded = fields.Integer(required=True)
    replayed = fields.Boolean(
        required=True, metadata={"description": "True: erased before; this is the first receipt."}
    )


class ControllerSchema(Schema):
    """The brand as data controller, as its policy's `controller` described it when the consent
    was recorded (the brand's slug as piiController if it gave no name); the fields it did not
    give are left out."""

    piiController = fields.String(required=True)
    contact = fields.String()
    address = fields.String()
    email = fields.String()
    phone = fields.String()
    piiControllerUrl = fields.String()


class PurposeSchema(Schema):
    purpose = fields.String(required=True)
    purposeCategory = fields.List(fields.String(), required=True)
    consentType = fields.String(required=True)
    piiCategory = fields.List(fields.String(), required=True)
    primaryPurpose = fields.Boolean(required=True)
    termination = fields.String(
        required=True, metadata={"description": "expires_at, 'on withdrawal', or 'withdrawn'."}
    )
    thirdPartyDisclosure = fields.Boolean(required=True)


class ServiceSchema(Schema):
    service = fields.String(required=True)
    purposes = fields.List(fields.Nested(PurposeSchema), required=True)


class ReceiptSchema(Schema):
    version = fields.String(required=True)
    jurisdiction = fields.String(required=True)
    consentTimestamp = fields.Integer(required=True, metadata={"description": "Epoch seconds."})
    collectionMethod = fields.String(required=True, allow_none=True)
    consentReceiptID = fields.String(required=True, metadata={"description": "Stable: uuid5."})
    language = fields.String(required=True)
    piiPrincipalId = fields.String(required=True, metadata={"description": "Or '[erased]'."})
    piiControllers = fields.List(fields.Nested(ControllerSchema), required=True)
    policyUrl = fields.String(required=True)
    services = fields.List(fields.Nested(ServiceSchema), required=True)
    sensitive = fields.Boolean(required=True)
    spiCat = fields.List(fields.String(), required=True)
    status = fields.String(required=True)
    channels = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={
            "description": "Null: every channel (a withdrawal of `*` that named none), as the"
            " consents' objections say it."
        },
    )
    event_id = fields.String(required=True)


class ReceiptsSchema(Schema):
    receipts = fields.List(fields.Nested(ReceiptSchema), required=True)


class ExportSchema(Schema):
    format = fields.String(required=True)
    brand = fields.String(required=True)
    customer = fields.String(required=True, metadata={"description": "Or '[erased]'."})
    relationship_id = fields.String(required=True)
    exported_at = fields.DateTime(required=True)
    events = PlainList(
        required=True, metadata={"description": "As the timeline shows them, oldest first."}
    )
    consents = PlainList(required=True)
    consent_receipts = PlainList(required=True)
    decisions = PlainList(required=True)
    trust = PlainDict(required=True)
