"""Consents: every change per purpose x channel, so any moment's consents can be read back.

As in the relationship's fold (domain/relationship.py), the latest act in event time holds on
each purpose and channel, whatever order the acts were posted in: a purpose x channel's consent
is its row with the latest (since, sequence). A withdrawal of every purpose or of every channel
also leaves a row that no consent has (purpose `*`, or channel ``""``: neither can be granted),
and so does an unsubscribe on a channel the purpose has no consent on (that purpose and channel,
with no terms): a mark, so that a grant posted after it, dated before it, is recorded as
withdrawn by it. Marks have no `method` (every grant has one) and are never listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.relationship import EVERY_PURPOSE, Interaction, relationship_id
from projections.db import Database, parse_timestamp, timestamp, to_json
from projections.decisions import unsubscribed_from
from projections.readmodel import Page

COLUMNS = (
    "relationship_id", "purpose", "channel", "sequence", "brand", "status", "data_categories",
    "notice_version", "method", "jurisdiction", "since", "expires_at", "event_id", "recorded_at",
)  # fmt: skip
CONSENT_TYPES = ("consent.granted", "consent.withdrawn", "push.feedback")

Latest = dict[tuple[str, str], dict[str, Any]]
EVERY_CHANNEL = ""
"""The channel of a row recording a withdrawal of every channel (no channel is named "")."""


def _is_mark(row: Mapping[str, Any]) -> bool:
    """Whether a row marks a withdrawal that no consent's row records (of every purpose, every
    channel, or a channel never consented to), rather than a consent."""
    return row["method"] is None


def _later(row: Mapping[str, Any], than: Mapping[str, Any] | None) -> bool:
    """Whether a row is a later act than another, in event time, then in record order."""
    return than is None or (row["since"], row["sequence"]) >= (than["since"], than["sequence"])


class Consents:
    name = "consents"
    tables: tuple[str, ...] = ("consents",)
    personal_topics: frozenset[str] | None = frozenset()

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        table = tables["consents"]
        changes = [event for _, event in page.interactions if event.TYPE in CONSENT_TYPES]
        latest = _latest(db, table, {str(event.originator_id) for event in changes})
        rows: list[dict[str, Any]] = []
        for event in changes:
            rid = event.originator_id
            for row in _changes(db, tables, event, latest[str(rid)], page.brand(rid)):
                key = (row["purpose"], row["channel"])
                if _later(row, latest[str(rid)].get(key)):
                    latest[str(rid)][key] = row
                rows.append(row)
        db.executemany(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
            " ON CONFLICT DO NOTHING",
            [tuple(row[c] for c in COLUMNS) for row in rows],
        )


def _latest(db: Database, table: str, rids: set[str]) -> dict[str, Latest]:
    """Each relationship's latest row per purpose x channel (in event time, then record order),
    read in one query per 500."""
    latest: dict[str, Latest] = {rid: {} for rid in rids}
    select = f"SELECT {', '.join(COLUMNS)} FROM {table}"
    for r in db.query_in(select, "relationship_id", rids, "ORDER BY since, sequence"):
        latest[r[0]][(r[1], r[2])] = dict(zip(COLUMNS, r, strict=True))
    return latest


def _changes(
    db: Database, tables: Mapping[str, str], event: Interaction, latest: Latest, brand: str
) -> list[dict[str, Any]]:
    data = event.data
    base = {
        "relationship_id": str(event.originator_id),
        "sequence": event.originator_version,
        "brand": brand,
        "since": timestamp(event.occurred_at),
        "event_id": event.event_id,
        "recorded_at": timestamp(event.timestamp),
    }
    if event.TYPE == "consent.granted":
        return _grants(base, latest, data)
    if event.TYPE == "consent.withdrawn":
        purpose, channels = data["purpose"], data.get("channels")
        purposes = None if purpose == EVERY_PURPOSE else {purpose}
        blankets = _blankets(base, purpose, channels) if purposes is None or not channels else []
        return _withdrawals(base, latest, purposes, channels) + blankets
    if data.get("reaction") == "unsubscribed":
        purpose, channel = unsubscribed_from(db, brand, data["push_id"], tables)
        withdrawn = _withdrawals(
            base, latest, {purpose} if purpose else None, [channel] if channel else None
        )
        if not purpose:  # a push of no purpose: every one, marked as a withdrawal of `*` is
            return withdrawn + _blankets(base, EVERY_PURPOSE, [channel] if channel else None)
        if channel:  # kept on the channel's consent; marked where it has none
            known_row = latest.get((purpose, channel))
            marks = _blankets(base, purpose, [channel])
            return withdrawn + (marks if known_row is None or _is_mark(known_row) else [])
        return withdrawn + _blankets(base, purpose, None)
    return []


def _grants(base: dict[str, Any], latest: Latest, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A row per channel whose consent no later act decided; withdrawn at once by a later
    withdrawal of every purpose or channel that covers it."""
    rows = []
    for channel in dict.fromkeys(data["channels"]):  # a channel named twice: one row
        known = latest.get((data["purpose"], channel))
        if known is not None and not _is_mark(known) and known["since"] > base["since"]:
            continue
        row = {
            **base,
            "purpose": data["purpose"],
            "channel": channel,
            "status": "granted",
            "data_categories": to_json(list(data["data_categories"])),
            "notice_version": data["notice_version"],
            "method": data["method"],
            "jurisdiction": data.get("jurisdiction"),
            "expires_at": timestamp(data.get("expires_at")),
        }
        covering = [
            blanket
            for (purpose, on), blanket in latest.items()
            if _is_mark(blanket)
            and purpose in (data["purpose"], EVERY_PURPOSE)
            and on in (channel, EVERY_CHANNEL)
            and blanket["since"] > base["since"]
        ]
        if covering:
            cover = max(covering, key=lambda blanket: blanket["since"])
            row.update(status="withdrawn", since=cover["since"], event_id=cover["event_id"])
        rows.append(row)
    return rows


def _blankets(
    base: dict[str, Any], purpose: str, channels: list[str] | None
) -> list[dict[str, Any]]:
    """The marks of a withdrawal no consent's row records, one per channel named (none: every
    channel)."""
    terms = {"data_categories": "[]", "notice_version": None, "method": None}
    terms |= {"jurisdiction": None, "expires_at": None, "status": "withdrawn"}
    return [
        {**base, **terms, "purpose": purpose, "channel": channel}
        for channel in dict.fromkeys(channels or [EVERY_CHANNEL])
    ]


def _withdrawals(
    base: dict[str, Any], latest: Latest, purposes: set[str] | None, channels: list[str] | None
) -> list[dict[str, Any]]:
    """A withdrawn row for each known purpose x channel the withdrawal covers and no later act
    decided, keeping its terms."""
    return [
        {**row, **base, "status": "withdrawn"}
        for (purpose, channel), row in sorted(latest.items())
        if not _is_mark(row)
        and (purposes is None or purpose in purposes)
        and (not channels or channel in channels)
        and row["since"] <= base["since"]
    ]


def consents(
    db: Database,
    brand: str,
    customer: str,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Each purpose x channel's consent as the ledger knew it at record time `as_of` (default: now).

    A grant whose expires_at has passed at the answer's time is reported `expired`.
    """
    at = as_of or now or datetime.now(UTC)
    rows = db.query(
        f"SELECT {', '.join(COLUMNS)} FROM consents WHERE relationship_id = ? AND brand = ?"
        " AND recorded_at <= ? ORDER BY purpose, channel, since, sequence",
        [str(relationship_id(brand, customer)), brand, timestamp(as_of) if as_of else "9999"],
    )
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for values in rows:
        row = dict(zip(COLUMNS, values, strict=True))
        if not _is_mark(row):
            latest[(row["purpose"], row["channel"])] = row
    return [_consent(row, at) for row in latest.values()]


def objections(
    db: Database, brand: str, customer: str, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """The customer's standing objections to all offers and advice (withdrawals of `*`), as
    known at record time `as_of`: each the latest on the channels it names (`channels` None:
    every channel), and none dated before the latest grant, which lifted them. What the gate's
    objection rule reads from the relationship (domain/relationship.py, `object_to_all` and
    `grant`), in event time (ties: the one recorded later), the latest first. Read from the
    timeline's consent events, the latest act first. The relationship's id, derived from the
    brand, alone selects the brand's rows (projections/timeline.py's timeline_page says why
    nothing else is asked)."""
    rows = db.query(
        "SELECT type, event_id, occurred_at, data FROM timeline WHERE relationship_id = ?"
        " AND type IN ('consent.granted', 'consent.withdrawn') AND recorded_at <= ?"
        " ORDER BY occurred_at DESC, sequence DESC",
        [str(relationship_id(brand, customer)), timestamp(as_of) if as_of else "9999"],
    )
    standing: dict[tuple[str, ...] | None, dict[str, Any]] = {}
    for type_, event_id, occurred_at, data in rows:
        if type_ == "consent.granted":
            break
        withdrawn = json.loads(data)
        if withdrawn.get("purpose") == EVERY_PURPOSE:
            named = withdrawn.get("channels")
            channels = sorted(set(named)) if named else None
            key = tuple(channels) if channels else None
            if key not in standing:  # the latest on these channels
                since = parse_timestamp(occurred_at)
                standing[key] = {"since": since, "event_id": event_id, "channels": channels}
    return list(standing.values())


def _consent(row: dict[str, Any], at: datetime) -> dict[str, Any]:
    expires_at = parse_timestamp(row["expires_at"])
    status = row["status"]
    if status == "granted" and expires_at is not None and expires_at <= at:
        status = "expired"
    return {
        "purpose": row["purpose"],
        "channel": row["channel"],
        "status": status,
        "data_categories": json.loads(row["data_categories"]),
        "notice_version": row["notice_version"],
        "method": row["method"],
        "jurisdiction": row["jurisdiction"],
        "since": parse_timestamp(row["since"]),
        "expires_at": expires_at,
        "event_id": row["event_id"],
    }
