"""One blueprint per resource; each view parses with a schema, makes ONE call, and dumps."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request
from flask_smorest import Blueprint, abort
from gunicorn.http.errors import ParseException
from marshmallow import RAISE, Schema
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from api import json_provider
from api.auth import authorise
from api.context import resources

View = TypeVar("View", bound=Callable[..., Any])


class JsonParser(FlaskParser):
    """webargs' parser, answering 415 for a body that is not JSON and 400 for any unreadable one
    (read by orjson: api/json_provider.py)."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            raise UnsupportedMediaType()
        encoding = req.environ.get("HTTP_CONTENT_ENCODING")  # (the environ: a dict's speed)
        if encoding is not None and encoding.strip().lower() != "identity":
            raise UnsupportedMediaType()  # gzip and the like: read as JSON, it was a 400
        try:
            return json_provider.loads(whole_body(req))
        except (ValueError, RecursionError):  # bad JSON, too deep, or a number too long
            raise BadRequest() from None


def whole_body(req: Any) -> bytes:
    """The body as sent, all of it, or an error. A stream the server terminates (gunicorn's
    chunked bodies) is cut at MAX_CONTENT_LENGTH without a word, so a body that reaches it is
    413; and one shorter than its Content-Length (the client stopped) is 400. Either used to
    be parsed as it was, and a valid event padded past 1 MiB with text that was not JSON was
    stored. A chunked encoding gunicorn cannot read is 400 too (it was a 500)."""
    try:
        data: bytes = req.get_data(cache=True)
    except (ParseException, OSError):
        raise BadRequest("The body's chunked encoding could not be read.") from None
    length = req.content_length
    if length is None:
        if len(data) >= (req.max_content_length or len(data) + 1):
            raise RequestEntityTooLarge()
    elif len(data) != length:
        raise BadRequest("The body is shorter than its Content-Length.")
    return data


class NoQuery(Schema):
    """The query of a view that reads none: any parameter is unknown."""


NO_QUERY = NoQuery()


class ApiBlueprint(Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = JsonParser()

    def query(self, schema: Any, **kwargs: Any) -> Callable[[View], View]:
        """The query string, loaded by `schema`; a parameter it does not name is 422 (webargs
        would drop it: `?as_of=` on a read that answers only now would get today's answer)."""
        instance = schema() if isinstance(schema, type) else schema  # not one per request
        parsed = self.arguments(instance, location="query", unknown=RAISE, **kwargs)
        return parsed  # type: ignore[no-any-return]

    def alt_response(self, *args: Any, **kwargs: Any) -> Callable[[View], View]:
        """smorest's, documenting the view without wrapping it (see `documenting`)."""
        return documenting(super().alt_response(*args, **kwargs))

    def doc(self, *args: Any, **kwargs: Any) -> Callable[[View], View]:
        """smorest's, documenting the view without wrapping it (see `documenting`)."""
        return documenting(super().doc(*args, **kwargs))

    def allow(self, *roles: str) -> Callable[[View], View]:
        """Lets a view run only for a live key of one of `roles`; documents 401, 403 and 503
        (which any call answers while the database cannot, or a read while the read models are
        stopped). A view without `query` refuses any query parameter, as the others refuse
        the ones they do not read."""

        def decorator(view: View) -> View:
            refuses_query = not reads_query(view)
            if refuses_query:  # documented as an empty query; checked below, at no cost
                view = documenting(self.arguments(NO_QUERY, location="query"))(view)

            @wraps(view)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                g.caller = authorise(resources().keys, request.headers.get("Authorization"), roles)
                if request.query_string:
                    refuse_repeats()
                if refuses_query and request.query_string and request.args:  # (cheap first)
                    unknown = {name: ["Unknown field."] for name in request.args}
                    abort(422, messages={"query": unknown})
                return view(*args, **kwargs)

            documented = self.doc(security=[{"bearer": []}])(cast(View, guarded))
            documented = self.alt_response(403, response="FORBIDDEN")(documented)
            documented = self.alt_response(503, response="SERVICE_UNAVAILABLE")(documented)
            return self.alt_response(401, response="UNAUTHORIZED")(documented)

        return decorator

    def body(self, schema: Any) -> Callable[[View], View]:
        """The JSON body, loaded by `schema`; documents 400, 413, 415 and 422."""

        instance = schema() if isinstance(schema, type) else schema  # not one per request

        def decorator(view: View) -> View:
            parsed = self.arguments(instance)(view)
            for status, name in (
                (400, "BAD_REQUEST"),
                (413, "REQUEST_ENTITY_TOO_LARGE"),
                (415, "UNSUPPORTED_MEDIA_TYPE"),
            ):
                parsed = self.alt_response(status, response=name)(parsed)
            return parsed  # type: ignore[no-any-return]

        return decorator


def refuse_repeats() -> None:
    """A parameter given twice is 422: webargs read the first and dropped the others, so a
    client that appended `&cursor=` to the URL it paged from got its first page for ever."""
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        abort(422, messages={"query": {name: ["Given more than once."] for name in repeated}})


def reads_query(view: Callable[..., Any]) -> bool:
    """Whether `view` loads its query string with a schema (smorest notes each one it loads)."""
    loaded = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(parameter["in"] == "query" for parameter in loaded)


def documenting(decorator: Callable[[View], Any]) -> Callable[[View], View]:
    """A smorest decorator that only documents: the view gets the wrapper's `_apidoc` and stays
    itself. smorest wraps it in a function that just calls it, looking up the app and asking
    whether the view is a coroutine on the way: six layers a request, for the responses of 401,
    403, 400, 413, 415 and 409 and the security note."""

    def document(view: View) -> View:
        view._apidoc = decorator(view)._apidoc  # type: ignore[attr-defined]
        return view

    return document
