"""The Ledger application: records what brands post, and reads relationships back, as of any time."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Mapper

from domain.errors import (
    BatchRejected,
    ConcurrencyConflict,
    CustomerErased,
    EventIdConflict,
    LedgerError,
    MasterKeyError,
    RejectedEvent,
    RelationshipNotFound,
)
from domain.key_table import key_table_for
from domain.relationship import (
    ERASED,
    NAMESPACE,
    Interaction,
    PostedEvent,
    Relationship,
    relationship_id,
)
from domain.shredding import (
    KEY_CACHE_SECONDS,
    CustomerKey,
    CustomerKeys,
    MasterKey,
    PersonalDataMapper,
)
from domain.storage import Store


@dataclass(frozen=True)
class Recording:
    """The ledger's answer to a recorded event; a replay of the same event gets the same answer."""

    event_id: str
    customer: str
    sequence: int
    recorded_at: datetime
    position: int | None = None
    """The event's place in the log (notification id), for waiting on projections; None on replay."""
    replayed: bool = False


@dataclass(frozen=True)
class ErasureReceipt:
    """The ledger's answer to an erasure: what was shredded, when, at whose request, and why.

    It names the relationship by its id, not by the customer reference: the ledger keeps no
    plaintext reference, and a receipt may be kept where the reference must not be.
    """

    brand: str
    relationship_id: UUID
    requested_by: str
    reason: str
    erased_at: datetime
    sequence: int
    """The erasure event's place in the relationship; the events before it are shredded."""
    replayed: bool = False
    """True when the customer had been erased before: this is the first erasure's receipt."""

    @property
    def events_shredded(self) -> int:
        return self.sequence - 1

    @classmethod
    def of(cls, brand: str, relationship: Relationship, replayed: bool) -> ErasureReceipt:
        erased = relationship.erased
        if erased is None:
            raise ValueError(f"relationship {relationship.id} is not erased")
        return cls(
            brand=brand,
            relationship_id=relationship.id,
            requested_by=erased["requested_by"],
            reason=erased["reason"],
            erased_at=erased["at"],
            sequence=erased["sequence"],
            replayed=replayed,
        )


class IdempotencyKey(Aggregate, created_event_name="Claimed"):
    """Claims one of a brand's event ids, saved atomically with the event it names."""

    TOPIC = "trustledger:idempotency-key"

    class Event(Aggregate.Event):
        TOPIC = "trustledger:idempotency-key.event"

    class Claimed(Aggregate.Created):
        TOPIC = "trustledger:idempotency-key.claimed"
        brand: str
        event_id: str
        fingerprint: str
        relationship_id: UUID
        sequence: int
        recorded_at: datetime

    @staticmethod
    def create_id(brand: str, event_id: str) -> UUID:  # type: ignore[override]
        return uuid5(NAMESPACE, json.dumps(["event-id", brand, event_id]))

    def __init__(
        self,
        brand: str,
        event_id: str,
        fingerprint: str,
        relationship_id: UUID,
        sequence: int,
        recorded_at: datetime,
    ) -> None:
        self.fingerprint = fingerprint
        self.relationship_id = relationship_id
        self.sequence = sequence
        self.recorded_at = recorded_at


class Ledger(Application[UUID]):
    """Records brand-customer interactions as events on their relationship."""

    name = "Ledger"
    snapshotting_intervals = {Relationship: 50}  # noqa: RUF012 (the library's class attribute)
    max_attempts = 5
    """Optimistic-concurrency retries before a write is reported as a conflict."""

    def __init__(
        self,
        store: Store | None = None,
        env: dict[str, str] | None = None,
        *,
        master_key: MasterKey | None = None,
        key_cache_seconds: float = KEY_CACHE_SECONDS,
    ) -> None:
        """Opens the store; refuses a missing master key, or one the store's keys are not under.

        Only the in-memory store (unit tests) makes up a master key when none is given.
        """
        self.store = store or Store.from_url(None)
        if master_key is None and self.store.kind != "memory":
            raise MasterKeyError(
                f"no master key for the {self.store.kind} store (TRUSTLEDGER_MASTER_KEY):"
                " personal data is never stored in plaintext"
            )
        self._master_key = master_key or MasterKey.generate()
        self._key_cache_seconds = key_cache_seconds
        super().__init__(
            {
                **self.store.eventsourcing_env(),
                "AGGREGATE_CACHE_MAXSIZE": "10000",
                **(env or {}),
            }
        )
        self.customer_keys.check_master_key()

    def construct_mapper(self) -> Mapper[UUID]:
        """The mapper that seals personal fields with each customer's key (and the keys' store)."""
        table = key_table_for(getattr(self.factory, "datastore", None), self.store.kind)
        self.customer_keys = CustomerKeys(table, self._master_key, self._key_cache_seconds)
        return PersonalDataMapper(self.construct_transcoder(), self.customer_keys)

    # --- writing ------------------------------------------------------------------------------

    def record(self, brand: str, posted: PostedEvent) -> Recording:
        """Records one event; the same event again returns the first answer, replayed."""
        try:
            return self.record_batch(brand, [posted])[0]
        except BatchRejected as rejected:
            raise rejected.errors[0] from None

    def record_batch(self, brand: str, batch: Sequence[PostedEvent]) -> list[Recording]:
        """Records a batch atomically, across relationships: all of it, or nothing and every error."""
        _reject_repeated_ids(batch)
        replays: dict[int, Recording] = {}
        for _ in range(self.max_attempts):
            pending = [i for i in range(len(batch)) if i not in replays]
            relationships, events, errors = self._apply(brand, [batch[i] for i in pending])
            errors = {pending[i]: error for i, error in errors.items()}
            if errors:
                found = self._look_up_ids(brand, {i: batch[i] for i in errors})
                if not found:
                    raise BatchRejected(errors)
                replays.update(found)
                continue
            customer_keys = self._customer_keys(brand, relationships)
            keys = [
                IdempotencyKey(
                    brand,
                    batch[i].event_id,
                    _fingerprint(customer_keys, brand, batch[i]),
                    relationship_id(brand, batch[i].customer),
                    event.originator_version,
                    event.timestamp,
                )
                for i, event in zip(pending, events, strict=True)
            ]
            try:
                saved = self.save(*relationships.values(), *keys)
            except IntegrityError:
                replays.update(self._look_up_ids(brand, {i: batch[i] for i in pending}))
                continue
            positions = {
                (r.domain_event.originator_id, r.domain_event.originator_version): r.notification.id
                for r in saved
            }
            answers = dict(replays)
            for i, key in zip(pending, keys, strict=True):
                answers[i] = Recording(
                    event_id=batch[i].event_id,
                    customer=batch[i].customer,
                    sequence=key.sequence,
                    recorded_at=key.recorded_at,
                    position=positions.get((key.relationship_id, key.sequence)),
                )
            return [answers[i] for i in range(len(batch))]
        raise ConcurrencyConflict(
            f"the relationship kept changing; gave up after {self.max_attempts} attempts"
        )

    def _apply(
        self, brand: str, batch: Sequence[PostedEvent]
    ) -> tuple[dict[UUID, Relationship], list[Interaction], dict[int, LedgerError]]:
        """Runs each event's command on its relationship, in memory; collects what is rejected."""
        relationships: dict[UUID, Relationship] = {}
        events: list[Interaction] = []
        errors: dict[int, LedgerError] = {}
        for i, posted in enumerate(batch):
            rid = relationship_id(brand, posted.customer)
            if rid not in relationships:
                relationships[rid] = self._get_or_open(brand, posted.customer)
            try:
                relationships[rid].record(posted)
            except RejectedEvent as error:
                errors[i] = error
            else:
                events.append(relationships[rid].pending_events[-1])  # type: ignore[arg-type]
        return relationships, events, errors

    def _customer_keys(
        self, brand: str, relationships: dict[UUID, Relationship]
    ) -> dict[UUID, CustomerKey]:
        """Each relationship's key; a new one's is created now, committed before its events.

        A key whose events then fail to save stays unused and harmless: the retry, or the next
        event for that customer, finds and uses it.
        """
        return {
            rid: self.customer_keys.create(brand, rid)
            if isinstance(relationship.pending_events[0], Relationship.Opened)
            else self.customer_keys.require(rid)
            for rid, relationship in relationships.items()
        }

    def _get_or_open(self, brand: str, customer: str) -> Relationship:
        try:
            relationship: Relationship = self.repository.get(relationship_id(brand, customer))
        except AggregateNotFoundError:
            relationship = Relationship(brand, customer)
        return relationship

    def _look_up_ids(self, brand: str, batch: dict[int, PostedEvent]) -> dict[int, Recording]:
        """The earlier recordings of these event ids; other content under a known id is a conflict."""
        found: dict[int, Recording] = {}
        conflicts: dict[int, LedgerError] = {}
        for i, posted in batch.items():
            claims = list(self.events.get(IdempotencyKey.create_id(brand, posted.event_id)))
            if not claims:
                continue
            claim: Any = claims[0]
            rid = relationship_id(brand, posted.customer)
            key = self.customer_keys.get(rid) if claim.relationship_id == rid else None
            if claim.relationship_id == rid and key is None:
                conflicts[i] = CustomerErased()
                continue
            if key is None or claim.fingerprint != key.fingerprint(posted.canonical()):
                conflicts[i] = EventIdConflict(posted.event_id)
                continue
            found[i] = Recording(
                event_id=posted.event_id,
                customer=posted.customer,
                sequence=claim.sequence,
                recorded_at=claim.recorded_at,
                replayed=True,
            )
        if conflicts:
            raise BatchRejected(conflicts)
        return found

    # --- erasure and keys ---------------------------------------------------------------------

    def erase(self, brand: str, customer: str, *, requested_by: str, reason: str) -> ErasureReceipt:
        """Crypto-shreds the customer: records who asked and why, then destroys their key.

        Erasing again completes an interrupted erasure and answers with the first receipt.
        `reason` stays readable after the erasure: it must not hold the customer's data.
        """
        rid = relationship_id(brand, customer)
        replayed = True
        for _ in range(self.max_attempts):
            relationship = self._get(rid, customer)
            if relationship.erased is not None:
                break
            relationship.erase(requested_by, reason)
            try:
                self.save(relationship)
            except IntegrityError:
                continue
            replayed = False
            break
        else:
            raise ConcurrencyConflict(
                f"the relationship kept changing; gave up after {self.max_attempts} attempts"
            )
        self.customer_keys.destroy(rid)
        return ErasureReceipt.of(brand, relationship, replayed)

    def rotate_master_key(self, new_key: MasterKey) -> int:
        """Rewraps every customer key with `new_key` in one transaction; returns how many.

        This ledger uses the new key at once; other processes must restart with it.
        """
        return self.customer_keys.rotate(new_key)

    # --- reading ------------------------------------------------------------------------------

    def relationship(self, brand: str, customer: str, as_of: datetime | None = None) -> Relationship:
        """The relationship's state now, or as the ledger knew it at record time `as_of`."""
        rid = relationship_id(brand, customer)
        try:
            if as_of is None:
                relationship: Relationship = self.repository.get(rid)
                return relationship
            version = None
            for event in self.events.get(rid):
                if event.timestamp > as_of:
                    break
                version = event.originator_version
            if version is None:
                raise RelationshipNotFound(f"no relationship with customer {customer!r} at {as_of}")
            relationship = self.repository.get(rid, version=version)
            return relationship
        except AggregateNotFoundError:
            raise RelationshipNotFound(f"no relationship with customer {customer!r}") from None

    def interactions(
        self, brand: str, customer: str, as_of: datetime | None = None
    ) -> list[Interaction]:
        """A relationship's events in the order recorded, up to record time `as_of`."""
        events = [
            event
            for event in self.events.get(relationship_id(brand, customer))
            if isinstance(event, Interaction) and (as_of is None or event.timestamp <= as_of)
        ]
        if not events and not self._exists(brand, customer):
            raise RelationshipNotFound(f"no relationship with customer {customer!r}")
        return events

    def customers(self, brand: str) -> Iterator[str]:
        """Every customer the brand has a relationship with, in the order they first appeared."""
        topic = Relationship.Opened.TOPIC
        start = 1
        while True:
            page = self.recorder.select_notifications(start, 500, topics=[topic])
            for notification in page:
                opened: Any = self.mapper.to_domain_event(notification)
                if opened.brand == brand and opened.customer != ERASED:
                    yield opened.customer
            if len(page) < 500:
                return
            start = page[-1].id + 1

    def _get(self, rid: UUID, customer: str) -> Relationship:
        try:
            relationship: Relationship = self.repository.get(rid)
        except AggregateNotFoundError:
            raise RelationshipNotFound(f"no relationship with customer {customer!r}") from None
        return relationship

    def _exists(self, brand: str, customer: str) -> bool:
        return bool(list(self.events.get(relationship_id(brand, customer), limit=1)))


def _fingerprint(keys: dict[UUID, CustomerKey], brand: str, posted: PostedEvent) -> str:
    """Keyed by the customer's key, so the claim stored for an event id reveals nothing of it."""
    return keys[relationship_id(brand, posted.customer)].fingerprint(posted.canonical())


def _reject_repeated_ids(batch: Sequence[PostedEvent]) -> None:
    seen: dict[str, int] = {}
    errors: dict[int, LedgerError] = {}
    for i, posted in enumerate(batch):
        if posted.event_id in seen:
            errors[i] = RejectedEvent(
                f"event_id {posted.event_id!r} repeats index {seen[posted.event_id]} of this batch",
                field="event_id",
            )
        seen.setdefault(posted.event_id, i)
    if errors:
        raise BatchRejected(errors)
