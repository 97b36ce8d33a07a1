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
sent every read to the primary while those writes streamed. A standby that fails in the middle
of a read (stopped, frozen, or cancelling a query that conflicts with its replay) leaves the rest
of that read to the primary, query by query: the primary's read models hold at least as much, and
each query outside a transaction reads a moment of its own there anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from domain.storage import Store
from projections.db import Database

log = logging.getLogger("trustledger.replica")

RETRY_SECONDS = 5.0
"""How long the reads keep off a standby that could not be asked (down, frozen, unmigrated)
before trying it again: a stopped server refuses at once, but an unreachable one would cost
each read the connection's timeout."""
POLL_SECONDS = 0.002, 0.02
"""The first and the longest pause between two askings of a standby that is behind."""


class Standby(Database):
    """The standby's read models, whose queries go to the primary's once the standby failed."""

    def __init__(self, replica: Replica, primary: Database) -> None:
        super().__init__(replica.store, primary.keys)
        self.replica = replica
        self.primary = primary

    def query(self, statement: str, params: Sequence[Any] = (), binary: bool = False) -> Any:
        if self.replica.failing:  # each query of the read would wait for it again
            return self.primary.query(statement, params, binary)
        try:
            return super().query(statement, params, binary)
        except psycopg.Error as error:
            self.replica.failed(error)
            return self.primary.query(statement, params, binary)


class Replica:
    """A hot standby's read models, for the reads they hold everything of; `primary`'s answer
    what it fails to."""

    def __init__(self, store: Store, primary: Database, models: Sequence[str], wait: float) -> None:
        self.store = store
        self.primary = primary
        self.models = tuple(models)
        self.wait = wait
        self._db: Standby | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._failing = False

    def holding(self, head: int) -> Standby | None:
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
            self.failed(error)
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

    def _connected(self) -> Standby:
        """The connection to the standby; made outside the lock, as it may wait CONNECT_TIMEOUT."""
        found = self._db
        if found is not None:
            return found
        made = Standby(self, self.primary)
        with self._lock:
            if self._db is None:
                self._db = made
                return made
            found = self._db
        made.close()  # another thread's came first
        return found

    def _position(self, db: Standby) -> int:
        """The lowest position among the read models on the standby (-1 for one it lacks):
        asked of the standby alone, never of the primary in its place."""
        rows = Database.query(db, "SELECT name, position FROM projection_positions")
        positions: dict[str, int] = {name: int(position) for name, position in rows}
        return min(positions.get(name, -1) for name in self.models)

    def failed(self, error: psycopg.Error) -> None:
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

    @property
    def failing(self) -> bool:
        """Since it last failed, until it next holds a read's head."""
        return self._failing

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
