"""/v1/customers: the brand's customers by trust, and what the ledger knows about each one."""

from __future__ import annotations

from typing import Any

from api import reads
from api.context import caller, ledger, read_side
from api.resources import ApiBlueprint
from api.schemas.privacy import (
    ErasureReceiptSchema,
    ErasureRequestSchema,
    ExportSchema,
    ReceiptsSchema,
)
from api.schemas.reads import AsOf, ConsentsSchema, CustomerPath, TimelinePageSchema, TimelineQuery
from api.schemas.trust import DIMENSIONS, CustomersQuery, CustomersSchema, TrustSchema

blp = ApiBlueprint(
    "customers", __name__, url_prefix="/v1/customers", description="Read a customer."
)
READERS = ("brand", "agent", "compliance")

ATTACHMENT = {
    "Content-Disposition": {
        "description": "attachment; the file name names the brand and the relationship id.",
        "schema": {"type": "string"},
    }
}


@blp.route("/<path:customer>/timeline", methods=["GET"])
@blp.allow(*READERS)
@blp.arguments(CustomerPath, location="path")
@blp.query(TimelineQuery)
@blp.response(200, TimelinePageSchema)
@blp.alt_response(404, response="NOT_FOUND")
def timeline(path: dict[str, str], query: dict[str, Any], **_: str) -> Any:
    """The customer's events, newest first, a page at a time.

    Roles: brand, agent, compliance.
    """
    return reads.timeline_page(
        read_side(),
        caller().brand,
        path["customer"],
        limit=query["limit"],
        cursor=query.get("cursor"),
        types=query.get("types"),
        as_of=query.get("as_of"),
    )


@blp.route("/<path:customer>/consents", methods=["GET"])
@blp.allow(*READERS)
@blp.arguments(CustomerPath, location="path")
@blp.query(AsOf)
@blp.response(200, ConsentsSchema)
@blp.alt_response(404, response="NOT_FOUND")
def consents(path: dict[str, str], query: dict[str, Any], **_: str) -> Any:
    """Every consent per purpose and channel: granted, withdrawn or expired; and the objections.

    Roles: brand, agent, compliance.
    """
    brand, customer, as_of = caller().brand, path["customer"], query.get("as_of")
    return {
        "consents": reads.consents(read_side(), brand, customer, as_of=as_of),
        "objections": reads.objections(read_side(), brand, customer, as_of=as_of),
    }


@blp.route("", methods=["GET"])
@blp.allow(*READERS)
@blp.query(CustomersQuery)
@blp.response(200, CustomersSchema)
def customers(query: dict[str, Any]) -> Any:
    """The brand's customers below trust thresholds (`consistency_lt`, ...), lowest first.

    Roles: brand, agent, compliance. Without a threshold, the most recently active first.
    """
    below: dict[str, float] = {d: query[d] for d in DIMENSIONS if d in query}
    return reads.customers(
        read_side(), caller().brand, below=below, limit=query["limit"], cursor=query.get("cursor")
    )


@blp.route("/<path:customer>/trust", methods=["GET"])
@blp.allow(*READERS)
@blp.arguments(CustomerPath, location="path")
@blp.query(AsOf)
@blp.response(200, TrustSchema)
@blp.alt_response(404, response="NOT_FOUND")
def trust(path: dict[str, str], query: dict[str, Any], **_: str) -> Any:
    """The relationship's opinion per dimension, on its brand's P as base rate; `as_of`.

    Roles: brand, agent, compliance.
    """
    return reads.customer_trust(
        read_side(), caller().brand, path["customer"], as_of=query.get("as_of")
    )


@blp.route("/<path:customer>/consents/receipts", methods=["GET"])
@blp.allow(*READERS)
@blp.arguments(CustomerPath, location="path")
@blp.response(200, ReceiptsSchema)
@blp.alt_response(404, response="NOT_FOUND")
def receipts(path: dict[str, str], **_: str) -> Any:
    """One consent receipt (Kantara Consent Receipt v1.1 fields) per consent event, oldest first.

    Roles: brand, agent, compliance.
    """
    return reads.consent_receipts(read_side(), caller().brand, path["customer"])


@blp.route("/<path:customer>/export", methods=["GET"])
@blp.allow("compliance")
@blp.arguments(CustomerPath, location="path")
@blp.response(200, ExportSchema, headers=ATTACHMENT)
@blp.alt_response(404, response="NOT_FOUND")
def export(path: dict[str, str], **_: str) -> Any:
    """Everything held about the customer as one JSON document (GDPR Art. 15 and 20).

    Role: compliance.
    """
    document = reads.export(read_side(), caller().brand, path["customer"])
    return document, 200, attachment(document)


@blp.route("/<path:customer>/erasure", methods=["POST"])
@blp.allow("compliance")
@blp.arguments(CustomerPath, location="path")
@blp.body(ErasureRequestSchema)
@blp.response(200, ErasureReceiptSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def erase(path: dict[str, str], body: dict[str, str], **_: str) -> Any:
    """Crypto-shred the customer: their personal data becomes "[erased]" everywhere.

    Role: compliance. Erasing again answers the first receipt, with `replayed: true`.
    """
    who = caller()
    return ledger().erase(who.brand, path["customer"], requested_by=who.name, reason=body["reason"])


def attachment(document: dict[str, Any]) -> dict[str, str]:
    name = f"trustledger-export-{document['brand']}-{document['relationship_id']}.json"
    return {"Content-Disposition": f'attachment; filename="{name}"'}
