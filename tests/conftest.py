"""Fixtures for both stores: a temporary SQLite file, and the throwaway PostgreSQL of `make test`.

`make test` sets TRUSTLEDGER_TEST_POSTGRES_URL. Without it the PostgreSQL half of the suite fails
with a clear message, rather than passing by skipping.

Every test ledger uses one master key, TEST_MASTER_KEY, also put in TRUSTLEDGER_MASTER_KEY so the
command line in a subprocess opens what a test wrote (and the shared PostgreSQL accepts it).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import psycopg
import pytest
from hypothesis import settings

from domain import storage
from domain.application import Ledger
from domain.shredding import MasterKey
from domain.storage import Store
from migrations import new_postgres_database as new_database
from migrations import upgrade

POSTGRES_URL_VARIABLE = "TRUSTLEDGER_TEST_POSTGRES_URL"
TEST_MASTER_KEY = MasterKey(hashlib.sha256(b"trustledger tests").digest())
os.environ["TRUSTLEDGER_MASTER_KEY"] = TEST_MASTER_KEY.encoded()

# A property test's failure prints the `@reproduce_failure(...)` that replays it as drawn:
# hypothesis draws new examples at each run, and the example database that would replay a
# failure stays on the machine it happened on (a CI runner's is gone with it).
settings.register_profile("trustledger", print_blob=True)
settings.load_profile("trustledger")

P = ParamSpec("P")
T = TypeVar("T")


def open_ledger(store: Store, **options: object) -> Ledger:
    """A Ledger on the store, under the tests' master key."""
    return Ledger(store, master_key=TEST_MASTER_KEY, **options)  # type: ignore[arg-type]


@contextmanager
def code_knowing(revision: str) -> Iterator[None]:
    """Plays, in the block, a version of the ledger whose code knows `revision` as its latest: the
    revision guard (domain/storage.py) reads REVISIONS[-1] at each check. A store migrated past
    it, or a test's downgrade below the head, is then what an older or newer version would meet."""
    known = storage.REVISIONS
    storage.REVISIONS = known[: known.index(revision) + 1]
    try:
        yield
    finally:
        storage.REVISIONS = known


def noted(calls: list[str], name: str, method: Callable[P, T]) -> Callable[P, T]:
    """`method`, appending `name` to `calls` before each call: a test puts it in the method's
    place to see which calls are made, in their order."""

    def noting(*args: P.args, **kwargs: P.kwargs) -> T:
        calls.append(name)
        return method(*args, **kwargs)

    return noting


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.fail(f"{POSTGRES_URL_VARIABLE} is not set: run the suite with `make test`")
    return url


@pytest.fixture(scope="session")
def migrated_postgres() -> Store:
    """The shared test database, migrated once per run; tests keep apart by unique references."""
    store = Store.from_url(postgres_url())
    upgrade(store)
    return store


def new_postgres_database() -> Store:
    """A fresh, migrated database of its own, for tests that read the whole log."""
    return new_database(Store.from_url(postgres_url()), "t")


def new_sqlite_database(directory: Path) -> Store:
    store = Store.from_url(f"sqlite:///{directory / 'trustledger.sqlite3'}")
    upgrade(store)
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A migrated store of each kind. PostgreSQL is shared across tests: use unique references."""
    if request.param == "sqlite":
        return new_sqlite_database(tmp_path)
    migrated: Store = request.getfixturevalue("migrated_postgres")
    return migrated


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A migrated store of each kind holding nothing yet: for tests that read the whole log."""
    if request.param == "sqlite":
        return new_sqlite_database(tmp_path)
    return new_postgres_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of each kind with no table at all."""
    if request.param == "sqlite":
        return Store.from_url(f"sqlite:///{tmp_path / 'trustledger.sqlite3'}")
    server = Store.from_url(postgres_url())
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.with_dbname(name)


@pytest.fixture
def ledger(store: Store) -> Iterator[Ledger]:
    app = open_ledger(store)
    yield app
    app.close()
