"""Looking up a list of ids on PostgreSQL searches the index by every key column, whatever the
table's statistics say: here, taken while it held two rows, before it grew to 20,000 (as in a
fresh database filling faster than autovacuum, which looks once a minute, analyzes it)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from domain.recorders import _SELECT_CLAIMS_POSTGRES
from projections.trust import EVENT_TYPES_POSTGRES
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


def index_conditions(plan: dict[str, Any]) -> list[str]:
    """Every index condition of the plan and its sub-plans."""
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


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
