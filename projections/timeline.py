"""The timeline: one row per interaction, newest first, for agents, compliance and the API."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from domain.relationship import Interaction, masked, relationship_id
from domain.shredding import CustomerKey
from domain.timeline import summarise
from projections import paging
from projections.db import Database, parse_timestamp, timestamp, to_json
from projections.paging import BadCursor, ListPage
from projections.personal import is_sealed, opened, personal_data, quotes_personal_data, seal
from projections.readmodel import Page


class Timeline:
    name = "timeline"
    tables: tuple[str, ...] = ("timeline",)
    personal_topics: frozenset[str] | None = None  # actors, summaries: the whole event

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        keys = page.keys
        rows = [
            _row(position, event, page.brand(event.originator_id), keys(event.originator_id))
            for position, event in page.interactions
        ]
        db.executemany(
            f"INSERT INTO {tables['timeline']} (relationship_id, sequence, brand, event_id, type,"
            " occurred_at, recorded_at, actor, channel, summary, data, position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )
        for erased in page.erased:
            _mask(db, tables["timeline"], str(erased.originator_id))


def _row(position: int, event: Interaction, brand: str, key: CustomerKey | None) -> tuple[Any, ...]:
    """The event's row: its actor, personal data fields and (when it may quote them) summary
    sealed with the customer's key (projections/personal.py); without a key (erased) they read
    "[erased]", as masked."""
    type_, sequence = event.TYPE, event.originator_version
    data = personal_data(
        type_, event.data, lambda name, value: seal(key, value, f"data.{name}", sequence)
    )
    summary = summarise(type_, event.data if key is not None else data)
    return (
        str(event.originator_id),
        sequence,
        brand,
        event.event_id,
        type_,
        timestamp(event.occurred_at),
        timestamp(event.timestamp),
        seal(key, event.actor, "actor", sequence),
        event.channel,
        key.seal_value(summary, "summary", sequence)
        if key is not None and quotes_personal_data(type_)
        else summary,
        to_json(data),
        position,
    )


def _mask(db: Database, table: str, rid: str) -> None:
    """The customer's rows as the log now reads them: personal fields "[erased]", summaries too."""
    rows = db.query(
        f"SELECT sequence, type, actor, data FROM {table} WHERE relationship_id = ?", [rid]
    )
    for sequence, type_, actor, data in rows:
        fields = masked(type_, {"actor": actor, **json.loads(data)})
        actor = fields.pop("actor")
        db.execute(
            f"UPDATE {table} SET actor = ?, summary = ?, data = ? WHERE relationship_id = ? AND sequence = ?",
            [actor, summarise(type_, fields), to_json(fields), rid, sequence],
        )


def encode_cursor(sequence: int) -> str:
    return paging.encode({"before": sequence})


def decode_cursor(cursor: str) -> int:
    """The sequence in a cursor encode_cursor made; BadCursor for anything else."""
    before = paging.decode(cursor, "before")["before"]
    # A sequence both stores can compare: not true (an int to Python), nor past a bigint.
    if type(before) is not int or not 0 < before < 2**63:
        raise BadCursor("cursor is not valid")
    return before


def has_relationship(
    db: Database, brand: str, customer: str, as_of: datetime | None = None
) -> bool:
    """Whether the brand had this customer (at record time `as_of`): a relationship opens with
    its first event, so it has a timeline row. The relationship id is derived from the brand, so
    it alone selects the brand's rows (timeline_page says why nothing else is asked)."""
    found = db.scalar(
        "SELECT 1 FROM timeline WHERE relationship_id = ? AND recorded_at <= ? LIMIT 1",
        [str(relationship_id(brand, customer)), timestamp(as_of) if as_of else "9999"],
    )
    return found is not None


def timeline_page(
    db: Database,
    brand: str,
    customer: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    types: Sequence[str] = (),
    as_of: datetime | None = None,
) -> ListPage:
    """A relationship's events newest first; the cursor stays valid while new events arrive.

    The relationship's id is derived from the brand, so it selects the brand's rows alone. With
    `brand = ?` besides, statistics taken before the brand had many rows made PostgreSQL search
    the brand's index and filter all its rows (tests/integration/test_query_plans.py)."""
    where = ["relationship_id = ?"]
    params: list[Any] = [str(relationship_id(brand, customer))]
    if cursor:
        where.append("sequence < ?")
        params.append(decode_cursor(cursor))
    if types:
        where.append(f"type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    if as_of is not None:
        where.append("recorded_at <= ?")
        params.append(timestamp(as_of))
    rows = db.query(
        "SELECT sequence, event_id, type, occurred_at, recorded_at, actor, channel, summary, data"
        f" FROM timeline WHERE {' AND '.join(where)} ORDER BY sequence DESC LIMIT ?",
        [*params, limit + 1],
    )
    rid = params[0]
    keys = db.keys_for([rid]) if rows else {}
    items = [_item(row, rid, keys) for row in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return ListPage(items, next_cursor)


def _item(
    row: Sequence[Any], rid: str, keys: Mapping[str, CustomerKey | None] | None
) -> dict[str, Any]:
    """A row as the timeline shows it: its sealed values opened with the customer's key, or,
    once that is destroyed, read "[erased]" (and the summary made of them), as masked."""
    sequence, event_id, type_, occurred_at, recorded_at, actor, channel, summary, data = row
    fields = personal_data(
        type_,
        json.loads(data),
        lambda name, value: opened(keys, rid, value, f"data.{name}", sequence),
    )
    if is_sealed(summary) and keys is not None and keys.get(rid) is None:
        summary = summarise(type_, fields)  # its fields read "[erased]": as the masking writes it
    else:
        summary = opened(keys, rid, summary, "summary", sequence)
    return {
        "event_id": event_id,
        "type": type_,
        "sequence": sequence,
        "occurred_at": parse_timestamp(occurred_at),
        "recorded_at": parse_timestamp(recorded_at),
        "actor": opened(keys, rid, actor, "actor", sequence),
        "channel": channel,
        "summary": summary,
        "data": fields,
    }
