"""Reads from a PostgreSQL hot standby (TRUSTLEDGER_REPLICA_URL), never stale, never failing.

A read first catches the primary's read models up with the log, up to the head it saw (api/reads.py),
as without a standby. It then asks the standby for its read models' positions, which streaming
replication brings along with their rows (each read model moves its position in the
transaction that writes its rows): once every one holds that head, the standby holds everything
the primary's read models did, a write acknowledged before the read included, and the read is
answered from it. Until then it asks again, for at most `wait` seconds; a standby that lags
longer, has its replay paused, is down or frozen, is not read, and the read goes to the primary
as it would without one. The positions, not WAL locations, are compared: a write the read
models do not show (an API key's use, a page's session) moves the primary's WAL, and would have
sent every read to the primary while those writes streamed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import psycopg

from domain.shredding import CustomerKeys
from domain.storage import Store
from projections.db import Database

log = logging.getLogger("trustledger.replica")

RETRY_SECONDS = 5.0
"""How long the reads keep off a standby that could not be asked (down, frozen, unmigrated)
before trying it again: a stopped server refuses at once, but an unreachable one would cost
each read the connection's timeout."""
POLL_SECONDS = 0.002, 0.02
"""The first and the longest pause between two askings of a standby that is behind."""


class Replica:
    """A hot standby's read models, for the reads they hold everything of."""

    def __init__(
        self, store: Store, keys: CustomerKeys | None, models: Sequence[str], wait: float
    ) -> None:
        self.store = store
        self.keys = keys
        self.models = tuple(models)
        self.wait = wait
        self._db: Database | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._failing = False

    def holding(self, head: int) -> Database | None:
        """The standby's read models once each holds log position `head` (within `wait`
        seconds), or None: behind for longer, or not answering."""
        if not self._may_ask():
            return None
        deadline = time.monotonic() + self.wait
        pause = POLL_SECONDS[0]
        try:
            db = self._connected()
            while self._position(db) < head:
                if time.monotonic() + pause > deadline:
                    return None
                time.sleep(pause)
                pause = min(pause * 2, POLL_SECONDS[1])
        except psycopg.Error as error:
            self._failed(error)
            return None
        self._answering()
        return db

    def _may_ask(self) -> bool:
        """Not while the reads keep off a failed standby; after that, one read asks it again
        while the others keep off for another while (an unreachable one would hold each read
        that asked it for the connection's timeout)."""
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return False
            if self._failing:
                self._retry_at = now + RETRY_SECONDS
            return True

    def _connected(self) -> Database:
        """The connection to the standby; made outside the lock, as it may wait CONNECT_TIMEOUT."""
        found = self._db
        if found is not None:
            return found
        made = Database(self.store, self.keys)
        with self._lock:
            if self._db is None:
                self._db = made
                return made
            found = self._db
        made.close()  # another thread's came first
        return found

    def _position(self, db: Database) -> int:
        """The lowest position among the read models on the standby (-1 for one it lacks)."""
        rows = db.query("SELECT name, position FROM projection_positions")
        positions: dict[str, int] = {name: int(position) for name, position in rows}
        return min(positions.get(name, -1) for name in self.models)

    def _failed(self, error: psycopg.Error) -> None:
        """Reads keep off the standby for RETRY_SECONDS; said once, not at every read."""
        with self._lock:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if self._failing:
                return
            self._failing = True
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning(
            "the replica %s:%s cannot be read (%s): reading from the primary, and trying it"
            " again every %g s",
            self.store.host,
            self.store.port,
            reason,
            RETRY_SECONDS,
        )

    def _answering(self) -> None:
        if not self._failing:
            return
        with self._lock:
            was, self._failing = self._failing, False
        if was:
            log.warning("the replica %s:%s answers again", self.store.host, self.store.port)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
