"""GET /v1/customers/{customer}/...: what the ledger knows about one of the brand's customers."""

from __future__ import annotations

from typing import Any

from api import reads
from api.context import caller, read_side
from api.resources import ApiBlueprint
from api.schemas.reads import AsOf, ConsentsSchema, CustomerPath, TimelinePageSchema, TimelineQuery

blp = ApiBlueprint(
    "customers", __name__, url_prefix="/v1/customers", description="Read a customer."
)
READERS = ("brand", "agent", "compliance")


@blp.route("/<path:customer>/timeline", methods=["GET"])
@blp.allow(*READERS)
@blp.arguments(CustomerPath, location="path")
@blp.arguments(TimelineQuery, location="query")
@blp.response(200, TimelinePageSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
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
@blp.arguments(AsOf, location="query")
@blp.response(200, ConsentsSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def consents(path: dict[str, str], query: dict[str, Any], **_: str) -> Any:
    """Every consent per purpose and channel: granted, withdrawn or expired.

    Roles: brand, agent, compliance.
    """
    return {
        "consents": reads.consents(
            read_side(), caller().brand, path["customer"], as_of=query.get("as_of")
        )
    }
