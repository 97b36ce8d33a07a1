"""Read models follow the log exactly once, on both stores, through stops, restarts and kills."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.application import Ledger
from domain.storage import Store
from projections.db import Database
from projections.readmodel import Page
from projections.relationships import Relationships
from projections.runner import READ_MODELS, ProjectionFailed, Runner
from projections.timeline import Timeline, timeline_page
from tests.conftest import new_sqlite_database, open_ledger
from tests.factories import interleaved, posted, story
from tests.random_refs import random_brand, random_customer

ROOT = Path(__file__).parents[2]


@pytest.fixture
def fresh_ledger(empty_store: Store) -> Iterator[Ledger]:
    ledger = open_ledger(empty_store)
    yield ledger
    ledger.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), page_size=st.integers(1, 40), customers=st.integers(1, 4))
def test_incremental_with_stops_and_restarts_equals_a_rebuild(
    seed: int, page_size: int, customers: int
) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as directory:
        ledger = open_ledger(new_sqlite_database(Path(directory)))
        events = interleaved(rng, customers)
        runner = Runner(ledger, page_size=page_size)
        while events:
            size = rng.randint(1, 12)
            ledger.record_batch("acme", events[:size])
            events = events[size:]
            if rng.random() < 0.4:  # a restart: a new runner resumes from the positions
                runner.close()
                runner = Runner(ledger, page_size=rng.randint(1, 40))
            runner.run_once(max_pages=rng.randint(0, 3))
        runner.run_once()
        assert runner.rebuild(verify=True) == {}
        runner.close()
        ledger.close()


def test_delivering_an_applied_page_again_changes_nothing(fresh_ledger: Ledger) -> None:
    fresh_ledger.record_batch("acme", story("c1") + story("c2"))
    runner = Runner(fresh_ledger)
    runner.run_once()
    notifications = fresh_ledger.recorder.select_notifications(1, 1000)
    tables = {t: t for model in READ_MODELS for t in model.tables}
    runner._apply(notifications, notifications[-1].id, runner.models, tables, track=False)
    assert runner.rebuild(verify=True) == {}
    runner.close()


def read_model_schema(db: Database) -> list[Any]:
    """Columns, indexes and constraints of the read models' tables, names included."""
    tables = sorted(t for model in READ_MODELS for t in model.tables)
    if db.is_sqlite:
        return [
            (
                db.query(f"PRAGMA table_info({table})"),
                sorted(row[1:] for row in db.query(f"PRAGMA index_list({table})")),
                db.query(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
                    " ORDER BY name",
                    [table],
                ),
            )
            for table in tables
        ]
    return [
        db.query(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_name = ANY(?)"
            " ORDER BY table_name, ordinal_position",
            [tables],
        ),
        db.query(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(?)"
            " ORDER BY indexname",
            [tables],
        ),
        db.query(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid::regclass::text = ANY(?) ORDER BY conname",
            [tables],
        ),
    ]


def test_a_rebuild_swaps_in_tables_with_the_migrated_schema_and_the_same_rows(
    fresh_ledger: Ledger,
) -> None:
    fresh_ledger.record_batch("acme", story("c1") + story("c2"))
    runner = Runner(fresh_ledger)
    migrated = read_model_schema(runner.db)
    runner.run_once()
    timeline = runner.db.query("SELECT * FROM timeline ORDER BY relationship_id, sequence")
    for _ in range(2):  # and again from the tables a rebuild swapped in
        assert runner.rebuild() == {}
        assert read_model_schema(runner.db) == migrated
    assert runner.db.query("SELECT * FROM timeline ORDER BY relationship_id, sequence") == timeline
    assert runner.rebuild(verify=True) == {}
    assert not runner.db.table_exists("timeline_rebuild")
    runner.close()


def test_a_rebuild_in_two_processes_equals_one_in_one(fresh_ledger: Ledger) -> None:
    for brand in ("acme", "globex"):
        fresh_ledger.record_batch(brand, [e for i in range(3) for e in story(f"c{i}")])
    fresh_ledger.erase("acme", "c1", requested_by="dpo", reason="the customer asked")
    runner = Runner(fresh_ledger, page_size=9)
    runner.run_once()
    tables = sorted(t for model in READ_MODELS for t in model.tables)
    live = {t: sorted(map(repr, runner.db.query(f"SELECT * FROM {t}"))) for t in tables}
    assert runner.rebuild(processes=2) == {}
    assert {t: sorted(map(repr, runner.db.query(f"SELECT * FROM {t}"))) for t in tables} == live
    assert runner.rebuild(verify=True, processes=2) == {}
    runner.close()


def test_a_failed_replay_in_the_other_process_fails_the_rebuild_and_changes_nothing(
    fresh_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_ledger.record_batch("acme", story("c1"))
    runner = Runner(fresh_ledger)
    runner.run_once()
    live = runner.db.query("SELECT * FROM relationships")

    def broken(*_: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(Relationships, "apply", broken)  # the forked process inherits it
    with pytest.raises(ProjectionFailed, match="replay of relationships"):
        runner.rebuild(processes=2)
    assert runner.db.query("SELECT * FROM relationships") == live
    monkeypatch.undo()
    assert runner.rebuild(verify=True) == {}
    runner.close()


def test_two_workers_never_both_apply_an_event(fresh_ledger: Ledger) -> None:
    fresh_ledger.record_batch("acme", [e for i in range(6) for e in story(f"c{i}")])
    runners = [Runner(fresh_ledger, page_size=7) for _ in range(2)]
    threads = [threading.Thread(target=r.run_once) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = runners[0].db.scalar("SELECT sum(events) FROM relationships")
    assert counted == 6 * len(story())
    assert runners[0].db.scalar("SELECT count(*) FROM timeline") == 6 * len(story())
    assert runners[0].rebuild(verify=True) == {}
    for runner in runners:
        runner.close()


class FailingTimeline(Timeline):
    """The timeline, failing on one event id, as a bug in a read model would."""

    def __init__(self, poisoned: str) -> None:
        self.poisoned = poisoned

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        if any(e.event_id == self.poisoned for _, e in page.interactions):
            raise ValueError("boom")
        super().apply(db, page, tables)


def test_an_event_that_fails_stops_the_projection_before_it_and_is_retried(
    fresh_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    events = story("c1")
    fresh_ledger.record_batch("acme", events)
    poisoned = events[10].event_id
    runner = Runner(fresh_ledger, models=[FailingTimeline(poisoned)], page_size=50)
    with caplog.at_level(logging.ERROR), pytest.raises(ProjectionFailed, match=poisoned):
        runner.run_once()
    assert poisoned in caplog.text
    applied = runner.db.query("SELECT event_id FROM timeline ORDER BY sequence")
    assert [row[0] for row in applied] == [e.event_id for e in events[:10]], (
        "everything before it, nothing after"
    )
    runner.close()
    fixed = Runner(fresh_ledger)
    fixed.run_once()
    assert fixed.db.scalar("SELECT count(*) FROM timeline") == len(events)
    assert fixed.rebuild(verify=True) == {}
    fixed.close()


@pytest.mark.slow
def test_a_killed_worker_resumes_and_the_tables_equal_a_rebuild(fresh_ledger: Ledger) -> None:
    for batch in range(40):
        fresh_ledger.record_batch("acme", [e for i in range(4) for e in story(f"c{batch}-{i}")])
    head = fresh_ledger.recorder.max_notification_id()
    assert head is not None
    command = [sys.executable, "-m", "api", "--database-url", fresh_ledger.store.url, "project"]
    worker = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    runner = Runner(fresh_ledger)
    deadline = time.monotonic() + 60
    while not min(runner.positions().values()) > 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    reached = min(runner.positions().values())
    assert 0 < reached < head, "the worker was killed in the middle of the stream"
    subprocess.run([*command, "--once"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert min(runner.positions().values()) == head
    assert runner.rebuild(verify=True) == {}
    runner.close()


def test_timeline_cursors_stay_stable_while_events_arrive(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record_batch(brand, story(customer))
    runner = Runner(ledger)
    runner.run_once()
    first = timeline_page(runner.db, brand, customer, limit=10)
    ledger.record_batch(
        brand,
        [
            posted("question.answered", customer, case_id=f"n{i}", topic="t", resolved=True)
            for i in range(5)
        ],
    )
    runner.run_once()
    second = timeline_page(runner.db, brand, customer, limit=10, cursor=first.next_cursor)
    newest = [item["sequence"] for item in first.items]
    assert newest == sorted(newest, reverse=True)
    assert [item["sequence"] for item in second.items] == list(
        range(newest[-1] - 1, newest[-1] - 11, -1)
    )
    everything, cursor = [], None
    while True:
        page = timeline_page(runner.db, brand, customer, limit=7, cursor=cursor)
        everything += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(everything) == len(story()) + 5
    runner.close()


def test_timeline_types_filter(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.record_batch(brand, story(customer))
    runner = Runner(ledger)
    runner.run_once()
    page = timeline_page(runner.db, brand, customer, types=["promise.made", "promise.kept"])
    assert [item["type"] for item in page.items] == [
        "promise.made",
        "promise.made",
        "promise.kept",
        "promise.made",
    ]
    runner.close()


def test_as_of_returns_exactly_what_was_recorded_by_then(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    events = story(customer)
    ledger.record_batch(brand, events[:20])
    between = datetime.now(UTC)
    ledger.record_batch(brand, events[20:])
    runner = Runner(ledger)
    runner.run_once()
    then = timeline_page(runner.db, brand, customer, limit=200, as_of=between)
    assert {item["event_id"] for item in then.items} == {e.event_id for e in events[:20]}
    from projections.consents import consents

    assert consents(runner.db, brand, customer, as_of=between) == []
    now = {(c["purpose"], c["channel"]): c["status"] for c in consents(runner.db, brand, customer)}
    assert now == {("marketing", "email"): "granted", ("marketing", "push"): "withdrawn"}
    runner.close()


def test_waiting_for_a_recording_returns_once_it_is_applied(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    runner = Runner(ledger)
    stop = threading.Event()
    worker = threading.Thread(target=runner.run_forever, args=(stop,))
    worker.start()
    try:
        recording = ledger.record(brand, story(customer)[0])
        runner.wait(recording.position, timeout=10)
        assert timeline_page(runner.db, brand, customer).items[0]["event_id"] == recording.event_id
    finally:
        stop.set()
        worker.join()
        runner.close()


def test_rebuild_and_lag_from_the_command_line(fresh_ledger: Ledger) -> None:
    fresh_ledger.record_batch("acme", story("c1"))
    url = fresh_ledger.store.url
    run = [sys.executable, "-m", "api", "--database-url", url]
    lag = subprocess.run([*run, "lag"], cwd=ROOT, capture_output=True, text=True, check=True)
    head = fresh_ledger.recorder.max_notification_id()
    assert f"timeline{' ' * 16}0 of {head}" in lag.stdout
    assert lag.stdout.count(f"lag {head}") == 4
    subprocess.run([*run, "project", "--once"], cwd=ROOT, check=True, capture_output=True)
    verified = subprocess.run(
        [*run, "rebuild", "--verify"], cwd=ROOT, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    assert "identical" in verified.stdout
    db = Database(fresh_ledger.store)
    db.execute("UPDATE relationships SET events = events + 1")
    broken = subprocess.run([*run, "rebuild", "--verify"], cwd=ROOT, capture_output=True, text=True)
    assert broken.returncode != 0
    assert "relationships" in broken.stdout + broken.stderr
    rebuilt = subprocess.run(
        [*run, "rebuild", "--projection", "relationships"], cwd=ROOT, capture_output=True, text=True
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert db.scalar("SELECT events FROM relationships") == len(story())
    bad = subprocess.run(
        [*run, "rebuild", "--projection", "nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    db.close()
