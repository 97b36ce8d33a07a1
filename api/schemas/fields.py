"""Fields strict enough that the OpenAPI document and the parser agree on every value.

marshmallow's own fields are lenient where JSON Schema is not (`Boolean` takes "yes" and 1,
`Integer` takes true, `Regexp` lets a trailing newline through `$`), and a lenient parser under a
strict document is a contradiction a client can trip over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields, validate

from projections.paging import BadCursor

NUL = chr(0)
NO_NUL = "^[^\\x00]*$"
"""JSON Schema's (ECMA 262) way to say what Text refuses."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
LEAP_SECOND = "A leap second (:60) cannot be recorded: send :59, or the next minute's :00."
BEYOND_THE_CALENDAR = "In UTC it falls before year 1 or after 9999: no time there can be recorded."


class Text(fields.String):
    """A bounded string every store can hold: valid Unicode (no lone surrogates) and no NUL,
    which PostgreSQL's text columns (the read models') refuse."""

    def __init__(self, max_length: int, *, min_length: int = 1, **kwargs: Any) -> None:
        extra = kwargs.pop("validate", None)
        checks = [validate.Length(min_length, max_length), *([extra] if extra else [])]
        metadata = {"pattern": NO_NUL, **kwargs.pop("metadata", {})}
        super().__init__(validate=checks, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if NUL in text:
            raise ValidationError("Must not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Not valid Unicode text.") from None
        return text


CONTROL = re.compile("[\x00-\x1f\x7f]")
IN_A_PATH = "^[^/\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$"
"""JSON Schema's way to say what Reference refuses."""


class Reference(Text):
    """A customer reference or push id: Text that also names its resource in a URL path, so it
    neither starts with "/" nor holds a control character (a line feed), either of which no
    route can match: a customer so named could be written to, but never read, exported or
    erased."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        metadata = {**kwargs.pop("metadata", {}), "pattern": IN_A_PATH}
        super().__init__(max_length, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text.startswith("/") or CONTROL.search(text):
            raise ValidationError(
                "Must not start with '/' or contain control characters: it names a resource in URLs."
            )
        return text


class Choice(Text):
    """A string from a fixed list."""

    def __init__(self, choices: tuple[str, ...] | list[str], **kwargs: Any) -> None:
        super().__init__(max(len(c) for c in choices), **kwargs)
        self.validators.append(validate.OneOf(choices))


class Pattern(validate.Regexp):
    """`Regexp` that must match the whole value, as JSON Schema's `pattern` with ^...$ does."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Timestamp(fields.DateTime):
    """An RFC 3339 timestamp with an offset (`Z` or `±hh:mm`); dumped in RFC 3339 too.

    `earliest` bounds what a brand may date an event to: trust decays over event time, and an
    event dated centuries before the rest would ask the arithmetic for more half-lives than it
    can count (domain/trust.py's MAX_HALF_LIVES).
    """

    default_error_messages = {  # noqa: RUF012 (marshmallow's class attribute)
        "invalid": "Not an RFC 3339 timestamp with an offset, like 2026-01-31T09:30:00Z.",
    }

    def __init__(self, *, earliest: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)
        self.earliest = earliest

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        shape = RFC3339.fullmatch(value) if isinstance(value, str) else None
        if shape is None:
            raise self.make_error("invalid")
        text = value.upper().replace("Z", "+00:00")
        if shape["fraction"] and len(shape["fraction"]) > 7:  # Python keeps microseconds
            text = text.replace(shape["fraction"], shape["fraction"][:7], 1)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            if shape["second"] == "60":  # RFC 3339's leap second: no datetime holds it
                raise ValidationError(LEAP_SECOND) from None
            raise self.make_error("invalid") from None
        try:
            moment.astimezone(UTC)  # an offset that pushes it past year 1 or 9999 fails here
        except OverflowError:
            raise ValidationError(BEYOND_THE_CALENDAR) from None
        if self.earliest is not None and moment < self.earliest:
            raise ValidationError(f"Must not be before {self.earliest.isoformat()}.")
        return moment


class StrictBoolean(fields.Boolean):
    """true or false, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictInteger(fields.Integer):
    """A JSON integer: not a boolean, not a float, not a string."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid", input=value)
        result: int = super()._deserialize(value, attr, data, **kwargs)
        return result


class PlainQuery(fields.Field):  # type: ignore[type-arg]
    """A number in a query string in the ASCII digits only (`PLAIN`): not the sign, spaces,
    underscores or other scripts' digits that Python's int() and float() also read (" 1", "+5",
    "0_1" as 1.0, a fullwidth or an Arabic-Indic 3), which the document's number does not allow."""

    PLAIN: re.Pattern[str]

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or self.PLAIN.fullmatch(value) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(PlainQuery, fields.Integer):
    PLAIN = re.compile("[0-9]+")
    default_error_messages = {  # noqa: RUF012 (marshmallow's class attribute)
        "invalid": "Not a whole number in the digits 0-9, like 50.",
    }


class QueryNumber(PlainQuery, fields.Float):
    PLAIN = re.compile("[0-9]+(?:[.][0-9]+)?")
    default_error_messages = {  # noqa: RUF012 (marshmallow's class attribute)
        "invalid": "Not a number in the digits 0-9 with a decimal point, like 0.4.",
    }


class Cursor(fields.Field[str]):
    """An opaque page position: one that `decode` reads (it raises BadCursor for any other)."""

    def __init__(self, decode: Callable[[str], object], longest: int = 64, **kwargs: Any) -> None:
        metadata = {"type": "string", "minLength": 1, "maxLength": longest}
        super().__init__(metadata={**metadata, **kwargs.pop("metadata", {})}, **kwargs)
        self.decode, self.longest = decode, longest

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and 0 < len(value) <= self.longest:
            with suppress(BadCursor):
                self.decode(value)
                return value
        raise ValidationError("Not a cursor this API gave out.")


def next_page_cursor(decode: Callable[[str], object], longest: int = 64) -> Cursor:
    """A page's `next_cursor`, as `decode` reads it."""
    return Cursor(
        decode,
        longest,
        required=True,
        allow_none=True,
        metadata={"description": "null on the last page."},
    )


def plain(value: Any) -> Any:
    """`value` in JSON's types, timestamps as RFC 3339 (Flask would write them as HTTP dates)."""
    if type(value) in _SCALARS:  # most values: told apart at once
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


_SCALARS = frozenset({float, int, str, bool, type(None)})


class PlainDict(fields.Dict):
    """An object dumped as it is, timestamps as RFC 3339."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else plain(value)


class PlainList(fields.List):  # type: ignore[type-arg]
    """A list of objects dumped as they are, timestamps as RFC 3339; documented as a list of
    `items` (by default, of objects).

    Where the domain builds each item in exactly the documented shape, this spares marshmallow's
    dispatch per item and per field: a decision's seven reasons took 20 of the 35 µs of its dump.
    """

    def __init__(self, items: fields.Field[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(items or fields.Dict(), **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else plain(value)


class StrictNumber(fields.Float):
    """A JSON number: not a boolean, not a string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        result: float = super()._deserialize(value, attr, data, **kwargs)
        return result
