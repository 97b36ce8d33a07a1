"""The embedded store's files are the owner's alone, as its master key file is: the read models
in them hold customers' personal data in clear (docs/privacy.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.storage import Store
from migrations import upgrade
from projections.runner import Runner
from tests.conftest import open_ledger
from tests.factories import story
from tests.random_refs import random_brand, random_customer


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a service (022): files readable by every local user."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_new_sqlite_store_and_its_wal_are_readable_by_the_owner_alone(
    tmp_path: Path, usual_umask: None
) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'var' / 'trustledger.sqlite3'}")
    upgrade(store)
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(store)
    ledger.record_batch(brand, story(customer))
    runner = Runner(ledger)
    runner.run_once()  # the read models: the customer's actor and summaries in clear
    files = [Path(store.path + suffix) for suffix in ("", "-wal", "-shm")]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in files if path.exists()}
    runner.close()
    ledger.close()
    assert len(modes) == 3, modes
    assert set(modes.values()) == {"0o600"}, modes


def test_an_existing_store_keeps_the_mode_its_operator_gave_it(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "shared.sqlite3"
    path.touch(mode=0o640)
    path.chmod(0o640)
    upgrade(Store.from_url(f"sqlite:///{path}"))
    assert oct(path.stat().st_mode & 0o777) == "0o640"
