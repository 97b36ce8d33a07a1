"""The orjson-decoding transcoder reads back exactly what the library's JSONTranscoder does."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from domain.transcoder import OrjsonDecodingTranscoder


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = registered(JSONTranscoder())
FAST = registered(OrjsonDecodingTranscoder())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_any_value_reads_back_as_the_library_reads_it(value: Any) -> None:
    stored = LIBRARY.encode({"value": value})
    assert FAST.decode(stored) == LIBRARY.decode(stored)


def test_an_event_state_reads_back_whole() -> None:
    state = {
        "timestamp": datetime.now(UTC),
        "originator": uuid4(),
        "data": {"due_at": datetime(2026, 1, 2, tzinfo=UTC), "amounts": [Decimal("1.50"), {"n": 2}]},
        "_personal": {"fields": ["actor"], "sealed": "abc"},
        "looks_typed": {"_type_": "not", "extra": 1, "third": 2},
    }
    assert FAST.decode(LIBRARY.encode(state)) == state


def test_text_orjson_refuses_is_read_by_the_library_decoder() -> None:
    stored = LIBRARY.encode({"nan": float("nan"), "big": 2**70})
    decoded = FAST.decode(stored)
    assert math.isnan(decoded["nan"]) and decoded["big"] == 2**70


def test_an_unregistered_type_is_refused_as_the_library_refuses_it() -> None:
    stored = b'{"v": {"_type_": "mystery", "_data_": "x"}}'
    with pytest.raises(TranscodingNotRegisteredError):
        LIBRARY.decode(stored)
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.decode(stored)
