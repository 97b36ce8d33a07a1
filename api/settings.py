"""Configuration, read in one place: `TRUSTLEDGER_*` environment variables, overridable by a dict."""

from __future__ import annotations

import contextlib
import hmac
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from domain.errors import MasterKeyError
from domain.shredding import MasterKey
from domain.storage import DEFAULT_URL, BadDatabaseUrl, Store, shown
from domain.timeouts import STATEMENT_TIMEOUT

PREFIX = "TRUSTLEDGER_"
MASTER_KEY_FILE = "master.key"
"""The embedded store's key file, beside its database, when TRUSTLEDGER_MASTER_KEY is not set."""


KEY_CACHE_SECONDS_MAX = 3600.0
"""The longest a revoked API key may still be accepted (an hour; `inf` was taken for ever)."""


class BadSetting(ValueError):
    """A TRUSTLEDGER_* variable holds a value the ledger cannot use."""


STATEMENT_TIMEOUT_SECONDS_MAX = 3600.0
REPLICA_WAIT_SECONDS_MAX = 5.0


def _seconds(name: str, value: str | float, low: float, high: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not low <= seconds <= high:  # nan, inf and negatives fail this too
        raise BadSetting(
            f"{PREFIX}{name} must be a number of seconds from {low:g} to {high:g}, not {value!r}"
        )
    return seconds


PROXY_HOPS_MAX = 10


def _count(name: str, value: str | int, high: int) -> int:
    """A whole number from 0 to `high`, written as digits alone (or given as an int)."""
    text = str(value)
    if not (text.isascii() and text.isdigit() and int(text) <= high):
        raise BadSetting(f"{PREFIX}{name} must be a whole number from 0 to {high}, not {value!r}")
    return int(text)


def _to_stderr(message: str) -> None:
    print(f"trustledger: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    """`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASS@HOST:PORT/DB`."""
    master_key: str = ""
    """The master key that wraps every customer key: 32 random bytes in base64. Required for
    PostgreSQL; for SQLite, when unset, the key file beside the database (made on first run)."""
    master_key_file: str = ""
    """Where the SQLite store keeps its master key when `master_key` is unset (default:
    `master.key` beside the database file)."""
    secret_key: str = ""
    """Signs the pages' session cookies. When unset, derived from the master key (HMAC with a
    fixed label), so every worker and restart agrees and no second secret needs keeping; set it
    to sign everyone out without rotating the master key."""
    secure_cookies: str = ""
    """`1` where the pages are served over HTTPS: their session cookie is then sent only over it."""
    proxy_hops: int = 0
    """How many proxies stand in front of the server and add `X-Forwarded-Proto` and
    `X-Forwarded-For` (a TLS-terminating load balancer: 1). The app then takes the scheme and
    the client's address from the rightmost that many values: a request the browser made over
    HTTPS is then answered with Strict-Transport-Security. `0`: the headers are anyone's, and
    ignored. From 0 to PROXY_HOPS_MAX."""
    key_cache_seconds: float = 2.0
    """How long a server process trusts an API key it has checked before checking it again: a
    key revoked elsewhere (`trustledger keys revoke`) stops working within this many seconds.
    `0` checks every request against the database; at most KEY_CACHE_SECONDS_MAX."""
    statement_timeout_seconds: float = STATEMENT_TIMEOUT
    """How long a statement run to answer an HTTP call waits for PostgreSQL's answer before
    the call is answered 503 (domain/timeouts.py: a frozen server, a network that drops
    packets); from 0.1 to STATEMENT_TIMEOUT_SECONDS_MAX. The commands and the projection
    workers are never cut short by it."""
    replica_url: str = ""
    """`postgresql://...` of a hot standby of the PostgreSQL primary: the read models' reads go
    there when it holds what the primary's read models held (api/replica.py). Unset: every read
    goes to the primary."""
    replica_wait_seconds: float = 0.5
    """How long a read waits for the standby to hold the primary's read models before it reads
    the primary's instead; from 0 to REPLICA_WAIT_SECONDS_MAX."""
    new_master_key: str = ""
    """Only for `trustledger rotate-master-key`: the key to rewrap every customer key with."""

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """From the environment (`TRUSTLEDGER_DATABASE_URL`, ...), then `overrides` (lower-case names)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            env_value = os.environ.get(PREFIX + f.name.upper())
            if env_value:
                values[f.name] = env_value
        values.update(
            {k: v for k, v in (overrides or {}).items() if k in {f.name for f in fields(cls)}}
        )
        return cls(**values)

    def __post_init__(self) -> None:
        # Read here, once: a bad value failed every authenticated request with a 500.
        for name, low, high in (
            ("key_cache_seconds", 0.0, KEY_CACHE_SECONDS_MAX),
            ("statement_timeout_seconds", 0.1, STATEMENT_TIMEOUT_SECONDS_MAX),
            ("replica_wait_seconds", 0.0, REPLICA_WAIT_SECONDS_MAX),
        ):
            seconds = _seconds(name.upper(), getattr(self, name), low, high)
            object.__setattr__(self, name, seconds)
        object.__setattr__(
            self, "proxy_hops", _count("PROXY_HOPS", self.proxy_hops, PROXY_HOPS_MAX)
        )
        self.replica  # noqa: B018 (refused at start, not at the first read)

    @property
    def replica(self) -> Store | None:
        """The hot standby the reads may go to, if one is set."""
        if not self.replica_url:
            return None
        name = f"{PREFIX}REPLICA_URL"
        try:
            replica = Store.from_url(self.replica_url)
        except BadDatabaseUrl as error:
            raise BadSetting(f"{name}: {error}") from None
        if replica.kind != "postgres":
            raise BadSetting(f"{name} must be a postgresql:// URL, not {shown(self.replica_url)}")
        if self.store.kind != "postgres":
            raise BadSetting(
                f"{name} is a standby of a PostgreSQL primary, and the database is"
                f" {self.store.kind}: unset it, or set {PREFIX}DATABASE_URL to the primary"
            )
        return replica

    @property
    def store(self) -> Store:
        return Store.from_url(self.database_url)

    @property
    def key_file(self) -> Path | None:
        """The master key file, for an SQLite store without TRUSTLEDGER_MASTER_KEY; else None."""
        if self.master_key or not self.store.is_sqlite:
            return None
        if self.master_key_file:
            return Path(self.master_key_file)
        return Path(self.store.path).parent / MASTER_KEY_FILE

    def load_master_key(self, announce: Callable[[str], None] = _to_stderr) -> MasterKey:
        """The master key: TRUSTLEDGER_MASTER_KEY, else the SQLite store's key file.

        The key file is made on first run, and `announce` says so. Nothing falls back to
        plaintext: a missing or malformed key is a MasterKeyError with the fix in its message.
        """
        if self.master_key:
            return MasterKey.parse(self.master_key, f"{PREFIX}MASTER_KEY")
        path = self.key_file
        if path is None:
            raise MasterKeyError(
                f"{PREFIX}MASTER_KEY is not set, and the {self.store.kind} store needs it:"
                " 32 random bytes in base64, e.g. `openssl rand -base64 32`"
            )
        if path.exists():
            return read_key_file(path, f"the master key file {path}")
        if self.master_key_file:
            # Named on purpose, so a mistyped name: a new key there could not read the store.
            raise MasterKeyError(
                f"the master key file {path} ({PREFIX}MASTER_KEY_FILE) does not exist; to"
                f" start a new store, make it: `openssl rand -base64 32 > {path}`"
            )
        key = MasterKey.generate()
        try:
            made = write_key_file(path, key, replace=False)
        except OSError as error:
            raise MasterKeyError(
                f"cannot make the master key file {path}: {error.strerror}"
                f" (set {PREFIX}MASTER_KEY_FILE or {PREFIX}MASTER_KEY)"
            ) from None
        if not made:  # another process made one first
            return read_key_file(path, f"the master key file {path}")
        announce(
            f"generated a master key in {path}: back it up apart from the database, since"
            f" without it no personal data can be read (or set {PREFIX}MASTER_KEY instead)"
        )
        return key

    def session_secret(self) -> bytes:
        """The key that signs the pages' session cookies (see `secret_key`)."""
        if self.secret_key:
            return self.secret_key.encode()
        master = self.load_master_key()
        label = b"trustledger session cookies"
        return hmac.new(master.encoded().encode(), label, "sha256").digest()

    def load_new_master_key(self) -> MasterKey | None:
        if not self.new_master_key:
            return None
        return MasterKey.parse(self.new_master_key, f"{PREFIX}NEW_MASTER_KEY")


def read_key_file(path: Path, source: str) -> MasterKey:
    """The key in a file, or a MasterKeyError naming `source` when it cannot be read as one."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MasterKeyError(
            f"{source} is not UTF-8 text: it must hold the key in base64"
        ) from None
    except OSError as error:
        raise MasterKeyError(f"{source} cannot be read: {error.strerror}") from None
    return MasterKey.parse(text, source)


def write_key_file(path: Path, key: MasterKey, replace: bool = True) -> bool:
    """Writes a key file readable by its owner only, durably, whole or not at all, replacing any
    file at `path`; or, with `replace` false, only if there is none (False if there was one:
    two commands started together on a new store would each have made a key, and the store
    would have been bound to one while the file kept the other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:  # mkstemp's file is the owner's only (0600)
            file.write(key.encoded() + "\n")
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(partial, path)
            return True
        try:
            os.link(partial, path)  # fails if `path` exists, at once and for every process
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
