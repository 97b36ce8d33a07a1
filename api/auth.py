"""API keys: one brand and one role each, shown once, stored only as a hash, revocable.

A key reads `tlk_<key_id>_<secret>`: `tlk_` makes a leaked key recognisable (secret scanners,
logs), `key_id` (48 bits, not secret) finds its row and names it in `trustledger keys list`, and
the secret is 256 random bits. The table keeps the SHA-256 of the whole key, compared in constant
time. The tables are alembic's (migrations/versions/0003_api_keys.py); this module reads them with
sqlite3 or psycopg directly, one short connection (SQLite) or a small pool (PostgreSQL) per process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cachetools import TTLCache

from domain.storage import CONNECT_TIMEOUT, REVISION_QUERY, Store, check_open
from domain.timeouts import TimedConnection

PREFIX = "tlk_"
ROLES = ("brand", "agent", "compliance")
SESSIONS_PER_KEY = 20
"""Page sessions a key keeps (a person's browsers and devices); a sign-in beyond ends the oldest."""
BRAND_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""A brand's name: matched whole (`fullmatch`: `$` would let a trailing line feed through)."""
KEY_SHAPE = re.compile(r"^tlk_(?P<key_id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


class KeyProblem(ValueError):
    """A key command cannot be done: a bad slug or role, or an unknown key id."""


def _require_slug(brand: str) -> None:
    if not BRAND_SLUG.fullmatch(brand):
        raise KeyProblem(f"brand {brand!r} is not a slug: a-z, 0-9 and '-', at most 63")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the brand (the tenant of every ledger call) and the role of the key."""

    brand: str
    role: str
    key_id: str

    @property
    def name(self) -> str:
        """How the ledger records who asked (an erasure's `requested_by`): the key, not a person."""
        return f"key:{self.key_id}"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    brand: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the only moment its plaintext exists."""

    key: str
    info: KeyInfo
    new_brand: bool


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key, or None."""
    shape = KEY_SHAPE.fullmatch(key)
    return shape["key_id"] if shape else None


_UNCHECKED = object()
"""What the key cache answers for a key it does not hold (None is held: a key found bad)."""


class KeyStore:
    """The `brands`, `api_keys` and `page_sessions` tables of one database."""

    def __init__(
        self, store: Store, cache_seconds: float = 0, timer: Callable[[], float] = time.monotonic
    ) -> None:
        """`cache_seconds`: how long an authenticated key is trusted without asking the database
        again (a server's requests); a key revoked through this store is forgotten at once."""
        if store.kind not in ("sqlite", "postgres"):
            raise KeyProblem(f"API keys need SQLite or PostgreSQL, not {store.kind}")
        self.store = store
        self._pool: Any = None
        self._lock = threading.Lock()
        self._checked: TTLCache[str, Caller | None] | None = (
            TTLCache(maxsize=1024, ttl=cache_seconds, timer=timer) if cache_seconds > 0 else None
        )

    # --- operators ------------------------------------------------------------------------------

    def create(self, brand: str, role: str) -> IssuedKey:
        """Issues a key for `brand` (registering the brand if it is new) with `role`."""
        _require_slug(brand)
        if role not in ROLES:
            raise KeyProblem(f"role {role!r} is not one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        with self._writing() as conn:
            known = self._fetch(conn, "SELECT slug FROM brands WHERE slug = ?", [brand])
            if not known:
                self._execute(
                    conn,
                    "INSERT INTO brands (slug, created_at) VALUES (?, ?)",
                    [brand, self._time(now)],
                )
            self._execute(
                conn,
                "INSERT INTO api_keys (key_id, brand, role, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [key_id, brand, role, digest(key), self._time(now)],
            )
        return IssuedKey(key, KeyInfo(key_id, brand, role, now, None), new_brand=not known)

    def every(self, brand: str | None = None) -> list[KeyInfo]:
        """Every key (of one brand, or of all), revoked ones included; never a secret. A brand
        that is no slug is refused, as `create` refuses it: `--brand ''` listed every brand's."""
        query = "SELECT key_id, brand, role, created_at, revoked_at FROM api_keys"
        if brand is not None:
            _require_slug(brand)
            query += " WHERE brand = ?"
        with self._connection() as conn:
            rows = self._fetch(
                conn, query + " ORDER BY brand, created_at, key_id", [brand] if brand else []
            )
        return [self._info(row) for row in rows]

    def revoke(self, key_or_id: str) -> KeyInfo:
        """Revokes a key, named by its id or the whole key; revoking twice keeps the first time."""
        key_id = key_id_of(key_or_id) or key_or_id
        if self._checked is not None:
            with self._lock:
                self._checked.clear()
        with self._writing() as conn:
            self._execute(
                conn,
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                [self._time(datetime.now(UTC)), key_id],
            )
            # Refused already (session_caller reads revoked_at); deleted, so none outlives it.
            self._execute(conn, "DELETE FROM page_sessions WHERE key_id = ?", [key_id])
            rows = self._fetch(
                conn,
                "SELECT key_id, brand, role, created_at, revoked_at FROM api_keys WHERE key_id = ?",
                [key_id],
            )
        if not rows:
            raise KeyProblem(f"no key {key_id!r}")
        return self._info(rows[0])

    # --- requests -------------------------------------------------------------------------------

    def authenticate(self, presented: str) -> Caller | None:
        """The caller a live key belongs to, or None for a malformed, unknown or revoked key."""
        if self._checked is None:
            return self._authenticate(presented)
        presented_digest = digest(presented)
        with self._lock:  # one lookup: a test then a read could straddle the entry's expiry
            kept = self._checked.get(presented_digest, _UNCHECKED)
        if kept is not _UNCHECKED:
            return cast(Caller | None, kept)
        caller = self._authenticate(presented)
        with self._lock:
            self._checked[presented_digest] = caller
        return caller

    def _authenticate(self, presented: str) -> Caller | None:
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        with self._connection() as conn:
            rows = self._fetch(
                conn,
                "SELECT brand, role, secret_hash FROM api_keys"
                " WHERE key_id = ? AND revoked_at IS NULL",
                [key_id],
            )
        if not rows:
            return None
        brand, role, stored = rows[0]
        if not hmac.compare_digest(digest(presented), str(stored).strip()):
            return None
        return Caller(brand=brand, role=role, key_id=key_id)

    # --- the pages' sessions (migrations/versions/0014_page_sessions.py) -------------------------

    def open_session(self, caller: Caller, lifetime: timedelta) -> str | None:
        """A new page session of the caller's key, for `lifetime`: its id, for the cookie, or None
        if the key was revoked since it was checked (that check may be the cache's). Sessions
        past their end are swept here, by their index, so the table holds live ones only, and
        the key's beyond SESSIONS_PER_KEY, the oldest first."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self._writing() as conn:
            self._execute(
                conn, "DELETE FROM page_sessions WHERE expires_at <= ?", [self._time(now)]
            )
            opened = conn.execute(
                self._sql(
                    "INSERT INTO page_sessions (session_hash, key_id, started_at, expires_at)"
                    " SELECT ?, key_id, ?, ? FROM api_keys WHERE key_id = ? AND revoked_at IS NULL"
                ),
                [digest(session_id), self._time(now), self._time(now + lifetime), caller.key_id],
            ).rowcount
            self._execute(  # by the key's index: its sessions beyond the quota, oldest first
                conn,
                "DELETE FROM page_sessions WHERE key_id = ? AND session_hash <> ?"
                " AND session_hash NOT IN (SELECT session_hash FROM page_sessions"
                " WHERE key_id = ? AND session_hash <> ? ORDER BY started_at DESC LIMIT ?)",
                [caller.key_id, digest(session_id)] * 2 + [SESSIONS_PER_KEY - 1],
            )
        return session_id if opened == 1 else None

    def session_caller(self, session_id: str) -> Caller | None:
        """Who a page session belongs to, while it is neither ended, nor past its end, nor of a
        revoked key: one query, by the two tables' primary keys, at every page request (never
        cached, so signing out or revoking ends it in every process at its next request)."""
        with self._connection() as conn:
            rows = self._fetch(
                conn,
                "SELECT k.key_id, k.brand, k.role FROM page_sessions s"
                " JOIN api_keys k ON k.key_id = s.key_id"
                " WHERE s.session_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL",
                [digest(session_id), self._time(datetime.now(UTC))],
            )
        return Caller(key_id=rows[0][0], brand=rows[0][1], role=rows[0][2]) if rows else None

    def end_session(self, session_id: str) -> None:
        """Ends a page session (signing out): a copy of its cookie opens nothing after this."""
        with self._writing() as conn:
            self._execute(
                conn, "DELETE FROM page_sessions WHERE session_hash = ?", [digest(session_id)]
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # --- the two databases ----------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection in a transaction, committed on success (SQLite: a fresh one, cheap)."""
        if self.store.is_sqlite:
            conn = sqlite3.connect(self.store.path, timeout=30)
            try:
                with conn:
                    yield conn
            finally:
                conn.close()
            return
        with self._postgres_pool().connection() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """`_connection` for a write, committed only if the store is still at the revision this
        code knows (domain/storage.py RevisionGuard)."""
        postgres = not self.store.is_sqlite
        with self.store.guard.guarding(self._connection(), self._revision, postgres) as conn:
            yield conn

    def _revision(self, conn: Any) -> object:
        rows = self._fetch(conn, REVISION_QUERY, [])
        return rows[0][0] if rows else None

    def _postgres_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                # Checked as it is handed out (domain/storage.py: no round trip), so a connection
                # lost to a server restart is replaced rather than failing a request; and given
                # up on after CONNECT_TIMEOUT while the server is down (503, not 30 s).
                self._pool = ConnectionPool(
                    self.store.conninfo(),
                    connection_class=TimedConnection,  # a frozen server: 503, not a hang
                    min_size=1,
                    max_size=4,
                    open=True,
                    name="trustledger-keys",
                    check=check_open,
                    timeout=CONNECT_TIMEOUT,
                    reconnect_timeout=CONNECT_TIMEOUT,  # as the ledger's (domain/application.py)
                )
            return self._pool

    def _execute(self, conn: Any, sql: str, params: Sequence[Any]) -> None:
        conn.execute(self._sql(sql), params)

    def _fetch(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(conn.execute(self._sql(sql), params).fetchall())

    def _sql(self, sql: str) -> str:
        return sql if self.store.is_sqlite else sql.replace("?", "%s")

    def _time(self, moment: datetime) -> Any:
        return moment.isoformat() if self.store.is_sqlite else moment

    @staticmethod
    def _info(row: Sequence[Any]) -> KeyInfo:
        key_id, brand, role, created, revoked = row
        return KeyInfo(key_id, brand, role, _moment(created), _moment(revoked) if revoked else None)


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# --- requests: who is calling, and may they -----------------------------------------------------


def bearer_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header."""
    scheme, _, key = (header or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def authorise(keys: KeyStore, header: str | None, roles: tuple[str, ...]) -> Caller:
    """The caller, if its key is live (else 401) and its role is one of `roles` (else 403)."""
    from werkzeug.exceptions import Forbidden, Unauthorized

    key = bearer_key(header)
    caller = keys.authenticate(key) if key else None
    if caller is None:
        raise Unauthorized()
    if caller.role not in roles:
        raise Forbidden()
    return caller
