"""GET /v1/trust: the brand's own trust scores."""

from __future__ import annotations

from typing import Any

from api import reads
from api.context import caller, read_side
from api.resources import ApiBlueprint
from api.schemas.reads import AsOf
from api.schemas.trust import TrustSchema

blp = ApiBlueprint("trust", __name__, url_prefix="/v1/trust", description="The brand's trust.")


@blp.route("", methods=["GET"])
@blp.allow("brand", "agent", "compliance")
@blp.query(AsOf)
@blp.response(200, TrustSchema)
def brand_trust(query: dict[str, Any]) -> Any:
    """The brand's opinion per dimension (base rate 0.5), now or as known at `as_of`.

    Roles: brand, agent, compliance.
    """
    return reads.brand_trust(read_side(), caller().brand, as_of=query.get("as_of"))
