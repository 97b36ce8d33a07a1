"""A relationship snapshot's items in columns read back as the items they were, in their order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.relationship import Relationship
from domain.snapshots import ItemsInColumns, PackedItems, RelationshipSnapshot, packed
from domain.transcoder import OrjsonTranscoder
from tests.unit.test_transcoder import registered

TRANSCODER = registered(OrjsonTranscoder())
PARIS = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

times = st.datetimes(timezones=st.sampled_from([UTC, PARIS])) | st.datetimes()  # or naive
numbers = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)
fields = {  # each field holds one kind of value, or None, as an item's do
    "status": st.text(max_size=6),
    "at": times,
    "opened_at": times | st.none(),
    "event_id": st.text(max_size=3) | st.none(),
    "n": numbers | st.none(),
}
item = st.lists(st.sampled_from(list(fields)), unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: fields[key] for key in keys})
)
items = st.fixed_dictionaries(
    {kind: st.dictionaries(st.text(max_size=4), item, max_size=6) for kind in ("push", "case")}
)


def read_back(found: dict[str, Any]) -> Any:
    """The items as a snapshot writes them (in columns) and reads them."""
    data = packed(found)
    assert data is not None
    return TRANSCODER.decode(TRANSCODER.encode({"items": PackedItems(data)}))["items"]


def in_order(found: dict[str, Any]) -> list[Any]:
    """Items, keys and values in their order, with each time's offset (== ignores all three)."""
    return [
        (kind, item_id, [(key, value, getattr(value, "tzinfo", None)) for key, value in i.items()])
        for kind, by_id in found.items()
        for item_id, i in by_id.items()
    ]


@given(items)
def test_any_items_read_back_as_they_were(found: dict[str, Any]) -> None:
    assert in_order(read_back(found)) == in_order(found)


def test_columns_that_merely_compare_equal_are_kept_apart() -> None:
    """1 == True, and one moment in two time zones compares equal: neither is written as the
    other; an item's times that are one object are written once."""
    at = T0
    found = {
        "push": {
            "p1": {"n": 1, "flag": True, "at": at, "opened_at": at, "local": at.astimezone(PARIS)},
            "p2": {"n": 0, "flag": False, "at": T0, "opened_at": T0, "local": T0},
        }
    }
    assert in_order(read_back(found)) == in_order(found)
    data = packed(found)
    assert data is not None
    [[keys, count, times, columns]] = data["push"][2]
    assert (keys, count, times) == (["n", "flag", "at", "opened_at", "local"], 2, [2, 3, 4])
    assert columns[3] == 2, "opened_at: the very objects of `at`"
    assert isinstance(columns[4], list), "local: equal moments, another time zone"


def test_items_holding_other_values_are_written_as_dicts() -> None:
    relationship = Relationship("brand-s", "cust-s")
    relationship.items["offer"]["o1"] = {"status": "open", "claims": ["cheapest"], "at": T0}
    snapshot = RelationshipSnapshot.take(relationship)
    assert snapshot.state["items"] == relationship.items
    assert TRANSCODER.decode(TRANSCODER.encode(snapshot.state))["items"] == relationship.items


def test_a_relationship_snapshot_writes_its_times_as_text_in_columns() -> None:
    relationship = Relationship("brand-s", "cust-s")
    relationship.items["case"]["c1"] = {"status": "answered", "at": T0, "event_id": "e1"}
    snapshot = Relationship.Snapshot.take(relationship)
    assert isinstance(snapshot, RelationshipSnapshot)
    assert isinstance(snapshot.state["items"], PackedItems)
    stored = TRANSCODER.encode({"items": snapshot.state["items"]})
    assert ItemsInColumns.name.encode() in stored and b"datetime_iso" not in stored
    assert TRANSCODER.decode(stored)["items"] == relationship.items
