"""One thin connection for read models on either store, so each read model writes its SQL once.

SQL is written with `?` placeholders (SQLite's style) and translated for psycopg. Timestamps are
stored as fixed-width UTC text on both stores, so they compare and sort the same way.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import psycopg

from domain.storage import Store
from domain.timeouts import TimedConnection, Unanswered

if TYPE_CHECKING:
    from domain.shredding import CustomerKey, CustomerKeys

Row = tuple[Any, ...]


def timestamp(value: datetime | None) -> str | None:
    """A timestamp as fixed-width UTC text: sorts and compares like the instant it names."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def parse_timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=_json_default)


def to_json(value: Any) -> str:
    """Compact JSON with sorted keys (so equal values store equal text), datetimes in ISO 8601.
    One encoder for all: json.dumps with options makes a new one per call, a fifth of its time."""
    return _ENCODER.encode(value)


Id = TypeVar("Id", str, UUID)


def chunks(values: Iterable[Id], size: int = 500) -> Iterator[list[Id]]:
    """Values in sorted chunks, for `IN (...)` lists of a bounded length."""
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


class Database:
    """A connection to the read-model tables, on SQLite or PostgreSQL."""

    def __init__(self, store: Store, keys: CustomerKeys | None = None) -> None:
        self.store = store
        self.keys = keys
        """The customers' keys the read models' personal values are sealed with and opened by
        (projections/personal.py); None for a connection that only reads what is in clear."""
        self.is_sqlite = store.is_sqlite
        self._one_at_a_time = threading.RLock()
        """SQLite's statements on this connection, one whole statement at a time: the server's
        threads share it, and a read begun while another thread's statement was still being read
        joined that statement's snapshot (and one begun inside another thread's transaction
        would join that transaction). A write acknowledged before it was then missing from it."""
        if self.is_sqlite:
            self._sqlite = sqlite3.connect(
                store.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=FULL")
            # Rows masked at an erasure must leave no old bytes in freed space.
            self._sqlite.execute("PRAGMA secure_delete=ON")
        else:
            self._connection = TimedConnection.connect(store.conninfo(), autocommit=True)
        self._transactions = 0
        """How many transaction blocks are open (a read in one is never asked again)."""
        self._closed = False
        self._fresh: set[str] = set()
        """Tables made by copy_table and not yet swapped in or dropped: filled by a replay that
        delivers each event once, so nothing inserted there can conflict."""

    def reopened(self) -> Database:
        """A connection of its own to the same store (for another process), knowing the same
        fresh tables."""
        db = Database(self.store, self.keys)
        db._fresh = set(self._fresh)
        return db

    @property
    def _pg(self) -> psycopg.Connection[Any]:
        """The PostgreSQL connection, opened again if it was lost (a server restart, a network
        cut): the statement that met the loss failed, and the next one runs on a new session.
        Without this a process's reads failed until it was restarted."""
        if self._connection.closed and not self._closed:
            self._connection = TimedConnection.connect(self.store.conninfo(), autocommit=True)
        return self._connection

    def close(self) -> None:
        self._closed = True
        (self._sqlite if self.is_sqlite else self._connection).close()

    def forget_old_pages(self) -> None:
        """After an erasure: on SQLite, move the WAL into the file and empty it, so the old
        versions of masked rows (still in the WAL) are gone. PostgreSQL's dead row versions go
        at the next VACUUM (docs/privacy.md)."""
        if self.is_sqlite:
            self._sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def unflushed(self) -> Iterator[None]:
        """Commits that do not wait for the disk, until the block ends: for a rebuild's copies,
        read by nobody before the swap, whose own commit (flushed) carries them to disk with it,
        since both databases flush their log in order. A crash before it loses only the copies."""
        if self.is_sqlite:
            self._sqlite.execute("PRAGMA synchronous=NORMAL")
        else:
            self._pg.execute("SET synchronous_commit = off")
        try:
            yield
        finally:
            if self.is_sqlite:
                self._sqlite.execute("PRAGMA synchronous=FULL")
            else:
                self._pg.execute("RESET synchronous_commit")

    def sql(self, statement: str) -> str:
        return statement if self.is_sqlite else statement.replace("?", "%s")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE)."""
        if self.is_sqlite:
            with self._one_at_a_time:
                self._sqlite.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self._sqlite.execute("ROLLBACK")
                    raise
                self._sqlite.execute("COMMIT")
        else:
            self._transactions += 1
            try:
                with self._pg.transaction():
                    yield self
            finally:
                self._transactions -= 1

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement; returns the number of rows it changed."""
        if self.is_sqlite:
            with self._one_at_a_time:
                return self._sqlite.execute(statement, params).rowcount
        with self._pg.cursor() as cursor:
            cursor.execute(self.sql(statement), params)
            return cursor.rowcount

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Runs an `INSERT INTO table (columns) VALUES (?, ...) [ON CONFLICT ...]` for many rows.

        On PostgreSQL the rows are COPYed into a temporary table, then inserted with one
        INSERT ... SELECT: a rebuild writes hundreds of thousands of rows, and one statement per
        row would cost more than everything else it does.
        """
        if not rows:
            return
        if self.is_sqlite:
            with self._one_at_a_time:
                if self._sqlite.in_transaction:
                    self._sqlite.executemany(statement, rows)
                else:  # each row would be a transaction of its own
                    with self.transaction():
                        self._sqlite.executemany(statement, rows)
            return
        head, _, tail = statement.partition(" VALUES (")
        conflict = tail.partition(")")[2]
        table, _, columns = head.removeprefix("INSERT INTO ").partition(" ")
        columns = columns.strip("()")
        staging = f"staging_{table}"
        if table in self._fresh and conflict == " ON CONFLICT DO NOTHING":
            self._copy(table, columns, rows)  # nothing to skip: straight in, a third faster
            return
        with self._pg.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table})")
        self._copy(staging, columns, rows)
        with self._pg.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging}{conflict}"
            )
            cursor.execute(f"TRUNCATE {staging}")

    def _copy(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        with (
            self._pg.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def query(self, statement: str, params: Sequence[Any] = (), binary: bool = False) -> list[Row]:
        """The rows; `binary` has PostgreSQL send them in its binary format (for a bytea, its
        bytes rather than twice as many hex digits)."""
        if self.is_sqlite:
            with self._one_at_a_time:
                return self._sqlite.execute(statement, params).fetchall()
        try:
            return self._pg_query(statement, params, binary)
        except Unanswered:
            raise  # the server is there but silent (frozen): a new connection would wait too
        except psycopg.OperationalError:
            # A read outside a transaction that met a lost connection is asked again, once, on a
            # new one: the first read after a server restart then answers, as the later ones do.
            if not self._connection.closed or self._transactions:
                raise
            return self._pg_query(statement, params, binary)

    def _pg_query(self, statement: str, params: Sequence[Any], binary: bool) -> list[Row]:
        with self._pg.cursor(binary=binary) as cursor:
            cursor.execute(self.sql(statement), params)
            return cursor.fetchall()

    def query_in(self, select: str, column: str, values: Iterable[Id], tail: str = "") -> list[Row]:
        """`select` WHERE `column` IN (the values) `tail`: one query per 500 values."""
        found: list[Row] = []
        for chunk in chunks(values):
            found.extend(
                self.query(
                    f"{select} WHERE {column} IN ({', '.join('?' for _ in chunk)}) {tail}", chunk
                )
            )
        return found

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(statement, params)
        return rows[0][0] if rows else None

    def customer_keys(self, rids: Iterable[UUID]) -> list[tuple[UUID, str, bytes]]:
        """The wrapped keys of these relationships (those not erased), for CustomerKeys.preload."""
        select = "SELECT relationship_id, brand, wrapped_key FROM customer_keys"
        if self.is_sqlite:  # as domain/key_table.py keeps them: hex on SQLite, uuid on PostgreSQL
            rows = self.query_in(select, "relationship_id", [rid.hex for rid in rids])
        else:
            rows = self.query_in(select, "relationship_id", rids)
        return [(UUID(str(rid)), brand, bytes(wrapped)) for rid, brand, wrapped in rows]

    def keys_for(self, rids: Iterable[str]) -> dict[str, CustomerKey | None] | None:
        """The keys of these relationships (None: erased), those this process does not hold
        read with one query, never one per row; None when this connection holds no keys."""
        if self.keys is None:
            return None
        wanted = {rid: UUID(rid) for rid in rids}
        self.keys.preload(wanted.values(), self.customer_keys)
        return {rid: self.keys.get(uuid) for rid, uuid in wanted.items()}

    def table_exists(self, table: str) -> bool:
        if self.is_sqlite:
            found = self.scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
            )
        else:
            found = self.scalar(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?",
                [table],
            )
        return bool(found)

    def copy_table(self, table: str, copy: str) -> None:
        """Creates an empty `copy` of `table` with its primary key, which upserts need; its other
        indexes come with `index_copy` or `swap_in`, since building an index once costs less than
        keeping it up to date row by row through a replay. On PostgreSQL its partial indexes
        come at once: they hold few rows, and a replay may read by them (a brand's trust
        checkpoint reads its relationships with open items)."""
        self.execute(f"DROP TABLE IF EXISTS {copy}")
        if self.is_sqlite:
            sql = self.scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
            )
            # From the parenthesis on (a rename leaves the name quoted): columns and constraints.
            self.execute(f"CREATE TABLE {copy} {sql[sql.index('(') :]}")
            return
        self.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        for name, definition in self.query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = ?::regclass AND contype IN ('p', 'u') ORDER BY conname",
            [table],
        ):
            self.execute(f"ALTER TABLE {copy} ADD CONSTRAINT {name}__{copy} {definition}")
        for name, definition in self._secondary_indexes(table):
            if _partial(definition):
                self.execute(_index_on(definition, f"{name}__{copy}", copy))
        self._fresh.add(copy)

    def drop_copy(self, copy: str) -> None:
        self._fresh.discard(copy)
        self.execute(f"DROP TABLE {copy}")

    def index_copy(self, table: str, copy: str) -> None:
        """On PostgreSQL, builds the copy's other indexes (named `<index>__<copy>` until the
        swap), before the swap's transaction locks the live table. SQLite cannot rename an
        index: there `swap_in` builds them."""
        if self.is_sqlite:
            return
        for name, definition in self._secondary_indexes(table):
            if not _partial(definition):  # those came with the copy
                self.execute(_index_on(definition, f"{name}__{copy}", copy))

    def swap_in(self, table: str, copy: str) -> None:
        """Replaces `table` by `copy` (made by copy_table, then index_copy) under the table's
        name, its indexes and constraints under theirs, in the caller's transaction: until it
        commits, SQLite's readers read the old table and PostgreSQL's wait for the new one."""
        indexes = self._secondary_indexes(table)
        self._fresh.discard(copy)
        self.execute(f"DROP TABLE {table}")
        self.execute(f"ALTER TABLE {copy} RENAME TO {table}")
        if self.is_sqlite:
            for _, sql in indexes:
                self.execute(sql)
            return
        suffix = f"__{copy}"
        for (name,) in self.query(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = ?::regclass",
            [table],
        ):
            if name.endswith(suffix):  # renaming a constraint's index renames the constraint
                self.execute(f"ALTER INDEX {name} RENAME TO {name.removesuffix(suffix)}")

    def _secondary_indexes(self, table: str) -> list[tuple[str, str]]:
        """The table's indexes other than its constraints': name and the statement creating it."""
        if self.is_sqlite:
            statement = (
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
                " AND sql IS NOT NULL ORDER BY rowid"  # as created, as migrated
            )
        else:
            statement = (
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = ?::regclass"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
                " ORDER BY i.relname"
            )
        return [(name, sql) for name, sql in self.query(statement, [table])]


def _index_on(definition: str, name: str, table: str) -> str:
    """PostgreSQL's definition of an index (pg_get_indexdef), for another name and table."""
    create = "CREATE UNIQUE INDEX" if definition.startswith("CREATE UNIQUE") else "CREATE INDEX"
    return f"{create} {name} ON {table} USING {definition.partition(' USING ')[2]}"


def _partial(definition: str) -> bool:
    """Whether PostgreSQL's definition of an index (pg_get_indexdef) has a WHERE clause."""
    return " WHERE " in definition
