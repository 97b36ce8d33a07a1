"""The API's two reads of a customer, behind one seam: the timeline and the consents.

Today they fold the relationship's own events (`Ledger.interactions`, `Ledger.relationship`), so a
read right after a write sees it. When the read models of `projections/` land, these two functions
are the one place to switch to them (waiting for the projection's position for read-your-writes).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.application import Ledger
from domain.errors import RelationshipNotFound
from domain.timeline import summarise


@dataclass(frozen=True)
class TimelinePage:
    items: list[dict[str, Any]]
    """Newest first."""
    next_cursor: int | None
    """The sequence the next page starts below; None on the last page."""


def timeline_page(
    ledger: Ledger,
    brand: str,
    customer: str,
    *,
    limit: int,
    before: int | None = None,
    types: Collection[str] | None = None,
    as_of: datetime | None = None,
) -> TimelinePage:
    """One page of the customer's events, newest first, below sequence `before`."""
    events = ledger.interactions(brand, customer, as_of)
    if not events:  # a relationship opens with its first event: at `as_of` it was not there yet
        raise RelationshipNotFound(f"no relationship with customer {customer!r} at {as_of}")
    chosen = [
        event
        for event in reversed(events)
        if (before is None or event.originator_version < before)
        and (not types or event.TYPE in types)
    ]
    page = chosen[:limit]
    items = [
        {
            "event_id": event.event_id,
            "type": event.TYPE,
            "occurred_at": event.occurred_at,
            "recorded_at": event.recorded_at,
            "actor": event.actor,
            "channel": event.channel,
            "summary": summarise(event.TYPE, event.data),
            "data": event.as_dict()["data"],
        }
        for event in page
    ]
    more = len(chosen) > limit
    return TimelinePage(items, page[-1].originator_version if more else None)


def consents(
    ledger: Ledger, brand: str, customer: str, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Every consent the customer gave, per purpose and channel, as known at `as_of` (or now)."""
    state = ledger.relationship(brand, customer, as_of).consents
    at = as_of or datetime.now(UTC)
    return [
        {**consent, "purpose": purpose, "channel": channel, "status": _status(consent, at)}
        for purpose, channels in sorted(state.items())
        for channel, consent in sorted(channels.items())
    ]


def _status(consent: dict[str, Any], at: datetime) -> str:
    expires_at = consent.get("expires_at")
    if consent["status"] == "granted" and expires_at is not None and expires_at <= at:
        return "expired"
    return str(consent["status"])
