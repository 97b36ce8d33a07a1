"""The API's schemas agree with the domain's catalogue, and parse as strictly as they document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from api.schemas.events import DATA, EVENTS, BatchSchema, EventSchema
from api.schemas.fields import Cursor, StrictBoolean, StrictInteger, Text, Timestamp
from api.schemas.gate import DecisionSchema, ReasonSchema
from api.schemas.reads import TimelineQuery
from domain.brand import Policy
from domain.gate import RULES, evaluate
from domain.relationship import CATALOGUE, POSTABLE_TYPES, Relationship
from projections import paging
from projections.decisions import findings_cursor
from projections.paging import BadCursor
from projections.relationships import customers_cursor
from projections.timeline import decode_cursor, encode_cursor
from tests.gate_factories import NOON, grant, push, scores


@pytest.mark.parametrize("type_", POSTABLE_TYPES)
def test_each_type_has_a_data_schema_with_the_domains_fields(type_: str) -> None:
    schema = DATA[type_]()
    event = CATALOGUE[type_]
    assert set(schema.fields) == set(event.data_fields())
    assert {n for n, f in schema.fields.items() if f.required} == set(event.required_fields())


def test_only_postable_types_have_schemas() -> None:
    assert set(DATA) == set(EVENTS) == set(POSTABLE_TYPES)


def loads(field: Any, value: Any) -> Any:
    return Schema.from_dict({"v": field})().load({"v": value})["v"]


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31T09:30:00Z", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        ("2026-01-31t09:30:00z", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        (
            "2026-01-31T09:30:00.123456789+01:00",
            datetime(2026, 1, 31, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        ),
        (
            "2026-01-31T09:30:00-05:30",
            datetime(2026, 1, 31, 9, 30, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
    ],
)
def test_timestamps_are_rfc_3339(text: str, moment: datetime) -> None:
    assert loads(Timestamp(), text) == moment


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31T09:30:00",
        "2026-01-31 09:30:00Z",
        "2026-01-31",
        "20260131T093000Z",
        "2026-01-31T09:30Z",
        "2026-13-01T00:00:00Z",
        "2026-01-31T09:30:00+25:00",
        "9999-12-31T23:59:59-01:00",
        "2026-01-31T09:30:00Z\n",
        1700000000,
        None,
    ],
)
def test_anything_else_is_not_a_timestamp(text: Any) -> None:
    with pytest.raises(ValidationError):
        loads(Timestamp(), text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2016-12-31T23:59:60Z", "leap second"),
        ("2016-12-31T18:59:60-05:00", "leap second"),
        ("9999-12-31T23:59:59-01:00", "after 9999"),
        ("0001-01-01T00:30:00+01:00", "before year 1"),
    ],
)
def test_a_valid_rfc_3339_time_python_cannot_hold_is_refused_for_what_it_is(
    text: str, said: str
) -> None:
    """They were answered "Not an RFC 3339 timestamp", which they are."""
    with pytest.raises(ValidationError, match=said) as refused:
        loads(Timestamp(), text)
    assert "Not an RFC 3339" not in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (StrictBoolean(), 1),
        (StrictBoolean(), "true"),
        (StrictBoolean(), None),
        (StrictInteger(), True),
        (StrictInteger(), 1.0),
        (StrictInteger(), "1"),
        (Text(3), ""),
        (Text(3), "abcd"),
        (Text(3), "\ud800"),
        (Text(3), 1),
    ],
)
def test_fields_take_only_their_json_type(field: Any, value: Any) -> None:
    with pytest.raises(ValidationError):
        loads(field, value)


def test_a_cursor_is_one_the_timeline_gave_out() -> None:
    token = encode_cursor(42)
    assert loads(Cursor(decode_cursor), token) == token
    too_far, no_int = encode_cursor(2**63), encode_cursor(True)
    for forged in ("", "42", too_far, no_int, "?" * 10, token + "A" * 64):
        with pytest.raises(ValidationError):
            loads(Cursor(decode_cursor), forged)


def test_a_findings_cursor_is_a_time_and_a_push_id_and_a_resends_sequence() -> None:
    token = paging.encode({"after": ["2026-01-01T00:00:00.000000+00:00", "p-1"]})
    assert findings_cursor(token) == ("2026-01-01T00:00:00.000000+00:00", "p-1", None)
    resent = paging.encode({"after": ["2026-01-01T00:00:00.000000+00:00", "p-1", 7]})
    assert findings_cursor(resent) == ("2026-01-01T00:00:00.000000+00:00", "p-1", 7)
    for forged in (
        encode_cursor(42),
        paging.encode({"after": ["2026", "p", "x"]}),
        paging.encode({"after": ["2026", "p", -1]}),
        paging.encode({"after": ["2026", "p", True]}),
        paging.encode({"after": ["2026", "p", 2**63]}),
        paging.encode({"after": ["2026", "p", 1, 2]}),
        paging.encode({"after": [1, "p"]}),
        paging.encode({"after": ["2026", "p" * 129]}),
        paging.encode({"after": ["2026", "p"], "by": "last_at"}),
        paging.encode(["2026", "p"]),  # type: ignore[arg-type]
    ):
        with pytest.raises(BadCursor):
            findings_cursor(forged)


@pytest.mark.parametrize(
    "after",
    [[0.5, "r" * 37], [1.5, "r"], [True, "r"], ["0.5", "r"], [0.5], [0.5, None]],
)
def test_a_customers_cursor_is_a_score_and_an_id_of_the_same_order(after: list[Any]) -> None:
    assert customers_cursor(paging.encode({"by": "honesty", "after": [0.5, "r"]}), "honesty")
    with pytest.raises(BadCursor):
        customers_cursor(paging.encode({"by": "consistency", "after": [0.5, "r"]}), "honesty")
    with pytest.raises(BadCursor):
        customers_cursor(paging.encode({"by": "honesty", "after": after}), "honesty")


def test_the_timeline_query_defaults_to_50() -> None:
    assert TimelineQuery().load({}) == {"limit": 50}


def test_an_event_is_loaded_by_its_types_schema() -> None:
    event = {
        "event_id": "e",
        "type": "advice.rated",
        "customer": "c",
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"advice_id": "a", "helpful": True},
    }
    assert EventSchema().load(event).data == {"advice_id": "a", "helpful": True}
    with pytest.raises(ValidationError) as error:
        EventSchema().load({**event, "data": {"advice_id": "a", "helpful": True, "rating": 1}})
    assert error.value.messages == {"data": {"rating": ["Unknown field."]}}
    with pytest.raises(ValidationError) as error:
        BatchSchema().load({"events": [event, {**event, "type": "x"}]})
    assert list(error.value.messages["events"]) == [1]  # type: ignore[call-overload]


@pytest.mark.parametrize("hour", [12, 23])  # allowed at noon; quiet hours at 23:00
@pytest.mark.parametrize("consent", [True, False])
def test_a_decision_dumps_its_reasons_as_the_reason_schema_documents_them(
    hour: int, consent: bool
) -> None:
    """The reasons are dumped as the domain built them (PlainList): the same as the schema."""
    relationship = Relationship("brand-a", "cust-1")
    if consent:
        relationship.record(grant())
    now = NOON.replace(hour=hour)
    decision = evaluate(relationship, scores(), Policy.default("brand-a"), push(), now)
    dumped = DecisionSchema().dump(decision)
    assert dumped["reasons"] == ReasonSchema(many=True).dump(decision["reasons"])
    assert [r["rule"] for r in dumped["reasons"]] == list(RULES)
    quiet = dumped["reasons"][-1]
    assert ("retry_after" in quiet) == (hour == 23)
    if hour == 23:
        assert Timestamp().deserialize(quiet["retry_after"]) > now
        assert dumped["outcome"] == ("defer" if consent else "deny")
