"""Pushes: each push's decision by the gate and, when the brand reports it, its sending; and
whether it was sent after the consent it relied on was withdrawn or had expired.

That last is judged in event time from the relationship's consent acts and sends, kept in
`consent_acts`: each time an act or a send arrives, the sends it may concern are judged again
(domain/relationship.py's `consent_ended`), so the answer is the same whatever order the brand
posted them in, and a rebuild gives it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from domain.gate import SELLING
from domain.relationship import Interaction, PushDecided, consent_ended, masked
from domain.shredding import CustomerKey
from projections import paging
from projections.db import Database, chunks, parse_timestamp, timestamp, to_json
from projections.personal import opened, personal_data, seal
from projections.readmodel import Page

DECIDED = (
    "brand", "push_id", "relationship_id", "sequence", "event_id", "decided_at", "recorded_at",
    "outcome", "kind", "purpose", "channel", "retry_after", "policy_version", "request", "decision",
)  # fmt: skip
SENT = ("brand", "push_id", "relationship_id", "sent_at", "sent_channel", "sent_event_id")
ACTS = (
    "relationship_id", "sequence", "act", "purpose", "channels", "occurred_at", "event_id",
    "push_id", "expires_at",
)  # fmt: skip
JUDGED = (
    "brand", "push_id", "relationship_id", "kind", "outcome", "purpose", "channel", "sent_at",
    "withdrawn_at", "withdrawn_by", "consent_ended",
)  # fmt: skip
ACT_TYPES = frozenset(["consent.granted", "consent.withdrawn", "push.sent", "push.feedback"])
RELYING = ("allow", "defer")
"""The outcomes of a decision that relied on consent (an offer or advice push's): the gate
allows or defers only with it."""


class Decisions:
    name = "decisions"
    tables: tuple[str, ...] = ("decisions", "consent_acts")
    personal_topics: frozenset[str] | None = frozenset([PushDecided.TOPIC])  # type: ignore[attr-defined]

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        table = tables["decisions"]
        self._record(db, page, table)
        _judge_sends(db, page, tables)
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
                row = make(event, page.brand(event.originator_id), page.keys)
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


def _judge_sends(db: Database, page: Page, tables: Mapping[str, str]) -> None:
    """Keeps the page's consent acts and sends, then judges again each send they may concern:
    the page's own, and those of a relationship whose consent changed, sent since the change's
    date. A page without either costs nothing; one with them, by primary key: a query for the
    rows to judge (and one before it for the sends of relationships whose consent changed), one
    for their relationships' consent acts, and the upsert of the verdicts that changed."""
    decisions, table = tables["decisions"], tables["consent_acts"]
    acts = [act for _, event in page.interactions if (act := _act(db, decisions, event, page))]
    pushes = {
        (page.brand(event.originator_id), cast(Any, event).push_id)
        for _, event in page.interactions
        if event.TYPE in ROWS
    }
    if not acts and not pushes:
        return
    db.executemany(
        f"INSERT INTO {table} ({', '.join(ACTS)}) VALUES ({', '.join('?' for _ in ACTS)})"
        " ON CONFLICT DO NOTHING",
        [tuple(act[c] for c in ACTS) for act in acts],
    )
    changed: dict[str, str] = {}  # relationship: the earliest date its consent changed at
    for act in (act for act in acts if act["act"] != "sent"):
        rid = act["relationship_id"]
        changed[rid] = min(changed.get(rid, act["occurred_at"]), act["occurred_at"])
    select = f"SELECT relationship_id, push_id, occurred_at FROM {table}"
    for rid, push_id, at in db.query_in(select, "relationship_id", changed, "AND act = 'sent'"):
        if at >= changed[rid]:  # fixed-width UTC text sorts as time
            pushes.add((page.brand(UUID(rid)), push_id))
    rows = [
        row
        for row in _sends(db, decisions, pushes)
        if _relied_on_consent(row) or row["withdrawn_by"]
    ]
    history = _history(
        db, table, {row["relationship_id"] for row in rows if _relied_on_consent(row)}
    )
    judged = []
    for row in rows:
        found = None
        if _relied_on_consent(row):
            acts_of, sent_at = history[row["relationship_id"]], parse_timestamp(row["sent_at"])
            found = consent_ended(acts_of, row["purpose"], row["channel"], cast(datetime, sent_at))
        verdict = (
            (timestamp(found["ended_at"]), found["event_id"], found["ended"])
            if found
            else (None, None, None)
        )
        if verdict != (row["withdrawn_at"], row["withdrawn_by"], row["consent_ended"]):
            judged.append((row["brand"], row["push_id"], row["relationship_id"], *verdict))
    db.executemany(
        f"INSERT INTO {decisions} (brand, push_id, relationship_id, withdrawn_at, withdrawn_by,"
        " consent_ended) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (brand, push_id) DO UPDATE SET"
        " withdrawn_at = excluded.withdrawn_at, withdrawn_by = excluded.withdrawn_by,"
        " consent_ended = excluded.consent_ended",
        judged,
    )


def _relied_on_consent(row: Mapping[str, Any]) -> bool:
    """Whether a sent push's decision relied on consent: an offer or advice allowed or deferred."""
    return row["kind"] in SELLING and row["outcome"] in RELYING and bool(row["purpose"])


def _act(db: Database, decisions: str, event: Interaction, page: Page) -> dict[str, Any] | None:
    """The event as a consent act (an `unsubscribed` reaction withdraws the purpose and channel
    of its push, as the relationship folds it), or a send; None for any other event."""
    if event.TYPE not in ACT_TYPES:
        return None
    data = event.data
    row = {
        "relationship_id": str(event.originator_id),
        "sequence": event.originator_version,
        "occurred_at": timestamp(event.occurred_at),
        "event_id": event.event_id,
        "purpose": data.get("purpose"),
        "channels": to_json(data["channels"]) if data.get("channels") else None,
        "push_id": None,
        "expires_at": None,
    }
    if event.TYPE == "consent.granted":
        if data.get("expires_at") is not None:
            row["expires_at"] = timestamp(data["expires_at"])
        return {**row, "act": "granted"}
    if event.TYPE == "consent.withdrawn":
        return {**row, "act": "withdrawn"}
    if event.TYPE == "push.sent":
        return {**row, "act": "sent", "push_id": data["push_id"]}
    if event.TYPE == "push.feedback" and data["reaction"] == "unsubscribed":
        brand = page.brand(event.originator_id)
        purpose, channel = unsubscribed_from(db, brand, data["push_id"], decisions)
        channels = to_json([channel]) if channel else None
        return {**row, "act": "withdrawn", "purpose": purpose, "channels": channels}
    return None


def _history(db: Database, table: str, rids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Each relationship's consent acts (not its sends), times as datetimes."""
    history: dict[str, list[dict[str, Any]]] = {rid: [] for rid in rids}
    select = f"SELECT {', '.join(ACTS)} FROM {table}"
    tail = "AND act IN ('granted', 'withdrawn')"  # the key's order: the sends are not read
    for values in db.query_in(select, "relationship_id", rids, tail):
        act = dict(zip(ACTS, values, strict=True))
        act["at"] = parse_timestamp(act["occurred_at"])
        act["expires_at"] = parse_timestamp(act["expires_at"])
        act["channels"] = json.loads(act["channels"]) if act["channels"] else None
        history[act["relationship_id"]].append(act)
    return history


def _sends(db: Database, table: str, pushes: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The rows of the pushes sent among `pushes`, one query per brand and 500 pushes."""
    by_brand: dict[str, list[str]] = {}
    for brand, push_id in sorted(pushes):
        by_brand.setdefault(brand, []).append(push_id)
    rows = []
    for brand, push_ids in by_brand.items():
        for chunk in chunks(push_ids):
            rows += db.query(
                f"SELECT {', '.join(JUDGED)} FROM {table} WHERE brand = ?"
                f" AND push_id IN ({', '.join('?' for _ in chunk)}) AND sent_at IS NOT NULL",
                [brand, *chunk],
            )
    return [dict(zip(JUDGED, row, strict=True)) for row in rows]


def _decided(event: Any, brand: str, keys: Callable[[UUID], CustomerKey | None]) -> dict[str, Any]:
    request, decision = event.request, event.decision
    key = keys(event.originator_id)
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
        "request": to_json(_sealed_request(key, event.push_id, request)),
        "decision": to_json(decision),
    }


def _sealed_request(key: CustomerKey | None, push_id: str, request: dict[str, Any]) -> Any:
    """The request with its customer reference sealed with the customer's key (as in the
    event: its `request.` fields), bound to the push."""
    fields = personal_data("push.decided", {"request": request}, _sealer(key, push_id))
    return fields["request"]


def _sealer(key: CustomerKey | None, push_id: str) -> Callable[[str, Any], Any]:
    return lambda name, value: seal(key, value, name, push_id)


def _opened_request(
    keys: Mapping[str, CustomerKey | None] | None, rid: str, push_id: str, request: Any
) -> Any:
    """A stored request with its sealed customer opened ("[erased]" once the key is gone)."""
    if not isinstance(request, dict):
        return request
    fields = personal_data(
        "push.decided",
        {"request": request},
        lambda name, value: opened(keys, rid, value, name, push_id),
    )
    return fields["request"]


def _sent(event: Any, brand: str, _: Any) -> dict[str, Any]:
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
    keys = db.keys_for([row["relationship_id"]])
    row["request"] = _opened_request(keys, row["relationship_id"], push_id, row["request"])
    for column in ("decided_at", "recorded_at"):
        row[column] = parse_timestamp(row[column])
    return row


def unsubscribed_from(
    db: Database, brand: str, push_id: str, table: str = "decisions"
) -> tuple[str | None, str | None]:
    """The purpose and channel an `unsubscribed` reaction to the push withdraws: the purpose it
    was decided for, the channel it was sent on (else decided for: the one it came by, which a
    brand may have changed after the decision); None for either means every one."""
    rows = db.query(
        f"SELECT purpose, channel, sent_channel FROM {table} WHERE brand = ? AND push_id = ?",
        [brand, push_id],
    )
    purpose, channel, sent_channel = rows[0] if rows else (None, None, None)
    return purpose, sent_channel or channel


def findings(
    db: Database, brand: str, limit: int = 100, cursor: str | None = None
) -> paging.ListPage:
    """Pushes the brand sent without an allow decision, inside a defer window, on another
    channel, or after the consent their decision relied on was withdrawn: compliance findings,
    the latest sent first, from `cursor`; and the cursor of the page after."""
    where, params = "", [brand]
    if cursor is not None:
        sent_at, push_id = findings_cursor(cursor)
        where = " AND (sent_at, push_id) < (?, ?)"
        params += [sent_at, push_id]
    rows = db.query(
        "SELECT push_id, relationship_id, outcome, decided_at, retry_after, sent_at, sent_channel, sent_event_id"
        ", sent_channel <> channel, withdrawn_at, withdrawn_by, consent_ended"
        " FROM decisions WHERE brand = ? AND sent_at IS NOT NULL"  # migration 0015's index's
        " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
        " OR sent_channel <> channel OR withdrawn_by IS NOT NULL)"
        f"{where} ORDER BY sent_at DESC, push_id DESC LIMIT ?",
        [*params, limit + 1],
    )
    found = [
        {
            "push_id": row[0],
            "finding": _finding(row[2], bool(row[8]), row[11]),
            "outcome": row[2],
            "decided_at": parse_timestamp(row[3]),
            "retry_after": parse_timestamp(row[4]),
            "sent_at": parse_timestamp(row[5]),
            "channel": row[6],
            "event_id": row[7],
            "withdrawn_at": parse_timestamp(row[9]),
            "withdrawn_by": row[10],
        }
        for row in rows[:limit]
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


WITHOUT_DECISION = "sent without a decision"
DENIED = "sent although denied"
ELSEWHERE = "sent on another channel than decided"
WITHDRAWN = "sent after its consent was withdrawn"
EXPIRED = "sent after its consent expired"
DEFERRED = "sent inside its defer window"
FINDINGS = (WITHOUT_DECISION, DENIED, ELSEWHERE, WITHDRAWN, EXPIRED, DEFERRED)
"""What can be wrong with a send, in the order the first that applies is named."""


def _finding(outcome: str | None, elsewhere: bool, consent_ended: str | None) -> str:
    """What is wrong with a send: the decision's outcome, else the channel (an allow, or a
    defer's retry time, is for the channel the gate was asked about: consent is per channel),
    else the consent it relied on, withdrawn by the send's time."""
    if outcome is None:
        return WITHOUT_DECISION
    if outcome == "deny":
        return DENIED
    if elsewhere:
        return ELSEWHERE
    if consent_ended is not None:
        return EXPIRED if consent_ended == "expired" else WITHDRAWN
    return DEFERRED


def decisions_of(db: Database, relationship_id: str) -> list[dict[str, Any]]:
    """Every decision on one relationship, oldest first (its export). The relationship's id is
    the brand's own (derived from it), so it alone selects the rows (timeline_page says why)."""
    rows = db.query(
        f"SELECT {', '.join(DECIDED)} FROM decisions WHERE relationship_id = ?"
        " AND event_id IS NOT NULL ORDER BY decided_at, push_id",
        [relationship_id],
    )
    found = []
    keys = db.keys_for([relationship_id]) if rows else {}
    for values in rows:
        row = dict(zip(DECIDED, values, strict=True))
        for column in ("request", "decision"):
            row[column] = json.loads(row[column]) if row[column] else None
        row["request"] = _opened_request(keys, relationship_id, row["push_id"], row["request"])
        for column in ("decided_at", "recorded_at", "retry_after"):
            row[column] = parse_timestamp(row[column])
        found.append(row)
    return found
