"""The ledger's recorders: the library's, each also writing three things in the events'
transaction, and checking two more (on PostgreSQL, all in one call of migration 0018's
`ledger_insert_events`).

- A relationship's new customer key (domain/key_table.py), with its first events: never a key
  without its events nor events without their key.
- The event ids a save claims (`event_ids`, migration 0005): a brand's event id names one event
  for good, so a repeated id fails the whole save, and the ledger answers it from the claim
  (a replay) or refuses it (other content).
- The push ids a first decision claims (`push_ids`, migration 0006): a brand's push id belongs
  to one customer, so deciding it for another fails the save, and the ledger refuses it.
- The versions of what a command read and does not write (a push decision's brand policy): if
  one has moved on, the save fails as on a version already taken, and the command is run again
  on what was written. Checked under the table lock, so no writer can come in between.
- The store's revision: if it is not the one this code knows (a migration ran while this
  process did), nothing is written and the save raises StoreMigratedAway (RevisionGuard in
  domain/storage.py), which the process remembers.

A claim keeps the event's relationship, its sequence, when it was recorded and a fingerprint of
its content keyed by the customer's key, so it reveals nothing of the event and, once the
customer is erased, cannot be compared any more.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from domain.key_table import BOUND, NEW_KEYS, KeyRow, rotated_away
from domain.storage import REVISION_QUERY, RevisionGuard

EVENT_IDS = "event_ids"
"""The keyword of `Application.save` that carries the claimed event ids into its transaction."""
PUSH_IDS = "push_ids"
"""The keyword of `Application.save` that carries the claimed push ids into its transaction."""
READS = "reads"
"""The keyword of `Application.save` that carries (aggregate id, version read) pairs: the save
fails if any of those aggregates has a later version (0: none may exist)."""


@dataclass(frozen=True)
class EventIdClaim:
    """What the ledger keeps of a brand's event id: enough to answer a repeat of the event."""

    brand: str
    event_id: str
    relationship_id: UUID
    sequence: int
    fingerprint: str
    recorded_at: datetime


@dataclass(frozen=True)
class PushIdClaim:
    """A brand's push id, claimed for one customer's relationship by the push's first decision."""

    brand: str
    push_id: str
    relationship_id: UUID


_COLUMNS = "brand, event_id, relationship_id, sequence, fingerprint, recorded_at"
_INSERT_PUSH_ID = "INSERT INTO push_ids (brand, push_id, relationship_id) VALUES (?, ?, ?)"
_SELECT_PUSH_ID = "SELECT relationship_id FROM push_ids WHERE brand = ? AND push_id = ?"
_INSERT_KEY = (
    "INSERT INTO customer_keys (relationship_id, brand, wrapped_key, master_key_id, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_SELECT_CLAIMS = f"SELECT {_COLUMNS} FROM event_ids WHERE brand = ? AND event_id IN ({{marks}})"
_SELECT_CLAIMS_POSTGRES = (
    "SELECT claim.* FROM unnest(%s::text[]) AS wanted(event_id) CROSS JOIN LATERAL"
    f" (SELECT {_COLUMNS} FROM event_ids WHERE brand = %s AND event_id = wanted.event_id"
    " LIMIT 1) AS claim"
)
"""One search of the key per id, whatever the table's statistics say. Written as `brand = %s AND
event_id IN (...)`, on a table last analyzed while small (the HTTP bench's, its whole run, as
autovacuum looks once a minute) the planner scanned the brand's every row: 100-200 ms a look-up
at 50,000 rows, growing with the history. The LIMIT keeps it from merging the searches into one
scan; the key makes it change nothing."""

_INSERT_EVENTS_POSTGRES = "SELECT ledger_insert_events(%s, %s, %s, %s, %s, %s, %s, %s)"
"""The save's writes, in one call of migration 0018's function: each row set as one JSON document,
which the server turns back into rows (bytes in base64), or NULL for none; and the revision this
code knows, which the function compares with the store's first."""
MIGRATED_AWAY = "TLREV"
"""The SQLSTATE of the save function's refusal (0018); its message is the revision it found."""
_LATEST_VERSION_SQLITE = "SELECT max(originator_version) FROM {table} WHERE originator_id = ?"


def json_rows(rows: Iterable[tuple[Any, ...]], names: Sequence[str]) -> str:
    """Rows as a JSON array of objects, keyed by `names`, one per column (a string gives each a
    letter), which json_to_recordset turns back into rows; bytes in base64."""
    return orjson.dumps(
        [
            {
                name: b64encode(value).decode() if isinstance(value, bytes) else value
                for name, value in zip(names, row, strict=True)
            }
            for row in rows
        ]
    ).decode()


def _claims(kwargs: dict[str, Any]) -> list[EventIdClaim]:
    claims: list[EventIdClaim] = kwargs.get(EVENT_IDS) or []
    return claims


def _push_ids(kwargs: dict[str, Any]) -> list[PushIdClaim]:
    claims: list[PushIdClaim] = kwargs.get(PUSH_IDS) or []
    return claims


def _reads(kwargs: dict[str, Any]) -> list[tuple[UUID, int]]:
    reads: list[tuple[UUID, int]] = kwargs.get(READS) or []
    return reads


def _moved_on(aggregate_id: UUID, read: int, latest: int | None) -> None:
    if (latest or 0) != read:
        raise IntegrityError(f"{aggregate_id} is at version {latest or 0}, not {read} as read")


def _row(claim: EventIdClaim) -> tuple[Any, ...]:
    return (
        claim.brand,
        claim.event_id,
        claim.relationship_id,
        claim.sequence,
        claim.fingerprint,
        claim.recorded_at,
    )


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """The library's save (the table lock, NOTIFY and the insert, in one transaction) as one call
    of `ledger_insert_events` (migrations 0007 and 0009), through a prepared statement: one round
    trip, and the server keeps the plans of its statements. The library's pipeline takes two round
    trips and, measured here, more time in psycopg than on the wire; its events go as one array
    of composites, where these go as one JSON document."""

    guard: RevisionGuard
    """The process's guard of the store's revision: its store's, set by the Ledger."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: list[StoredEvent], **kwargs: Any) -> list[int]:
        keys: list[KeyRow] = kwargs.get(NEW_KEYS) or []
        claims = _claims(kwargs)
        pushes = _push_ids(kwargs)
        reads = _reads(kwargs)
        events = ((e.originator_id, e.originator_version, e.topic, e.state) for e in stored_events)
        params = [
            json_rows(keys, "rbwmc") if keys else None,
            keys[0][3] if keys else None,  # the master key that wrapped them
            json_rows(map(_row, claims), "bersft") if claims else None,
            json_rows(((p.brand, p.push_id, p.relationship_id) for p in pushes), "bpr")
            if pushes
            else None,
            json_rows(events, "rvts"),
            f"{self.datastore.lock_timeout}s",
            json_rows(reads, "rv") if reads else None,
            self.guard.expected(),
        ]
        try:
            with self.datastore.get_connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row)  # rows as tuples: cheaper to make
                cursor.execute(_INSERT_EVENTS_POSTGRES, params, prepare=True)
                return [row[0] for row in cursor.fetchall()]
        except DatabaseError as error:
            self._refuse_if_migrated_away(error)
            raise

    def _refuse_if_migrated_away(self, error: Exception) -> None:
        """The save function's refusal (0018) as StoreMigratedAway; and a function missing, as a
        later revision that replaced it with another signature leaves it, as the same once the
        store is found at another revision."""
        cause = error.__cause__
        if isinstance(cause, pg_errors.DatabaseError) and cause.sqlstate == MIGRATED_AWAY:
            self.guard.verify(cause.diag.message_primary)
        if isinstance(cause, pg_errors.UndefinedFunction):
            with self.datastore.get_connection() as conn:
                row = conn.execute(REVISION_QUERY).fetchone()
            self.guard.verify(None if row is None else row["version_num"])

    def event_id_claims(self, brand: str, event_ids: Sequence[str]) -> dict[str, EventIdClaim]:
        """The claims on these event ids of the brand, by event id."""
        if not event_ids:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(_SELECT_CLAIMS_POSTGRES, [list(event_ids), brand])
            return {row["event_id"]: EventIdClaim(**row) for row in cursor.fetchall()}

    def push_id_owner(self, brand: str, push_id: str) -> UUID | None:
        """The relationship that holds the brand's push id, if any holds it."""
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(_SELECT_PUSH_ID.replace("?", "%s"), [brand, push_id])
            row = cursor.fetchone()
        return None if row is None else UUID(str(row["relationship_id"]))


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    """The same as PostgresLedgerRecorder, on SQLite (whose write transaction is already
    exclusive)."""

    guard: RevisionGuard
    """The process's guard of the store's revision: its store's, set by the Ledger."""

    def _insert_events(self, c: Any, stored_events: Any, **kwargs: Any) -> Any:
        rows: list[KeyRow] = kwargs.get(NEW_KEYS) or []
        if rows:
            # The insert comes first: it takes the write lock (waiting for it), so the check sees
            # the latest binding; a read first would fail at once if another process wrote since.
            c.executemany(_INSERT_KEY, [(rid.hex, b, w, k, t) for rid, b, w, k, t in rows])
            c.execute(BOUND)
            found = c.fetchone()
            bound = None if found is None else str(found[0])
            if bound != rows[0][3]:
                raise rotated_away(str(bound), rows[0][3])
        claims = _claims(kwargs)
        if claims:
            c.executemany(
                f"INSERT INTO event_ids ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        x.brand,
                        x.event_id,
                        x.relationship_id.hex,
                        x.sequence,
                        x.fingerprint,
                        x.recorded_at.isoformat(),
                    )
                    for x in claims
                ],
            )
        pushes = _push_ids(kwargs)
        if pushes:
            c.executemany(
                _INSERT_PUSH_ID, [(p.brand, p.push_id, p.relationship_id.hex) for p in pushes]
            )
        positions = super()._insert_events(c, stored_events, **kwargs)
        for aggregate_id, read in _reads(kwargs):  # after a write: under the write lock
            c.execute(
                _LATEST_VERSION_SQLITE.format(table=self.events_table_name), [aggregate_id.hex]
            )
            _moved_on(aggregate_id, read, c.fetchone()[0])
        c.execute(REVISION_QUERY)  # after a write, under the write lock: no migration between
        row = c.fetchone()
        self.guard.verify(None if row is None else row[0])
        return positions

    def event_id_claims(self, brand: str, event_ids: Sequence[str]) -> dict[str, EventIdClaim]:
        if not event_ids:
            return {}
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                _SELECT_CLAIMS.format(marks=", ".join(["?"] * len(event_ids))), [brand, *event_ids]
            )
            rows = cursor.fetchall()
        return {
            row[1]: EventIdClaim(
                row[0], row[1], UUID(row[2]), row[3], row[4], datetime.fromisoformat(row[5])
            )
            for row in rows
        }

    def push_id_owner(self, brand: str, push_id: str) -> UUID | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(_SELECT_PUSH_ID, [brand, push_id])
            row = cursor.fetchone()
        return None if row is None else UUID(row[0])


class MemoryLedgerRecorder(POPOApplicationRecorder):
    """The in-memory store's (unit tests): its claims in dicts, under the library's lock."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: dict[tuple[str, str], EventIdClaim] = {}
        self.push_ids: dict[tuple[str, str], UUID] = {}

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        for claim in _claims(kwargs):
            if (claim.brand, claim.event_id) in self.claims:
                raise IntegrityError(f"event id already claimed: {claim.event_id!r}")
        for push in _push_ids(kwargs):
            if (push.brand, push.push_id) in self.push_ids:
                raise IntegrityError(f"push id already claimed: {push.push_id!r}")
        for aggregate_id, read in _reads(kwargs):
            versions = self._stored_events_index.get(str(aggregate_id), {})
            _moved_on(aggregate_id, read, max(versions, default=None))

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        self.claims.update({(claim.brand, claim.event_id): claim for claim in _claims(kwargs)})
        self.push_ids.update({(p.brand, p.push_id): p.relationship_id for p in _push_ids(kwargs)})
        return super()._update_table(stored_events, **kwargs)

    def push_id_owner(self, brand: str, push_id: str) -> UUID | None:
        with self._database_lock:
            return self.push_ids.get((brand, push_id))

    def event_id_claims(self, brand: str, event_ids: Sequence[str]) -> dict[str, EventIdClaim]:
        with self._database_lock:
            found = (self.claims.get((brand, event_id)) for event_id in event_ids)
            return {claim.event_id: claim for claim in found if claim is not None}


SNAPSHOT_ANCHOR = 200
"""Of a relationship's snapshots, the store keeps its latest and one anchor every this many
versions: the first in each span [k x ANCHOR, (k + 1) x ANCHOR), at k x ANCHOR when its saves
are of single events. Each snapshot written deletes the others before it, in its transaction.
An audit, or an `as_of` read, of an old version folds the events after the anchor at or
before it: fewer than ANCHOR (ANCHOR plus a batch's, at most, when a batch of one customer's
events crossed the span's start): 7.4-8.2 ms for 199 on the development machine. Kept every
20 events (SNAPSHOT_INTERVAL), a 100,000-event relationship's snapshots took 5,101 rows (65 MB
on PostgreSQL, 162 MB on SQLite); kept this way, 501 (about 6 and 16 MB). docs/recording.md."""


def _prune(table: str, old: str, anchor: int) -> str:
    """The delete of the earlier snapshots of the one written (parameters: its id, its version,
    and the start of the span before its own) but the first of each span. The span of the one
    before it and its own only: the others hold their first alone already (a batch's snapshots
    are less than a span apart), and looking there cost a probe of the key each, a hundred at
    100,000 events. Each candidate is one probe of the key (min of the span), by its key."""
    return (
        f" {old}.originator_id = {{p}} AND {old}.originator_version < {{p}}"
        f" AND {old}.originator_version >= {{p}} AND {old}.originator_version > (SELECT"
        f" min(lowest.originator_version) FROM {table} AS lowest WHERE lowest.originator_id ="
        f" {old}.originator_id AND lowest.originator_version >="
        f" {old}.originator_version / {anchor:d} * {anchor:d})"
    )


def _pruned(stored: StoredEvent, anchor: int) -> tuple[Any, int, int]:
    """The delete's parameters for a snapshot written (`_prune`)."""
    version = stored.originator_version
    return stored.originator_id, version, max(version // anchor - 1, 0) * anchor


class PostgresSnapshotRecorder(PostgresAggregateRecorder):
    """The library's recorder of snapshots, inserting each state as a binary parameter, and
    deleting the relationship's earlier snapshots but the anchors (SNAPSHOT_ANCHOR) in the same
    statement: no round trip more.

    The library's insert sends one array of composite values, which psycopg writes out as text:
    each state in hex, then escaped by a regular expression. For a long relationship's snapshot
    that was most of the Python of the save that took it."""

    anchor = SNAPSHOT_ANCHOR

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        # The delete does not see the row the INSERT adds (one snapshot of the table for the
        # whole statement), nor needs to: it deletes versions before it.
        statement = SQL(
            "WITH new AS (INSERT INTO {table} (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %b)) DELETE FROM {table} AS old WHERE"
            + _prune("{table}", "old", self.anchor).format(p="%s", table="{table}")
        ).format(table=table)
        rows = [
            (e.originator_id, e.originator_version, e.topic, e.state, *_pruned(e, self.anchor))
            for e in stored_events
        ]
        with curs.connection.transaction():  # all of a batch's snapshots, or none, as before
            curs.executemany(statement, rows)


class SQLiteSnapshotRecorder(SQLiteAggregateRecorder):
    """The library's recorder of snapshots, deleting in the insert's transaction the
    relationship's earlier snapshots but the anchors (SNAPSHOT_ANCHOR)."""

    anchor = SNAPSHOT_ANCHOR

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        super()._insert_events(c, stored_events, **kwargs)
        table = self.events_table_name
        c.executemany(
            f"DELETE FROM {table} WHERE" + _prune(table, table, self.anchor).format(p="?"),
            [
                (UUID(str(rid)).hex, version, since)
                for rid, version, since in (_pruned(e, self.anchor) for e in stored_events)
            ],
        )


RECORDERS = {
    "postgres": f"{__name__}:PostgresLedgerRecorder",
    "sqlite": f"{__name__}:SQLiteLedgerRecorder",
}
"""The application recorder of each SQL store (the library's APPLICATION_RECORDER_TOPIC); the
in-memory store's factory reads no topic, so the Ledger makes its MemoryLedgerRecorder itself."""
