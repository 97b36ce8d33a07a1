"""Relationships: one row per brand x customer, with counts and what is open and when it falls due."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from domain.relationship import Interaction, Relationship
from projections.db import Database, parse_timestamp, timestamp, to_json
from projections.readmodel import Page

PROMISE_GRACE = timedelta(hours=24)
"""An open promise counts against the brand 24 h after its due time (DESIGN.md)."""
REPORT_GRACE = timedelta(days=7)
"""A reported error not admitted within 7 days counts against the brand (DESIGN.md)."""

COLUMNS = (
    "relationship_id", "brand", "customer", "sequence", "events", "first_at", "last_at",
    "opened_at", "counts", "open_promises", "open_reports",
)  # fmt: skip
JSON_COLUMNS = ("counts", "open_promises", "open_reports")


class Relationships:
    name = "relationships"
    tables = ("relationships",)

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        table = tables["relationships"]
        ids = {str(event.originator_id) for event in page.events}
        rows = _load(db, table, ids)
        for event in page.events:
            row = rows.get(str(event.originator_id))
            if isinstance(event, Relationship.Opened):
                rows.setdefault(str(event.originator_id), _opened(event))
            elif row is not None and event.originator_version > row["sequence"]:
                _fold(row, event)
        placeholders = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[3:])
        db.executemany(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
            f" ON CONFLICT (relationship_id) DO UPDATE SET {updates}",
            [tuple(to_json(row[c]) if c in JSON_COLUMNS else row[c] for c in COLUMNS) for row in rows.values()],
        )


def _load(db: Database, table: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        found = db.query(
            f"SELECT {', '.join(COLUMNS)} FROM {table}"
            f" WHERE relationship_id IN ({', '.join('?' for _ in chunk)})",
            chunk,
        )
        for values in found:
            row = dict(zip(COLUMNS, values, strict=True))
            for column in JSON_COLUMNS:
                row[column] = json.loads(row[column])
            rows[row["relationship_id"]] = row
    return rows


def _opened(event: Relationship.Opened) -> dict[str, Any]:
    return {
        "relationship_id": str(event.originator_id),
        "brand": event.brand,
        "customer": event.customer,
        "sequence": event.originator_version,
        "events": 0,
        "first_at": None,
        "last_at": None,
        "opened_at": timestamp(event.timestamp),
        "counts": {},
        "open_promises": {},
        "open_reports": {},
    }


def _fold(row: dict[str, Any], event: Interaction) -> None:
    row["sequence"] = event.originator_version
    row["events"] += 1
    row["counts"][event.TYPE] = row["counts"].get(event.TYPE, 0) + 1
    at = timestamp(event.occurred_at)
    row["first_at"] = min(filter(None, [row["first_at"], at]))
    row["last_at"] = max(filter(None, [row["last_at"], at]))
    data = event.data
    if event.TYPE == "promise.made":
        row["open_promises"][data["promise_id"]] = {
            "due_at": timestamp(data["due_at"]),
            "overdue_at": timestamp(data["due_at"] + PROMISE_GRACE),
            "event_id": event.event_id,
        }
    elif event.TYPE in ("promise.kept", "promise.broken", "promise.released"):
        row["open_promises"].pop(data["promise_id"], None)
    elif event.TYPE == "error.reported":
        row["open_reports"][data["error_id"]] = {
            "reported_at": at,
            "grace_until": timestamp(event.occurred_at + REPORT_GRACE),
            "event_id": event.event_id,
        }
    elif event.TYPE in ("error.admitted", "error.withdrawn"):
        row["open_reports"].pop(data["error_id"], None)


def relationship_row(db: Database, relationship_id: str) -> dict[str, Any] | None:
    rows = _load(db, "relationships", {relationship_id})
    row = rows.get(relationship_id)
    if row is not None:
        for column in ("first_at", "last_at", "opened_at"):
            row[column] = parse_timestamp(row[column])
    return row


def customers(db: Database, brand: str, *, limit: int = 50, after: str | None = None) -> list[dict[str, Any]]:
    """A brand's relationships, most recently active first."""
    rows = db.query(
        "SELECT relationship_id, customer, events, first_at, last_at FROM relationships"
        " WHERE brand = ? ORDER BY last_at DESC, relationship_id LIMIT ?",
        [brand, limit],
    )
    return [
        {"customer": c, "events": n, "first_at": parse_timestamp(f), "last_at": parse_timestamp(last)}
        for _, c, n, f, last in rows
    ]


