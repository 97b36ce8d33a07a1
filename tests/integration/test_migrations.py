"""Alembic owns the schema: migrating twice is harmless, and the result is what the library expects."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from eventsourcing.application import Application

from domain.application import IdempotencyKey, Ledger, PushClaim
from domain.errors import EventIdConflict, PushIdConflict
from domain.relationship import relationship_id
from domain.storage import REVISIONS, Store
from migrations import alembic_config, current, upgrade
from projections.db import Database
from projections.runner import READ_MODELS, Runner
from tests.conftest import code_knowing, new_postgres_database, open_ledger
from tests.factories import story
from tests.gate_factories import NOON, grant, push, scores
from tests.integration.test_erasure_read_models import READ_MODEL_TABLES
from tests.random_refs import random_brand, random_customer

ROOT = Path(__file__).parents[2]


class LibraryLedger(Application[UUID]):
    """The library's own application under the Ledger's name: it creates the tables it expects.

    (The Ledger itself refuses to start without its customer key tables, which only alembic makes.)
    """

    name = "Ledger"
    snapshotting_intervals = Ledger.snapshotting_intervals


def create_library_tables(store: Store) -> None:
    LibraryLedger({**store.eventsourcing_env(), "CREATE_TABLE": "y"}).close()


def test_migrating_twice_is_harmless(empty_store: Store) -> None:
    upgrade(empty_store)
    upgrade(empty_store)
    assert current(empty_store) is not None


@pytest.mark.slow
def test_migrate_run_by_several_processes_at_once_succeeds_in_each(
    unmigrated_store: Store,
) -> None:
    """Hosts that each run `trustledger migrate` as they start: every one but the first failed,
    racing it to create the same tables (`table alembic_version already exists`, or PostgreSQL's
    `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`)."""
    command = [sys.executable, "-m", "api", "--database-url", unmigrated_store.url, "migrate"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(8)
    ]
    outputs = [(run.wait(timeout=120), run.communicate()[0].decode()) for run in runs]
    assert all(status == 0 for status, _ in outputs), outputs
    assert current(unmigrated_store) == head_revision()
    if unmigrated_store.is_sqlite:
        assert not list(Path(unmigrated_store.path).parent.glob("*-migrate-lock"))


def test_migrate_leaves_nothing_beside_the_sqlite_file(tmp_path: Path) -> None:
    """`trustledger migrate` left an empty `<db>-migrate-lock` beside the database (the file
    whose lock keeps concurrent migrations one at a time), readable by everyone."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    upgrade(store)
    upgrade(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite3"]


def test_the_ledger_knows_every_revision_alembic_has() -> None:
    """domain/storage.py's REVISIONS, which the ledger checks a store against as it opens."""
    script = ScriptDirectory.from_config(alembic_config(Store.from_url("sqlite:///x")))
    assert tuple(r.revision for r in reversed(list(script.walk_revisions()))) == REVISIONS


def head_revision() -> str | None:
    return ScriptDirectory.from_config(
        alembic_config(Store.from_url("sqlite:///x"))
    ).get_current_head()


def postgres_schema(store: Store, tables: tuple[str, ...]) -> dict[str, Any]:
    with psycopg.connect(store.conninfo()) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY(%s)"
            " ORDER BY table_name, ordinal_position",
            [list(tables)],
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY indexname",
            [list(tables)],
        ).fetchall()
        options = conn.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
            [list(tables)],
        ).fetchall()
        composite = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_type t"
            " JOIN pg_attribute a ON a.attrelid = t.typrelid"
            " WHERE t.typname = 'stored_event_uuid' ORDER BY a.attnum"
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "options": options, "composite": composite}


@pytest.mark.postgres
def test_the_migrated_postgres_schema_is_what_the_library_creates() -> None:
    migrated = new_postgres_database()
    by_library = new_postgres_database_unmigrated()
    create_library_tables(by_library)
    tables = ("ledger_events", "ledger_snapshots")
    assert postgres_schema(migrated, tables) == postgres_schema(by_library, tables)


def new_postgres_database_unmigrated() -> Store:
    store = new_postgres_database()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute("DROP TABLE ledger_events, ledger_snapshots, alembic_version CASCADE")
        conn.execute("DROP TYPE stored_event_uuid")
    return store


def sqlite_schema(path: str, tables: tuple[str, ...]) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return {
            table: (
                conn.execute(f"PRAGMA table_info({table})").fetchall(),
                conn.execute(f"PRAGMA index_list({table})").fetchall(),
                conn.execute(
                    "SELECT sql LIKE '%WITHOUT ROWID' FROM sqlite_master WHERE name = ?", [table]
                ).fetchall(),
            )
            for table in tables
        }


def test_the_migrated_sqlite_schema_is_what_the_library_creates(tmp_path: Path) -> None:
    migrated = Store.from_url(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    upgrade(migrated)
    by_library = Store.from_url(f"sqlite:///{tmp_path / 'library.sqlite3'}")
    create_library_tables(by_library)
    tables = ("stored_events", "stored_snapshots")
    assert sqlite_schema(migrated.path, tables) == sqlite_schema(by_library.path, tables)


def test_event_ids_claimed_in_the_log_before_0005_are_still_claimed_after_it(
    empty_store: Store,
) -> None:
    """Before 0005 a claim was an IdempotencyKey aggregate in the log; 0005 copies them over."""
    brand, event = random_brand(), story(random_customer())[0]
    ledger = open_ledger(empty_store)
    first = ledger.record(brand, event)
    claim = ledger.recorder.event_id_claims(brand, [event.event_id])[event.event_id]  # type: ignore[attr-defined]
    ledger.save(  # what the ledger wrote before 0005, beside the event
        IdempotencyKey(
            brand,
            event.event_id,
            claim.fingerprint,
            claim.relationship_id,
            claim.sequence,
            claim.recorded_at,
        )
    )
    ledger.close()
    command.downgrade(alembic_config(empty_store), "0004")
    upgrade(empty_store)
    ledger = open_ledger(empty_store)
    again = ledger.record(brand, event)
    assert again.replayed and (again.sequence, again.recorded_at) == (
        first.sequence,
        first.recorded_at,
    )
    with pytest.raises(EventIdConflict):
        ledger.record(brand, replace(event, actor="someone-else"))
    ledger.close()


def test_push_ids_claimed_in_the_log_before_0006_still_belong_to_their_customer_after_it(
    empty_store: Store,
) -> None:
    """Before 0006 a push id's claim was a PushClaim aggregate in the log; 0006 copies them over."""
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(empty_store)
    ledger.record(brand, grant(customer))
    request = push(customer=customer)
    decided = ledger.decide_push(brand, request, now=NOON)
    owner = ledger.recorder.push_id_owner(brand, request.push_id)  # type: ignore[attr-defined]
    ledger.save(PushClaim(brand, request.push_id, owner))  # what the ledger wrote before 0006
    ledger.close()
    command.downgrade(alembic_config(empty_store), "0005")
    upgrade(empty_store)
    ledger = open_ledger(empty_store)
    assert ledger.recorder.push_id_owner(brand, request.push_id) == owner  # type: ignore[attr-defined]
    assert ledger.audit_push_decision(brand, request.push_id)["recorded"] == decided
    with pytest.raises(PushIdConflict):
        ledger.decide_push(brand, replace(request, customer=random_customer()), scores(), NOON)
    ledger.close()


@pytest.mark.postgres
def test_states_written_after_0008_are_compressed_with_lz4() -> None:
    """A push decision's state (over 2 kB, its reasons citing a story's events) is compressed:
    from 0008 with lz4, before it with pglz."""
    store = new_postgres_database()
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(store)
    ledger.record_batch(brand, [grant(customer, channels=("push",)), *story(customer)[:12]])
    ledger.close()

    def decided() -> str:
        ledger = open_ledger(store)
        ledger.decide_push(brand, push(customer=customer))
        ledger.close()
        with psycopg.connect(store.conninfo()) as conn:
            row = conn.execute(
                "SELECT pg_column_compression(state) FROM ledger_events"
                " WHERE topic = 'trustledger:push.decided' ORDER BY notification_id DESC LIMIT 1"
            ).fetchone()
        assert row is not None
        return str(row[0])

    def compression() -> set[str]:
        """The state columns' methods ('' for the server's default, pglz; 'l' for lz4)."""
        with psycopg.connect(store.conninfo()) as conn:
            rows = conn.execute(
                "SELECT attcompression FROM pg_attribute WHERE attname = 'state'"
                " AND attrelid IN ('ledger_events'::regclass, 'ledger_snapshots'::regclass)"
            ).fetchall()
        return {str(row[0]) for row in rows}

    assert decided() == "lz4" and compression() == {"l"}
    # Below 0009 this code cannot save (its save checks its reads): look at the columns there.
    command.downgrade(alembic_config(store), "0007")
    assert compression() == {""}
    upgrade(store)
    assert compression() == {"l"} and decided() == "lz4"


def save_function(store: Store) -> str:
    """The definition of the one save function the PostgreSQL store holds (older signatures are
    dropped by the revisions that replace it)."""
    with psycopg.connect(store.conninfo()) as conn:
        rows = conn.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE proname = 'ledger_insert_events'"
        ).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


@pytest.mark.postgres
def test_0009_adds_the_reads_check_to_the_save_and_its_downgrade_restores_0007s() -> None:
    """The function 0009 replaces comes back as 0007 made it; 0009's differs only by the check."""
    store = new_postgres_database()

    checked = save_function(store)
    command.downgrade(alembic_config(store), "0006")
    command.upgrade(alembic_config(store), "0007")
    made_by_0007 = save_function(store)
    command.upgrade(alembic_config(store), "0008")
    command.upgrade(alembic_config(store), "0009")
    command.downgrade(alembic_config(store), "0008")
    assert save_function(store) == made_by_0007
    upgrade(store)
    assert save_function(store) == checked
    assert "read_rows json" in checked and "unique_violation" in checked
    assert "read_rows" not in made_by_0007


@pytest.mark.postgres
def test_0018_adds_the_revision_check_to_the_save_and_its_downgrade_restores_0009s() -> None:
    """The save function checks the caller's revision first, before any write or lock; every
    later revision that replaces the function must keep the check (domain/storage.py
    RevisionGuard), which this test reads in the head's function."""
    store = new_postgres_database()
    checked = save_function(store)
    command.downgrade(alembic_config(store), "0017")
    made_by_0009 = save_function(store)
    upgrade(store)
    assert save_function(store) == checked
    body = checked[checked.index("$function$") :]
    assert body.index("FROM alembic_version") < body.index("INSERT")
    assert "ERRCODE = 'TLREV'" in body and "revision text" in checked
    assert "alembic_version" not in made_by_0009 and "read_rows json" in made_by_0009


def read_model_indexes(store: Store) -> list[tuple[str, str]]:
    """The relationships' and decisions' indexes: name and definition, on either store."""
    if store.is_sqlite:
        with sqlite3.connect(store.path) as conn:
            return conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                " AND tbl_name IN ('relationships', 'decisions') ORDER BY name"
            ).fetchall()
    with psycopg.connect(store.conninfo()) as conn:
        return conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename IN ('relationships', 'decisions') ORDER BY indexname"
        ).fetchall()


def test_0010s_downgrade_restores_the_indexes_it_replaced(empty_store: Store) -> None:
    at_head = read_model_indexes(empty_store)
    command.downgrade(alembic_config(empty_store), "0009")
    before = read_model_indexes(empty_store)
    upgrade(empty_store)
    assert read_model_indexes(empty_store) == at_head
    assert {name for name, _ in at_head} - {name for name, _ in before} == {
        "relationships_open_items",
        "decisions_findings",
    }
    by_brand = dict(before)["relationships_by_brand"]
    assert "relationship_id" not in by_brand and "last_at" in by_brand
    assert "relationship_id" in dict(at_head)["relationships_by_brand"]


def indexes_before_and_at_head(store: Store, revision: str) -> tuple[dict[str, str], ...]:
    """The read models' indexes at `revision` and at the head, upgrading back to the same."""
    at_head = dict(read_model_indexes(store))
    command.downgrade(alembic_config(store), revision)
    before = dict(read_model_indexes(store))
    upgrade(store)
    assert dict(read_model_indexes(store)) == at_head
    return before, at_head


def test_0012s_indexes_run_the_lists_way_and_its_downgrade_restores_0010s(
    empty_store: Store,
) -> None:
    before, at_head = indexes_before_and_at_head(empty_store, "0011")
    for name, ends in [
        ("relationships_by_brand", ("relationship_id)", "relationship_id DESC)")),
        ("decisions_findings", ("push_id)", "push_id DESC)")),
    ]:
        assert ends[0] in before[name] and ends[1] not in before[name], before[name]
        assert ends[1] in at_head[name], at_head[name]


def test_0013s_findings_index_holds_sends_on_another_channel_and_its_downgrade_restores_0012s(
    empty_store: Store,
) -> None:
    before, at_head = indexes_before_and_at_head(empty_store, "0012")
    assert "sent_channel" not in before["decisions_findings"]
    assert "sent_channel" in at_head["decisions_findings"]


def test_0015s_findings_index_holds_sends_after_a_withdrawal_and_its_downgrade_restores_0014s(
    empty_store: Store,
) -> None:
    before, at_head = indexes_before_and_at_head(empty_store, "0014")
    assert "withdrawn_by" not in before["decisions_findings"]
    assert "withdrawn_by" in at_head["decisions_findings"]
    assert "sent_channel" in before["decisions_findings"]


def test_0019_holds_sends_before_their_decision_and_empties_the_decisions_both_ways(
    empty_store: Store,
) -> None:
    """0019's findings' index holds sends dated before their decision (beyond the clocks'
    tolerance); its upgrade and its downgrade each empty the decisions read model at position 0
    (its rows lack the first send's sequence and `decided_from`; later sends overwrote their
    first), for `trustledger migrate` to refill it."""
    before, at_head = indexes_before_and_at_head(empty_store, "0018")
    assert "decided_from" not in before["decisions_findings"]
    assert "decided_from" in at_head["decisions_findings"]
    assert "withdrawn_by" in before["decisions_findings"]
    db = Database(empty_store)

    def filled() -> None:
        db.execute("INSERT INTO decisions (brand, push_id, relationship_id) VALUES ('b', 'p', 'r')")
        db.execute(
            "INSERT INTO projection_positions (name, position) VALUES ('decisions', 7)"
            " ON CONFLICT (name) DO UPDATE SET position = 7"
        )

    for down in (True, False):
        filled()
        if down:
            command.downgrade(alembic_config(empty_store), "0018")
        else:
            upgrade(empty_store)
        assert db.scalar("SELECT count(*) FROM decisions") == 0
        assert db.scalar("SELECT position FROM projection_positions WHERE name = 'decisions'") == 0
    db.close()


def test_0011_marks_each_brand_where_its_timeline_stands(empty_store: Store) -> None:
    """Brands projected before 0011 get their latest position and record time from the
    timeline; its downgrade drops what it added, and it applies again."""
    command.downgrade(alembic_config(empty_store), "0010")
    db = Database(empty_store)
    db.executemany(
        "INSERT INTO timeline (relationship_id, sequence, brand, event_id, type, occurred_at,"
        " recorded_at, actor, channel, summary, data, position)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                rid,
                1,
                brand,
                f"e-{rid}",
                "t",
                "2026-01-01",
                recorded_at,
                None,
                None,
                "",
                "{}",
                position,
            )
            for rid, brand, recorded_at, position in [
                ("r-1", "acme", "2026-01-02", 7),
                ("r-2", "acme", "2026-01-05", 9),
                ("r-3", "globex", "2026-01-03", 8),
            ]
        ],
    )
    db.executemany(
        "INSERT INTO brand_trust (brand, evidence) VALUES (?, ?)",
        [("acme", "{}"), ("globex", "{}")],
    )
    upgrade(empty_store, "0013")  # 0016 empties the read models
    marks = db.query("SELECT brand, last_position, recorded_until FROM brand_trust ORDER BY brand")
    assert [tuple(m) for m in marks] == [("acme", 9, "2026-01-05"), ("globex", 8, "2026-01-03")]
    command.downgrade(alembic_config(empty_store), "0010")
    upgrade(empty_store)
    db.close()


def test_migrate_past_0016_rebuilds_the_read_models_with_no_plaintext_left(
    empty_store: Store,
) -> None:
    """A store of the version before 0016 holds its read models' personal values in clear (here:
    S's rows written back so); `trustledger migrate` empties them and rebuilds them sealed, and
    no byte of the clear values stays in the tables or, on SQLite, in the file and its WAL."""
    from tests.integration.test_canary import Canaries, found, raw_storage, record
    from tests.integration.test_erasure_read_models import clear_in, raw_rows, shown

    brand, s = random_brand(), Canaries("S")
    ledger = open_ledger(empty_store)
    record(ledger, brand, s)
    runner = Runner(ledger)
    runner.run_once()
    command.downgrade(alembic_config(empty_store), "0016")  # the later revisions' columns
    rid = str(relationship_id(brand, s.customer))
    summary, actor = s.personal["promise.made.summary"], s.personal["promise.made.actor"]
    with runner.db.transaction():  # as the version before 0016 wrote them
        runner.db.execute(
            "UPDATE timeline SET actor = ?, summary = ? WHERE relationship_id = ? AND type = ?",
            [actor, f"Promised: {summary}", rid, "promise.made"],
        )
        runner.db.execute("UPDATE relationships SET customer = ?", [s.customer])
        runner.db.execute("UPDATE alembic_version SET version_num = '0015'")
    runner.db.forget_old_pages()
    before_0019 = [t for t in READ_MODEL_TABLES if t != "resends"]  # 0019 made it
    assert found(summary.encode(), raw_rows(runner.db, before_0019))
    assert found(summary.encode(), raw_storage(empty_store)), "the search finds the old format"
    runner.close()
    ledger.close()  # the version before stops; `migrate` runs; the new version starts

    done = subprocess.run(
        [sys.executable, "-m", "api", "--database-url", empty_store.url, "migrate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt relationships, decisions, timeline, consents" in done.stdout, done.stdout
    assert current(empty_store) == REVISIONS[-1]
    ledger = open_ledger(empty_store)
    runner = Runner(ledger)
    assert set(runner.positions().values()) == {runner.head()}
    assert clear_in(s, raw_rows(runner.db)) == []
    assert clear_in(s, raw_storage(empty_store)) == []
    assert shown(runner.db, brand, s)["summary"] == summary, "refilled, and read back whole"
    assert runner.rebuild(verify=True) == {}
    runner.close()
    ledger.close()


def test_0016_empties_the_read_models_both_ways(empty_store: Store) -> None:
    """Its upgrade and its downgrade each leave the read models empty at position 0: the code
    on either side refills them from the log in its own format. (The decisions read model is
    left out of the refills: at 0015 it lacks 0017's columns, which this code writes.)"""
    ledger = open_ledger(empty_store)
    ledger.record_batch(random_brand(), story(random_customer()))
    models = [model for model in READ_MODELS if model.name != "decisions"]
    runner = Runner(ledger, models)
    head = REVISIONS[-1]
    sides = (
        (head, "0015", lambda store: command.downgrade(alembic_config(store), "0015")),
        ("0015", head, upgrade),
    )
    for before, after, step in sides:  # the runner plays the code of each side in turn
        with code_knowing(before):
            runner.run_once()
        assert runner.db.scalar("SELECT count(*) FROM timeline")
        runner.close()
        step(empty_store)
        runner = Runner(ledger, models)
        tables = [t for t in READ_MODEL_TABLES if t != "resends" or after == head]  # 0019's
        counts = [runner.db.scalar(f"SELECT count(*) FROM {t}") for t in tables]
        assert counts == [0] * len(tables)
        with code_knowing(after):
            assert set(runner.positions().values()) == {0}
    runner.close()
    ledger.close()
