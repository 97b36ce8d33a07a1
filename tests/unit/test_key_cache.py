"""The customer key cache's two levels: many small secrets, few keys built with their ciphers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.key_table import MemoryKeyTable
from domain.shredding import CustomerKeys, MasterKey

AAD = b"event"


class Clock:
    """The cache's clock, moved by the test: no test waits for a key to expire."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stored_keys(count: int, **options: Any) -> tuple[CustomerKeys, list[UUID]]:
    """A key cache over a table holding `count` customer keys."""
    master, table = MasterKey.generate(), MemoryKeyTable()
    table.claim_master_key(master.key_id)
    rids = [uuid4() for _ in range(count)]
    for rid in rids:
        table.insert_or_get(rid, "acme", master.wrap("acme", rid, os.urandom(32)), master.key_id)
    return CustomerKeys(table, master, **options), rids


def fetch_from(keys: CustomerKeys) -> Callable[[list[UUID]], list[tuple[UUID, str, bytes]]]:
    """`preload`'s fetch, reading the cache's own table."""
    table = keys.table
    return lambda missing: [(rid, *row) for rid in missing if (row := table.select(rid))]


def test_keys_past_the_built_ones_are_built_again_from_their_secret_not_unwrapped() -> None:
    keys, rids = stored_keys(10, context_cache_size=4)
    sealed = {}
    for rid in rids:
        key = keys.get(rid)
        assert key is not None
        sealed[rid] = (key.seal(b"jane", AAD), key.fingerprint(b"jane"), key.seal_value("x", "c"))
    assert keys.held() == (10, 4), "every secret, and only the 4 most recent keys built"
    keys.table.rows.clear()  # type: ignore[attr-defined]  # a query now finds no key
    for rid in rids:
        key = keys.get(rid)
        assert key is not None, "built from the secret held, not read from the table"
        seal, fingerprint, value = sealed[rid]
        assert key.open(seal, AAD) == b"jane"
        assert key.fingerprint(b"jane") == fingerprint
        assert key.seal_value("x", "c") == value
    assert keys.held() == (10, 4)


def test_the_built_keys_forget_the_least_recently_used_first() -> None:
    keys, (a, b, c) = stored_keys(3, context_cache_size=2)
    first_a, first_b = keys.get(a), keys.get(b)
    assert keys.get(a) is first_a, "held built"
    keys.get(c)  # pushes out b, used less recently than a
    assert keys.get(a) is first_a
    assert keys.get(b) is not first_b


def test_preloading_holds_secrets_and_builds_no_key() -> None:
    keys, rids = stored_keys(20, context_cache_size=4)
    keys.preload(rids, fetch_from(keys))
    assert keys.held() == (20, 0)


@pytest.mark.parametrize("built", [True, False], ids=["key built", "secret only"])
def test_erasure_drops_the_key_from_both_levels(built: bool) -> None:
    keys, (rid, other) = stored_keys(2, context_cache_size=1)
    keys.get(rid)
    if not built:
        keys.get(other)  # rid's built key is pushed out; its secret stays
    assert keys.destroy(rid)
    assert keys.get(rid) is None
    assert keys.held() == ((1, 0) if built else (2, 1)), "rid held as erased, built nowhere"
    assert keys.get(other) is not None


@pytest.mark.parametrize("built", [True, False], ids=["key built", "secret only"])
def test_a_key_erased_elsewhere_is_dropped_from_both_levels_when_its_secret_expires(
    built: bool,
) -> None:
    """A key built late from a secret held for a while expires with that secret: an erasure in
    another process is seen KEY_CACHE_SECONDS after this one unwrapped it, never later."""
    clock = Clock()
    keys, (rid, other) = stored_keys(2, cache_seconds=30.0, context_cache_size=1, clock=clock)
    keys.preload([rid], fetch_from(keys))  # unwrapped now: the secret alone
    clock.now += 20
    keys.get(rid)  # built 20 s later
    if not built:
        keys.get(other)
    keys.table.delete(rid)  # another process erases the customer
    clock.now += 9.9
    assert keys.get(rid) is not None, "held until its secret expires, as documented"
    clock.now += 0.1
    assert keys.get(rid) is None, "30 s after it was unwrapped, not after it was built"
    assert keys.not_held([rid]) == set(), "held again, as erased"


def test_both_levels_are_read_again_once_expired() -> None:
    clock = Clock()
    keys, (rid,) = stored_keys(1, cache_seconds=30.0, clock=clock)
    first = keys.get(rid)
    clock.now += 30
    assert keys.not_held([rid]) == {rid}
    again = keys.get(rid)
    assert again is not None and again is not first, "unwrapped again, and built again"
    assert keys.held() == (1, 1)


def test_a_cache_of_zero_seconds_holds_nothing() -> None:
    keys, (rid,) = stored_keys(1, cache_seconds=0)
    assert keys.get(rid) is not None
    assert keys.held() == (0, 0)
    keys.table.delete(rid)
    assert keys.get(rid) is None


def test_a_secret_pushed_out_takes_its_built_key_with_it() -> None:
    keys, rids = stored_keys(3, cache_size=2, context_cache_size=2)
    for rid in rids:
        keys.get(rid)
    assert keys.held() == (2, 2)
    keys.table.delete(rids[0])  # erased elsewhere: its secret is no longer held here
    assert keys.get(rids[0]) is None


def test_threads_reading_more_keys_than_are_built_all_get_their_own() -> None:
    keys, rids = stored_keys(40, context_cache_size=8)
    sealed = {rid: key.seal(rid.bytes, AAD) for rid in rids if (key := keys.get(rid))}
    failures: list[str] = []

    def read(offset: int) -> None:
        for n in range(2000):
            rid = rids[(n * 7 + offset) % len(rids)]
            key = keys.get(rid)
            if key is None or key.open(sealed[rid], AAD) != rid.bytes:
                failures.append(str(rid))
            if n % 97 == offset:
                keys.destroy(rids[-1])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [str(rids[-1])] * len(failures), "only the destroyed key reads None"
    assert keys.held()[1] <= 8
