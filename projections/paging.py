"""Page cursors: where a page of a read model's list ended, handed to the client and back.

A page starts after the last row of the page before (keyset paging), never at an offset: a row
added or moved up between two pages would push every row down one, and the next page would
repeat the last row of the one before. A cursor is that last row's sort key as base64url JSON,
opaque to the client; anything this module did not write is a BadCursor.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ListPage:
    """One page of a list, and the cursor of the page after it (None on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


class BadCursor(ValueError):
    """The cursor was not one this API handed out (or one of another list)."""


def encode(position: dict[str, Any]) -> str:
    """A cursor for `position`, a JSON object."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode(cursor: str, *keys: str) -> dict[str, Any]:
    """The position in a cursor `encode` made, with exactly these keys; BadCursor else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        raise BadCursor("cursor is not valid") from None
    if not isinstance(position, dict) or sorted(position) != sorted(keys):
        raise BadCursor("cursor is not valid")
    return position


def text(value: Any, longest: int) -> str:
    """A text sort key of a cursor: a string of at most `longest` characters, with no NUL and
    no lone surrogate (no key the API hands out holds one, and neither store's text can: the
    query failed, a 500; JSON's `\\ud800` escape decodes to one)."""
    if not isinstance(value, str) or len(value) > longest or "\x00" in value:
        raise BadCursor("cursor is not valid")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadCursor("cursor is not valid") from None
    return value
