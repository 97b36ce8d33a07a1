"""A migration is one transaction: all of it is stored or none, and no write lands inside it.

On SQLite pysqlite committed each DDL statement as it ran, so a migration that failed halfway
left the store half-migrated at its old revision, and a process left running wrote between a
migration's statements (migrations.migration_engine says how it is one transaction now).

Each test migrates with the real revisions plus one of its own after the head (NEXT, written
into a copy of migrations/, which `alembic_config` then uses), whose upgrade changes the schema
and the data, calling HALFWAY after each: a test's hook raises there, or writes from another
connection while the migration holds the store (after its DDL alone, which pysqlite committed
as it ran, holding no lock until the first INSERT, UPDATE or DELETE).
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

import migrations
from domain.errors import StoreMigratedAway
from domain.storage import DATABASE_ERRORS, REVISIONS, Store, unavailable
from migrations import alembic_config, current, upgrade
from projections.db import Database
from projections.runner import Runner
from tests.conftest import new_sqlite_database, open_ledger
from tests.factories import posted, story
from tests.integration.test_revision_guard import rows_of
from tests.random_refs import random_brand, random_customer

NEXT = "9000"
"""The revision a test adds after the head."""

HALFWAY: list[Callable[[str], None]] = []
"""What NEXT's upgrade calls after its schema changes, and again after its data changes: the
hook a test sets, given which ("schema changed", "data changed")."""

REVISION = f'''"""A test's revision (tests/integration/test_migration_transactions.py)."""

from alembic import op

from tests.integration import test_migration_transactions as test

revision = "{NEXT}"
down_revision = "{REVISIONS[-1]}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE next_table (id TEXT PRIMARY KEY, note TEXT)")
    op.execute("ALTER TABLE timeline ADD COLUMN next_column TEXT")
    op.execute("CREATE INDEX timeline_next ON timeline (next_column)")
    test.HALFWAY[0]("schema changed")
    op.execute("INSERT INTO next_table (id, note) VALUES ('a', 'b')")
    op.execute("UPDATE projection_positions SET position = position + 1000")
    op.execute("UPDATE event_ids SET fingerprint = 'next:' || fingerprint")
    test.HALFWAY[0]("data changed")


def downgrade() -> None:
    op.execute("DROP INDEX timeline_next")
    op.execute("ALTER TABLE timeline DROP COLUMN next_column")
    op.execute("DROP TABLE next_table")
'''


def add_next(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on in the test, migrations (`upgrade`, alembic's commands) run the real
    revisions and then NEXT."""
    scripts = directory / "migrations"
    shutil.copytree(
        migrations.HERE, scripts, ignore=shutil.ignore_patterns("__pycache__", "__init__.py")
    )
    (scripts / "versions" / f"{NEXT}_a_tests_revision.py").write_text(REVISION)
    monkeypatch.setattr(migrations, "HERE", scripts)


@pytest.fixture(autouse=True)
def no_hook_left() -> Iterator[None]:
    yield
    HALFWAY.clear()


class Halfway(Exception):
    """What the failing migration raises halfway."""


def fails(stage: str) -> None:
    if stage == "data changed":
        raise Halfway


def everything(store: Store) -> dict[str, Any]:
    """The store's schema and every row of every table, read on a connection of its own."""
    if store.is_sqlite:
        with sqlite3.connect(store.path) as conn:
            schema = conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            ).fetchall()
            tables = [name for kind, name, _, _ in schema if kind == "table"]
            rows = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
        conn.close()
        return {"schema": schema, "rows": rows}
    with psycopg.connect(store.conninfo()) as pg:
        columns = pg.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
        indexes = pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " ORDER BY indexname"
        ).fetchall()
        functions = pg.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            " ORDER BY 1"
        ).fetchall()
        tables = sorted({table for table, *_ in columns})
        rows = {t: sorted(map(repr, pg.execute(f"SELECT * FROM {t}"))) for t in tables}
    return {
        "schema": {"columns": columns, "indexes": indexes, "functions": functions},
        "rows": rows,
    }


def filled(store: Store) -> None:
    """Events, keys, claims and read models: what a migration's data changes would touch."""
    ledger = open_ledger(store)
    ledger.record_batch(random_brand(), story(random_customer()))
    runner = Runner(ledger)
    runner.run_once()
    runner.close()
    ledger.close()


@pytest.mark.parametrize("start", ["head", "0014"])
def test_a_migration_that_fails_halfway_leaves_the_store_as_it_was(
    empty_store: Store, start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the head (one step: its DDL was committed as it ran on SQLite) and from an older
    revision (several real steps before the one that fails): back to where it started, whole."""
    filled(empty_store)
    add_next(tmp_path, monkeypatch)
    if start != "head":
        command.downgrade(alembic_config(empty_store), start)
    before = everything(empty_store)
    at = REVISIONS[-1] if start == "head" else start
    assert before["rows"]["alembic_version"] == [repr((at,))]
    HALFWAY.append(fails)
    with pytest.raises(Halfway):
        upgrade(empty_store)
    assert everything(empty_store) == before
    HALFWAY[0] = lambda stage: None
    upgrade(empty_store)  # and it runs whole once nothing fails
    assert current(empty_store) == NEXT
    assert everything(empty_store)["rows"]["next_table"] == [repr(("a", "b"))]


@pytest.fixture
def writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Writer]:
    """A Writer on a SQLite store at the head, and NEXT to migrate it to. Parametrized, the
    seconds its saves wait for the write lock (the library's SQLITE_LOCK_TIMEOUT; else 30)."""
    lock_timeout = getattr(request, "param", None)
    if lock_timeout is not None:
        monkeypatch.setenv("LEDGER_SQLITE_LOCK_TIMEOUT", str(lock_timeout))
    writer = Writer(new_sqlite_database(tmp_path))
    add_next(tmp_path, monkeypatch)
    yield writer
    writer.close()


class Writer:
    """A process of this version left running on a SQLite store while it is migrated: it holds
    a customer's events, and writes one more from a thread of its own."""

    def __init__(self, store: Store) -> None:
        self.ledger = open_ledger(store)
        self.brand, self.customer = random_brand(), random_customer()
        self.ledger.record_batch(self.brand, story(self.customer))
        self.db = Database(store)
        self.before = self.rows()
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self.write)

    def rows(self) -> dict[str, int]:
        return rows_of(self.db, self.ledger, self.brand, self.customer)

    def write(self) -> None:
        event = posted("question.answered", self.customer, case_id="c9", topic="x", resolved=True)
        try:
            self.outcome.append(self.ledger.record(self.brand, event))
        except (StoreMigratedAway, *DATABASE_ERRORS) as error:
            self.outcome.append(error)

    def close(self) -> None:
        self.db.close()
        self.ledger.close()


def test_a_sqlite_write_begun_during_a_migration_waits_for_it_then_is_refused(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration holds SQLite's write lock from its BEGIN IMMEDIATE to its commit: a save
    begun meanwhile waits for the commit, then reads the new revision and is refused, as on
    PostgreSQL. (Before, the migration held no lock between its DDL statements: the save was
    stored under the old revision, beside the half-made schema.)"""
    saving = threading.Event()
    save = writer.ledger.recorder._insert_events  # type: ignore[attr-defined]

    def noted_save(*args: Any, **kwargs: Any) -> Any:
        saving.set()
        return save(*args, **kwargs)

    monkeypatch.setattr(writer.ledger.recorder, "_insert_events", noted_save)

    def halfway(stage: str) -> None:
        if stage == "schema changed":
            writer.thread.start()
            saving.wait(timeout=60)
            writer.thread.join(timeout=1)  # unlocked, the save had long been stored by then

    HALFWAY.append(halfway)
    upgrade(writer.ledger.store)
    writer.thread.join()
    assert len(writer.outcome) == 1 and isinstance(writer.outcome[0], StoreMigratedAway)
    assert writer.ledger.store.guard.moved_to == NEXT and current(writer.ledger.store) == NEXT
    assert writer.rows() == writer.before


@pytest.mark.parametrize("writer", [1], indirect=True)
def test_a_sqlite_write_that_gives_up_waiting_for_a_migration_stores_nothing(
    writer: Writer,
) -> None:
    """A save whose lock timeout ends before the migration does is refused as the store being
    busy (503 store-unavailable: try again), and stores nothing."""

    def halfway(stage: str) -> None:
        if stage == "schema changed":
            writer.thread.start()
            writer.thread.join()

    HALFWAY.append(halfway)
    upgrade(writer.ledger.store)
    [refused] = writer.outcome
    assert isinstance(refused, Exception) and "database is locked" in str(refused)
    assert unavailable(refused) and current(writer.ledger.store) == NEXT
    assert writer.rows() == writer.before


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_every_revision_runs_in_the_one_transaction_on_sqlite(
    tmp_path: Path, revision: str
) -> None:
    """No revision commits, or does what SQLite refuses inside a transaction (`VACUUM`, `PRAGMA
    journal_mode`): a new store migrated to `revision` goes on to the head, and a store at the
    head with events in its log goes down to it and back."""
    new = Store.from_url(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    upgrade(new, revision)
    assert current(new) == revision
    upgrade(new)
    assert current(new) == REVISIONS[-1]
    used = new_sqlite_database(tmp_path / "used")
    filled(used)
    command.downgrade(alembic_config(used), revision)
    assert current(used) == revision
    upgrade(used)
    assert current(used) == REVISIONS[-1]
