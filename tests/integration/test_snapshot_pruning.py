"""A relationship's snapshots are bounded: its latest and one anchor per span of versions
(domain/recorders.py SNAPSHOT_ANCHOR), on both stores, and migration 0020 prunes those kept
before it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import timedelta
from itertools import cycle
from typing import Any
from uuid import UUID, uuid4

import psycopg
from alembic import command

from domain.application import SNAPSHOT_INTERVAL, Ledger
from domain.recorders import SNAPSHOT_ANCHOR
from domain.relationship import Relationship, relationship_id
from domain.storage import Store
from migrations import alembic_config, upgrade
from tests.conftest import open_ledger
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push
from tests.integration.test_ledger_stores import answered, folded
from tests.random_refs import random_brand, random_customer

ANCHOR = 100
"""The tests' span (SNAPSHOT_ANCHOR is 200): a few spans in a few hundred events."""
MIGRATION_ANCHOR = 200
"""Migration 0020's span, as written there (not SNAPSHOT_ANCHOR, which may change later)."""
BATCHES = (7, 13, 1, 20, 3, 41)
"""Saves of these sizes in turn: snapshots fall on and off the multiples of 20 and of ANCHOR."""


def kept(written: Iterable[int], anchor: int) -> set[int]:
    """Of snapshots written at these versions, those to keep: the first of each span, the latest."""
    firsts: dict[int, int] = {}
    for version in sorted(written):
        firsts.setdefault(version // anchor, version)
    return {*firsts.values(), max(written)}


def stored_versions(ledger: Ledger, rid: UUID) -> list[int]:
    assert ledger.snapshots is not None
    return [s.originator_version for s in ledger.snapshots.recorder.select_events(rid)]


def written_history(store: Store) -> tuple[str, str, list[int], list[str]]:
    """A relationship of about 650 events saved in batches of BATCHES' sizes, with a decision
    every fourth save, snapshots pruned to spans of ANCHOR: its brand, customer, the versions
    its snapshots were written at, and its decisions' push ids."""
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(store)
    assert writer.snapshots is not None
    writer.snapshots.recorder.anchor = ANCHOR  # type: ignore[attr-defined]
    writer.set_policy(brand, {"frequency_cap": 50, **NO_QUIET_HOURS})
    writer.record(brand, grant(customer, categories=()))
    version, written, decided = writer.relationship(brand, customer).version, [], []
    for save, size in zip(range(60), cycle(BATCHES), strict=False):
        if save % 4 == 3:
            request = push(customer=customer, categories=())
            writer.decide_push(brand, request, now=NOON + timedelta(minutes=save))
            decided.append(request.push_id)
        else:
            writer.record_batch(brand, [answered(customer, f"c{save}-{i}") for i in range(size)])
        before, version = version, writer.relationship(brand, customer).version
        if any(v % SNAPSHOT_INTERVAL == 0 for v in range(before + 1, version + 1)):
            written.append(version)
    writer.close()
    return brand, customer, written, decided


def test_after_many_writes_only_the_latest_and_the_anchors_remain(store: Store) -> None:
    brand, customer, written, _ = written_history(store)
    reader = open_ledger(store)
    versions = stored_versions(reader, relationship_id(brand, customer))
    assert len(written) > 3 * len(versions)  # something was pruned, and
    assert set(versions) == kept(written, ANCHOR)  # exactly what is not an anchor
    reader.close()


def test_old_decisions_still_audit_and_as_of_reads_still_answer_as_before(store: Store) -> None:
    """Each decision re-evaluates from the anchor before it (the snapshots between are gone);
    the state at any earlier version, and as the ledger knew it at any record time, is the one
    the events fold to."""
    brand, customer, _, decided = written_history(store)
    rid = relationship_id(brand, customer)
    reader = open_ledger(store)
    for push_id in decided:
        audit = reader.audit_push_decision(brand, push_id)
        assert audit["reproduced"], (push_id, audit)
    events = list(reader.events.get(rid))
    for event in events[1 : len(events) : 37]:
        version = event.originator_version
        state: Any = None
        for earlier in events[:version]:
            state = earlier.mutate(state)  # type: ignore[attr-defined]
        at_version: Relationship = reader.repository.get(rid, version=version)
        as_of = reader.relationship(brand, customer, as_of=event.timestamp)  # type: ignore[attr-defined]
        assert vars(at_version) == vars(state) == vars(as_of), version
    assert vars(reader.relationship(brand, customer)) == vars(folded(reader, rid))
    reader.close()


def test_the_ledger_prunes_at_the_anchor_it_ships_with(store: Store) -> None:
    """SNAPSHOT_ANCHOR itself, without the tests' span: a snapshot written past the first span
    deletes the ones before it in that span, and the first stays."""
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(store)
    first = [answered(customer, f"c{i}") for i in range(SNAPSHOT_INTERVAL - 1)]  # and its opening
    writer.record_batch(brand, first)
    for i in range(3):
        batch = [answered(customer, f"d{i}-{j}") for j in range(SNAPSHOT_INTERVAL)]
        writer.record_batch(brand, batch)
    assert stored_versions(writer, relationship_id(brand, customer)) == [20, 80]
    assert SNAPSHOT_ANCHOR % SNAPSHOT_INTERVAL == 0  # single-event saves snapshot every anchor
    writer.close()


SNAPSHOTS_0019 = {"postgres": "ledger_snapshots", "sqlite": "stored_snapshots"}


def snapshot_rows(
    store: Store, rows: list[tuple[UUID, int]] | None = None
) -> set[tuple[UUID, int]]:
    """Inserts `rows` (id, version) as snapshots of no content, if given; the stored ones."""
    table = SNAPSHOTS_0019[store.kind]
    if store.kind == "sqlite":
        with sqlite3.connect(store.path) as conn:
            conn.executemany(
                f"INSERT INTO {table} VALUES (?, ?, 't', x'00')",
                [(rid.hex, version) for rid, version in rows or []],
            )
            found = conn.execute(f"SELECT originator_id, originator_version FROM {table}")
            return {(UUID(rid), version) for rid, version in found}
    with psycopg.connect(store.conninfo()) as pg:
        with pg.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s, 't', '\\x00')", rows or [])
        stored = pg.execute(f"SELECT originator_id, originator_version FROM {table}")
        return {(rid, version) for rid, version in stored.fetchall()}


def test_0020_deletes_exactly_the_snapshots_neither_latest_nor_anchors(empty_store: Store) -> None:
    """What the ledger kept before: a snapshot every 20 versions, and batches' off the multiples."""
    command.downgrade(alembic_config(empty_store), "0019")
    a, b, c = uuid4(), uuid4(), uuid4()
    every_20 = [(a, v) for v in range(20, 2521, 20)]
    batches = [(b, v) for v in (21, 999, 1001, 1003, 1999, 2000, 2017, 3004, 3050)]
    one = [(c, 40)]
    rows = every_20 + batches + one
    assert snapshot_rows(empty_store, rows) == set(rows)
    upgrade(empty_store)
    expected = {
        (group[0][0], v)
        for group in (every_20, batches, one)
        for v in kept([v for _, v in group], MIGRATION_ANCHOR)
    }
    assert snapshot_rows(empty_store) == expected
    assert {v for rid, v in expected if rid == a} == {*range(200, 2401, 200), 20, 2520}
    assert {v for rid, v in expected if rid == b} == {21, 999, 1001, 1999, 2000, 3004, 3050}
