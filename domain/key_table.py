"""Where customer keys are kept: the `customer_keys` table (migration 0003), or a dict in memory.

Every customer key is stored wrapped by the master key; the table never sees one in the clear.
The single row of `master_key_check` names the master key that wraps them all, so a process
started with another master key is refused, and a process left running with the old key after a
rotation can no longer add keys wrapped by it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from domain.errors import MasterKeyError
from domain.storage import REVISION_QUERY, RevisionGuard

Rewrap = Callable[[UUID, str, bytes, str], bytes]
"""(relationship id, brand, wrapped key, id of the master key that wrapped it) -> rewrapped key."""


class KeyTable(Protocol):
    def claim_master_key(self, key_id: str) -> str:
        """The id of the master key the table is bound to; binds it to `key_id` when it is new."""

    def insert_or_get(
        self, rid: UUID, brand: str, wrapped: bytes, key_id: str
    ) -> tuple[str, bytes]:
        """Keeps this wrapped key unless the relationship has one already; returns the one kept."""

    def insert_or_get_many(
        self, rows: list[tuple[UUID, str, bytes]], key_id: str
    ) -> dict[UUID, tuple[str, bytes]]:
        """insert_or_get for many relationships, in one transaction."""

    def select(self, rid: UUID) -> tuple[str, bytes] | None:
        """The relationship's brand and wrapped key, or None when there is none (erased)."""

    def delete(self, rid: UUID) -> bool:
        """Destroys the relationship's key; True when there was one."""

    def rewrap_all(self, old_id: str, new_id: str, rewrap: Rewrap) -> int:
        """Rewraps every key and binds the table to `new_id`, in one transaction; returns count."""


def rotated_away(bound: str, key_id: str) -> MasterKeyError:
    return MasterKeyError(
        f"the customer keys are now wrapped by master key {bound}, not by this process's master key"
        f" {key_id} (was it rotated?): restart with the current TRUSTLEDGER_MASTER_KEY"
    )


class MemoryKeyTable:
    """The key table of the in-memory store (unit tests)."""

    def __init__(self) -> None:
        self.bound: str | None = None
        self.rows: dict[UUID, tuple[str, bytes, str]] = {}
        self.lock = threading.Lock()

    def claim_master_key(self, key_id: str) -> str:
        with self.lock:
            self.bound = self.bound or key_id
            return self.bound

    def insert_or_get(
        self, rid: UUID, brand: str, wrapped: bytes, key_id: str
    ) -> tuple[str, bytes]:
        with self.lock:
            if self.bound != key_id:
                raise rotated_away(str(self.bound), key_id)
            stored = self.rows.setdefault(rid, (brand, wrapped, key_id))
            return stored[0], stored[1]

    def insert_or_get_many(
        self, rows: list[tuple[UUID, str, bytes]], key_id: str
    ) -> dict[UUID, tuple[str, bytes]]:
        return {
            rid: self.insert_or_get(rid, brand, wrapped, key_id) for rid, brand, wrapped in rows
        }

    def select(self, rid: UUID) -> tuple[str, bytes] | None:
        row = self.rows.get(rid)
        return None if row is None else (row[0], row[1])

    def delete(self, rid: UUID) -> bool:
        with self.lock:
            return self.rows.pop(rid, None) is not None

    def rewrap_all(self, old_id: str, new_id: str, rewrap: Rewrap) -> int:
        with self.lock:
            if self.bound != old_id:
                raise rotated_away(str(self.bound), old_id)
            rows = {rid: (b, rewrap(rid, b, w, k), new_id) for rid, (b, w, k) in self.rows.items()}
            self.rows, self.bound = rows, new_id
            return len(rows)


@dataclass(frozen=True)
class Dialect:
    """The statements of one database: SQLite (`?`, hex ids) or PostgreSQL (`%s`, uuid)."""

    name: str
    claim: str
    insert: str
    bound: str
    check: str
    select: str
    delete: str
    lock_check: str
    rebind: str
    select_all: str
    update: str

    def rid(self, rid: UUID) -> Any:
        return rid.hex if self.name == "sqlite" else rid

    def parse_rid(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(value)


BOUND = "SELECT master_key_id FROM master_key_check WHERE id = 1"


def _dialect(name: str, mark: str) -> Dialect:
    def sql(statement: str) -> str:
        return statement.replace("?", mark)

    postgres = name == "postgres"
    ignore = (
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING"
        if postgres
        else "INSERT OR IGNORE INTO {} ({}) VALUES ({})"
    )
    return Dialect(
        name=name,
        claim=sql(ignore.format("master_key_check", "id, master_key_id, changed_at", "1, ?, ?")),
        insert=sql(
            ignore.format(
                "customer_keys",
                "relationship_id, brand, wrapped_key, master_key_id, created_at",
                "?, ?, ?, ?, ?",
            )
        ),
        bound=BOUND,
        check=BOUND + (" FOR SHARE" if postgres else ""),
        select=sql("SELECT brand, wrapped_key FROM customer_keys WHERE relationship_id = ?"),
        delete=sql("DELETE FROM customer_keys WHERE relationship_id = ? RETURNING relationship_id"),
        # Taking the check row first serialises a rotation with every key being created.
        lock_check=(
            "SELECT master_key_id FROM master_key_check WHERE id = 1 FOR UPDATE"
            if postgres
            else "UPDATE master_key_check SET master_key_id = master_key_id WHERE id = 1"
        ),
        rebind=sql("UPDATE master_key_check SET master_key_id = ?, changed_at = ? WHERE id = 1"),
        select_all="SELECT relationship_id, brand, wrapped_key, master_key_id FROM customer_keys",
        update=sql(
            "UPDATE customer_keys SET wrapped_key = ?, master_key_id = ? WHERE relationship_id = ?"
        ),
    )


SQLITE = _dialect("sqlite", "?")
POSTGRES = _dialect("postgres", "%s")


class SQLKeyTable:
    """The key table in the application's database, through the event store's connection pool."""

    def __init__(self, datastore: Any, dialect: Dialect, guard: RevisionGuard) -> None:
        self.datastore = datastore
        self.dialect = dialect
        self.guard = guard

    def claim_master_key(self, key_id: str) -> str:
        with self._writing() as cursor:
            cursor.execute(self.dialect.claim, (key_id, now()))
            cursor.execute(self.dialect.check)
            return str(cursor.fetchone()["master_key_id"])

    def insert_or_get(
        self, rid: UUID, brand: str, wrapped: bytes, key_id: str
    ) -> tuple[str, bytes]:
        return self.insert_or_get_many([(rid, brand, wrapped)], key_id)[rid]

    def insert_or_get_many(
        self, rows: list[tuple[UUID, str, bytes]], key_id: str
    ) -> dict[UUID, tuple[str, bytes]]:
        """The keys of many new relationships, in one transaction (a batch's new customers)."""
        stored: dict[UUID, tuple[str, bytes]] = {}
        # The inserts come first: on SQLite they take the write lock, so the check below sees the
        # latest binding; on PostgreSQL the check's FOR SHARE waits for a rotation in progress.
        with self._writing(flush=False) as cursor:
            for rid, brand, wrapped in rows:
                cursor.execute(
                    self.dialect.insert, (self.dialect.rid(rid), brand, wrapped, key_id, now())
                )
            cursor.execute(self.dialect.check)
            row = cursor.fetchone()
            bound = None if row is None else str(row["master_key_id"])
            if bound != key_id:
                raise rotated_away(str(bound), key_id)
            for rid, _, _ in rows:
                cursor.execute(self.dialect.select, (self.dialect.rid(rid),))
                found = cursor.fetchone()
                stored[rid] = (str(found["brand"]), bytes(found["wrapped_key"]))
        return stored

    def select(self, rid: UUID) -> tuple[str, bytes] | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.select, (self.dialect.rid(rid),))
            row = cursor.fetchone()
        return None if row is None else (str(row["brand"]), bytes(row["wrapped_key"]))

    def delete(self, rid: UUID) -> bool:
        with self._writing() as cursor:
            cursor.execute(self.dialect.delete, (self.dialect.rid(rid),))
            deleted = bool(cursor.fetchall())
        if self.dialect.name == "sqlite":
            self._truncate_wal()
        return deleted

    @contextmanager
    def _writing(self, flush: bool = True) -> Iterator[Any]:
        """A write transaction; on SQLite, one that zeroes the bytes of what it deletes or moves.
        It commits only if the store is still at the revision this code knows (RevisionGuard).

        Without `flush` the commit does not wait for the disk: for a key created just before
        its relationship's first event, whose own (flushed) commit then carries the key's
        commit to disk with it, since both databases flush their log in order.
        """
        postgres = self.dialect.name == "postgres"
        with self.guard.guarding(self._transaction(flush), _revision, postgres) as cursor:
            yield cursor

    @contextmanager
    def _transaction(self, flush: bool) -> Iterator[Any]:
        if self.dialect.name == "postgres":
            with self.datastore.transaction(commit=True) as cursor:
                if not flush:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                yield cursor
            return
        with self.datastore.get_connection(commit=True) as connection:
            outer = connection.cursor()
            outer.execute("PRAGMA secure_delete = ON")
            outer.execute("PRAGMA synchronous")
            level = int(outer.fetchone()[0])
            if not flush:
                outer.execute("PRAGMA synchronous = NORMAL")  # only outside a transaction
            try:
                with connection.transaction(commit=True) as cursor:
                    yield cursor
            finally:
                outer.execute(f"PRAGMA synchronous = {level}")

    def _truncate_wal(self) -> None:
        """Empties the write-ahead log, so no older frame still holds the destroyed key."""
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()

    def rewrap_all(self, old_id: str, new_id: str, rewrap: Rewrap) -> int:
        d = self.dialect
        with self._writing() as cursor:
            cursor.execute(d.lock_check)
            cursor.execute(d.bound)
            row = cursor.fetchone()
            bound = None if row is None else str(row["master_key_id"])
            if bound != old_id:
                raise rotated_away(str(bound), old_id)
            cursor.execute(d.select_all)
            rows = cursor.fetchall()
            updates = [
                (
                    rewrap(
                        d.parse_rid(r["relationship_id"]),
                        r["brand"],
                        bytes(r["wrapped_key"]),
                        r["master_key_id"],
                    ),
                    new_id,
                    r["relationship_id"],
                )
                for r in rows
            ]
            if updates:
                cursor.executemany(d.update, updates)
            cursor.execute(d.rebind, (new_id, now()))
            return len(updates)


def _revision(cursor: Any) -> object:
    cursor.execute(REVISION_QUERY)
    row = cursor.fetchone()
    return None if row is None else row["version_num"]


def key_table_for(datastore: Any | None, kind: str, guard: RevisionGuard) -> KeyTable:
    """The key table for the store kind: memory, sqlite or postgres."""
    if kind == "memory" or datastore is None:
        return MemoryKeyTable()
    return SQLKeyTable(datastore, SQLITE if kind == "sqlite" else POSTGRES, guard)


def now() -> str:
    """A key row's creation time, as the key table stores it."""
    return datetime.now(UTC).isoformat()


NEW_KEYS = "new_customer_keys"
"""The keyword of `Application.save` that carries new customer keys into the events' transaction."""
KeyRow = tuple[UUID, str, bytes, str, str]
"""A new customer key as written: relationship id, brand, wrapped key, master key id, created at."""
