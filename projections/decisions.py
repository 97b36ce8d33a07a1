"""Pushes: each push's decision by the gate and, when the brand reports it, its sending; and
whether it was sent after the consent it relied on was withdrawn or had expired.

A push's row keeps its first send in event time; every later send of it is a row of `resends`,
each a finding of its own ("sent again under the same decision"), named when read.

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

from domain.gate import SELLING, SEND_AT_TOLERANCE
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
SENT = (
    "brand", "push_id", "relationship_id", "sent_at", "sent_channel", "sent_event_id",
    "sent_sequence",
)  # fmt: skip
RESENT = (
    "brand", "push_id", "sequence", "relationship_id", "sent_at", "sent_channel", "sent_event_id",
)  # fmt: skip
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
    tables: tuple[str, ...] = ("decisions", "consent_acts", "resends")
    personal_topics: frozenset[str] | None = frozenset([PushDecided.TOPIC])  # type: ignore[attr-defined]

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        table = tables["decisions"]
        self._record(db, page, tables)
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

    def _record(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        """Each push's decision in the page (its latest) and its sends, then written with one
        upsert for the decisions and the sends' own (`_record_sends`)."""
        decided: dict[tuple[str, str], dict[str, Any]] = {}
        sends: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _, event in page.interactions:
            brand = page.brand(event.originator_id)
            push_id = str(cast(Any, event).push_id) if event.TYPE in ROWS else ""
            if event.TYPE == "push.decided":
                decided[(brand, push_id)] = _decided(event, brand, page.keys)
            elif event.TYPE == "push.sent":
                sends.setdefault((brand, push_id), []).append(_sent(event, brand))
        _upsert(db, tables["decisions"], WRITTEN, list(decided.values()))
        _record_sends(db, tables, sends)


def _upsert(db: Database, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """The rows written, each over its push's row: the key's columns kept, the others replaced."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in KEY)
    db.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        f" ON CONFLICT (brand, push_id) DO UPDATE SET {updates}",
        [tuple(row[c] for c in columns) for row in rows],
    )


def _record_sends(
    db: Database, tables: Mapping[str, str], sends: Mapping[tuple[str, str], list[dict[str, Any]]]
) -> None:
    """Each push's sends, those known and the page's: the first in event time (at the same
    instant, the one recorded first) on the push's row, every other in `resends`. Costs a page
    with sends two queries to read those known (per brand and 500 pushes), the upsert, and, for
    pushes sent more than once, a delete and an insert of their resends."""
    if not sends:
        return
    every = _known_sends(db, tables, set(sends))
    firsts, others, resent = [], [], set()
    for push, new in sends.items():
        by_sequence = {s["sent_sequence"]: s for s in [*every.get(push, []), *new]}
        first, *rest = sorted(
            by_sequence.values(), key=lambda s: (s["sent_at"], s["sent_sequence"])
        )
        firsts.append(first)
        others += [{**s, "sequence": s["sent_sequence"]} for s in rest]
        if rest:  # a push sent once, before and now, has no resends to replace
            resent.add(push)
    _upsert(db, tables["decisions"], SENT, firsts)
    for brand, push_ids in _by_brand(resent).items():
        for chunk in chunks(push_ids):
            db.execute(
                f"DELETE FROM {tables['resends']} WHERE brand = ?"
                f" AND push_id IN ({', '.join('?' for _ in chunk)})",
                [brand, *chunk],
            )
    db.executemany(
        f"INSERT INTO {tables['resends']} ({', '.join(RESENT)})"
        f" VALUES ({', '.join('?' for _ in RESENT)})",
        [tuple(row[c] for c in RESENT) for row in others],
    )


def _known_sends(
    db: Database, tables: Mapping[str, str], pushes: set[tuple[str, str]]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The sends recorded so far of each of `pushes`, as `_sent` gives them."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    first = f"SELECT {', '.join(SENT)} FROM {tables['decisions']}"
    later = f"SELECT {', '.join(c.replace('sent_sequence', 'sequence') for c in SENT)}"
    for select, tail in (
        (first, " AND sent_at IS NOT NULL"),
        (f"{later} FROM {tables['resends']}", ""),
    ):
        for brand, push_ids in _by_brand(pushes).items():
            for chunk in chunks(push_ids):
                for values in db.query(
                    f"{select} WHERE brand = ? AND push_id IN ({', '.join('?' for _ in chunk)}){tail}",
                    [brand, *chunk],
                ):
                    row = dict(zip(SENT, values, strict=True))
                    found.setdefault((row["brand"], row["push_id"]), []).append(row)
    return found


def _by_brand(pushes: set[tuple[str, str]]) -> dict[str, list[str]]:
    by_brand: dict[str, list[str]] = {}
    for brand, push_id in sorted(pushes):
        by_brand.setdefault(brand, []).append(push_id)
    return by_brand


def _judge_sends(db: Database, page: Page, tables: Mapping[str, str]) -> None:
    """Keeps the page's consent acts and sends, then judges again each send they may concern:
    the page's own, and those of a relationship whose consent changed, sent since the change's
    date. A page without either costs nothing; one with them, by primary key: a query for the
    rows to judge (and one before it for the sends of relationships whose consent changed), one
    for their relationships' consent acts, and the upsert of the verdicts that changed."""
    decisions, table = tables["decisions"], tables["consent_acts"]
    acts = [act for _, event in page.interactions if (act := _act(db, tables, event, page))]
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


def _act(
    db: Database, tables: Mapping[str, str], event: Interaction, page: Page
) -> dict[str, Any] | None:
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
        purpose, channel = unsubscribed_from(db, brand, data["push_id"], tables)
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
    rows = []
    for brand, push_ids in _by_brand(pushes).items():
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
        "decided_from": timestamp(event.occurred_at - SEND_AT_TOLERANCE),
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


def _sent(event: Any, brand: str) -> dict[str, Any]:
    return {
        "brand": brand,
        "push_id": event.push_id,
        "relationship_id": str(event.originator_id),
        "sent_at": timestamp(event.occurred_at),
        "sent_channel": event.channel,
        "sent_event_id": event.event_id,
        "sent_sequence": event.originator_version,
    }


KEY = ("brand", "push_id", "relationship_id")
"""Written by a push's first row only (the original upsert's `columns[3:]` left them)."""
ROWS = frozenset(["push.decided", "push.sent"])
WRITTEN = (*DECIDED, "decided_from")
"""A decision's columns as written: those read back, and the time before which a send of it
was sent before it was decided (its time less the clocks' tolerance)."""


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


LIVE = {"decisions": "decisions", "resends": "resends"}


def unsubscribed_from(
    db: Database, brand: str, push_id: str, tables: Mapping[str, str] = LIVE
) -> tuple[str | None, str | None]:
    """The purpose and channel an `unsubscribed` reaction to the push withdraws: the purpose it
    was decided for, the channel it was sent on (else decided for: the one it came by, which a
    brand may have changed after the decision; of a push sent more than once, the send recorded
    last, as the relationship folds it); None for either means every one."""
    rows = db.query(
        f"SELECT purpose, channel, sent_channel, sent_sequence FROM {tables['decisions']}"
        " WHERE brand = ? AND push_id = ?",
        [brand, push_id],
    )
    purpose, channel, sent_channel, sequence = rows[0] if rows else (None, None, None, None)
    later = db.query(
        f"SELECT sent_channel FROM {tables['resends']} WHERE brand = ? AND push_id = ?"
        " AND sequence > ? ORDER BY sequence DESC LIMIT 1",
        [brand, push_id, sequence if sequence is not None else -1],
    )
    if later:
        sent_channel = later[0][0]
    return purpose, sent_channel or channel


FIRST_SENDS = (
    "SELECT push_id, relationship_id, outcome, decided_at, retry_after, sent_at, sent_channel"
    ", sent_event_id, sent_sequence, sent_channel <> channel, sent_at < decided_from"
    ", withdrawn_at, withdrawn_by, consent_ended"
    " FROM decisions WHERE brand = ? AND sent_at IS NOT NULL"  # migration 0019's index's
    " AND (outcome IS NULL OR outcome = 'deny' OR (outcome = 'defer' AND sent_at < retry_after)"
    " OR sent_channel <> channel OR withdrawn_by IS NOT NULL OR sent_at < decided_from)"
)
RESENDS = (
    "SELECT r.push_id, r.relationship_id, d.outcome, d.decided_at, d.retry_after, r.sent_at"
    ", r.sent_channel, r.sent_event_id, r.sequence, r.sent_channel <> d.channel"
    ", r.sent_at < d.decided_from, d.kind, d.purpose, d.channel"
    " FROM resends r JOIN decisions d ON d.brand = r.brand AND d.push_id = r.push_id"
    " WHERE r.brand = ?"
)
"""Every send after a push's first, each a finding; by resends_findings (migration 0019)."""


def findings(
    db: Database, brand: str, limit: int = 100, cursor: str | None = None
) -> paging.ListPage:
    """Pushes the brand sent without an allow decision, before it, inside a defer window, on
    another channel, after the consent their decision relied on was withdrawn or expired, or
    again under one decision: compliance findings, the latest sent first (then by push id, and
    a push's later sends before its first), from `cursor`; and the cursor of the page after."""
    first_where, again_where, params = "", "", [brand]
    if cursor is not None:
        sent_at, push_id, sequence = findings_cursor(cursor)
        params += [sent_at, push_id]
        # A cursor at a resend leaves its push's first send, listed after every later one.
        first_where = f" AND (sent_at, push_id) {'<' if sequence is None else '<='} (?, ?)"
        again_where = " AND (r.sent_at, r.push_id) < (?, ?)"
        if sequence is not None:
            again_where = " AND (r.sent_at, r.push_id, r.sequence) < (?, ?, ?)"
    order = "ORDER BY sent_at DESC, push_id DESC LIMIT ?"
    firsts = db.query(f"{FIRST_SENDS}{first_where} {order}", [*params, limit + 1])
    again_params = params + ([sequence] if cursor is not None and sequence is not None else [])
    resent = db.query(
        f"{RESENDS}{again_where} ORDER BY r.sent_at DESC, r.push_id DESC, r.sequence DESC LIMIT ?",
        [*again_params, limit + 1],
    )
    rows = [_first_finding(row) for row in firsts] + _resend_findings(db, resent)
    rows.sort(key=lambda f: (f["sent_at"], f["push_id"], f["sequence"]), reverse=True)
    found = [_shown(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return paging.ListPage(found, None)
    last = rows[limit - 1]
    after = [last["sent_at"], last["push_id"]] + ([last["sequence"]] if last["again"] else [])
    return paging.ListPage(found, paging.encode({"after": after}))


def _first_finding(row: tuple[Any, ...]) -> dict[str, Any]:
    """A push's first send, as a finding: named from its row, judged as it was written."""
    (push_id, rid, outcome, decided_at, retry_after, sent_at, channel, event_id, sequence) = row[:9]
    elsewhere, early, withdrawn_at, withdrawn_by, ended = row[9:]
    name = _finding(outcome, bool(early), bool(elsewhere), ended, again=False)
    return {
        "push_id": push_id, "relationship_id": rid, "finding": name, "outcome": outcome, "decided_at": decided_at,
        "retry_after": retry_after, "sent_at": sent_at, "channel": channel, "event_id": event_id,
        "withdrawn_at": withdrawn_at, "withdrawn_by": withdrawn_by,
        "sequence": sequence if sequence is not None else -1, "again": False,
    }  # fmt: skip


def _resend_findings(db: Database, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Later sends, as findings: their consent judged as a first send's is, at their own time,
    from their relationships' consent acts (one query for the page)."""
    relying = [_relied_on_consent({"kind": r[11], "outcome": r[2], "purpose": r[12]}) for r in rows]
    history = _history(
        db, "consent_acts", {r[1] for r, relies in zip(rows, relying, strict=True) if relies}
    )
    found = []
    for row, relies in zip(rows, relying, strict=True):
        (push_id, rid, outcome, decided_at, retry_after, sent_at, channel, event_id, sequence) = (
            row[:9]
        )
        elsewhere, early, _, purpose, decided_channel = row[9:]
        ended = None
        if relies:
            at = cast(datetime, parse_timestamp(sent_at))
            ended = consent_ended(history[rid], purpose, decided_channel, at)
        deferred = outcome == "defer" and retry_after is not None and sent_at < retry_after
        reason = ended["ended"] if ended else None
        name = _finding(outcome, bool(early), bool(elsewhere), reason, again=not deferred)
        found.append({
            "push_id": push_id, "relationship_id": rid, "finding": name, "outcome": outcome,
            "decided_at": decided_at, "retry_after": retry_after, "sent_at": sent_at,
            "channel": channel, "event_id": event_id,
            "withdrawn_at": timestamp(ended["ended_at"]) if ended else None,
            "withdrawn_by": ended["event_id"] if ended else None,
            "sequence": sequence, "again": True,
        })  # fmt: skip
    return found


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A finding as the API shows it (the pages also read its `relationship_id`, which the
    API's schema leaves out): times as datetimes, without its place in the order."""
    shown = {k: v for k, v in row.items() if k not in ("sequence", "again")}
    for column in ("decided_at", "retry_after", "sent_at", "withdrawn_at"):
        shown[column] = parse_timestamp(shown[column])
    return shown


def findings_cursor(cursor: str) -> tuple[str, str, int | None]:
    """The time sent, push id and (for a send after its push's first) sequence a findings
    cursor ends at; BadCursor if it is not one."""
    after = paging.decode(cursor, "after")["after"]
    if not isinstance(after, list) or len(after) not in (2, 3):
        raise paging.BadCursor("cursor is not valid")
    sequence = after[2] if len(after) == 3 else None
    if sequence is not None and (
        not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 <= sequence < 2**63
    ):
        raise paging.BadCursor("cursor is not valid")
    return paging.text(after[0], 40), paging.text(after[1], 128), sequence


WITHOUT_DECISION = "sent without a decision"
DENIED = "sent although denied"
EARLY = "sent before it was decided"
ELSEWHERE = "sent on another channel than decided"
WITHDRAWN = "sent after its consent was withdrawn"
EXPIRED = "sent after its consent expired"
DEFERRED = "sent inside its defer window"
AGAIN = "sent again under the same decision"
FINDINGS = (WITHOUT_DECISION, DENIED, EARLY, ELSEWHERE, WITHDRAWN, EXPIRED, DEFERRED, AGAIN)
"""What can be wrong with a send, in the order the first that applies is named."""


def _finding(
    outcome: str | None, early: bool, elsewhere: bool, consent_ended: str | None, again: bool
) -> str:
    """What is wrong with a send: the decision's outcome, else its time (dated before the
    decision, beyond the clocks' tolerance), else the channel (an allow, or a defer's retry
    time, is for the channel the gate was asked about: consent is per channel), else the
    consent it relied on, withdrawn by the send's time, else a defer's window, else (a later
    send of the push outside its defer window) the send before it under the same decision."""
    if outcome is None:
        return WITHOUT_DECISION
    if outcome == "deny":
        return DENIED
    if early:
        return EARLY
    if elsewhere:
        return ELSEWHERE
    if consent_ended is not None:
        return EXPIRED if consent_ended == "expired" else WITHDRAWN
    return AGAIN if again else DEFERRED


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
