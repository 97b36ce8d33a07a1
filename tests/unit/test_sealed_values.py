"""The read models' sealed values: deterministic, and bound to their relationship, row and column."""

from __future__ import annotations

import os
import uuid

import pytest

from domain.relationship import ERASED
from domain.shredding import SEALED_VALUE, CustomerKey, TamperedPersonalData
from projections.personal import opened, personal_data, seal

RID = uuid.uuid4()


def key(rid: uuid.UUID = RID, secret: bytes = b"k" * 32, brand: str = "acme") -> CustomerKey:
    return CustomerKey(brand, rid, secret)


def test_a_value_seals_to_the_same_text_each_time_and_opens_as_it_was() -> None:
    sealed = key().seal_value("Ada Lovelace", "actor", 3)
    assert sealed == key().seal_value("Ada Lovelace", "actor", 3), "a rebuild writes the same"
    assert sealed.startswith(SEALED_VALUE) and "Ada" not in sealed
    assert key().open_value(sealed, "actor", 3) == "Ada Lovelace"
    assert key().open_value(key().seal_value("", "actor"), "actor") == ""


@pytest.mark.parametrize(
    ("opener", "column", "row"),
    [
        (key(), "summary", 3),  # another column
        (key(), "actor", 4),  # another row
        (key(rid=uuid.uuid4()), "actor", 3),  # another relationship
        (key(brand="other"), "actor", 3),  # another brand
        (key(secret=os.urandom(32)), "actor", 3),  # another customer's key
    ],
)
def test_a_sealed_value_opens_nowhere_else(opener: CustomerKey, column: str, row: int) -> None:
    sealed = key().seal_value("Ada Lovelace", "actor", 3)
    with pytest.raises(TamperedPersonalData):
        opener.open_value(sealed, column, row)


@pytest.mark.parametrize("sealed", [SEALED_VALUE + "not base64!", SEALED_VALUE + "AAAA"])
def test_a_value_that_is_not_one_sealed_is_refused(sealed: str) -> None:
    with pytest.raises(TamperedPersonalData):
        key().open_value(sealed, "actor")


def test_without_a_key_a_value_is_stored_and_read_as_erased() -> None:
    rid = str(RID)
    assert seal(None, "Ada", "actor") == ERASED
    assert seal(key(), None, "actor") is None
    sealed = seal(key(), "Ada", "actor", 1)
    assert opened({rid: None}, rid, sealed, "actor", 1) == ERASED
    assert opened({rid: key()}, rid, sealed, "actor", 1) == "Ada"
    assert opened({rid: key()}, rid, ERASED, "actor", 1) == ERASED, "masked: read as it is"


def test_only_the_personal_data_fields_are_changed_and_the_event_is_not() -> None:
    request = {"customer": "c-1", "purpose": "marketing"}
    data = {"push_id": "p", "request": request, "decision": {"outcome": "allow"}}
    changed = personal_data("push.decided", data, lambda name, value: f"<{name}:{value}>")
    assert changed == {
        "push_id": "p",
        "request": {"customer": "<request.customer:c-1>", "purpose": "marketing"},
        "decision": {"outcome": "allow"},
    }
    assert request == {"customer": "c-1", "purpose": "marketing"}, "the event's own dict"
    made = {"promise_id": "p1", "summary": "refund", "due_at": "2026-01-01"}
    assert personal_data("promise.made", made, lambda _, __: "x")["summary"] == "x"
