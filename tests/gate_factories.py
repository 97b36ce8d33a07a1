"""Requests, scores and consents for the push gate's tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.gate import PushRequest
from domain.relationship import PostedEvent
from tests.factories import NOW, posted
from tests.random_refs import random_event_id

NOON = (NOW - timedelta(days=2)).replace(hour=12, minute=0, second=0)
"""A decision time in the past (events cannot be in the future), outside default quiet hours."""

NO_QUIET_HOURS = {"quiet_hours": {"start": "00:00", "end": "00:00"}}


def scores(
    p: float = 0.8, u: float = 0.3, overall: float | None = None, **by_dimension: float
) -> dict[str, Any]:
    """Scores as domain/trust.py gives them: P, u and evidence ids per dimension, and overall."""
    dimensions = {
        name: {"P": by_dimension.get(name, p), "u": u, "evidence": [f"evidence-{name}"]}
        for name in ("consistency", "honesty", "expertise")
    }
    mean = sum(d["P"] for d in dimensions.values()) / 3  # type: ignore[misc]
    return {**dimensions, "overall": mean if overall is None else overall}


def grant(
    customer: str = "cust-1",
    purpose: str = "marketing",
    channels: tuple[str, ...] = ("push",),
    categories: tuple[str, ...] = ("purchase_history",),
    at: datetime = NOON - timedelta(days=30),
    expires_at: datetime | None = None,
) -> PostedEvent:
    return posted(
        "consent.granted",
        customer,
        at=at,
        purpose=purpose,
        channels=list(channels),
        data_categories=list(categories),
        notice_version="2026-01",
        method="web_form",
        expires_at=expires_at,
    )


def push(
    kind: str = "offer",
    categories: tuple[str, ...] = ("purchase_history",),
    customer: str = "cust-1",
    push_id: str | None = None,
    purpose: str | None = "marketing",
    channel: str = "push",
) -> PushRequest:
    return PushRequest(
        push_id=push_id or f"push-{random_event_id()}",
        customer=customer,
        kind=kind,
        channel=channel,
        purpose=purpose,
        data_categories=tuple(sorted(categories)),
    )
