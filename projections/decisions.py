"""Pushes: each push's decision by the gate and, when the brand reports it, its sending."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from domain.relationship import PushDecided, masked
from projections import paging
from projections.db import Database, parse_timestamp, timestamp, to_json
from projections.readmodel import Page

DECIDED = (
    "brand", "push_id", "relationship_id", "sequence", "event_id", "decided_at", "recorded_at",
    "outcome", "kind", "purpose", "channel", "retry_after", "policy_version", "request", "decision",
)  # fmt: skip
SENT = ("brand", "push_id", "relationship_id", "sent_at", "sent_channel", "sent_event_id")


class Decisions:
    name = "decisions"
    tables: tuple[str, ...] = ("decisions",)
    personal_topics: frozenset[str] | None = frozenset([PushDecided.TOPIC])  # type: ignore[attr-defined]

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        table = tables["decisions"]
        self._record(db, page, table)
        for erased in page.erased:
            rows = db.query(
                f"SELECT push_id, request FROM {table} WHERE relationship_id = ?",
                [str(erased.originator_id)],
            )
            for push_id, request in rows:
                if request:
                    fields = masked("push.decided", {"request": json.loads(request)})
                    db.execute(
                        f"UPDATE {table} SET request = ? WHERE brand = ? AND push_id = ?",
                        [to_json(fields["request"]), page.brand(erased.originator_id), push_id],
                    )

    def _record(self, db: Database, page: Page, table: str) -> None:
        """Each push's decision and sending in the page, merged per push in log order, then
        written with one upsert per set of columns (decided, sent, or both)."""
        pushes: dict[tuple[str, str], dict[str, Any]] = {}
        for _, event in page.interactions:
            make = ROWS.get(event.TYPE)
            if make is not None:
                row = make(event, page.brand(event.originator_id))
                merged = pushes.setdefault((row["brand"], row["push_id"]), row)
                # As one upsert per event would: the first keeps the key, each later one its own columns.
                merged.update({c: row[c] for c in row if c not in KEY})
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in pushes.values():
            columns = tuple(c for c in ALL if c in row)
            by_columns.setdefault(columns, []).append(row)
        for columns, rows in by_columns.items():
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in KEY)
            db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                f" ON CONFLICT (brand, push_id) DO UPDATE SET {updates}",
                [tuple(row[c] for c in columns) for row in rows],
            )


def _decided(event: Any, brand: str) -> dict[str, Any]:
    request, decision = event.request, event.decision
    retry_after = decision.get("retry_after")
    return {
        "brand": brand,
        "push_id": event.push_id,
        "relationship_id": str(event.originator_id),
        "sequence": event.originator_version,
        "event_id": event.event_id,
        "decided_at": timestamp(event.occurred_at),
        "recorded_at": timestamp(event.timestamp),
        "outcome": decision.get("outcome"),
        "kind": request.get("kind"),
        "purpose": request.get("purpose"),
        "channel": request.get("channel"),
        "retry_after": retry_after if isinstance(retry_after, str) else timestamp(retry_after),
        "policy_version": decision.get("policy_version"),
        "request": to_json(request),
        "decision": to_json(decision),
    }


def _sent(event: Any, brand: str) -> dict[str, Any]:
    return {
        "brand": brand,
        "push_id": event.push_id,
        "relationship_id": str(event.originator_id),
        "sent_at": timestamp(event.occurred_at),
        "sent_channel": event.channel,
        "sent_event_id": event.event_id,
    }


KEY = ("brand", "push_id", "relationship_id")
"""Written by a push's first row only (the original upsert's `columns[3:]` left them)."""
ROWS = {"push.decided": _decided, "push.sent": _sent}
ALL = (*DECIDED, *(c for c in SENT if c not in DECIDED))


def decision(db: Database, brand: str, push_id: str) -> dict[str, Any] | None:
    rows = db.query(
        f"SELECT {', '.join(DECIDED)} FROM decisions WHERE brand = ? AND push_id = ?",
        [brand, push_id],
    )
    if not rows:
        return None
    row = dict(zip(DECIDED, rows[0], strict=True))
    for column in ("request", "decision"):
        row[column] = json.loads(row[column]) if row[column] else None
    for column in ("decided_at", "recorded_at"):
        row[column] = parse_timestamp(row[column])
    return row


def unsubscribed_from(
    db: Database, brand: str, push_id: str, table: str = "decisions"
) -> tuple[str | None, str | None]:
    """The purpose and channel an `unsubscribed` reaction to the push withdraws: those it was
    decided for (else sent on); None for either means every one."""
    rows = db.query(
        f"SELECT purpose, channel, sent_channel FROM {table} WHERE brand = ? AND push_id = ?",
        [brand, push_id],
    )
    purpose, channel, sent_channel = rows[0] if rows else (None, None, None)
    return purpose, channel or sent_channel


def findings(
    db: Database, brand: str, limit: int = 100, cursor: str | None = None
) -> paging.ListPage:
    """Pushes the brand sent without an allow decision, or inside a defer window: compliance
    findings, the latest sent first, from `cursor`; and the cursor of the page after."""
    where, params = "", [brand]
    if cursor is not None:
        sent_at, push_id = findings_cursor(cursor)
        where = " AND (sent_at, push_id) < (?, ?)"
        params += [sent_at, push_id]
    rows = db.query(
        "SELECT push_id, relationship_id, outcome, decided_at, retry_after, sent_at, sent_channel, sent_event_id"
        ", sent_channel <> channel"
        " FROM decisions WHERE brand = ? AND sent_at IS NOT NULL"  # migration 0013's index's
        " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
        " OR sent_channel <> channel)"
        f"{where} ORDER BY sent_at DESC, push_id DESC LIMIT ?",
        [*params, limit + 1],
    )
    found = [
        {
            "push_id": push_id,
            "finding": _finding(outcome, bool(elsewhere)),
            "outcome": outcome,
            "decided_at": parse_timestamp(decided_at),
            "retry_after": parse_timestamp(retry_after),
            "sent_at": parse_timestamp(sent_at),
            "channel": channel,
            "event_id": event_id,
        }
        for push_id, _, outcome, decided_at, retry_after, sent_at, channel, event_id, elsewhere in (
            rows[:limit]
        )
    ]
    if len(rows) <= limit:
        return paging.ListPage(found, None)
    last = rows[limit - 1]
    return paging.ListPage(found, paging.encode({"after": [last[5], last[0]]}))


def findings_cursor(cursor: str) -> tuple[str, str]:
    """The time sent and push id a findings cursor ends at; BadCursor if it is not one."""
    after = paging.decode(cursor, "after")["after"]
    if not isinstance(after, list) or len(after) != 2:
        raise paging.BadCursor("cursor is not valid")
    return paging.text(after[0], 40), paging.text(after[1], 128)


def _finding(outcome: str | None, elsewhere: bool) -> str:
    """What is wrong with a send: the decision's outcome, else the channel (an allow, or a
    defer's retry time, is for the channel the gate was asked about: consent is per channel)."""
    if outcome is None:
        return "sent without a decision"
    if outcome == "deny":
        return "sent although denied"
    if elsewhere:
        return "sent on another channel than decided"
    return "sent inside its defer window"


def decisions_of(db: Database, relationship_id: str) -> list[dict[str, Any]]:
    """Every decision on one relationship, oldest first (its export). The relationship's id is
    the brand's own (derived from it), so it alone selects the rows (timeline_page says why)."""
    rows = db.query(
        f"SELECT {', '.join(DECIDED)} FROM decisions WHERE relationship_id = ?"
        " AND event_id IS NOT NULL ORDER BY decided_at, push_id",
        [relationship_id],
    )
    found = []
    for values in rows:
        row = dict(zip(DECIDED, values, strict=True))
        for column in ("request", "decision"):
            row[column] = json.loads(row[column]) if row[column] else None
        for column in ("decided_at", "recorded_at", "retry_after"):
            row[column] = parse_timestamp(row[column])
        found.append(row)
    return found
