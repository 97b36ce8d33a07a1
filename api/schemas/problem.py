"""RFC 9457 problem details: the one shape of every answer that is not a success."""

from __future__ import annotations

from marshmallow import Schema, fields

PROBLEM = "application/problem+json"


class ProblemSchema(Schema):
    type = fields.String(
        required=True, metadata={"description": "A URI naming the kind of problem."}
    )
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(
        required=True, metadata={"description": "A URI naming this occurrence."}
    )
    errors = fields.Dict(
        metadata={
            "description": "Per field, shaped like the request: field names and list indexes "
            "lead to the list of messages about that value."
        }
    )
