"""Where the ledger keeps its events: `TRUSTLEDGER_DATABASE_URL`, read once and turned into settings."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo, timeout_from_conninfo

from domain.errors import StoreMigratedAway, StoreNotMigrated, StoreUnavailable

DEFAULT_URL = "sqlite:///var/trustledger.sqlite3"

DATABASE_ERRORS = (sqlite3.Error, psycopg.Error, PersistenceError)
"""The drivers' errors (psycopg's pool timeout among them) and the event library's."""

SESSION_OPTIONS = "-c jit=off"
"""Every PostgreSQL session the ledger opens runs without JIT compilation. Its queries are short
lookups by index, but a prepared query's generic plan is costed without its parameters (100 rows
guessed for a JSON document of ids), and once a table holds long histories that cost passes
jit_above_cost: compiling took 7 ms on every run of the relationship load, which runs in 0.3."""


CONNECT_TIMEOUT = 5
"""Seconds the library's pool waits for a connection: as long as a call waits on a server that is
down before it is answered 503 (application.py fails it then, rather than retrying)."""


REVISIONS: tuple[str, ...] = (
    "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012",
    "0013", "0014", "0015", "0016", "0017", "0018", "0019", "0020",
)  # fmt: skip
"""migrations/versions, oldest first: the last is the one this version of the ledger needs
(a test checks them against alembic's)."""


T = TypeVar("T")

REVISION_QUERY = "SELECT version_num FROM alembic_version"
"""The store's revision, as every guarded write reads it in its own transaction (RevisionGuard)."""


class RevisionGuard:
    """What a process found of its store's revision since it started: each of its writes reads
    the revision in its own transaction (REVISION_QUERY: the save function on PostgreSQL, the
    recorder's transaction on SQLite, the projection runner's, the key tables') and passes it
    here, which refuses it, for good, once it is not the one this code knows (REVISIONS[-1]).

    `check_migrated` refuses a store at another revision when a process starts; this refuses
    what a process started before a migration would write after it (a privacy leak, after
    0016: the read models' personal values unsealed), and remembers it, so its pages and API
    answer 503 from then on rather than show rows in a format this code cannot read. A
    migration locks `alembic_version` for its whole transaction on PostgreSQL
    (migrations/env.py) and a guarded transaction reads it, so a write either commits before
    the migration starts or sees its revision; on SQLite the check runs under the write lock,
    which a migration holds from its BEGIN IMMEDIATE to its commit (migrations.migration_engine)."""

    def __init__(self) -> None:
        self.moved_to: str | None = None
        """The revision the store was found at, once it was not this code's."""

    @staticmethod
    def expected() -> str:
        """The revision this code knows (read at each call: a test plays an older version by
        shortening REVISIONS)."""
        return REVISIONS[-1]

    def verify(self, found: object) -> None:
        """Refuses, and remembers, a revision other than this code's (None: no revision row)."""
        revision = None if found is None else str(found)
        if revision != REVISIONS[-1]:
            self.moved_to = revision or "(none)"
            raise StoreMigratedAway(self.moved_to)

    @contextmanager
    def guarding(
        self,
        transaction: AbstractContextManager[T],
        revision_of: Callable[[T], object],
        postgres: bool,
    ) -> Iterator[T]:
        """`transaction` (a write), refused unless the store is at this code's revision, as
        `revision_of` reads it there: first on PostgreSQL, where the read keeps `alembic_version`
        share-locked to the commit, so a migration waits for the whole transaction (read last, a
        migration that had locked it and then wanted a table written here deadlocked with it, and
        PostgreSQL aborted one of the two); last on SQLite, under the write lock the writes took."""
        with transaction as handle:
            if postgres:
                self.verify(revision_of(handle))
            yield handle
            if not postgres:
                self.verify(revision_of(handle))

    def refuse_if_moved(self) -> None:
        """Raises StoreMigratedAway if any write of this process found the store migrated."""
        if self.moved_to is not None:
            raise StoreMigratedAway(self.moved_to)


class BadDatabaseUrl(ValueError):
    """The database URL is neither sqlite:///PATH nor postgresql://USER@HOST:PORT/DB."""


_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@]*@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&]*", re.IGNORECASE)


def shown(url: str) -> str:
    """The URL as an error may say it: its password, in the user part or as `?password=`,
    replaced by `***` (the line goes to the terminal and the logs; a refused URL is often a
    pasted one whose password is real)."""
    return repr(_QUERY_PASSWORD.sub("***", _URL_PASSWORD.sub(r"\1:***@", url, count=1)))


@dataclass(frozen=True)
class Store:
    """A parsed database URL: the embedded SQLite file or a PostgreSQL database."""

    url: str
    kind: str  # "sqlite", "postgres", or "memory" (the library's in-process store, for unit tests)
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    params: tuple[tuple[str, str], ...] = ()
    """The URL's libpq parameters (`?sslmode=verify-full&sslrootcert=...`), passed to every
    connection the ledger opens."""
    guard: RevisionGuard = field(default_factory=RevisionGuard, compare=False, repr=False)
    """What this process found of the store's revision: shared by everything that opens the
    store through this object (the ledger, the projection runner, the key tables)."""

    @classmethod
    def from_url(cls, url: str | None) -> Store:
        url = url or DEFAULT_URL
        if url == "memory://":
            return cls(url=url, kind="memory")
        if url != url.strip():  # a space pasted after sqlite:///tl.db made a file `tl.db `
            raise BadDatabaseUrl(f"{shown(url)}: leading or trailing whitespace")
        try:
            parts = urlsplit(url)
        except ValueError as error:  # an unclosed IPv6 bracket: `postgresql://u@[::1/db`
            raise BadDatabaseUrl(f"{shown(url)}: {error}") from None
        if parts.scheme == "sqlite":
            # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells them.
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
            if not path:
                raise BadDatabaseUrl(f"{shown(url)}: expected sqlite:///PATH")
            if path == ":memory:":  # SQLite's name, not a file: each connection its own store
                raise BadDatabaseUrl(
                    f"{shown(url)}: an in-memory database keeps nothing between connections:"
                    " expected sqlite:///PATH of a file"
                )
            return cls(url=url, kind="sqlite", path=path)
        if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            dbname = parts.path.lstrip("/")
            if not parts.hostname or not dbname:
                raise BadDatabaseUrl(f"{shown(url)}: expected postgresql://USER:PASS@HOST:PORT/DB")
            try:
                port = parts.port or 5432
            except ValueError as error:
                raise BadDatabaseUrl(f"{shown(url)}: {error}") from None
            store = cls(
                url=url,
                kind="postgres",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                dbname=dbname,
                params=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            )
            refusal = libpq_refusal(store.conninfo())
            if refusal:
                raise BadDatabaseUrl(f"{shown(url)}: {refusal}")
            return store
        raise BadDatabaseUrl(f"{shown(url)}: the scheme must be sqlite or postgresql")

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"

    def eventsourcing_env(self, connections: int = 15) -> dict[str, str]:
        """The eventsourcing library's settings. Tables are alembic's: the library never creates them.

        On PostgreSQL the pool opens a connection when a thread needs one and none is idle, up
        to `connections`, so a gunicorn worker (one request at a time) uses just one. It kept
        five open before, and handed them out in turn: a worker's queries went to five server
        processes, each colder in the CPU's caches. On one, PostgreSQL's CPU per event fell by
        a tenth, and the HTTP benches served 4.4% more single events and 7.8% more decisions a
        second (alternating runs)."""
        if self.kind == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.is_sqlite:
            self.make_directory()
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": "n",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "0",
            "POSTGRES_MAX_OVERFLOW": str(connections),
            "POSTGRES_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            "CREATE_TABLE": "n",
        }

    def make_directory(self) -> None:
        """Makes the SQLite file's directory if it is missing; one it cannot make (read-only,
        under /proc, a file in the way) is the URL's fault, said in one line. A file made here
        is the owner's alone (0600), as the master key file is: its read models hold personal
        data in clear, and SQLite gives its -wal and -shm files the database file's mode. A
        file that exists keeps the mode its operator gave it."""
        directory = Path(self.path).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadDatabaseUrl(
                f"{shown(self.url)}: cannot make the directory {directory}: {error.strerror}"
            ) from None
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise BadDatabaseUrl(
                f"{shown(self.url)}: cannot make {self.path}: {error.strerror}"
            ) from None

    def sqlalchemy_url(self) -> str:
        if self.is_sqlite:
            return f"sqlite:///{self.path}"
        return "postgresql+psycopg" + self.conninfo()[len("postgresql") :]

    def conninfo(self) -> str:
        """A libpq connection URL, for psycopg connections of our own (projections, keys), with
        the URL's parameters and the ledger's SESSION_OPTIONS."""
        auth = quote(self.user, safe="") + (
            f":{quote(self.password, safe='')}" if self.password else ""
        )
        query = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}"
            for name, value in self.connection_params().items()
        )
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}?{query}"

    def with_dbname(self, dbname: str) -> Store:
        """The same server, parameters and credentials, another database."""
        return Store.from_url(urlunsplit(urlsplit(self.url)._replace(path=f"/{dbname}")))

    def connection_params(self) -> dict[str, str]:
        """The URL's libpq parameters, `options` led by the ledger's SESSION_OPTIONS, and a
        `connect_timeout` of CONNECT_TIMEOUT unless the URL gives one: without it psycopg waits
        130 s for a server that takes the connection and never answers (a frozen one)."""
        given = dict(self.params)
        options = " ".join(filter(None, [SESSION_OPTIONS, given.pop("options", "")]))
        return {"options": options, "connect_timeout": str(CONNECT_TIMEOUT), **given}


NO_ADDRESS = "no-address"
"""A `hostaddr` that libpq cannot parse as a numeric address, and never looks up as a name."""


def libpq_refusal(conninfo: str) -> str | None:
    """What libpq (or psycopg) would refuse in a connection's parameters, in one line, or None:
    an unknown name, or a value such as `sslmode=bogus`, found when the URL is read rather than
    at the first connection (for a replica's URL, the first read, which then went to the primary
    for good). PQconninfoParse checks the names alone; libpq checks the values when it starts a
    connection, so one is started here with a `hostaddr` it cannot parse: it fails right after
    the check, with no name looked up and no packet sent. Its message quotes the offending
    value, never the password."""
    try:
        params = conninfo_to_dict(conninfo)
        timeout_from_conninfo(params)  # psycopg's own reading of connect_timeout
    except psycopg.Error as error:
        return _first_line(str(error))
    attempt = pq.PGconn.connect_start(
        make_conninfo("", **{**params, "hostaddr": NO_ADDRESS}).encode()
    )
    try:
        message = attempt.get_error_message()
    finally:
        attempt.finish()
    if f'"{NO_ADDRESS}"' in message:  # the values passed: it stopped at the address
        return None
    return _first_line(message)


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or ["refused"])[0]


def missing_table(message: str) -> bool:
    """Whether a database's message says a table is missing (SQLite's or PostgreSQL's words):
    a database never migrated."""
    return "no such table" in message or ("relation" in message and "does not exist" in message)


def unavailable(error: BaseException) -> bool:
    """Whether the error says the database cannot answer for now (down, unreachable, the
    connection lost, a lock or pool timeout), not that the call was wrong: worth an answer that
    says to try again, and a projection worker's retry, rather than a failure."""
    if isinstance(error, StoreUnavailable | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(error, OperationalError | InterfaceError | sqlite3.OperationalError):
        return not missing_table(str(error))
    return False


def still_open(connection: Any) -> bool:
    """Whether an idle PostgreSQL connection still has its server, asked without a round trip: a
    non-blocking read of what the server sent since (nothing, or its goodbye after a restart).
    A pooled connection lost that way would fail the first statement that used it."""
    try:
        # Twice: a server shutting down sends a last error message before it closes, and the
        # read that takes the message does not see the close behind it.
        connection.pgconn.consume_input()
        connection.pgconn.consume_input()
    except psycopg.OperationalError:
        return False
    return bool(connection.pgconn.status == pq.ConnStatus.OK)


def check_open(connection: Any) -> None:
    """`still_open` as a psycopg_pool `check`: the pool drops the connection and makes another."""
    if not still_open(connection):
        raise psycopg.OperationalError("the connection to the server was lost")


def check_migrated(store: Store) -> None:
    """Refuses a store migrated to another revision than this version's: after an upgrade of
    the software without `trustledger migrate`, writes went through and every read that met a
    new table or column answered 503 `store-unavailable`, as if the database were down, while
    the projection worker retried for ever. A SQLite file that does not exist is refused before
    anything makes it: a mistyped path made its directories, an empty database and a new master
    key file beside it, and only then said no table was there. A store never migrated at all
    is left to the missing table's own message. One plain connection, once a process."""
    if store.kind == "memory":
        return
    if store.is_sqlite and not Path(store.path).exists():
        raise StoreNotMigrated(
            f"database: {store.path} does not exist: `trustledger migrate` makes it (or is"
            " TRUSTLEDGER_DATABASE_URL mistyped?)"
        )
    found = _revision(store)
    if found is None or found == REVISIONS[-1]:
        return
    remedy = "run `trustledger migrate`" if found in REVISIONS else "a newer version migrated it"
    raise StoreNotMigrated(
        f"database: at revision {found}, and this version of Trust Ledger needs"
        f" {REVISIONS[-1]}: {remedy}"
    )


def _revision(store: Store) -> str | None:
    """The store's alembic revision, or None before its first migration."""
    query = "SELECT version_num FROM alembic_version"
    if store.is_sqlite:
        if not Path(store.path).is_file():
            return None
        try:
            with closing(sqlite3.connect(store.path, timeout=30)) as conn:
                row = conn.execute(query).fetchone()
        except sqlite3.OperationalError as error:
            if missing_table(str(error)):
                return None
            raise
    else:
        with psycopg.connect(store.conninfo(), connect_timeout=CONNECT_TIMEOUT) as conn:
            try:
                row = conn.execute(query).fetchone()
            except psycopg.errors.UndefinedTable:
                return None
    return str(row[0]) if row else None
