"""GET and PUT /v1/policy: the brand's push policy, one version per change."""

from __future__ import annotations

from typing import Any

from api.context import caller, ledger
from api.resources import ApiBlueprint
from api.schemas.gate import PolicyChangesSchema, PolicySchema

blp = ApiBlueprint("policy", __name__, url_prefix="/v1/policy", description="The push policy.")


@blp.route("", methods=["GET"])
@blp.allow("brand")
@blp.response(200, PolicySchema)
def policy() -> Any:
    """The policy in force and its version; version 0 is the defaults (docs/gate.md).

    Role: brand.
    """
    return ledger().policy(caller().brand).as_dict()


@blp.route("", methods=["PUT"])
@blp.allow("brand")
@blp.body(PolicyChangesSchema)
@blp.response(200, PolicySchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def change(changes: dict[str, Any]) -> Any:
    """Change the policy: objects merge, values and lists replace; answers the new version
    (the same version when nothing changed).

    Role: brand.
    """
    return ledger().set_policy(caller().brand, changes).as_dict()
