"""Crypto-shredding: a customer's personal fields are sealed with that customer's own key.

Each relationship has a 256-bit customer key, created with its first event and kept only wrapped
by the master key (see :mod:`domain.key_table`). :class:`PersonalDataMapper` seals the personal
fields of every relationship event and snapshot (AES-GCM; brand, relationship, version and topic
bound as associated data) before they are stored, and opens them when they are read. Erasure
destroys the key: from then on the fields read as :data:`ERASED`, while everything else an event
says (types, ids, times, statuses, severities, purposes, channels, data categories) stays in the
clear, so replay, trust and the push gate still work.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

from domain.errors import CustomerErased, MasterKeyError
from domain.key_table import KeyTable, now
from domain.relationship import ERASED

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED = "_personal"
"""The entry of a stored event's state holding its sealed personal fields (and their names)."""
UNOPENED = "[not opened]"
"""What a personal field reads when its event was decoded without opening them."""
SEALED_VALUE = "sealed:"
"""The start of a read-model value sealed with its customer's key (then base64 of AES-SIV's
output): what a masked value ("[erased]"), a summary or a missing value never starts with."""
READ_MODEL_KEY_INFO = b"trustledger customer key: read-model values (AES-SIV)"
"""HKDF's `info` for the subkey that seals the read models' personal values."""
_VALUE_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
KEY_CACHE_SECONDS = 30.0
"""How long a process keeps an unwrapped customer key, its secret and any cipher context built
from it alike: the longest a key outlives its erasure in another process's memory. Erasure in the
same process evicts both at once."""
KEY_CACHE_SIZE = 10_000
"""How many unwrapped customer keys a process keeps (their secrets: a few hundred bytes each)."""
CONTEXT_CACHE_SIZE = 512
"""How many customer keys a process keeps built, with their cipher contexts (AES-GCM, and AES-SIV
once a read model used it: 3 to 7 KB each, where the secret is a few hundred bytes)."""


class TamperedPersonalData(RuntimeError):
    """Sealed personal fields fail authentication: altered, or moved from another event."""


class MasterKey:
    """The key that wraps every customer key: 32 random bytes, written in base64."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, not {len(secret)}")
        self._secret = secret
        self._aead = AESGCM(secret)
        mac = hmac.new(secret, b"trustledger master key id", hashlib.sha256)
        self.key_id = mac.hexdigest()[:16]
        """A public name for the key: a keyed hash of it, which does not reveal it."""

    @classmethod
    def parse(cls, text: str, source: str = "TRUSTLEDGER_MASTER_KEY") -> MasterKey:
        """Reads a key written in base64, with a message naming `source` when it is not one."""
        hint = "it must be 32 random bytes in base64, e.g. the output of `openssl rand -base64 32`"
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raise MasterKeyError(f"{source} is not base64: {hint}") from None
        if len(secret) != KEY_BYTES:
            looks_hex = len(text.strip()) == 2 * KEY_BYTES and _is_hex(text.strip())
            found = "looks like hex" if looks_hex else f"holds {len(secret)} bytes, not {KEY_BYTES}"
            raise MasterKeyError(f"{source} {found}: {hint}")
        return cls(secret)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    def encoded(self) -> str:
        """The key in base64, as TRUSTLEDGER_MASTER_KEY and the key file hold it."""
        return base64.b64encode(self._secret).decode()

    def wrap(self, brand: str, rid: UUID, customer_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, customer_key, _wrapping_aad(brand, rid))

    def unwrap(self, brand: str, rid: UUID, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrapping_aad(brand, rid)
            )
        except InvalidTag:
            raise MasterKeyError(
                f"the customer key of relationship {rid} does not open with master key"
                f" {self.key_id}: a wrong master key, or an altered key row"
            ) from None

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id})"


class KeyMaterial:
    """A customer key unwrapped, without its cipher contexts: the secret, and the subkeys derived
    from it once, so that a CustomerKey is built again (1-3 us) without unwrapping or deriving.
    About 300 bytes, where a built key's AES-GCM and AES-SIV contexts take 3 to 7 KB."""

    __slots__ = ("_values_key", "brand", "mac_key", "seal_key", "secret")

    def __init__(self, brand: str, secret: bytes) -> None:
        self.brand = sys.intern(brand)  # one string for a brand's thousands of keys
        self.secret = secret
        # Separate subkeys, so sealing and fingerprinting never use one key for two purposes.
        self.seal_key = _subkey(secret, b"seal")
        self.mac_key = _subkey(secret, b"fingerprint")
        self._values_key: bytes | None = None

    def values_key(self) -> bytes:
        """The read models' subkey, derived when first used (3 us): the ingest path never does."""
        if self._values_key is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=READ_MODEL_KEY_INFO)
            self._values_key = hkdf.derive(self.secret)  # 512 bits: AES-256-SIV
        return self._values_key


class CustomerKey:
    """One relationship's key, unwrapped: seals its personal fields and keys its fingerprints."""

    __slots__ = ("_aad_head", "_aead", "_values", "brand", "material", "relationship_id")

    def __init__(self, brand: str, relationship_id: UUID, secret: bytes) -> None:
        self._build(relationship_id, KeyMaterial(brand, secret))

    @classmethod
    def built(cls, relationship_id: UUID, material: KeyMaterial) -> CustomerKey:
        """The key built again from what it was unwrapped to."""
        key = cls.__new__(cls)
        key._build(relationship_id, material)
        return key

    def _build(self, relationship_id: UUID, material: KeyMaterial) -> None:
        self.brand = material.brand
        self.relationship_id = relationship_id
        self.material = material
        # Each cipher is made when first used (its first use costs as much again): the ingest
        # path never uses the read models' AES-SIV, and a read model never uses AES-GCM.
        self._aead: AESGCM | None = None
        self._values: AESSIV | None = None
        self._aad_head: str | None = None

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + (self._aead or self._sealer()).encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            aead = self._aead or self._sealer()
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise TamperedPersonalData(
                f"personal fields of an event of relationship {self.relationship_id} fail"
                " authentication: altered, or moved from another event or relationship"
            ) from None

    def seal_value(self, value: Any, column: str, row: str | int = "") -> str:
        """A read-model value sealed deterministically (AES-SIV, RFC 5297), so a rebuild writes
        the same text as the live projection did; bound to this relationship, its row (`row`:
        a timeline sequence, a push id) and `column`, so it opens nowhere else. Text is sealed
        as its UTF-8, anything else as JSON, and each opens as the type it was."""
        if isinstance(value, str):
            plaintext = b"s" + value.encode()
        else:
            plaintext = b"j" + _VALUE_JSON.encode(value).encode()
        sealed = self._value_aead().encrypt(plaintext, [self._value_aad(column, row)])
        return SEALED_VALUE + binascii.b2a_base64(sealed, newline=False).decode()

    def open_value(self, sealed: str, column: str, row: str | int = "") -> Any:
        """What `seal_value` sealed for that column and row; TamperedPersonalData otherwise."""
        try:
            data = binascii.a2b_base64(sealed[len(SEALED_VALUE) :], strict_mode=True)
            plaintext = self._value_aead().decrypt(data, [self._value_aad(column, row)])
        except (InvalidTag, binascii.Error, ValueError):
            raise TamperedPersonalData(
                f"a sealed {column} of relationship {self.relationship_id} fails authentication:"
                " altered, or moved from another row, column or relationship"
            ) from None
        if plaintext[:1] == b"s":
            return plaintext[1:].decode()
        return json.loads(plaintext[1:].decode())

    def _sealer(self) -> AESGCM:
        self._aead = AESGCM(self.material.seal_key)
        return self._aead

    def _value_aead(self) -> AESSIV:
        if self._values is None:
            self._values = AESSIV(self.material.values_key())
        return self._values

    def _value_aad(self, column: str, row: str | int) -> bytes:
        """json.dumps(["read-model", brand, str(rid), column, row]), byte for byte: made for
        every value sealed or opened, so the brand, id and column are encoded once."""
        where = row if isinstance(row, int) else _json_string(row)
        if self._aad_head is None:
            brand, rid = _json_string(self.brand), self.relationship_id
            self._aad_head = f'["read-model", {brand}, "{rid}", '
        return f"{self._aad_head}{_json_string(column)}, {where}]".encode()

    def fingerprint(self, content: bytes) -> str:
        """An HMAC of the content: tells a repeat from other content; no dictionary reverses it."""
        return hmac.new(self.material.mac_key, content, hashlib.sha256).hexdigest()


_Held = tuple[float, KeyMaterial | None]
"""A secrets cache entry: when it expires (the process's monotonic clock), and the secret."""


class _Built:
    """A built key cached, with its secret's expiry, and whether it was used since it was last
    passed over for eviction (set without the lock: a read of it only spares the key once)."""

    __slots__ = ("expires", "key", "used")

    def __init__(self, expires: float, key: CustomerKey) -> None:
        self.expires = expires
        self.key = key
        self.used = False


class CustomerKeys:
    """The customer keys of one store: created, unwrapped on demand, cached briefly, destroyed.

    The cache has two levels, both kept at most `cache_seconds` from the unwrapping: the secrets
    of up to `cache_size` keys (KeyMaterial, a few hundred bytes each), and of those the
    `context_cache_size` most recently used keys built (CustomerKey, with cipher contexts of 3 to
    7 KB), the others built again from their secret when next used. Every context was built from
    a held secret and expires with it, and erasure drops both, so neither level outlives the
    other's bound.
    """

    def __init__(
        self,
        table: KeyTable,
        master_key: MasterKey,
        cache_seconds: float = KEY_CACHE_SECONDS,
        cache_size: int = KEY_CACHE_SIZE,
        context_cache_size: int = CONTEXT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.master_key = master_key
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.context_cache_size = context_cache_size
        self._clock = clock
        self._secrets: OrderedDict[UUID, _Held] = OrderedDict()
        """By relationship: when the entry expires, and the key's secret (None: erased)."""
        self._contexts: OrderedDict[UUID, _Built] = OrderedDict()
        """Keys built from `_secrets` entries, oldest first; a used one gets a second chance."""
        self._lock = threading.Lock()
        """Guards changes to both levels (and reads of `_secrets`), never held to build a key."""
        self._sealing = threading.local()
        """The new keys of the save this thread is making (`sealing`)."""

    def check_master_key(self) -> None:
        """Refuses a master key other than the one this store's customer keys are wrapped by."""
        bound = self.table.claim_master_key(self.master_key.key_id)
        if bound != self.master_key.key_id:
            raise MasterKeyError(
                f"this database's customer keys are wrapped by master key {bound}, and the"
                f" configured master key is {self.master_key.key_id}: set TRUSTLEDGER_MASTER_KEY"
                " to the key the database was created or last rotated with"
            )

    def create(self, brand: str, rid: UUID) -> CustomerKey:
        """The relationship's key, created and stored (committed) now if it has none yet."""
        wrapped = self.master_key.wrap(brand, rid, os.urandom(KEY_BYTES))
        stored_brand, stored = self.table.insert_or_get(rid, brand, wrapped, self.master_key.key_id)
        key = CustomerKey.built(rid, self._unwrap(rid, stored_brand, stored))
        self._keep(key)
        return key

    def create_many(self, brand: str, rids: list[UUID]) -> dict[UUID, CustomerKey]:
        """The keys of many new relationships, created and committed together."""
        rows = [
            (rid, brand, self.master_key.wrap(brand, rid, os.urandom(KEY_BYTES))) for rid in rids
        ]
        stored = self.table.insert_or_get_many(rows, self.master_key.key_id) if rows else {}
        keys = {
            rid: CustomerKey.built(rid, self._unwrap(rid, *found)) for rid, found in stored.items()
        }
        for key in keys.values():
            self._keep(key)
        return keys

    def prepare_many(
        self, brand: str, rids: list[UUID]
    ) -> tuple[dict[UUID, CustomerKey], list[Any]]:
        """New keys for new relationships, to be written in the same transaction as their first
        events (see key_table.NEW_KEYS); the save seals those events with them (`sealing`)."""
        keys: dict[UUID, CustomerKey] = {}
        rows = []
        for rid in rids:
            secret = os.urandom(KEY_BYTES)
            keys[rid] = CustomerKey(brand, rid, secret)
            rows.append(
                (
                    rid,
                    brand,
                    self.master_key.wrap(brand, rid, secret),
                    self.master_key.key_id,
                    now(),
                )
            )
        return keys, rows

    @contextlib.contextmanager
    def sealing(self, new: Mapping[UUID, CustomerKey]) -> Iterator[None]:
        """While this thread saves the first events of new relationships: their events are sealed
        with these keys, which the process's cache learns only once the save is done. A prepared
        key cached at once was seen by the other threads too: when two created the same
        relationship together, the save that won could seal with the loser's key (never stored,
        so its events could not be opened again), and reads opened with it until the loser's
        save failed (TamperedPersonalData, 500)."""
        self._sealing.keys = new
        try:
            yield
        finally:
            self._sealing.keys = None
        for key in new.values():
            self._keep(key)

    def preload(
        self, rids: Iterable[UUID], fetch: Callable[[list[UUID]], Iterable[tuple[UUID, str, bytes]]]
    ) -> None:
        """Caches the keys of many relationships: those not cached yet are read with one call of
        `fetch` (rows of relationship id, brand, wrapped key), and a missing row is an erased key.
        A rebuild reads thousands of relationships: one query per key would cost it a third.
        Only their secrets: each is built when first used."""
        with self._lock:
            missing = list(self.not_held(rids))
        if not missing:
            return
        found = {rid: (brand, wrapped) for rid, brand, wrapped in fetch(missing)}
        for rid in missing:
            row = found.get(rid)
            self._remember(rid, None if row is None else self._unwrap(rid, *row))

    def not_held(self, rids: Iterable[UUID]) -> set[UUID]:
        """Those of `rids` whose key this process does not hold (never read, or held too long)."""
        now = self._clock()
        return {rid for rid in rids if (held := self._secrets.get(rid)) is None or held[0] <= now}

    def held(self) -> tuple[int, int]:
        """How many keys this process holds: secrets, and of them, keys built (expired ones
        included until they are pushed out or read again)."""
        with self._lock:
            return len(self._secrets), len(self._contexts)

    def get(self, rid: UUID) -> CustomerKey | None:
        """The relationship's key, or None once it is erased."""
        # Opening every event of a replay asks: the built key (one dict lookup, no lock), else
        # one built from its secret, else one read from the table. The secrets are forgotten
        # least recently read from the table first; the built keys least recently used first,
        # near enough (`_keep_built`), where moving each one used under the lock cost a replay
        # a few percent.
        now = self._clock()
        built = self._contexts.get(rid)
        if built is not None and built.expires > now:
            built.used = True
            return built.key
        with self._lock:
            held = self._secrets.get(rid)
        if held is None or held[0] <= now:
            row = self.table.select(rid)
            held = self._remember(rid, None if row is None else self._unwrap(rid, *row))
        if held[1] is None:
            return None
        key = CustomerKey.built(rid, held[1])
        self._keep_built(key, held)
        return key

    def require(self, rid: UUID) -> CustomerKey:
        """The relationship's key, to seal with: a new one of this thread's save, else `get`'s."""
        new = getattr(self._sealing, "keys", None)
        key = new[rid] if new and rid in new else self.get(rid)
        if key is None:
            raise CustomerErased()
        return key

    def destroy(self, rid: UUID) -> bool:
        """Deletes the relationship's key, here (both levels) and in the table; True if the table
        had one."""
        with self._lock:
            self._secrets.pop(rid, None)
            self._contexts.pop(rid, None)
        destroyed = self.table.delete(rid)
        self._remember(rid, None)
        return destroyed

    def rotate(self, new: MasterKey) -> int:
        """Rewraps every customer key with `new`, in one transaction; returns how many."""

        def rewrap(rid: UUID, brand: str, wrapped: bytes, key_id: str) -> bytes:
            if key_id != self.master_key.key_id:
                raise MasterKeyError(
                    f"the key of relationship {rid} is wrapped by master key {key_id}"
                )
            return new.wrap(brand, rid, self.master_key.unwrap(brand, rid, wrapped))

        count = self.table.rewrap_all(self.master_key.key_id, new.key_id, rewrap)
        self.master_key = new
        return count

    def _unwrap(self, rid: UUID, brand: str, wrapped: bytes) -> KeyMaterial:
        return KeyMaterial(brand, self.master_key.unwrap(brand, rid, wrapped))

    def _remember(self, rid: UUID, material: KeyMaterial | None) -> _Held:
        """Holds a key's secret (None: erased) from now; any key built before is dropped."""
        held = (self._clock() + self.cache_seconds, material)
        if self.cache_seconds <= 0:
            return held
        with self._lock:
            self._contexts.pop(rid, None)
            self._secrets[rid] = held
            self._secrets.move_to_end(rid)
            while len(self._secrets) > self.cache_size:
                forgotten, _ = self._secrets.popitem(last=False)
                self._contexts.pop(forgotten, None)  # a built key never outlives its secret
        return held

    def _keep(self, key: CustomerKey) -> None:
        """Holds a key just created or unwrapped, secret and built key."""
        self._keep_built(key, self._remember(key.relationship_id, key.material))

    def _keep_built(self, key: CustomerKey, held: _Held) -> None:
        """Holds a key built from `held` until it expires, if `held` is still the secret held:
        not if the key was destroyed, expired or read again while it was being built."""
        with self._lock:
            if self._secrets.get(key.relationship_id) is not held:
                return
            self._contexts[key.relationship_id] = _Built(held[0], key)
            self._contexts.move_to_end(key.relationship_id)
            while len(self._contexts) > self.context_cache_size:
                rid, oldest = self._contexts.popitem(last=False)
                if oldest.used:  # a second chance (the CLOCK algorithm): kept, as the newest
                    oldest.used = False
                    self._contexts[rid] = oldest


class PersonalDataMapper(Mapper[UUID]):
    """Seals the personal fields of relationship events and snapshots with the customer's key.

    The personal fields are those an event class names in `PERSONAL` (a dotted name reaches into a
    dict field), and for a snapshot those its aggregate class names. Fields that are None stay None.
    """

    def __init__(self, transcoder: Transcoder, keys: CustomerKeys) -> None:
        super().__init__(transcoder)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        return super().to_stored_event(self._sealed(domain_event))

    def to_domain_event(
        self, stored_event: StoredEvent, open_personal: bool = True
    ) -> DomainEventProtocol[UUID]:
        """The event; without `open_personal`, its personal fields read UNOPENED (for a reader
        that never uses them, which then needs no key, nor the half of decoding that opening is)."""
        event = super().to_domain_event(stored_event)
        state = event.__dict__
        personal = state.pop(SEALED, None)
        if personal is not None:
            opened = (
                self._opened(event, stored_event.topic, personal)
                if open_personal
                else dict.fromkeys(personal["fields"], UNOPENED)
            )
            for name, value in opened.items():
                _put(state, name, value)
        return event

    def _sealed(self, event: DomainEventProtocol[UUID]) -> DomainEventProtocol[UUID]:
        """A copy of the event with its personal fields replaced by one sealed entry."""
        names = personal_fields(event)
        if not names:
            return event
        state = dict(vars(event))
        values = {name: value for name in names if (value := _pop(state, name)) is not None}
        if not values:
            return event
        key = self.keys.require(_uuid(event.originator_id))
        aad = _event_aad(
            key.brand, event.originator_id, event.originator_version, get_topic(type(event))
        )
        sealed = key.seal(self.transcoder.encode(values), aad)
        state[SEALED] = {"fields": sorted(values), "sealed": base64.b64encode(sealed).decode()}
        copy = object.__new__(type(event))
        object.__setattr__(copy, "__dict__", state)
        return copy

    def _opened(
        self, event: DomainEventProtocol[UUID], topic: str, personal: dict[str, Any]
    ) -> dict[str, Any]:
        key = self.keys.get(_uuid(event.originator_id))
        if key is None:
            return dict.fromkeys(personal["fields"], ERASED)
        aad = _event_aad(key.brand, event.originator_id, event.originator_version, topic)
        values: dict[str, Any] = self.transcoder.decode(
            key.open(base64.b64decode(personal["sealed"]), aad)
        )
        return values


def personal_fields(event: object) -> tuple[str, ...]:
    """The names of an event's personal fields; a snapshot's are its aggregate's, under `state.`."""
    if isinstance(event, Snapshot):
        return _snapshot_fields(event.topic)
    return getattr(type(event), "PERSONAL", ())


@lru_cache(maxsize=64)
def _snapshot_fields(topic: str) -> tuple[str, ...]:
    return tuple(f"state.{name}" for name in getattr(resolve_topic(topic), "PERSONAL", ()))


def _pop(state: dict[str, Any], name: str) -> Any:
    """Takes a field out of the state; a dotted name reaches into a dict, which is copied first."""
    head, _, rest = name.partition(".")
    if not rest:
        value = state.get(head)
        if value is not None:
            del state[head]
        return value
    inner = state.get(head)
    if not isinstance(inner, dict):
        return None
    state[head] = inner = dict(inner)
    return _pop(inner, rest)


def _put(state: dict[str, Any], name: str, value: Any) -> None:
    head, _, rest = name.partition(".")
    if rest:
        _put(state.setdefault(head, {}), rest, value)
    else:
        state[head] = value


def _subkey(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"trustledger customer key: " + purpose, hashlib.sha256).digest()


def _wrapping_aad(brand: str, rid: UUID) -> bytes:
    return json.dumps(["customer-key", brand, str(rid)]).encode()


def _event_aad(brand: str, rid: UUID, version: int | None, topic: str) -> bytes:
    """json.dumps(["personal", brand, str(rid), version, topic]), byte for byte, with the brand
    and topic encoded once per process: made for every event sealed or opened, where json.dumps
    was a sixth of opening one."""
    number = "null" if version is None else int(version)
    return f'["personal", {_json_string(brand)}, "{rid}", {number}, {_json_string(topic)}]'.encode()


@lru_cache(maxsize=1024)
def _json_string(text: str) -> str:
    return json.dumps(text)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
