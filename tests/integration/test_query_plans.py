"""Looking up a list of ids on PostgreSQL searches the index by every key column, whatever the
table's statistics say: here, taken while it held two rows, before it grew to 20,000 (as in a
fresh database filling faster than autovacuum, which looks once a minute, analyzes it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from api.reads import known
from domain.recorders import _SELECT_CLAIMS_POSTGRES
from domain.relationship import relationship_id
from projections.db import Database
from projections.decisions import decisions_of, findings
from projections.relationships import brand_open_items, customers
from projections.timeline import encode_cursor, has_relationship, timeline_page
from projections.trust import EVENT_TYPES_POSTGRES
from projections.trust_line import BRANDS, RELATIONSHIPS, Lines
from tests.conftest import new_postgres_database

pytestmark = pytest.mark.postgres

EVENT_IDS = (
    "INSERT INTO event_ids SELECT 'big', 'e-' || g, gen_random_uuid(), 1, 'f', now()"
    " FROM generate_series(%s::int, %s::int) g"
)
TIMELINE = (
    "INSERT INTO timeline SELECT 'r-' || g, 1, 'big', 'e-' || g, 'question.answered', '', '',"
    " NULL, NULL, '', '{}', g FROM generate_series(%s::int, %s::int) g"
)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan's node and every node under it."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def index_conditions(plan: dict[str, Any]) -> list[str]:
    return [node["Index Cond"] for node in nodes(plan) if "Index Cond" in node]


def node_types(plan: dict[str, Any]) -> set[str]:
    return {node["Node Type"] for node in nodes(plan)}


def filtered_out(plan: dict[str, Any]) -> int:
    """The rows the plan read and then dropped (EXPLAIN ANALYZE's "Rows Removed by Filter")."""
    return sum(int(node.get("Rows Removed by Filter", 0)) for node in nodes(plan))


@pytest.mark.parametrize(
    ("table", "rows", "look_up"),
    [
        ("event_ids", EVENT_IDS, _SELECT_CLAIMS_POSTGRES),
        ("timeline", TIMELINE, EVENT_TYPES_POSTGRES.replace("?", "%s")),
    ],
)
def test_a_look_up_by_brand_and_event_ids_searches_the_index_per_id(
    table: str, rows: str, look_up: str
) -> None:
    store = new_postgres_database()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        conn.execute(rows, [1, 2])
        conn.execute(f"ANALYZE {table}")
        conn.execute(rows, [3, 20_000])
        ids = [f"e-{i}" for i in range(1, 201, 2)]
        found = conn.execute(look_up, [ids, "big"]).fetchall()
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) {look_up}", [ids, "big"]).fetchall()[0][0]
    assert sorted(row[0] if table == "timeline" else row[1] for row in found) == sorted(ids)
    assert any("event_id" in c for c in index_conditions(plan[0]["Plan"])), plan


# --- one customer's rows, on statistics taken before the brand had any ------------------------

TIMELINE_OF = (
    "INSERT INTO timeline SELECT %s, g, %s, %s || g, 'question.answered', '2026-01-01',"
    " '2026-01-01', NULL, NULL, '', '{}', g FROM generate_series(1, %s::int) g"
)
DECISIONS_OF = (
    "INSERT INTO decisions (brand, push_id, relationship_id, event_id, decided_at)"
    " SELECT %s, %s || g, %s, 'e-' || g, '2026-01-01' FROM generate_series(1, %s::int) g"
)


def planned(db: Database, read: Callable[[], object]) -> list[dict[str, Any]]:
    """The plans of the statements `read` runs on `db`."""
    ran: list[tuple[str, Sequence[Any]]] = []
    query = db.query

    def noting(statement: str, params: Sequence[Any] = (), binary: bool = False) -> list[Any]:
        ran.append((statement, params))
        return query(statement, params, binary)

    db.query = noting  # type: ignore[method-assign]
    try:
        read()
    finally:
        db.query = query  # type: ignore[method-assign]
    return [db.query(f"EXPLAIN (ANALYZE, FORMAT JSON) {s}", p)[0][0][0]["Plan"] for s, p in ran]


def test_one_customers_rows_are_found_by_the_relationships_index() -> None:
    """A brand that came after the read models were last analyzed is costed as a row or two: a
    read that also says `brand = ?` was planned as a search of the brand's index, filtering
    every row of the brand (timeline_page says why the relationship id alone is enough)."""
    store = new_postgres_database()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        for table in ("timeline", "decisions"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        conn.execute(TIMELINE_OF, ["small-1", "small", "s-", 30])
        conn.execute(DECISIONS_OF, ["small", "p-", "small-1", 30])
        conn.execute("ANALYZE timeline")
        conn.execute("ANALYZE decisions")
        for c in range(100):
            rid = str(relationship_id("big", f"c-{c}"))
            conn.execute(TIMELINE_OF, [rid, "big", f"e-{c}-", 200])
            conn.execute(DECISIONS_OF, ["big", f"p-{c}-", rid, 200])
    db = Database(store)
    rid = str(relationship_id("big", "c-7"))
    reads, lines = SimpleNamespace(caught_up=lambda: db), Lines(RELATIONSHIPS)
    plans = [
        *planned(db, lambda: timeline_page(db, "big", "c-7", limit=20)),
        *planned(db, lambda: timeline_page(db, "big", "c-7", cursor=encode_cursor(50))),
        *planned(db, lambda: timeline_page(db, "big", "c-7", types=["question.answered"])),
        *planned(db, lambda: decisions_of(db, rid)),
        *planned(db, lambda: known(reads, "big", "c-7", None)),  # type: ignore[arg-type]
        *planned(db, lambda: has_relationship(db, "big", "c-7")),
        *planned(db, lambda: lines._rows(db, rid, 150, None)),  # the chart's, folded on
        *planned(db, lambda: lines.latest(db, rid, None)),  # the key of its replays
    ]
    db.close()
    assert len(plans) == 8
    for plan in plans:
        assert any("relationship_id" in c for c in index_conditions(plan)), plan


def test_the_brand_lines_version_is_one_step_along_the_brands_index() -> None:
    store = new_postgres_database()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE timeline SET (autovacuum_enabled = false)")
        conn.execute(TIMELINE_OF, ["small-1", "small", "s-", 30])
        conn.execute("ANALYZE timeline")
        for c in range(100):
            conn.execute(TIMELINE_OF, [f"r-{c}", "big", f"e-{c}-", 200])
    db = Database(store)
    [plan] = planned(db, lambda: Lines(BRANDS).latest(db, "big", None))
    assert Lines(BRANDS).latest(db, "big", None) == 200
    db.close()
    assert any("brand" in c for c in index_conditions(plan)), plan
    assert not node_types(plan) & {"Seq Scan", "Sort", "Aggregate", "Bitmap Heap Scan"}, plan


# --- a brand's lists: the first rows of one index, without sorting the brand's rows -----------

RELATIONSHIPS_OF = (
    "INSERT INTO relationships SELECT %s || g, %s, 'c-' || g, 1, 1, '2026-01-01',"
    " '2026-01-' || lpad((1 + g %% 28)::text, 2, '0'), '2026-01-01', '{}',"
    """ CASE WHEN g %% 50 = 0 THEN '{"p": {"due_at": "2026-02-01", "event_id": "e"}}' ELSE '{}' END,"""
    " '{}', '{}',"
    " (g %% 97) / 97.0, (g %% 89) / 89.0, (g %% 83) / 83.0 FROM generate_series(1, %s::int) g"
)
FINDINGS_OF = (
    "INSERT INTO decisions (brand, push_id, relationship_id, outcome, decided_at, sent_at)"
    " SELECT %s, %s || g, 'r-' || g, CASE WHEN g %% 100 = 0 THEN 'deny' ELSE 'allow' END,"
    " '2026-01-01', '2026-01-02' FROM generate_series(1, %s::int) g"
)
RESENDS_OF = (  # a later send of one allowed push in 10
    "INSERT INTO resends (brand, push_id, sequence, relationship_id, sent_at, sent_event_id)"
    " SELECT %s, %s || g, 2, 'r-' || g, '2026-01-03', 'e-' || g"
    " FROM generate_series(1, %s::int, 10) g"
)


@pytest.mark.parametrize("statistics", ["fresh", "taken before the brand came"])
def test_a_brands_lists_read_only_the_rows_they_show(statistics: str) -> None:
    store = new_postgres_database()
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        for table in ("relationships", "decisions", "resends"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        conn.execute(RELATIONSHIPS_OF, ["s-", "small", 30])
        conn.execute(FINDINGS_OF, ["small", "s-", 30])
        conn.execute(RESENDS_OF, ["small", "s-", 30])
        for table in ("relationships", "decisions", "resends"):
            conn.execute(f"ANALYZE {table}")
        conn.execute(RELATIONSHIPS_OF, ["b-", "big", 20_000])
        conn.execute(FINDINGS_OF, ["big", "b-", 20_000])
        conn.execute(RESENDS_OF, ["big", "b-", 20_000])
        if statistics == "fresh":
            for table in ("relationships", "decisions", "resends"):
                conn.execute(f"ANALYZE {table}")
    db = Database(store)
    # A page far down each list: after one row of the 10,000th's sort key (there are ties).
    latest = customers(db, "big", limit=10_000).next_cursor
    lowest = customers(db, "big", below={"honesty": 1.01}, limit=10_000).next_cursor
    found = findings(db, "big", limit=150).next_cursor
    lists = {
        "latest": lambda: customers(db, "big", limit=20),
        "lowest consistency": lambda: customers(db, "big", below={"consistency": 1.01}, limit=20),
        "lowest expertise": lambda: customers(db, "big", below={"expertise": 0.5}, limit=20),
        "open items": lambda: brand_open_items(db, "big"),
        "findings": lambda: findings(db, "big", limit=20),
        "latest, far down": lambda: customers(db, "big", limit=20, cursor=latest),
        "lowest honesty, far down": lambda: customers(
            db, "big", below={"honesty": 1.01}, limit=20, cursor=lowest
        ),
        "findings, far down": lambda: findings(db, "big", limit=20, cursor=found),
    }
    plans = {name: planned(db, read) for name, read in lists.items()}
    assert len(brand_open_items(db, "big")) == 400
    assert len(findings(db, "big", limit=3000).items) == 2200  # 200 denied, 2,000 sent again
    db.close()
    for name, plan in ((n, p) for n, found in plans.items() for p in found):
        assert any("brand" in c for c in index_conditions(plan)), (name, plan)
        assert not node_types(plan) & {"Seq Scan", "Sort", "Incremental Sort"}, (name, plan)
        assert filtered_out(plan) == 0, (name, plan)


def test_a_rebuilds_copy_of_relationships_has_its_partial_index_from_the_start() -> None:
    """A brand's trust checkpoint reads its relationships with open items during the replay of
    a rebuild, when the copy has no other index yet: the partial index holding just those comes
    with the copy (without it, every checkpoint scanned the copy); the others come after."""
    store = new_postgres_database()
    db = Database(store)

    def indexes() -> set[str]:
        found = db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'relationships_copy'")
        return {name for (name,) in found}

    db.copy_table("relationships", "relationships_copy")
    copied = indexes()
    db.index_copy("relationships", "relationships_copy")
    indexed = indexes()
    db.drop_copy("relationships_copy")
    db.close()
    assert copied == {
        "relationships_pkey__relationships_copy",
        "relationships_open_items__relationships_copy",
    }
    assert indexed - copied == {
        f"relationships_by_{name}__relationships_copy"
        for name in ("brand", "consistency", "honesty", "expertise")
    }
