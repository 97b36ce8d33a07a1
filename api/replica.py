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
from domain.timeouts import STATEMENT_TIMEOUT, TimedConnection, answering_within
from projections.db import Database

log = logging.getLogger("trustledger.replica")

CHECK_SECONDS = 5.0
"""How often a standby that could not be asked (down, frozen, unmigrated) is checked again, by a
thread of its own: the reads keep off it until a check finds it answering, so none waits on it."""
CHECK_NAME = "trustledger replica check"
"""The checks' application_name, by which the standby's pg_stat_activity tells them apart."""
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
    what it fails to. Once it failed, the reads keep off it, and a thread of its own (`_checking`)
    asks it every CHECK_SECONDS until it answers: no read waits on a standby known to be down."""

    def __init__(
        self,
        store: Store,
        primary: Database,
        models: Sequence[str],
        wait: float,
        timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.store = store
        self.primary = primary
        self.models = tuple(models)
        self.wait = wait
        self.timeout = timeout
        """How long a check waits for each of the standby's answers, as a read's statements do."""
        self._db: Standby | None = None
        self._lock = threading.Lock()
        self._failing = False
        self._closed = threading.Event()

    def holding(self, head: int) -> Standby | None:
        """The standby's read models once each holds log position `head` (within `wait`
        seconds), or None: behind for longer, or known to be down (never asked then)."""
        if self._failing:
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
        return db

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

    def _position(self, db: Database) -> int:
        """The lowest position among the read models on the standby (-1 for one it lacks):
        asked of the standby alone, never of the primary in its place."""
        rows = Database.query(db, "SELECT name, position FROM projection_positions")
        positions: dict[str, int] = {name: int(position) for name, position in rows}
        return min(positions.get(name, -1) for name in self.models)

    def failed(self, error: psycopg.Error) -> None:
        """Reads keep off the standby until a check finds it answering; said once, not at every
        read, and the checks start."""
        with self._lock:
            if self._failing or self._closed.is_set():
                return
            self._failing = True
            threading.Thread(target=self._checking, name=CHECK_NAME, daemon=True).start()
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning(
            "the replica %s:%s cannot be read (%s): reading from the primary, and checking it"
            " every %g s",
            self.store.host,
            self.store.port,
            reason,
            CHECK_SECONDS,
        )

    @property
    def failing(self) -> bool:
        """Since it last failed, until a check finds it answering."""
        return self._failing

    def _checking(self) -> None:
        """Asks the standby every CHECK_SECONDS, on a connection of the check's own (each of
        its answers waited for `timeout` at most, as a read's), until it answers or is closed."""
        answering_within(self.timeout)
        while not self._closed.wait(CHECK_SECONDS):
            try:
                with TimedConnection.connect(
                    self.store.conninfo(), autocommit=True, application_name=CHECK_NAME
                ) as conn:
                    conn.execute("SELECT name, position FROM projection_positions").fetchall()
            except psycopg.Error:
                continue
            with self._lock:
                if self._closed.is_set():
                    return
                self._failing = False
            log.warning("the replica %s:%s answers again", self.store.host, self.store.port)
            return

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self._db is not None:
                self._db.close()
                self._db = None
