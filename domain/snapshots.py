"""The relationship's snapshot, with its items written in columns.

A relationship's items (its promises, offers, errors, cases, advice and pushes, up to a few
hundred of each) are nearly all of its snapshot: at 100,000 events and 300 decisions, 208 of
210 kB, each push a dict of 12 keys and three datetimes, each datetime written by the library's
transcoder as ``{"_type_": "datetime_iso", "_data_": "..."}``, and read back by a walk over
every key of every item. A process that has not read the relationship yet decodes all of it
before its first command.

:class:`RelationshipSnapshot` writes the items as :class:`ItemsInColumns` instead: the items of
each kind grouped by their keys (their shape: an open promise's, a kept one's), each shape's
values in columns, times as plain ISO text in the columns that hold only times, a column equal
to an earlier one as its index, a column of None as null. :class:`ItemsInColumns` is a
*plain* transcoding (its data holds no ``_type_`` objects), which domain/transcoder.py hands
to it whole, without the walk; it restores every item as it was, keys in their order, items in
theirs. Items holding anything else than text, numbers, booleans, None and datetimes (none do)
are written as before. Snapshots written before (the library's `Snapshot` topic, items as
dicts) still read: the form of the items is in the stored state, not in the code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Transcoding
from eventsourcing.utils import register_topic

Items = dict[str, dict[str, dict[str, Any]]]
"""A relationship's items: kind, item id, the item's fields."""
_TEXT = frozenset({str, type(None)})
_SCALARS = frozenset({str, int, float, bool, type(None)})
_TIMES = frozenset({datetime, type(None)})


class PackedItems:
    """A relationship's items, packed in columns when the snapshot is taken (so the snapshot
    does not hold the aggregate's own dicts, which the next command changes)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class ItemsInColumns(Transcoding):
    """Writes PackedItems as their columns; reads them back as the items they were."""

    type = PackedItems
    name = "trustledger_items_in_columns"
    plain: ClassVar[bool] = True
    """Its data is plain JSON (no `_type_` object inside): domain/transcoder.py decodes it
    without walking it."""

    def encode(self, obj: PackedItems) -> dict[str, Any]:
        return obj.data

    def decode(self, data: dict[str, Any]) -> Items:
        return unpacked(data)


class RelationshipSnapshot(Snapshot):
    """A relationship's snapshot, its items in columns (`ItemsInColumns`)."""

    TOPIC = "trustledger:relationship.snapshot"

    @classmethod
    def take(cls, aggregate: Any) -> RelationshipSnapshot:
        snapshot = super().take(aggregate)
        data = packed(snapshot.state["items"])
        if data is not None:
            snapshot.state["items"] = PackedItems(data)
        return snapshot


register_topic(RelationshipSnapshot.TOPIC, RelationshipSnapshot)


def packed(items: Items) -> dict[str, Any] | None:
    """The items in columns, per kind: their ids in order, the shape of each (None when all
    share one), and each shape as [keys, count, indexes of its time columns, columns]. None when
    an item holds a value of another type than the columns keep."""
    data: dict[str, Any] = {}
    for kind, by_id in items.items():
        numbers: dict[tuple[str, ...], int] = {}
        shapes: list[list[tuple[Any, ...]]] = []
        of = []
        for item in by_id.values():
            keys = tuple(item)
            n = numbers.get(keys)
            if n is None:
                n = numbers[keys] = len(shapes)
                shapes.append([])
            of.append(n)
            shapes[n].append(tuple(item.values()))
        written = [_shape(keys, shapes[n]) for keys, n in numbers.items()]
        if None in written:
            return None
        data[kind] = [list(by_id), of if len(shapes) > 1 else None, written]
    return data


def _shape(keys: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[Any] | None:
    columns: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    times, text = [], []
    for n, column in enumerate(columns):
        types = set(map(type, column))
        if types == {type(None)}:
            columns[n] = None
        elif types <= _TIMES:
            times.append(n)
        elif not types <= _SCALARS:
            return None
        elif types <= _TEXT:
            text.append(n)
    # A column equal to an earlier one is written as its index: times when they are the very
    # same objects (an item's times are mostly its event's one occurred_at; and two equal times
    # may be in two time zones), before each is written out; text when equal.
    _copies(columns, times, lambda a, b: all(map(operator.is_, a, b)))
    for n in times:
        if type(columns[n]) is list:
            columns[n] = _iso(columns[n])
    _copies(columns, text, operator.eq)  # never 1 with True: only text compares
    return [list(keys), len(rows), times, columns]


def _iso(column: list[datetime | None]) -> list[str | None]:
    """Each time as isoformat writes it; in UTC, as orjson writes it, which is the same text ten
    times faster."""
    if all(v is None or v.tzinfo is UTC for v in column):
        written: list[str | None] = orjson.loads(orjson.dumps(column))
        return written
    return [None if v is None else v.isoformat() for v in column]


def _copies(columns: list[Any], among: list[int], same: Callable[[Any, Any], bool]) -> None:
    for i, n in enumerate(among):
        for m in among[:i]:
            if type(columns[m]) is list and same(columns[m], columns[n]):
                columns[n] = m
                break


def unpacked(data: Mapping[str, Any]) -> Items:
    """The items `packed` wrote, each with its keys in their order, in their order."""
    items: Items = {}
    for kind, (ids, of, shapes) in data.items():
        built = [_rows(*shape) for shape in shapes]
        if of is None:
            items[kind] = dict(zip(ids, built[0] if built else (), strict=True))
        else:
            rows = [iter(found) for found in built]
            items[kind] = {item_id: next(rows[s]) for item_id, s in zip(ids, of, strict=True)}
    return items


def _rows(
    keys: list[str], count: int, times: list[int], columns: list[Any]
) -> list[dict[str, Any]]:
    for n, column in enumerate(columns):
        if column is None:
            columns[n] = [None] * count
        elif type(column) is int:
            columns[n] = columns[column]
        elif n in times:
            columns[n] = _times(column)
    if not columns:
        return [{} for _ in range(count)]
    return [dict(zip(keys, values)) for values in zip(*columns)]  # noqa: B905 (as long: one shape)


def _times(column: list[Any]) -> list[datetime | None]:
    parse = datetime.fromisoformat
    if None in column:
        return [None if v is None else parse(v) for v in column]
    return list(map(parse, column))
