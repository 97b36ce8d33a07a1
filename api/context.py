"""What a request uses, built lazily once per process (so after gunicorn forks) and kept:
the ledger, the key store and the read side.

The eventsourcing `Application` connects in its constructor and closes its pool when collected,
so the app keeps one reference to it for its life and closes it on shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

from cachetools import TTLCache
from flask import current_app, g

from api.auth import Caller, KeyStore
from api.reads import ReadSide
from api.settings import Settings
from domain.application import Ledger
from domain.storage import Store, check_migrated
from domain.versions import KnownVersions
from projections.db import Database
from projections.trust import base_rates, brand_scores

EXTENSION = "trustledger"


class Resources:
    """The ledger, the key store and the read side of one process."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger | None = None,
        known_versions: KnownVersions | None = None,
    ) -> None:
        self.settings = settings
        self.known_versions = known_versions or KnownVersions()
        """Shared by the server's workers (api/server.py); this process's alone otherwise."""
        self._ledger = ledger
        self._owns_ledger = ledger is None
        self._keys: KeyStore | None = None
        self._reads: ReadSide | None = None
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._parsing = threading.Lock()

    @property
    def store(self) -> Store:
        """The database, parsed once (Settings.store parses it at each call): the ledger, the key
        store and the read side share this one, and so its revision guard."""
        with self._parsing:
            if self._store is None:
                self._store = self.settings.store
            return self._store

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            with self._lock:
                if self._ledger is None:
                    check_migrated(self.store)
                    master_key = self.settings.load_master_key()
                    self._ledger = Ledger(
                        self.store,
                        master_key=master_key,
                        known_versions=self.known_versions,
                    )
                    self._ledger.base_rates = BrandBaseRates(self.store)
        return self._ledger

    @property
    def keys(self) -> KeyStore:
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    check_migrated(self.store)  # `keys` commands open no ledger
                    self._keys = KeyStore(self.store, cache_seconds=self.settings.key_cache_seconds)
        return self._keys

    @property
    def reads(self) -> ReadSide:
        if self._reads is None:
            ledger = self.ledger
            with self._lock:
                if self._reads is None:
                    settings = self.settings
                    self._reads = ReadSide(
                        ledger,
                        settings.replica,
                        settings.replica_wait_seconds,
                        settings.statement_timeout_seconds,
                    )
        return self._reads

    def refuse_if_migrated_away(self) -> None:
        """StoreMigratedAway once any write or projection of this process found the store
        migrated to a revision its code does not know (domain/storage.py RevisionGuard): every
        call then answers 503 rather than store or show anything in a format it cannot read."""
        # Only what was built: nothing else can have found it (and a URL is parsed only once).
        # A ledger handed in (tests) may have opened a Store of its own.
        for store in (self._store, self._ledger.store if self._ledger is not None else None):
            if store is not None:
                store.guard.refuse_if_moved()

    def close(self) -> None:
        """Closes what this process opened (a ledger handed in is its owner's to close)."""
        with self._lock:
            if self._reads is not None:
                self._reads.close()
                self._reads = None
            if self._ledger is not None and self._owns_ledger:
                if isinstance(self._ledger.base_rates, BrandBaseRates):
                    self._ledger.base_rates.close()
                self._ledger.close()
                self._ledger = None
            if self._keys is not None:
                self._keys.close()
                self._keys = None


class BrandBaseRates:
    """The ledger's `base_rates` hook: a relationship's base rate is its brand's P per dimension,
    read from the brand trust read model on a connection of its own (one query at a time).

    A brand's rates are kept for `seconds` and used for decisions at most that far apart: the
    P of all a brand's relationships moves slowly, the read model lags behind the log anyway,
    and each decision records the rates it used, so its audit is exact all the same.
    """

    def __init__(self, store: Store, seconds: float = 1.0) -> None:
        self.store = store
        self.window = timedelta(seconds=seconds)
        self._db: Database | None = None
        self._lock = threading.Lock()
        self._kept: TTLCache[str, tuple[datetime, Mapping[str, float]]] = TTLCache(
            maxsize=256, ttl=seconds
        )

    def __call__(self, brand: str, at: datetime) -> Mapping[str, float]:
        with self._lock:
            kept = self._kept.get(brand)
            if kept is not None and abs(kept[0] - at) <= self.window:
                return kept[1]
            if self._db is None:
                self._db = Database(self.store)
            rates = base_rates(brand_scores(self._db, brand, at))
            self._kept[brand] = (at, rates)
            return rates

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def resources() -> Resources:
    found: Resources = current_app.extensions[EXTENSION]
    return found


def ledger() -> Ledger:
    return resources().ledger


def read_side() -> ReadSide:
    return resources().reads


def caller() -> Caller:
    """Who is calling; set by the `allow` guard of the view."""
    found: Caller = g.caller
    return found
