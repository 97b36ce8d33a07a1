"""The Ledger on real SQLite and PostgreSQL: concurrency, atomicity, durability across processes."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.domain import Snapshot
from psycopg.sql import SQL, Literal

from domain.application import _LATEST_SNAPSHOTS, _LOAD_POSTGRES, SNAPSHOT_INTERVAL, Ledger
from domain.errors import (
    BatchRejected,
    ConcurrencyConflict,
    CustomerErased,
    RejectedEvent,
    RelationshipNotFound,
)
from domain.recorders import PostgresSnapshotRecorder
from domain.relationship import PostedEvent, Relationship, relationship_id
from domain.snapshots import ItemsInColumns, RelationshipSnapshot
from domain.storage import Store
from domain.versions import KnownVersions
from tests.conftest import new_postgres_database, new_sqlite_database, noted, open_ledger
from tests.factories import LATER, posted, story
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push
from tests.random_refs import random_brand, random_customer

ROOT = Path(__file__).parents[2]


def answered(customer: str, case_id: str) -> PostedEvent:
    return posted("question.answered", customer, case_id=case_id, topic="billing", resolved=True)


def test_concurrent_appends_from_threads_lose_nothing(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record(brand, answered(customer, "first"))
    recorded: list[str] = []
    conflicts: list[Exception] = []

    def append(worker: int) -> None:
        for i in range(15):
            event = answered(customer, f"w{worker}-{i}")
            try:
                ledger.record(brand, event)
                recorded.append(event.event_id)
            except ConcurrencyConflict as conflict:
                conflicts.append(conflict)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = ledger.interactions(brand, customer)
    versions = [e.originator_version for e in ledger.events.get(relationship_id(brand, customer))]
    assert versions == list(range(1, len(versions) + 1)), "versions are contiguous"
    assert {e.event_id for e in events[1:]} == set(recorded), "every acknowledged event is there"
    assert len(recorded) + len(conflicts) == 60, "every attempt was either recorded or reported"


APPEND_SCRIPT = """
import sys
from domain.errors import ConcurrencyConflict
from domain.storage import Store
from tests.conftest import open_ledger
from tests.factories import posted
url, brand, customer, worker = sys.argv[1:]
ledger = open_ledger(Store.from_url(url))
done = 0
for i in range(25):
    event = posted("question.answered", customer, case_id=f"p{worker}-{i}", topic="t", resolved=True)
    try:
        ledger.record(brand, event)
        print(event.event_id, flush=True)
    except ConcurrencyConflict:
        print("conflict", flush=True)
ledger.close()
"""


@pytest.mark.slow
def test_concurrent_appends_from_two_processes_lose_nothing(store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_SCRIPT, store.url, brand, customer, str(worker)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for worker in range(2)
    ]
    lines = [line for p in processes for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in processes)
    recorded = {line for line in lines if line != "conflict"}
    assert len(lines) == 50
    ledger = open_ledger(store)
    try:
        events = ledger.interactions(brand, customer)
        versions = [
            e.originator_version for e in ledger.events.get(relationship_id(brand, customer))
        ]
    finally:
        ledger.close()
    assert {e.event_id for e in events} == recorded
    assert versions == list(range(1, len(versions) + 1))


def _append_as_a_worker(
    url: str, brand: str, customer: str, worker: int, known: KnownVersions, out: Any
) -> None:
    ledger = open_ledger(Store.from_url(url), known_versions=known)
    for i in range(25):
        event = answered(customer, f"w{worker}-{i}")
        try:
            ledger.record(brand, event)
            out.put(event.event_id)
        except ConcurrencyConflict:
            out.put("conflict")
    ledger.close()


@pytest.mark.slow
def test_workers_sharing_known_versions_and_another_server_lose_nothing(store: Store) -> None:
    """Two worker processes forked with one table of known versions, and a third with its own
    (another server), append to one relationship at once: every acknowledged event is stored
    once, at contiguous versions, whatever each took for the latest."""
    brand, customer = random_brand(), random_customer()
    opener = open_ledger(store)
    opener.record(brand, answered(customer, "first"))
    opener.close()
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    shared = KnownVersions()
    tables = [shared, shared, KnownVersions()]
    workers = [
        fork.Process(target=_append_as_a_worker, args=(store.url, brand, customer, n, table, out))
        for n, table in enumerate(tables)
    ]
    for worker in workers:
        worker.start()
    answers = [out.get(timeout=120) for _ in range(75)]
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    ledger = open_ledger(store)
    events = ledger.interactions(brand, customer)
    versions = [e.originator_version for e in ledger.events.get(relationship_id(brand, customer))]
    ledger.close()
    recorded = [answer for answer in answers if answer != "conflict"]
    assert sorted(e.event_id for e in events[1:]) == sorted(recorded)
    assert versions == list(range(1, len(versions) + 1))
    assert len(recorded) >= 60, f"{75 - len(recorded)} of 75 gave up after 5 attempts"


@pytest.mark.parametrize("tables", ["none", "one per server", "shared by two workers"])
def test_two_ledgers_on_one_store_never_act_on_a_stale_relationship(
    store: Store, tables: str
) -> None:
    """Each ledger (as each server worker) keeps the relationships it saw; what the other wrote
    since makes its next save fail, and the event is judged again on the stored relationship.
    The same with a table of known versions (domain/versions.py): two workers of one server
    share it, so each reads what the other wrote; two servers do not, so each takes its stale
    copy for the latest and its save fails."""
    brand, customer = random_brand(), random_customer()
    shared = KnownVersions()
    first, second = (
        open_ledger(store, known_versions=None if tables == "none" else shared if tables.startswith("shared") else KnownVersions())
        for _ in range(2)
    )  # fmt: skip
    made = posted("promise.made", customer, promise_id="p1", summary="refund", due_at=LATER)
    answer = answered(customer, "c1")
    kept = posted("promise.kept", customer, promise_id="p1")
    again = posted("promise.made", customer, promise_id="p2", summary="call", due_at=LATER)
    broken = posted("promise.broken", customer, promise_id="p2", reason="forgot")
    assert first.record(brand, made).sequence == 2
    assert second.record(brand, answer).sequence == 3
    assert first.record(brand, kept).sequence == 4, "first knew version 2: its save of 3 failed"
    assert second.record(brand, again).sequence == 5
    assert first.record(brand, broken).sequence == 6, "p2 was unknown to first, not to the store"
    with pytest.raises(RejectedEvent):
        second.record(brand, posted("promise.kept", customer, promise_id="p2"))
    recorded = [e.event_id for e in second.interactions(brand, customer)]
    assert recorded == [e.event_id for e in (made, answer, kept, again, broken)]
    first.close()
    second.close()


def test_a_worker_reads_a_relationship_only_after_another_wrote_to_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers sharing their known versions: a command on a relationship this worker holds
    at the latest version reads nothing; one the other worker wrote to since is read first."""
    brand, customer = random_brand(), random_customer()
    shared = KnownVersions()
    first, second = (open_ledger(store, known_versions=shared) for _ in range(2))
    reads: list[str] = []
    for name, ledger in (("first", first), ("second", second)):
        monkeypatch.setattr(ledger, "_stored", noted(reads, name, ledger._stored))
    sequences = [
        first.record(brand, answered(customer, "1")).sequence,
        first.record(brand, answered(customer, "2")).sequence,
        second.record(brand, answered(customer, "3")).sequence,
        second.record(brand, answered(customer, "4")).sequence,
        first.record(brand, answered(customer, "5")).sequence,
        first.record(brand, answered(customer, "6")).sequence,
    ]
    assert sequences == [2, 3, 4, 5, 6, 7]
    assert reads == ["first", "second", "first"], (
        "a new relationship, then after each other's write"
    )
    assert [e.data["case_id"] for e in second.interactions(brand, customer)] == list("123456")
    first.close()
    second.close()


def test_a_ledger_that_never_saw_a_relationship_loads_it_from_its_snapshot(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker's relationship is loaded whole: its snapshot, the events after it, and the
    key its sealed fields need (on PostgreSQL by the same query: the key table is not asked)."""
    brand, customer = random_brand(), random_customer()
    writer, reader = open_ledger(store), open_ledger(store)
    writer.record_batch(brand, [answered(customer, f"c{i}") for i in range(55)])
    if store.kind == "postgres":

        def asked(rid: object) -> None:
            raise AssertionError(f"the key table was asked for {rid}")

        monkeypatch.setattr(reader.customer_keys.table, "select", asked)
    recording = reader.record(
        brand, posted("promise.made", customer, promise_id="p1", summary="refund", due_at=LATER)
    )
    assert recording.sequence == 57
    rid = relationship_id(brand, customer)
    assert reader.repository.cache is not None
    loaded = reader.repository.cache.get(rid)
    stored: Relationship = writer.repository.get(rid)
    assert isinstance(loaded, Relationship)
    assert loaded.counts == stored.counts
    assert loaded.version == stored.version
    writer.close()
    reader.close()


def folded(ledger: Ledger, rid: UUID) -> Relationship:
    """The relationship folded from every one of its events, no snapshot read."""
    relationship: Any = None
    for event in ledger.events.get(rid):
        relationship = event.mutate(relationship)  # type: ignore[attr-defined]
    assert isinstance(relationship, Relationship)
    return relationship


def in_order(relationship: Relationship) -> list[Any]:
    """Its items with their keys, in their order, each time with its offset (== sees none)."""
    return [
        (kind, item_id, [(key, value, getattr(value, "tzinfo", None)) for key, value in i.items()])
        for kind, by_id in relationship.items.items()
        for item_id, i in by_id.items()
    ]


def items_of_each_kind(customer: str) -> list[PostedEvent]:
    """Ten events leaving items of each kind, open and closed, one dated in another time zone."""
    east = (NOON - timedelta(days=1)).astimezone(timezone(timedelta(hours=2)))
    # fmt: off
    return [
        posted("promise.made", customer, at=east, promise_id="p1", summary="call", due_at=LATER),
        posted("promise.made", customer, promise_id="p2", summary="refund", due_at=LATER),
        posted("promise.kept", customer, promise_id="p2"),
        posted("offer.made", customer, offer_id="o1", summary="10% off"),
        posted("offer.made", customer, offer_id="o2", summary="upgrade", expires_at=LATER),
        posted("error.admitted", customer, error_id="x1", summary="double charge",
               severity="major", discovered_by="brand"),
        posted("error.reported", customer, error_id="x2", summary="late", reported_by="customer"),
        posted("question.answered", customer, case_id="k1", topic="billing", resolved=True),
        posted("case.reopened", customer, case_id="k1"),
        posted("advice.given", customer, advice_id="a1", topic="tariff", summary="switch"),
    ]
    # fmt: on


def test_a_relationship_read_from_its_snapshot_in_columns_equals_one_folded_from_its_events(
    store: Store,
) -> None:
    """Items of every kind, of several shapes each (open, closed, decided, deferred, sent), written
    in columns by the snapshot, read back by a ledger that never saw the relationship: the state
    is the one its events fold to, and a decision audited from it reproduces."""
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(store)
    writer.set_policy(brand, {"frequency_cap": 2, **NO_QUIET_HOURS})
    writer.record_batch(brand, [*items_of_each_kind(customer), grant(customer)])  # to version 12
    writer.record_batch(brand, [answered(customer, f"c{i}") for i in range(39)])
    requests = [push(customer=customer, categories=()) for _ in range(4)]
    for minute, request in enumerate(requests):
        writer.decide_push(brand, request, now=NOON + timedelta(minutes=minute))
    sent = posted("push.sent", customer, at=NOON, push_id=requests[0].push_id)
    writer.record(brand, replace(sent, channel="push"))
    rid = relationship_id(brand, customer)
    assert writer.snapshots is not None
    [snapshot] = writer.snapshots.get(rid)
    assert isinstance(snapshot, RelationshipSnapshot)
    [row] = writer.snapshots.recorder.select_events(rid)
    assert ItemsInColumns.name.encode() in row.state
    writer.close()

    reader = open_ledger(store)
    loaded = reader.relationship(brand, customer)
    assert loaded.version == snapshot.originator_version + 5  # 4 decisions and a send after it
    outcomes = [i.get("outcome") for i in loaded.items["push"].values()]
    assert {"allow", "defer"} <= set(outcomes), outcomes
    assert vars(loaded) == vars(folded(reader, rid))
    assert in_order(loaded) == in_order(folded(reader, rid))
    assert reader.audit_push_decision(brand, requests[-1].push_id)["reproduced"]
    reader.close()


def test_a_snapshot_written_before_items_were_in_columns_still_reads(store: Store) -> None:
    """A snapshot of the library's form (items as dicts, each time a `_type_` object) is read as
    it was; the next snapshot is written in columns."""
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(store)
    writer.record_batch(brand, [*items_of_each_kind(customer), grant(customer)])
    assert writer.snapshots is not None
    writer.snapshots.put([Snapshot.take(writer.relationship(brand, customer))])
    writer.record_batch(brand, [answered(customer, f"c{i}") for i in range(3)])
    writer.close()

    rid = relationship_id(brand, customer)
    reader = open_ledger(store)
    assert reader.snapshots is not None
    [before] = reader.snapshots.get(rid)
    assert type(before) is Snapshot
    loaded = reader.relationship(brand, customer)
    assert loaded.version == before.originator_version + 3
    assert vars(loaded) == vars(folded(reader, rid))
    assert in_order(loaded) == in_order(folded(reader, rid))
    reader.record_batch(brand, [answered(customer, f"d{i}") for i in range(35)])  # to 50
    assert [type(s) for s in reader.snapshots.get(rid)] == [Snapshot, RelationshipSnapshot]
    reader.close()


@pytest.mark.postgres
def test_a_batchs_snapshots_are_written_with_their_states_as_binary_parameters(
    migrated_postgres: Store,
) -> None:
    """The library sent them as one array of composite values, which psycopg writes out as text
    (each state in hex, escaped by a regular expression): most of the Python of the save that
    took a long relationship's snapshot. Each is read back as written."""
    brand, customers = random_brand(), [random_customer() for _ in range(3)]
    writer = open_ledger(migrated_postgres)
    assert writer.snapshots is not None
    assert type(writer.snapshots.recorder) is PostgresSnapshotRecorder
    answers = [answered(c, f"c{i}") for c in customers for i in range(SNAPSHOT_INTERVAL - 1)]
    writer.record_batch(brand, answers)
    reader = open_ledger(migrated_postgres)
    for customer in customers:
        rid = relationship_id(brand, customer)
        [snapshot] = reader.snapshots.get(rid)  # type: ignore[union-attr]
        assert snapshot.originator_version == SNAPSHOT_INTERVAL
        assert vars(snapshot.mutate(None)) == vars(folded(reader, rid))  # type: ignore[union-attr]
    writer.close()
    reader.close()


def test_a_ledger_that_never_saw_an_erased_customer_refuses_their_events(store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    writer, reader = open_ledger(store), open_ledger(store)
    writer.record_batch(brand, story(customer)[:3])
    writer.erase(brand, customer, requested_by="dpo", reason="art. 17")
    with pytest.raises(CustomerErased):
        reader.record(brand, answered(customer, "after"))
    writer.close()
    reader.close()


def test_a_batch_with_one_invalid_event_stores_nothing(ledger: Ledger) -> None:
    brand, customers = random_brand(), [random_customer(), random_customer()]
    batch = [*story(customers[0]), posted("offer.honored", customers[1], offer_id="never-made")]
    with pytest.raises(BatchRejected):
        ledger.record_batch(brand, batch)
    for customer in customers:
        with pytest.raises(RelationshipNotFound):
            ledger.interactions(brand, customer)
    assert list(ledger.customers(brand)) == []


def test_a_new_process_reads_back_everything(store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(store)
    events = story(customer)
    ledger.record_batch(brand, events)
    ledger.close()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "--database-url",
            store.url,
            "events",
            "--brand",
            brand,
            "--customer",
            customer,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event_id"] for line in lines] == [e.event_id for e in events]
    assert lines[0]["data"]["summary"] == "refund by Friday"
    assert lines[0]["sequence"] == 2


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    ledger = open_ledger(new_sqlite_database(tmp_path))
    try:
        with ledger.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
    finally:
        ledger.close()


@pytest.mark.postgres
def test_the_load_query_reads_by_index_whatever_the_tables_hold() -> None:
    """The load is prepared once and runs on its generic plan: it must look each relationship up
    by index, never scan the log or the keys (a hash join over every customer key was once
    planned). The snapshots' table is empty here, and rightly scanned."""
    store = new_postgres_database()
    ledger = open_ledger(store)
    brand = random_brand()
    ledger.record_batch(brand, [answered(f"cust-{i}", f"case-{i}") for i in range(500)])
    ledger.close()
    wanted = json.dumps(
        [{"id": str(relationship_id(brand, "cust-1")), "after": 0, "unseen": True, "key": True}]
    )
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE load(text) AS {_LOAD_POSTGRES.replace('%s', '$1')}")
        execute = SQL("EXECUTE load({})").format(Literal(wanted))
        plan = "\n".join(row[0] for row in conn.execute(SQL("EXPLAIN ") + execute))
        rows = conn.execute(execute).fetchall()
    assert "Seq Scan on customer_keys" not in plan and "Seq Scan on ledger_events" not in plan, plan
    assert sorted(row[0] for row in rows) == ["e", "e", "k"]  # Opened, the answer, the key


@pytest.mark.postgres
def test_every_session_the_ledger_opens_runs_without_jit(migrated_postgres: Store) -> None:
    """JIT compiled the load query's generic plan on every run once histories grew (7 ms each)."""
    store = migrated_postgres
    ledger = open_ledger(store)
    with ledger.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        assert conn.execute("SHOW jit").fetchone()["jit"] == "off"
    ledger.close()
    with psycopg.connect(store.conninfo()) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)


@pytest.mark.postgres
def test_a_save_waits_for_the_table_lock_and_notifies_its_channel(migrated_postgres: Store) -> None:
    """The save function (migration 0007) takes the library's table lock, so notification ids
    commit in order (a projection following them misses none), and NOTIFYs its channel, which
    the projection runner listens on."""
    store = migrated_postgres
    ledger = open_ledger(store)
    done = threading.Event()
    with psycopg.connect(store.conninfo(), autocommit=True) as listener:
        listener.execute("LISTEN ledger_events")
        with psycopg.connect(store.conninfo()) as holder:
            # ROW SHARE lets inserts through; only the save's EXCLUSIVE lock waits for it.
            holder.execute("LOCK TABLE ledger_events IN ROW SHARE MODE")

            def write() -> None:
                ledger.record(random_brand(), answered("c", "1"))
                done.set()

            writer = threading.Thread(target=write)
            writer.start()
            assert not done.wait(0.5)  # held up by the lock
        writer.join(10)  # the lock is released as `holder` commits
        assert done.is_set()
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == ["ledger_events"]
    ledger.close()


@pytest.mark.postgres
def test_a_ledger_used_by_one_thread_holds_one_connection(migrated_postgres: Store) -> None:
    """A gunicorn worker serves one request at a time: its ledger needs one connection, and one
    kept warm costs PostgreSQL less than several handed out in turn (Store.eventsourcing_env)."""
    from tests.gate_factories import NO_QUIET_HOURS, grant, push

    ledger = open_ledger(migrated_postgres)
    brand, customers = random_brand(), [random_customer() for _ in range(3)]
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record_batch(brand, [grant(customer) for customer in customers])
    for customer in customers:
        ledger.record(brand, answered(customer, "1"))
        ledger.decide_push(brand, push(customer=customer))
        ledger.interactions(brand, customer)
    stats = ledger.recorder.datastore.pool.get_stats()  # type: ignore[attr-defined]
    ledger.close()
    assert (stats["connections_num"], stats["pool_size"]) == (1, 1), stats


@pytest.mark.postgres
def test_a_key_the_ledger_no_longer_holds_comes_with_its_relationships_events(
    migrated_postgres: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relationship seen before whose key was held longer than the key cache allows: the load's
    one query reads the key again, rather than a query of its own."""
    from tests.gate_factories import NO_QUIET_HOURS, grant, push

    ledger = open_ledger(migrated_postgres, key_cache_seconds=0.2)
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    writer = open_ledger(migrated_postgres)
    writer.record(brand, answered(customer, "1"))  # an event this ledger has to open
    writer.close()
    table = ledger.customer_keys.table
    selects: list[UUID] = []
    select = table.select

    def counted(rid: UUID) -> tuple[str, bytes] | None:
        selects.append(rid)
        return select(rid)

    monkeypatch.setattr(table, "select", counted)
    time.sleep(0.3)
    decision = ledger.decide_push(brand, push(customer=customer))
    time.sleep(0.3)
    recording = ledger.record(brand, answered(customer, "2"))
    ledger.close()
    assert (decision["outcome"], recording.sequence) == ("allow", 5)
    assert selects == [], "no query of its own for a key"


@pytest.mark.postgres
def test_a_relationship_is_read_with_the_bulk_loaders_one_query(migrated_postgres: Store) -> None:
    """Ledger.relationship reads one this process has not seen with one query (the library's
    repository spent three: its snapshot, its events, its key), and hands out a copy."""
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(migrated_postgres)
    writer.record_batch(brand, story(customer))
    writer.close()
    reader = open_ledger(migrated_postgres)
    asked: list[str] = []
    for name, target in (
        ("events", reader.events),
        ("snapshots", reader.snapshots),
        ("keys", reader.customer_keys.table),
    ):
        method = "select" if name == "keys" else "get"
        setattr(target, method, noted(asked, name, getattr(target, method)))
    read = reader.relationship(brand, customer)
    assert asked == []
    read.counts.clear()  # the caller's copy: the next read is as stored
    again = reader.relationship(brand, customer)
    assert again.counts and again.version == len(story(customer)) + 1
    assert vars(again) == vars(reader.repository.get(relationship_id(brand, customer)))
    reader.close()


def test_the_sqlite_load_looks_each_latest_snapshot_up_by_its_key(tmp_path: Path) -> None:
    """A relationship 100,000 events long has 102 snapshots (the latest and one every 1,000
    versions; 2,000 before they were pruned): the load must go to the latest by its key, not
    test each of them (6 ms a load, once, at 2,000)."""
    import sqlite3

    store = new_sqlite_database(tmp_path)
    with sqlite3.connect(store.path) as conn:
        query = _LATEST_SNAPSHOTS.format(values="(?, ?), (?, ?)")
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", ["a", 0, "b", 0])]
    assert "SEARCH s USING PRIMARY KEY (originator_id=? AND originator_version=?)" in plan, plan


@pytest.mark.parametrize("first", ["record", "decide"])
def test_a_key_another_thread_prepares_meanwhile_never_seals_this_save(
    store: Store, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Two threads of one process creating the same relationship each prepare a key. Prepared
    keys were cached at once, for every thread: the save that won could seal its events with
    the other thread's key, never stored, so no one could open them again."""
    ledger = open_ledger(store)
    brand, customer = random_brand(), random_customer()
    prepare = ledger.customer_keys.prepare_many

    def racing(brand_: str, rids: list[UUID]) -> Any:
        mine = prepare(brand_, rids)
        prepare(brand_, rids)  # the other thread's key for the same relationship, meanwhile
        return mine

    monkeypatch.setattr(ledger.customer_keys, "prepare_many", racing)
    if first == "record":
        ledger.record(brand, posted("promise.made", customer, promise_id="p", summary="call me",
                                    due_at=LATER))  # fmt: skip
    else:
        ledger.decide_push(brand, push(customer=customer))
    ledger.record(brand, posted("advice.given", customer, advice_id="a", topic="t",
                                summary="switch to flex"))  # fmt: skip
    fresh = open_ledger(store)  # nothing cached: every key from the table
    events = list(fresh.events.get(relationship_id(brand, customer)))
    summaries = [getattr(event, "summary", None) for event in events]
    assert summaries[-1] == "switch to flex"
    assert first != "record" or summaries[1] == "call me"
    fresh.close()
    ledger.close()
