"""Relationships: one row per brand x customer, with counts, what is open and when it falls due,
and trust: each relationship's evidence and P per dimension, and each brand's evidence.

Trust evidence is judged here as the relationship judges it (domain/trust.py), event by event,
from the promise or error as it stood before the event. A relationship's stored P is its score
at its last interaction, with the brand's P at that moment as base rate: it ranks customers
("lowest honesty first"); the trust endpoints evaluate afresh at the time asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from domain import trust
from domain.relationship import ERASED, Interaction, Relationship
from projections import paging
from projections.db import Database, parse_timestamp, timestamp, to_json
from projections.personal import is_sealed, opened, seal
from projections.readmodel import Page

COLUMNS = (
    "relationship_id", "brand", "customer", "sequence", "events", "first_at", "last_at",
    "opened_at", "counts", "open_promises", "open_reports", "evidence",
    "consistency", "honesty", "expertise",
)  # fmt: skip
JSON_COLUMNS = ("counts", "open_promises", "open_reports", "evidence")
DIMENSIONS = trust.DIMENSIONS
CHECKPOINT_EVERY = 10_000
"""Log positions between a brand's trust checkpoints (at most one per brand per span, and none
where the brand had no event): what a replay "as of" a record time folds at most, besides the
rows recorded since its checkpoint (projections/trust.py)."""


class Relationships:
    name = "relationships"
    tables: tuple[str, ...] = ("relationships", "brand_trust", "brand_trust_checkpoints")
    personal_topics: frozenset[str] | None = frozenset([Relationship.Opened.TOPIC])  # customer

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        ids = {event.originator_id for event in page.events}
        rows = _load(db, tables["relationships"], {str(rid) for rid in ids})
        brands, marks = _load_brands(db, tables["brand_trust"], {page.brand(rid) for rid in ids})
        rated: dict[str, dict[str, Any]] = {}
        checkpoints: list[dict[str, Any]] = []
        for position, event in zip(page.positions, page.events, strict=True):
            rid = str(event.originator_id)
            if isinstance(event, Relationship.Opened):
                if rid not in rows:
                    rows[rid] = _opened(event, page.keys(event.originator_id))
            elif (
                isinstance(event, Interaction)
                and rid in rows
                and event.originator_version > rows[rid]["sequence"]
            ):
                row = rows[rid]
                brand, mark = row["brand"], marks[row["brand"]]
                if mark.passes(position):
                    table = tables["relationships"]
                    checkpoints.append(_checkpoint(db, table, brand, mark, brands[brand], rows))
                pieces = fold(row, event)
                if pieces:
                    brands[brand] = trust.with_pieces(brands[brand], pieces)
                # Every event moves the row's last interaction, so its P, whatever it carries:
                # derived evidence arises with time, and the brand's P is its base rate.
                rated[rid] = brands[brand]
                mark.note(position, cast(str, timestamp(event.timestamp)))
        # Each row as its last event in the page left it (no later one of the page changes it),
        # on the brand's evidence as that event left it.
        for rid, brand_evidence in rated.items():
            _score(rows[rid], _moment(rows[rid], brand_evidence))
        for erased in page.erased:
            if str(erased.originator_id) in rows:
                rows[str(erased.originator_id)]["customer"] = ERASED
        _save(db, tables["relationships"], COLUMNS, rows.values(), "relationship_id")
        _save(
            db,
            tables["brand_trust"],
            ("brand", "evidence", "last_position", "recorded_until"),
            [{"brand": b, "evidence": e, **marks[b].columns()} for b, e in brands.items()],
            "brand",
        )
        _save(
            db,
            tables["brand_trust_checkpoints"],
            ("brand", "position", "recorded_until", "evidence", "open_items"),
            checkpoints,
            "brand, position",
        )


@dataclass
class Mark:
    """Where a brand's events stand in the log: its latest event's position, and the latest
    record time among all its events (so a checkpoint knows the record times it covers)."""

    last: int | None
    recorded_until: str | None

    def passes(self, position: int) -> bool:
        """Whether the brand's event at `position` is its first past a multiple of
        CHECKPOINT_EVERY (none for its very first event: nothing came before it)."""
        return (
            self.last is not None and self.last // CHECKPOINT_EVERY < position // CHECKPOINT_EVERY
        )

    def note(self, position: int, recorded_at: str) -> None:
        self.last = position
        if self.recorded_until is None or recorded_at > self.recorded_until:
            self.recorded_until = recorded_at

    def columns(self) -> dict[str, Any]:
        return {"last_position": self.last, "recorded_until": self.recorded_until}


def _checkpoint(
    db: Database,
    table: str,
    brand: str,
    mark: Mark,
    evidence: dict[str, Any],
    rows: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The brand's trust as it stands after its latest event, at `mark.last` (the position it is
    kept under), before one past a multiple of CHECKPOINT_EVERY: its evidence and its
    relationships' open items (those this page holds, as folded so far; the others as stored),
    which are all that a replay of its later rows reads. Written as JSON at once, as the page's
    later events change the rows in place."""
    open_items = {rid: held for rid, held in _held_open(db, table, brand) if rid not in rows}
    for rid, row in rows.items():
        if row["brand"] == brand and (row["open_promises"] or row["open_reports"]):
            open_items[rid] = {
                "open_promises": row["open_promises"],
                "open_reports": row["open_reports"],
            }
    return {
        "brand": brand,
        "position": mark.last,
        "recorded_until": mark.recorded_until,
        "evidence": to_json(evidence),
        "open_items": to_json(open_items),
    }


def _save(
    db: Database, table: str, columns: tuple[str, ...], rows: Iterable[dict[str, Any]], key: str
) -> None:
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    db.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}",
        [tuple(_stored(row[c]) for c in columns) for row in rows],
    )


def _stored(value: Any) -> Any:
    """A column's value: objects and lists as JSON (JSON_COLUMNS), the rest as they are."""
    return to_json(value) if isinstance(value, dict | list) else value


def _load(db: Database, table: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for values in db.query_in(f"SELECT {', '.join(COLUMNS)} FROM {table}", "relationship_id", ids):
        row = dict(zip(COLUMNS, values, strict=True))
        for column in JSON_COLUMNS:
            row[column] = json.loads(row[column])
        row["evidence"] = load_evidence(row["evidence"])
        rows[row["relationship_id"]] = row
    return rows


def _load_brands(
    db: Database, table: str, brands: set[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Mark]]:
    """The brands' evidence, and where their events stand (new brands: none yet)."""
    evidence = {brand: trust.empty_evidence() for brand in brands}
    marks = {brand: Mark(None, None) for brand in brands}
    select = f"SELECT brand, evidence, last_position, recorded_until FROM {table}"
    for brand, stored, last, recorded_until in db.query_in(select, "brand", brands):
        evidence[brand] = load_evidence(json.loads(stored))
        marks[brand] = Mark(last, recorded_until)
    return evidence, marks


def load_evidence(stored: dict[str, Any]) -> dict[str, Any]:
    """Evidence as stored in JSON, with its times made datetimes again."""
    stored["at"] = parse_timestamp(stored["at"]) if isinstance(stored["at"], str) else stored["at"]
    for kept in stored["dimensions"].values():
        for entry in kept["top"]:
            if isinstance(entry["at"], str):
                entry["at"] = datetime.fromisoformat(entry["at"])
    return stored


def _opened(event: Relationship.Opened, key: Any) -> dict[str, Any]:
    """A new relationship's row: its customer reference sealed with the customer's key."""
    return {
        "relationship_id": str(event.originator_id),
        "brand": event.brand,
        "customer": seal(key, event.customer, "customer"),
        "sequence": event.originator_version,
        "events": 0,
        "first_at": None,
        "last_at": None,
        "opened_at": timestamp(event.timestamp),
        "counts": {},
        "open_promises": {},
        "open_reports": {},
        "evidence": trust.empty_evidence(),
        **dict.fromkeys(DIMENSIONS, trust.NEUTRAL_BASE_RATE),
    }


def fold(row: dict[str, Any], event: Any) -> list[trust.Piece]:
    """One event's effect on its relationship's row; returns the trust evidence it carries."""
    type_ = event.TYPE
    row["sequence"] = event.originator_version
    row["events"] += 1
    counts = row["counts"]
    counts[type_] = counts.get(type_, 0) + 1
    at = timestamp(event.occurred_at)
    if row["first_at"] is None or at < row["first_at"]:
        row["first_at"] = at
    if row["last_at"] is None or at > row["last_at"]:
        row["last_at"] = at
    pieces = fold_open_items(row, event)
    if pieces:
        row["evidence"] = trust.with_pieces(row["evidence"], pieces)
    return pieces


def fold_open_items(row: dict[str, Any], event: Any) -> list[trust.Piece]:
    """The trust evidence one event carries, judged by the open item it refers to, and its effect
    on the row's open items: all of `fold` that a brand's trust depends on, and all a row needs
    for it is `open_promises` and `open_reports`."""
    data = event.data
    pieces = (
        trust.evidence_of(event.TYPE, event.event_id, event.occurred_at, data, _item(row, data))
        if trust.carries_evidence(event.TYPE)
        else []
    )
    _fold_open_items(row, event, data)
    return pieces


def _fold_open_items(row: dict[str, Any], event: Any, data: Mapping[str, Any]) -> None:
    if event.TYPE == "promise.made":
        due_at = _datetime(data["due_at"])
        row["open_promises"][data["promise_id"]] = {
            "due_at": timestamp(due_at),
            "overdue_at": timestamp(trust.overdue_at(due_at)),
            "event_id": event.event_id,
        }
    elif event.TYPE in ("promise.kept", "promise.broken", "promise.released"):
        row["open_promises"].pop(data["promise_id"], None)
    elif event.TYPE == "error.reported":
        row["open_reports"][data["error_id"]] = {
            "status": "open",
            "reported_at": timestamp(event.occurred_at),
            "grace_until": timestamp(event.occurred_at + trust.ADMISSION_GRACE),
            "event_id": event.event_id,
        }
    elif (
        event.TYPE in ("error.disputed", "error.confirmed")
        and data["error_id"] in row["open_reports"]
    ):
        row["open_reports"][data["error_id"]]["status"] = event.TYPE.split(".")[1]
    elif event.TYPE in ("error.admitted", "error.withdrawn"):
        row["open_reports"].pop(data["error_id"], None)


def _datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _item(row: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The promise or error report the event refers to, as trust.evidence_of reads it."""
    if "promise_id" in data and data["promise_id"] in row["open_promises"]:
        promise = row["open_promises"][data["promise_id"]]
        return {"status": "open", "due_at": parse_timestamp(promise["due_at"])}
    if "error_id" in data and data["error_id"] in row["open_reports"]:
        return {"status": row["open_reports"][data["error_id"]]["status"]}
    return None


def items(row: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The row's open promises and reports in the shape trust.derived_evidence reads."""
    return {
        "promise": {
            pid: {
                "status": "open",
                "due_at": parse_timestamp(p["due_at"]),
                "event_id": p["event_id"],
            }
            for pid, p in row["open_promises"].items()
        },
        "error": {
            eid: {
                "status": e["status"],
                "opened_at": parse_timestamp(e["reported_at"]),
                "event_id": e["event_id"],
            }
            for eid, e in row["open_reports"].items()
        },
    }


Moment = tuple[datetime, Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]
"""What a row's P is computed from, as it stood after an event: the time, the brand's evidence,
the row's evidence, its open items. Evidence is never changed in place (trust.with_pieces makes
new), so keeping it is a snapshot."""


def _moment(row: Mapping[str, Any], brand_evidence: Mapping[str, Any]) -> Moment:
    at = parse_timestamp(row["last_at"])
    assert at is not None
    return at, brand_evidence, row["evidence"], items(row)


def _score(row: dict[str, Any], moment: Moment) -> None:
    """The row's P per dimension at that moment, on the brand's P then as base rate."""
    at, brand_evidence, evidence, open_items = moment
    rates = trust.projected(brand_evidence, at)
    scores = trust.projected(evidence, at, rates, trust.derived_evidence(open_items, at))
    for name, p in scores.items():
        row[name] = round(p, 12)


def customers(
    db: Database,
    brand: str,
    *,
    below: Mapping[str, float] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> paging.ListPage:
    """A page of a brand's relationships, the lowest first on the first dimension filtered, else
    the most recent, from `cursor` (the `next` of the page before), and the cursor of the page
    after it. `erased` tells an erased customer from a live one the brand
    named "[erased]": the one's reference is masked, or sealed under a destroyed key, the
    other's sealed under a live one."""
    where, params = ["brand = ?"], [cast(Any, brand)]
    for dimension, threshold in (below or {}).items():
        if dimension not in DIMENSIONS:
            raise ValueError(f"no trust dimension named {dimension!r}")
        where.append(f"{dimension} < ?")
        params.append(threshold)
    by = next(iter(below)) if below else "last_at"
    # The latest first or the lowest score first, ties by id the same way: the order of the
    # indexes of migrations 0010 and 0012, which the row comparison then searches.
    direction, after = ("DESC", "<") if by == "last_at" else ("ASC", ">")
    if cursor is not None:
        where.append(f"({by}, relationship_id) {after} (?, ?)")
        params.extend(customers_cursor(cursor, by))
    rows = db.query(
        "SELECT relationship_id, customer, events, first_at, last_at, consistency, honesty, expertise"
        " FROM relationships"
        f" WHERE {' AND '.join(where)} ORDER BY {by} {direction}, relationship_id {direction}"
        " LIMIT ?",
        [*params, limit + 1],
    )
    keys = db.keys_for(row[0] for row in rows[:limit])
    found = [
        {
            "customer": opened(keys, rid, customer, "customer"),
            "erased": _erased(customer, rid, keys),
            "events": events,
            "first_at": parse_timestamp(first),
            "last_at": parse_timestamp(last),
            "consistency": c,
            "honesty": h,
            "expertise": e,
        }
        for rid, customer, events, first, last, c, h, e in rows[:limit]
    ]
    if len(rows) <= limit:
        return paging.ListPage(found, None)
    last = rows[limit - 1]
    key = last[4] if by == "last_at" else last[5 + DIMENSIONS.index(by)]
    return paging.ListPage(found, paging.encode({"by": by, "after": [key, last[0]]}))


def references(db: Database, brand: str, rids: Iterable[str]) -> dict[str, tuple[str, bool]]:
    """The customer reference of each of the brand's relationships among `rids` (one query per
    500), opened with the customer's key, and whether the customer was erased (the reference
    then reads "[erased]"); a relationship the read model does not hold is left out."""
    select = "SELECT relationship_id, brand, customer FROM relationships"
    rows = [(str(rid), customer) for rid, owner, customer in db.query_in(
        select, "relationship_id", sorted(set(rids))
    ) if owner == brand]  # fmt: skip
    keys = db.keys_for(rid for rid, _ in rows)
    return {
        rid: (opened(keys, rid, customer, "customer"), _erased(customer, rid, keys))
        for rid, customer in rows
    }


def _erased(customer: str, rid: str, keys: Mapping[str, Any] | None) -> bool:
    if is_sealed(customer):
        return keys is not None and keys.get(rid) is None
    return customer == ERASED


def customers_cursor(cursor: str, by: str) -> tuple[Any, str]:
    """The sort key and relationship id a customers cursor ends at; BadCursor if it is not one,
    or one of the list in another order."""
    position = paging.decode(cursor, "by", "after")
    after = position["after"]
    if position["by"] != by or not isinstance(after, list) or len(after) != 2:
        raise paging.BadCursor("cursor is not valid for this list")
    key, rid = after
    if by == "last_at":
        key = paging.text(key, 40)
    elif isinstance(key, bool) or not isinstance(key, int | float) or not 0 <= key <= 1:
        raise paging.BadCursor("cursor is not valid")
    return key, paging.text(rid, 36)


def brand_evidence(db: Database, brand: str) -> dict[str, Any]:
    return _load_brands(db, "brand_trust", {brand})[0][brand]


def brand_open_items(db: Database, brand: str) -> list[dict[str, dict[str, dict[str, Any]]]]:
    """The open promises and reports of every relationship of the brand, for derived evidence."""
    return [items(held) for _, held in _held_open(db, "relationships", brand)]


def _held_open(db: Database, table: str, brand: str) -> list[tuple[str, dict[str, Any]]]:
    """The brand's relationships holding a promise or a report open, with them, as stored (by
    the partial index of migration 0010, whose predicate this condition is)."""
    rows = db.query(
        f"SELECT relationship_id, open_promises, open_reports FROM {table} WHERE brand = ?"
        " AND (open_promises <> '{}' OR open_reports <> '{}')",
        [brand],
    )
    return [
        (rid, {"open_promises": json.loads(p), "open_reports": json.loads(r)}) for rid, p, r in rows
    ]
