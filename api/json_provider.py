"""Flask's JSON through orjson: every answer's body, and every request's (api/resources).

Flask's own provider runs the standard library's encoder, in Python for a response of nested
objects (a decision's answer, a batch's hundred recordings): a few percent of the request's
Python in the server. orjson writes the same JSON, keys sorted as Flask sorts them; non-ASCII
text goes as UTF-8 rather than `\\u` escapes, which JSON (RFC 8259) reads the same. Reading,
it refuses what strict JSON (I-JSON, RFC 7493) refuses and the standard library lets through:
NaN and Infinity, lone surrogates, numbers beyond a double's range (a 400, where no field would
have taken them). An integer beyond 64 bits reads as a float, which the integer fields refuse.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider, JSONProvider

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(obj: Any) -> bytes:
    """`obj` as JSON, as Flask's provider would write it (less the escapes)."""
    return orjson.dumps(obj, default=DefaultJSONProvider.default, option=_OPTIONS)


def loads(body: str | bytes) -> Any:
    """A JSON document; `orjson.JSONDecodeError` (a ValueError) if it is not strict JSON."""
    return orjson.loads(body)


class OrjsonProvider(JSONProvider):
    """Flask's JSON provider on orjson, with Flask's conversions for what JSON has no type for
    (a datetime as an HTTP date, as Flask writes it)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = dumps(self._prepare_response_obj(args, kwargs))
        return Response(body, mimetype="application/json")  # the app keeps Flask's class
