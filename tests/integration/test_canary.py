"""The canary test: after erasing S, no byte of S's personal data, nor S's key, is left in storage.

Customers S and T get a unique canary string in every personal field of every event type, the
actor and the customer reference included. The search runs over the raw database (SQLite: the
file, its WAL and -shm; PostgreSQL: a pg_dump), for each canary raw, in base64 and in hex. T is
the control: T's clear canary and T's wrapped key are found, and T's personal canaries come back
through a new Ledger, which proves the search would have found S's.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from domain.application import Ledger
from domain.relationship import (
    CATALOGUE,
    ERASED,
    Envelope,
    PostedEvent,
    PushDecided,
    relationship_id,
)
from domain.storage import Store
from tests.conftest import open_ledger
from tests.factories import NOW, posted, story
from tests.random_refs import random_brand

PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"
BULK = 30
"""Extra events, so the relationship passes the snapshot interval and a snapshot is stored too."""


def canary(who: str, where: str) -> str:
    return f"canary{who}{where.replace('.', '')}{uuid.uuid4().hex[:12]}"


class Canaries:
    """One customer's events, every personal field holding a canary of its own."""

    def __init__(self, who: str) -> None:
        self.customer = canary(who, "customer")
        self.personal: dict[str, str] = {"customer": self.customer}
        self.clear = canary(who, "clear")

    def mark(self, where: str) -> str:
        self.personal[where] = canary(self.customer[6:7], where)
        return self.personal[where]

    def events(self) -> list[PostedEvent]:
        marked = [self._marked(event) for event in story(self.customer)]
        actor = self.mark("bulk.actor")
        bulk = [
            replace(
                posted(
                    "question.answered", self.customer, case_id=f"c{i}", topic="t", resolved=True
                ),
                actor=actor,
            )
            for i in range(BULK)
        ]
        clear = posted(
            "question.answered", self.customer, case_id=self.clear, topic="t", resolved=True
        )
        return [*marked, *bulk, clear]

    def _marked(self, event: PostedEvent) -> PostedEvent:
        cls = CATALOGUE[event.type]
        data = {
            name: self.mark(f"{event.type}.{name}") if name in cls.PERSONAL else value
            for name, value in event.data.items()
        }
        return replace(event, actor=self.mark(f"{event.type}.actor"), data=data)


def covered_fields(canaries: Canaries) -> set[str]:
    return {where for where in canaries.personal if "." in where and not where.startswith("bulk")}


def every_personal_field() -> set[str]:
    return {
        f"{type_}.{name}"
        for type_, cls in CATALOGUE.items()
        if cls is not PushDecided
        for name in cls.PERSONAL
    } | {"push.decided.actor", "push.decided.request.customer"}


def record(ledger: Ledger, brand: str, canaries: Canaries) -> None:
    ledger.record_batch(brand, canaries.events())
    relationship = ledger.relationship(brand, canaries.customer)
    envelope = Envelope(f"gate-{uuid.uuid4().hex}", NOW, actor=canaries.mark("push.decided.actor"))
    request = {"customer": canaries.customer, "purpose": "marketing", "channel": "email"}
    # A push id of its own: the gate claims each one for one customer of the brand.
    relationship.record_push_decision(
        envelope, f"push-{uuid.uuid4().hex[:8]}", request=request, decision={"outcome": "allow"}
    )
    canaries.personal["push.decided.request.customer"] = canaries.customer
    ledger.save(relationship)


def forms(needle: bytes) -> Iterator[bytes]:
    """The needle raw, in hex, and in base64 at each of the three alignments (standard and URL)."""
    yield needle
    yield needle.hex().encode()
    yield needle.hex().upper().encode()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + needle)
        body = encoded[(shift * 4 + 2) // 3 : -4]
        yield body
        yield body.translate(bytes.maketrans(b"+/", b"-_"))


def found(needle: bytes, blobs: list[bytes]) -> bool:
    return any(form in blob for form in forms(needle) for blob in blobs)


def raw_storage(store: Store) -> list[bytes]:
    """Every byte the database holds: SQLite's files, or a pg_dump of the PostgreSQL database."""
    if store.is_sqlite:
        paths = [Path(store.path + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return [path.read_bytes() for path in paths if path.exists()]
    dump = subprocess.run(
        [PG_DUMP, "--no-owner", store.conninfo()], capture_output=True, check=True, timeout=120
    )
    return [dump.stdout]


def wrapped_key(ledger: Ledger, rid: uuid.UUID) -> bytes:
    row = ledger.customer_keys.table.select(rid)
    assert row is not None
    return row[1]


def test_after_erasure_no_canary_of_the_customer_is_left_in_storage(empty_store: Store) -> None:
    brand, s, t = random_brand(), Canaries("S"), Canaries("T")
    ledger = open_ledger(empty_store)
    record(ledger, brand, s)
    record(ledger, brand, t)
    assert covered_fields(s) == every_personal_field(), "every personal field carries a canary"
    s_key = wrapped_key(ledger, relationship_id(brand, s.customer))
    t_key = wrapped_key(ledger, relationship_id(brand, t.customer))

    before = raw_storage(empty_store)
    assert found(s_key, before), "S's key is there before the erasure: the key search works"
    assert not [where for where, value in s.personal.items() if found(value.encode(), before)]

    ledger.erase(brand, s.customer, requested_by="dpo@brand", reason="art. 17 request")
    after = raw_storage(empty_store)  # searched while the ledger still runs: its WAL included
    ledger.close()
    assert not [where for where, value in s.personal.items() if found(value.encode(), after)]
    assert not found(s_key, after), "S's wrapped key is gone, WAL and free pages included"
    assert found(t.clear.encode(), after), "the control's clear canary is found: the search works"
    assert found(t_key, after), "the control's key is found: the key search works"
    assert_replay_after_erasure(empty_store, brand, s, t)


def assert_replay_after_erasure(store: Store, brand: str, s: Canaries, t: Canaries) -> None:
    """A new Ledger replays both: S's personal fields read [erased], T's read back whole."""
    ledger = open_ledger(store)
    try:
        s_text = _readable(ledger, brand, s.customer)
        t_text = _readable(ledger, brand, t.customer)
        assert ledger.relationship(brand, s.customer).customer == ERASED
        assert ledger.relationship(brand, s.customer).erased is not None
        assert ledger.relationship(brand, t.customer).customer == t.customer
    finally:
        ledger.close()
    assert not [value for value in s.personal.values() if value in s_text]
    assert s_text.count(ERASED) >= len(s.personal) - 1
    assert not [where for where, value in t.personal.items() if value not in t_text]


def _readable(ledger: Ledger, brand: str, customer: str) -> str:
    """Everything a new Ledger reads back about the relationship, as text."""
    events: list[Any] = list(ledger.events.get(relationship_id(brand, customer)))
    return repr([vars(event) for event in events])
