"""Unique references, so tests that share one PostgreSQL never see each other's data."""

from __future__ import annotations

import uuid


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


def random_brand(name: str = "") -> str:
    return f"brand-{name}-{_suffix()}" if name else f"brand-{_suffix()}"


def random_customer(name: str = "") -> str:
    return f"cust-{name}-{_suffix()}" if name else f"cust-{_suffix()}"


def random_event_id() -> str:
    return f"evt-{uuid.uuid4().hex}"
