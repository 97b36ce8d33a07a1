"""The key store and `trustledger keys` on both stores: issue, check, list, revoke."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.auth import KeyProblem, KeyStore, digest
from domain.storage import Store
from tests.random_refs import random_brand

ROOT = Path(__file__).parents[2]


@pytest.fixture
def keys(store: Store) -> Iterator[KeyStore]:
    keys = KeyStore(store)
    yield keys
    keys.close()


def rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    if store.is_sqlite:
        with sqlite3.connect(store.path) as conn:
            return conn.execute(f"SELECT * FROM {table}").fetchall()
    with psycopg.connect(store.conninfo()) as conn:
        return conn.execute(f"SELECT * FROM {table}").fetchall()


def test_an_issued_key_authenticates_as_its_brand_and_role(keys: KeyStore) -> None:
    brand = random_brand()
    issued = keys.create(brand, "agent")
    caller = keys.authenticate(issued.key)
    assert caller is not None
    assert (caller.brand, caller.role, caller.key_id) == (brand, "agent", issued.info.key_id)


def test_only_the_hash_of_a_key_is_stored(keys: KeyStore, store: Store) -> None:
    issued = keys.create(random_brand(), "brand")
    stored = [row for row in rows(store, "api_keys") if row[0] == issued.info.key_id]
    assert len(stored) == 1
    secret = issued.key.rsplit("_", 1)[1]
    assert not any(secret in str(value) for value in stored[0])
    assert digest(issued.key) in [str(value).strip() for value in stored[0]]


def test_a_wrong_revoked_or_malformed_key_authenticates_as_nobody(keys: KeyStore) -> None:
    issued = keys.create(random_brand(), "brand")
    forged = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    assert keys.authenticate(forged) is None
    assert keys.authenticate("tlk_ffffffffffff_" + "A" * 43) is None
    assert keys.authenticate("not a key") is None
    keys.revoke(issued.info.key_id)
    assert keys.authenticate(issued.key) is None


def test_a_checked_key_is_trusted_for_the_cache_window_then_checked_again(
    keys: KeyStore, store: Store
) -> None:
    now = [0.0]
    cached = KeyStore(store, cache_seconds=2, timer=lambda: now[0])
    issued = keys.create(random_brand(), "brand")
    assert cached.authenticate(issued.key) is not None
    keys.revoke(issued.key)  # elsewhere: another process
    assert cached.authenticate(issued.key) is not None, "within the window, from the cache"
    now[0] = 2.5
    assert cached.authenticate(issued.key) is None, "after it, from the database"
    other = keys.create(random_brand(), "brand")
    assert cached.authenticate(other.key) is not None
    cached.revoke(other.key)
    assert cached.authenticate(other.key) is None, "a key revoked here is forgotten at once"
    cached.close()


def test_a_key_expiring_from_the_cache_while_checked_is_checked_again(
    keys: KeyStore, store: Store
) -> None:
    clock = itertools.count(step=1.0)  # every look at the clock moves it on
    cached = KeyStore(store, cache_seconds=2, timer=lambda: next(clock))
    issued = keys.create(random_brand(), "brand")
    for _ in range(12):
        assert cached.authenticate(issued.key) is not None
    cached.close()


def test_a_brand_is_created_once_with_its_first_key(keys: KeyStore, store: Store) -> None:
    brand = random_brand()
    assert keys.create(brand, "brand").new_brand
    assert not keys.create(brand, "compliance").new_brand
    assert [row[0] for row in rows(store, "brands")].count(brand) == 1
    assert [k.role for k in keys.every(brand)] == ["brand", "compliance"]


@pytest.mark.parametrize(
    ("brand", "role"),
    [
        ("Acme", "brand"),
        ("-acme", "brand"),
        ("a" * 64, "brand"),
        ("acme", "admin"),
        ("", "brand"),
        ("acme\n", "brand"),  # `$` matched before the line feed: a brand that lists as two lines
    ],
)
def test_bad_slugs_and_roles_are_refused(keys: KeyStore, brand: str, role: str) -> None:
    with pytest.raises(KeyProblem):
        keys.create(brand, role)


@pytest.mark.parametrize("brand", ["", "Acme", " acme", "acme\n"])
def test_listing_the_keys_of_a_brand_that_is_no_slug_is_refused(keys: KeyStore, brand: str) -> None:
    """`keys list --brand ''` listed every brand's keys, as if no brand had been named."""
    keys.create(random_brand(), "agent")
    with pytest.raises(KeyProblem, match="not a slug"):
        keys.every(brand)


def test_revoking_keeps_the_first_time_and_an_unknown_id_is_refused(keys: KeyStore) -> None:
    issued = keys.create(random_brand(), "brand")
    first = keys.revoke(issued.key)
    assert first.revoked_at is not None
    assert keys.revoke(issued.info.key_id).revoked_at == first.revoked_at
    with pytest.raises(KeyProblem):
        keys.revoke("000000000000")


def trustledger(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "--database-url", store.url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_the_keys_commands_create_list_and_revoke(store: Store, keys: KeyStore) -> None:
    brand = random_brand()
    created = trustledger(store, "keys", "create", "--brand", brand, "--role", "compliance")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    caller = keys.authenticate(key)
    assert caller is not None and (caller.brand, caller.role) == (brand, "compliance")
    listed = trustledger(store, "keys", "list", "--brand", brand)
    assert caller.key_id in listed.stdout and key not in listed.stdout
    revoked = trustledger(store, "keys", "revoke", caller.key_id)
    assert revoked.returncode == 0 and keys.authenticate(key) is None
    assert revoked.stdout.startswith(f"revoked key {caller.key_id} "), revoked.stdout
    twice = trustledger(store, "keys", "revoke", caller.key_id)  # says when, as it was
    assert twice.returncode == 0 and twice.stdout.startswith(f"key {caller.key_id} ")
    assert f"was already revoked at {keys.revoke(caller.key_id).revoked_at}" in twice.stdout
    again = trustledger(store, "keys", "revoke", "nope")
    assert (again.returncode, again.stderr.count("\n")) == (1, 1)
    bad = trustledger(store, "keys", "create", "--brand", brand, "--role", "root")
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1)
