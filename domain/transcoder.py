"""The library's JSON transcoder, writing and reading with orjson.

Stored events are the JSON text eventsourcing's JSONTranscoder writes, values of other types as
``{"_type_": name, "_data_": ...}``. orjson writes the same text (a float may be spelt
otherwise, 1e-07 as 1e-7) six times faster (a push decision's 1.8 KB: 15 µs with the library's
encoder, 2.5 µs), and parses it three to four times faster, which was four fifths of reading an
event back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding, UUIDAsHex

_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Datetimes and dataclasses go to the library's transcodings, as they do in its encoder."""

_DIRECT: dict[type[Transcoding], Callable[[str], Any]] = {
    DatetimeAsISO: datetime.fromisoformat,
    UUIDAsHex: UUID,
}
"""What the library's own transcodings' decode calls, called without them."""
_CONTAINERS = frozenset({dict, list})
"""What a list is walked for: a long one holding neither (a decision's evidence ids: hundreds,
when the frequency rule counts as many pushes) is looked through in C, not item by item."""
_SHORT = 8
"""A list this long or shorter is walked item by item: looking through it first costs more."""


class OrjsonTranscoder(JSONTranscoder):
    """Encodes and decodes to exactly what JSONTranscoder does, with orjson where it can."""

    def __init__(self) -> None:
        super().__init__()
        self._decoders: dict[str, Callable[[str], Any]] = {}
        self._plain: dict[str, Callable[[Any], Any]] = {}

    def register(self, transcoding: Transcoding) -> None:
        """A transcoding whose class says `plain` writes data holding no `_type_` object (such as
        domain/snapshots.py's items in columns): it is given its data as parsed, unwalked."""
        super().register(transcoding)
        self._decoders[transcoding.name] = _DIRECT.get(type(transcoding), transcoding.decode)
        if getattr(transcoding, "plain", False):
            self._plain[transcoding.name] = transcoding.decode

    def encode(self, obj: Any) -> bytes:
        """orjson's text, which is the library's, except in what the ledger's states never hold
        below their top level: orjson writes a UUID as a plain string (so a state with one at its
        top goes to the library's encoder) and a number that is not finite (NaN, infinity) as null
        (the ledger's numbers are finite: its input is strict JSON, bounded where it is a float).
        What orjson refuses (an integer past 64 bits, a type with no transcoding) goes to the
        library's encoder too, which writes it or raises as it did."""
        if type(obj) is dict and not any(isinstance(value, UUID) for value in obj.values()):
            try:
                return orjson.dumps(obj, default=self._encode_obj, option=_PASSTHROUGH)
            except orjson.JSONEncodeError:
                pass
        return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        """Text orjson refuses (NaN, integers past 64 bits, which Python's json writes and
        reads) is read by the library's decoder."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        return self._revived(parsed)

    def _revived(self, value: Any) -> Any:
        """Each ``_type_`` object, innermost first, becomes its value.

        Most are a datetime or a UUID, {"_type_": ..., "_data_": "text"}, decoded here in one
        call: the snapshot of a relationship 100,000 events long (98 kB, 800 datetimes) reads
        back in 379 µs, against 487 through the library's decoding of each (and 585 with the
        library's transcoder). A plain transcoding's data goes to its decode as parsed,
        unwalked. Any other goes to the library's, its data walked first."""
        if type(value) is dict:
            for key, item in value.items():
                if type(item) is dict:
                    if (
                        len(item) == 2
                        and type(data := item.get("_data_")) is str
                        and (decode := self._decoders.get(item.get("_type_", ""))) is not None
                    ):
                        value[key] = decode(data)
                    elif (
                        len(item) == 2
                        and "_data_" in item
                        and (decode := self._plain.get(item.get("_type_", ""))) is not None
                    ):
                        value[key] = decode(item["_data_"])
                    else:
                        value[key] = self._revived(item)
                elif type(item) is list:
                    value[key] = self._revived(item)
            return self._decode_obj(value) if len(value) == 2 else value
        if type(value) is list and (
            len(value) <= _SHORT or not _CONTAINERS.isdisjoint(map(type, value))
        ):
            for index, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[index] = self._revived(item)
        return value
