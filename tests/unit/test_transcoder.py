"""The orjson transcoder writes and reads back exactly what the library's JSONTranscoder does."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

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

from domain.application import Ledger
from domain.relationship import Relationship
from domain.snapshots import ItemsInColumns
from domain.storage import Store
from domain.transcoder import OrjsonTranscoder
from tests.factories import story
from tests.gate_factories import NOON, grant, push, scores


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    """The transcodings the ledger registers (`Ledger.register_transcodings`)."""
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr(), ItemsInColumns()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = registered(JSONTranscoder())
FAST = registered(OrjsonTranscoder())

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
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_any_value_reads_back_as_the_library_reads_it(value: Any) -> None:
    stored = LIBRARY.encode({"value": value})
    assert FAST.decode(stored) == LIBRARY.decode(stored)


def held(value: Any) -> bool:
    """Whether an event's state may hold the value below its top level."""
    return not isinstance(value, UUID) and (not isinstance(value, float) or math.isfinite(value))


unheld = st.one_of(st.uuids(), st.sampled_from([math.nan, math.inf, -math.inf]), st.just(2**70))
"""What an event's state never holds below its top level, and orjson writes otherwise (a UUID as
a string, a number that is not finite as null) or refuses (an integer past 64 bits)."""
state_values = st.recursive(
    scalars.filter(held),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), state_values | unheld, max_size=6))
def test_any_state_is_written_as_the_library_writes_it(state: dict[str, Any]) -> None:
    written, expected = FAST.encode(state), LIBRARY.encode(state)
    assert LIBRARY.decode(written) == LIBRARY.decode(expected) or _not_finite(state)
    assert FAST.decode(written) == FAST.decode(expected) or _not_finite(state)


def _not_finite(state: dict[str, Any]) -> bool:
    return any(isinstance(v, float) and not math.isfinite(v) for v in state.values())


def test_every_event_and_snapshot_of_a_relationship_is_written_as_the_library_writes_it() -> None:
    """Byte for byte: the states the ledger writes hold no float orjson spells otherwise."""
    ledger = Ledger(Store.from_url("memory://"))
    brand = "brand-1"
    ledger.record_batch(brand, [*story(), grant()])
    ledger.decide_push(brand, push(), scores(), NOON)
    relationship = ledger.relationship(brand, "cust-1")
    states = [_state(event) for event in ledger.events.get(relationship.id)]
    snapshot = _state(Relationship.Snapshot.take(relationship))
    for state in [*states, snapshot]:
        assert ledger.mapper.transcoder.encode(state) == LIBRARY.encode(state)
        assert FAST.decode(LIBRARY.encode(state)) == LIBRARY.decode(LIBRARY.encode(state))


def _state(event: Any) -> dict[str, Any]:
    state = dict(vars(event))
    del state["originator_id"], state["originator_version"]
    return state


def test_an_event_state_reads_back_whole() -> None:
    state = {
        "timestamp": datetime.now(UTC),
        "originator": uuid4(),
        "data": {
            "due_at": datetime(2026, 1, 2, tzinfo=UTC),
            "amounts": [Decimal("1.50"), {"n": 2}],
        },
        "_personal": {"fields": ["actor"], "sealed": "abc"},
        "looks_typed": {"_type_": "not", "extra": 1, "third": 2},
    }
    assert FAST.decode(LIBRARY.encode(state)) == state


def test_a_state_orjson_cannot_write_is_written_by_the_library_encoder() -> None:
    for state in ({"id": uuid4(), "n": 1}, {"big": 2**70}):
        assert FAST.encode(state) == LIBRARY.encode(state)


def test_text_orjson_refuses_is_read_by_the_library_decoder() -> None:
    stored = LIBRARY.encode({"nan": float("nan"), "big": 2**70})
    decoded = FAST.decode(stored)
    assert math.isnan(decoded["nan"]) and decoded["big"] == 2**70


def test_an_unregistered_type_is_refused_as_the_library_refuses_it() -> None:
    with pytest.raises(TypeError):
        LIBRARY.encode({"v": {1, 2}})
    with pytest.raises(TypeError):
        FAST.encode({"v": {1, 2}})
    stored = b'{"v": {"_type_": "mystery", "_data_": "x"}}'
    with pytest.raises(TranscodingNotRegisteredError):
        LIBRARY.decode(stored)
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.decode(stored)
