"""The database URL's libpq parameters (`?sslmode=require`, `?application_name=...`) reach every
connection the ledger opens: its event store, the API keys, the read models and the commands. They
were dropped: `?sslmode=require` against a server without TLS connected in clear text."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from api.auth import KeyStore
from domain.storage import CONNECT_TIMEOUT, SESSION_OPTIONS, Store
from projections.runner import Runner
from tests.conftest import TEST_MASTER_KEY, migrated_postgres, open_ledger, postgres_url
from tests.factories import posted

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.postgres
_ = migrated_postgres  # the fixture, migrated once


def test_the_urls_parameters_join_the_ledgers_own() -> None:
    store = Store.from_url(
        "postgresql://u@h:5/d?sslmode=verify-full&sslrootcert=/etc/ca.pem&options=-c%20x%3Dy"
    )
    assert store.connection_params() == {
        "options": f"{SESSION_OPTIONS} -c x=y",
        "connect_timeout": str(CONNECT_TIMEOUT),
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
    }
    assert store.with_dbname("e").params == store.params
    assert Store.from_url("postgresql://u@h:5/d").connection_params() == {
        "options": SESSION_OPTIONS,
        "connect_timeout": str(CONNECT_TIMEOUT),
    }
    given = Store.from_url("postgresql://u@h:5/d?connect_timeout=20").connection_params()
    assert given["connect_timeout"] == "20"  # the URL's own wins


def application_names(store: Store) -> set[str]:
    """Those of the connections open to the store's database, the ledger's pools' among them."""
    with psycopg.connect(store.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    return {row[0] for row in rows}


def test_every_connection_carries_the_urls_parameters(migrated_postgres: Store) -> None:
    name = f"tl-{uuid.uuid4().hex[:8]}"
    store = Store.from_url(f"{migrated_postgres.url}?application_name={name}")
    ledger = open_ledger(store)
    keys = KeyStore(store)
    keys.create(f"b-{name}", "brand")
    ledger.record(f"b-{name}", posted("question.answered", case_id="c", topic="t", resolved=True))
    runner = Runner(ledger)
    assert runner.db.scalar("SHOW application_name") == name
    assert runner.db.scalar("SHOW jit") == "off"  # the ledger's own options kept
    with ledger.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        assert conn.execute("SHOW application_name").fetchone()["application_name"] == name
    assert name in application_names(store)
    runner.close()
    keys.close()
    ledger.close()


def test_a_required_tls_the_server_does_not_offer_is_refused_in_one_line(
    migrated_postgres: Store,
) -> None:
    url = f"{postgres_url()}?sslmode=require"  # the throwaway cluster has no TLS
    done = subprocess.run(
        [sys.executable, "-m", "api", "--database-url", url, "lag"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"TRUSTLEDGER_MASTER_KEY": TEST_MASTER_KEY.encoded(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0, done.stdout
    assert "SSL" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
