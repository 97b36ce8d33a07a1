"""The Ledger application: records what brands post, and reads relationships back, as of any time."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    OperationalError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.persistence import Recording as LibraryRecording
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.rows import tuple_row
from psycopg_pool import PoolTimeout

from domain import trust
from domain.brand import (
    DEFAULT_POLICY,
    BrandPolicy,
    Policy,
    merged_policy,
    policy_id,
    policy_version_at,
)
from domain.errors import (
    BatchRejected,
    ConcurrencyConflict,
    CustomerErased,
    DecisionNotFound,
    EventIdConflict,
    InvalidPushRequest,
    LedgerError,
    MasterKeyError,
    PolicyNotFound,
    PushIdConflict,
    RejectedEvent,
    RelationshipNotFound,
    StoreUnanswered,
    StoreUnavailable,
)
from domain.gate import PushRequest, Scores, evaluate
from domain.key_table import NEW_KEYS, key_table_for, rotated_away
from domain.recorders import (
    EVENT_IDS,
    PUSH_IDS,
    READS,
    RECORDERS,
    EventIdClaim,
    MemoryLedgerRecorder,
    PostgresSnapshotRecorder,
    PushIdClaim,
    SQLiteSnapshotRecorder,
    json_rows,
)
from domain.relationship import (
    ERASED,
    NAMESPACE,
    Envelope,
    Interaction,
    PostedEvent,
    PushDecided,
    Relationship,
    refold,
    relationship_id,
)
from domain.shredding import (
    KEY_CACHE_SECONDS,
    CustomerKey,
    CustomerKeys,
    MasterKey,
    PersonalDataMapper,
)
from domain.snapshots import ItemsInColumns
from domain.storage import CONNECT_TIMEOUT, Store, still_open
from domain.timeouts import TimedConnection, Unanswered
from domain.transcoder import OrjsonTranscoder
from domain.versions import KnownVersions

ScoresProvider = Callable[[Relationship, datetime], Scores]
"""Gives the gate a relationship's trust scores at the decision time (domain/trust.py's job)."""
BaseRates = Callable[[str, datetime], Mapping[str, float]]


SNAPSHOT_INTERVAL = 20
"""Every this many events a relationship is snapshotted (in the save that reaches a multiple).

A process that has not read a relationship yet reads its latest snapshot and decodes every event
after it: half the interval on average. At 50, a cold decision on the bench's relationship of
100,000 events (its decisions 16 kB each) spent 4.2-4.6 ms of CPU; at 20, 3.3-3.6. The save
that takes the snapshot pays for it, 1.5 ms of CPU for that relationship's (its items in
columns, domain/snapshots.py): 75 us a save on average against 30."""
LOST_CONNECTIONS = 16
"""The most pooled connections a call passes over as lost (the pool holds at most 15)."""
_LATEST_SNAPSHOTS = (
    "WITH wanted(id, after) AS (VALUES {values}) SELECT s.originator_id,"
    " s.originator_version, s.topic, s.state FROM wanted CROSS JOIN stored_snapshots s"
    " ON s.originator_id = wanted.id AND s.originator_version = (SELECT max(originator_version)"
    " FROM stored_snapshots WHERE originator_id = wanted.id)"
)
_EVENTS_AFTER = (
    "WITH wanted(id, after) AS (VALUES {values}) SELECT e.originator_id,"
    " e.originator_version, e.topic, e.state FROM stored_events e JOIN wanted"
    " ON e.originator_id = wanted.id AND e.originator_version > wanted.after"
    " ORDER BY e.originator_id, e.originator_version"
)
"""The bulk loader's queries on SQLite, whose round trips stay in the process."""
_LOAD_POSTGRES = (
    "WITH wanted AS (SELECT w.id, w.unseen, w.key, greatest(w.after, s.originator_version) AS after,"
    " s.originator_version, s.topic, s.state"
    " FROM json_to_recordset((SELECT %s::json)) AS w(id uuid, after bigint, unseen bool, key bool)"
    " LEFT JOIN LATERAL (SELECT originator_version, topic, state FROM ledger_snapshots"
    " WHERE originator_id = w.id AND w.unseen ORDER BY originator_version DESC LIMIT 1) s ON true)"
    " SELECT 's' AS kind, id, originator_version, topic, state FROM wanted WHERE topic IS NOT NULL"
    " UNION ALL SELECT 'e', e.* FROM wanted CROSS JOIN LATERAL (SELECT originator_id,"
    " originator_version, topic, state FROM ledger_events WHERE originator_id = wanted.id"
    " AND originator_version > wanted.after ORDER BY originator_version) e"
    " UNION ALL SELECT 'k', k.* FROM wanted CROSS JOIN LATERAL (SELECT relationship_id, NULL::bigint,"
    " brand, wrapped_key FROM customer_keys WHERE relationship_id = wanted.id AND wanted.key"
    " LIMIT 1) k"
)
"""The bulk loader's one query on PostgreSQL, for many relationships: for those this process has
not seen, the latest snapshot (kind 's'); for those and any whose key this process no longer
holds (it keeps one KEY_CACHE_SECONDS), the customer key (kind 'k'); for all, the events after
what is known (kind 'e'). One statement, so the three agree (a key and its relationship's first
events are written together). It is prepared once, so it is written for a plan that holds
for any number of ids: an index lookup per id (LATERAL, each with an ORDER BY or a LIMIT, which
keeps the planner from flattening it into a join), where a join would be planned, without the
ids, as a scan of the whole table (a hash join over every customer key, measured). The ids go as
one JSON document (psycopg dumps arrays in Python, element by element), read through
`(SELECT ...)` so that the planner cannot count them: counted, a plan for one id looks cheaper
than the generic plan, and the server plans the query again on every call (0.1 ms of its CPU,
more than running it). Sessions run without JIT (SESSION_OPTIONS), which this plan's cost, guessed
without the ids, would otherwise set off on every call. Its rows come back in binary: states are
bytea, which the text format sends as hex, twice their size, for the server to write and psycopg
to read. A relationship this process had not seen, with a 156 kB snapshot and 32 events after it,
loaded in 5.5 ms (3.5 of CPU here) in text and 3.7 (2.5) in binary."""


def neutral_base_rates(brand: str, at: datetime) -> dict[str, float]:
    return dict.fromkeys(trust.DIMENSIONS, trust.NEUTRAL_BASE_RATE)


def gate_view(scores: trust.Scores) -> dict[str, Any]:
    """Scores as the gate reads and records them: b, d, u, a, P and the moving event ids."""
    view: dict[str, Any] = {
        name: {
            **score.opinion.numbers(),
            "evidence": [top.event_id for top in score.top_events],
        }
        for name, score in scores.dimensions.items()
    }
    view["overall"] = scores.overall
    return view


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


class Decision(dict[str, Any]):
    """The gate's answer to a push, as recorded: `replayed` when it was recorded before for the
    same push_id and request (a repeat), as a Recording says of an event."""

    replayed: bool = False

    @classmethod
    def repeated(cls, recorded: Mapping[str, Any]) -> Decision:
        decision = cls(recorded)
        decision.replayed = True
        return decision


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
    """How an event id was claimed before migration 0005 moved claims into the `event_ids` table
    (domain/recorders.py). No longer saved; kept so the log's older claims still read."""

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
    def create_id(brand: str, event_id: str) -> UUID:
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


class PushClaim(Aggregate, created_event_name="Claimed"):
    """How a push id was claimed before migration 0006 moved claims into the `push_ids` table
    (domain/recorders.py). No longer saved; kept so the log's older claims still read."""

    TOPIC = "trustledger:push-id"

    class Event(Aggregate.Event):
        TOPIC = "trustledger:push-id.event"

    class Claimed(Aggregate.Created):
        TOPIC = "trustledger:push-id.claimed"
        brand: str
        push_id: str
        relationship_id: UUID

    @staticmethod
    def create_id(brand: str, push_id: str) -> UUID:
        return uuid5(NAMESPACE, json.dumps(["push-id", brand, push_id]))

    def __init__(self, brand: str, push_id: str, relationship_id: UUID) -> None:
        self.relationship_id = relationship_id


class Ledger(Application[UUID]):
    """Records brand-customer interactions as events on their relationship."""

    name = "Ledger"
    snapshotting_intervals = {Relationship: SNAPSHOT_INTERVAL}  # noqa: RUF012 (the library's)
    max_attempts = 5
    """Optimistic-concurrency retries before a write is reported as a conflict."""

    def __init__(
        self,
        store: Store | None = None,
        env: dict[str, str] | None = None,
        base_rates: BaseRates | None = None,
        *,
        master_key: MasterKey | None = None,
        key_cache_seconds: float = KEY_CACHE_SECONDS,
        known_versions: KnownVersions | None = None,
    ) -> None:
        """Opens the store; refuses a missing master key, or one the store's keys are not under.

        Only the in-memory store (unit tests) makes up a master key when none is given.
        `base_rates` gives the brand's P per dimension at a time (a relationship's base rates):
        the composition root wires it to the brand trust read model; alone, the ledger uses 0.5.
        With `known_versions` (domain/versions.py), shared by the server's processes, a command
        does not read a relationship it holds at the latest version they know of.
        """
        self.store = store or Store.from_url(None)
        self.base_rates: BaseRates = base_rates or neutral_base_rates
        self.known_versions = known_versions
        if master_key is None and self.store.kind != "memory":
            raise MasterKeyError(
                f"no master key for the {self.store.kind} store (TRUSTLEDGER_MASTER_KEY):"
                " personal data is never stored in plaintext"
            )
        self._master_key = master_key or MasterKey.generate()
        self._key_cache_seconds = key_cache_seconds
        self._policies: dict[str, tuple[dict[str, Any], Policy]] = {}
        super().__init__(
            {
                **self.store.eventsourcing_env(),
                **(
                    {"APPLICATION_RECORDER_TOPIC": RECORDERS[self.store.kind]}
                    if self.store.kind in RECORDERS
                    else {}
                ),
                "AGGREGATE_CACHE_MAXSIZE": "10000",
                **(env or {}),
            }
        )
        self.customer_keys.check_master_key()

    def construct_factory(self, env: Any) -> Any:
        """The library's factory; on PostgreSQL its connections open with SESSION_OPTIONS and the
        database URL's parameters, such as sslmode (its pool connects on first use, after this)."""
        factory = super().construct_factory(env)
        datastore = getattr(factory, "datastore", None)
        if isinstance(datastore, PostgresDatastore) and isinstance(datastore.pool.kwargs, dict):
            datastore.pool.kwargs = {**datastore.pool.kwargs, **self.store.connection_params()}
            # The pool backs off from a server that is down by doubling waits (1, 2, 4, ... s)
            # for up to 5 minutes: after a 40 s outage its next try came 10-20 s after the
            # server was back, and every call until then answered 503. Giving a try up after
            # CONNECT_TIMEOUT lets the next call start a new one.
            datastore.pool.reconnect_timeout = CONNECT_TIMEOUT
            # Statements run for a caller wait a bounded time on a frozen server (timeouts.py).
            datastore.pool.connection_class = TimedConnection
            datastore.get_connection = _failing_fast(datastore.get_connection)  # type: ignore[method-assign,assignment]
        return factory

    def construct_recorder(self) -> Any:
        """The ledger's recorder (domain/recorders.py): the SQL stores' by their topic, the
        in-memory store's here."""
        if self.store.kind == "memory":
            return MemoryLedgerRecorder()
        recorder = super().construct_recorder()
        recorder.guard = self.store.guard  # type: ignore[attr-defined]  # ours (RECORDERS)
        return recorder

    def save(self, *aggregates: Any, **kwargs: Any) -> list[LibraryRecording[UUID]]:
        """The library's save for aggregates, less its generic collection: it checks each object
        against two runtime protocols (a tenth of a batch's Python), caches what it saved, which
        `_cache` does selectively, and reads an aggregate back to snapshot it."""
        saved = [aggregate for aggregate in aggregates if aggregate is not None]
        events = [event for aggregate in saved for event in aggregate.collect_events()]
        recordings = self.events.put(events, **kwargs)
        self._note_versions(saved)
        self._cache(saved)
        self._take_snapshots_of(saved, events)
        return recordings

    def _take_snapshots_of(self, aggregates: list[Aggregate], events: list[Any]) -> None:
        """Snapshots the relationships whose save reached a multiple of their interval, from the
        objects just saved, at their saved versions, in one write. (The library reads each
        aggregate back from the store first, and writes each snapshot apart: two more queries and
        a decode each, paid by the request that reached the interval.)"""
        if self.snapshots is None:
            return
        by_id = {aggregate.id: aggregate for aggregate in aggregates}
        due = {  # one pass over the events: a batch saves a hundred aggregates or more
            event.originator_id
            for event in events
            if (interval := self.snapshotting_intervals.get(type(by_id[event.originator_id])))
            and event.originator_version % interval == 0
        }
        if due:
            self.snapshots.put([self._snapshot_of(by_id[rid]) for rid in due])

    def _snapshot_of(self, aggregate: Aggregate) -> Any:
        snapshot_class: Any = getattr(type(aggregate), "Snapshot", self.snapshot_class)
        return snapshot_class.take(aggregate)

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """The library's, writing snapshots with PostgresSnapshotRecorder or
        SQLiteSnapshotRecorder, which keep a relationship's latest and its anchors
        (SNAPSHOT_ANCHOR)."""
        snapshots = super().construct_snapshot_store()
        recorder: Any = snapshots.recorder
        ours: dict[type, type] = {
            PostgresAggregateRecorder: PostgresSnapshotRecorder,
            SQLiteAggregateRecorder: SQLiteSnapshotRecorder,
        }
        if type(recorder) in ours:
            snapshots.recorder = ours[type(recorder)](
                datastore=recorder.datastore, events_table_name=recorder.events_table_name
            )
        return snapshots

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON transcoder, writing and reading with orjson (domain/transcoder.py)."""
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """The library's (UUID, Decimal, datetime), and a relationship snapshot's items in
        columns (domain/snapshots.py)."""
        super().register_transcodings(transcoder)
        transcoder.register(ItemsInColumns())

    def construct_mapper(self) -> Mapper[UUID]:
        """The mapper that seals personal fields with each customer's key (and the keys' store)."""
        datastore = getattr(self.factory, "datastore", None)
        table = key_table_for(datastore, self.store.kind, self.store.guard)
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
        held: set[tuple[UUID, str]] = set()  # push ids their own relationship holds already
        for attempt in range(self.max_attempts):
            pending = [i for i in range(len(batch)) if i not in replays]
            if not pending:
                return [replays[i] for i in range(len(batch))]
            # The first attempt may take relationships held at their latest known versions as
            # they are, unread: a save that fails then, or a rejection, is judged again after a
            # read (a stale copy can refuse what the stored relationship allows).
            skips_reads = attempt == 0 and self.known_versions is not None
            relationships, events, errors, pushes = self._apply(
                brand, [batch[i] for i in pending], latest_known=skips_reads, held=held
            )
            errors = {pending[i]: error for i, error in errors.items()}
            if errors:
                # Every pending id, not the rejected ones' alone: an id reused for other content
                # elsewhere in the batch is rejected with them, rather than after they are fixed.
                try:
                    found = self._look_up_ids(brand, {i: batch[i] for i in pending})
                except BatchRejected as conflicts:
                    raise BatchRejected({**errors, **conflicts.errors}) from None
                if not found.keys() & errors.keys() and not skips_reads:
                    raise BatchRejected(errors)
                replays.update(found)
                continue
            customer_keys, new_keys = self._customer_keys(brand, relationships)
            claims = [
                EventIdClaim(
                    brand,
                    batch[i].event_id,
                    event.originator_id,
                    event.originator_version,
                    _fingerprint(customer_keys, brand, batch[i]),
                    event.timestamp,
                )
                for i, event in zip(pending, events, strict=True)
            ]
            try:
                saved = self._save_with_keys(
                    customer_keys,
                    new_keys,
                    *relationships.values(),
                    **{EVENT_IDS: claims, PUSH_IDS: list(pushes.values())},
                )
            except IntegrityError:
                held |= self._refuse_push_ids_of_others(
                    {pending[i]: push for i, push in pushes.items()}
                )
                replays.update(self._look_up_ids(brand, {i: batch[i] for i in pending}))
                continue
            positions = {
                (r.domain_event.originator_id, r.domain_event.originator_version): r.notification.id
                for r in saved
            }
            answers = dict(replays)
            for i, claim in zip(pending, claims, strict=True):
                answers[i] = Recording(
                    event_id=batch[i].event_id,
                    customer=batch[i].customer,
                    sequence=claim.sequence,
                    recorded_at=claim.recorded_at,
                    position=positions.get((claim.relationship_id, claim.sequence)),
                )
            return [answers[i] for i in range(len(batch))]
        raise ConcurrencyConflict(
            f"the relationship kept changing; gave up after {self.max_attempts} attempts"
        )

    def _apply(
        self,
        brand: str,
        batch: Sequence[PostedEvent],
        latest_known: bool = False,
        held: Collection[tuple[UUID, str]] = (),
    ) -> tuple[
        dict[UUID, Relationship], list[Interaction], dict[int, LedgerError], dict[int, PushIdClaim]
    ]:
        """Runs each event's command on its relationship, in memory; collects what is rejected,
        and the push ids the batch's sends claim (see `push_claim`)."""
        relationships: dict[UUID, Relationship] = {}
        events: list[Interaction] = []
        errors: dict[int, LedgerError] = {}
        pushes: dict[int, PushIdClaim] = {}
        claimed: dict[str, int] = {}
        ids = {relationship_id(brand, p.customer) for p in batch}
        loaded = self._load_many(ids, latest_known=latest_known)
        for i, posted in enumerate(batch):
            rid = relationship_id(brand, posted.customer)
            if rid not in relationships:
                found = loaded.get(rid)
                relationships[rid] = (
                    copy.deepcopy(found) if found else Relationship(brand, posted.customer)
                )
            sent = posted.data.get("push_id") if posted.type == "push.sent" else None
            claim = push_claim(brand, sent, relationships[rid]) if isinstance(sent, str) else None
            if claim and (rid, claim.push_id) in held:  # claimed by this relationship before
                claim = None
            try:
                if claim and claim.push_id in claimed:  # by a send to another customer
                    raise PushIdConflict(claim.push_id, sent=True)
                relationships[rid].record(posted)
            except (RejectedEvent, PushIdConflict) as error:
                errors[i] = error
            else:
                events.append(relationships[rid].pending_events[-1])  # type: ignore[arg-type]
                if claim:
                    pushes[i], claimed[claim.push_id] = claim, i
        return relationships, events, errors, pushes

    def _refuse_push_ids_of_others(self, pushes: dict[int, PushIdClaim]) -> set[tuple[UUID, str]]:
        """After a failed save: the sends whose push id another customer holds are refused.
        Returns those whose own relationship holds it already: a racing send of the push, or a
        push the relationship decided or sent long ago and has forgotten since (its send was
        refused as a concurrency conflict after five attempts, each claiming the id again)."""
        recorder: Any = self.recorder  # the ledger's (domain/recorders.py)
        owners = {i: recorder.push_id_owner(p.brand, p.push_id) for i, p in pushes.items()}
        taken: dict[int, LedgerError] = {
            i: PushIdConflict(push.push_id, sent=True)
            for i, push in pushes.items()
            if owners[i] not in (None, push.relationship_id)
        }
        if taken:
            raise BatchRejected(taken)
        return {(p.relationship_id, p.push_id) for i, p in pushes.items() if owners[i] is not None}

    def _customer_keys(
        self, brand: str, relationships: dict[UUID, Relationship]
    ) -> tuple[dict[UUID, CustomerKey], list[Any]]:
        """Each relationship's key, and the rows of the new ones: those are written by the save,
        in the same transaction as the relationships' first events (key_table.NEW_KEYS). On the
        in-memory store, which has no such transaction, new keys are stored at once."""
        new = [
            rid
            for rid, relationship in relationships.items()
            if isinstance(relationship.pending_events[0], Relationship.Opened)
        ]
        rows: list[Any] = []
        if self.store.kind != "memory":
            keys, rows = self.customer_keys.prepare_many(brand, new)
        else:
            keys = self.customer_keys.create_many(brand, new)
        keys.update(
            {rid: self.customer_keys.require(rid) for rid in relationships if rid not in keys}
        )
        return keys, rows

    def _save_with_keys(
        self, keys: dict[UUID, CustomerKey], rows: list[Any], *objects: Any, **kwargs: Any
    ) -> Any:
        """Saves, writing the new customer keys (`rows`) with the events, which are sealed with
        them; the process keeps those keys only if the save succeeds (CustomerKeys.sealing)."""
        try:
            with self.customer_keys.sealing({row[0]: keys[row[0]] for row in rows}):
                return self.save(*objects, **{NEW_KEYS: rows}, **kwargs)
        except BaseException as error:
            if rows and not isinstance(error, IntegrityError):
                self._refuse_a_rotated_master_key(error)
            raise

    def _refuse_a_rotated_master_key(self, error: BaseException) -> None:
        """A save that wrote keys failed: say so plainly if the master key was rotated meanwhile
        (the recorder's guard refused the keys, which would have been wrapped by the old one)."""
        ours = self.customer_keys.master_key.key_id
        bound = self.customer_keys.table.claim_master_key(ours)
        if bound != ours:
            raise rotated_away(bound, ours) from error

    def _load_many(
        self, ids: set[UUID], snapshotted: set[UUID] | None = None, latest_known: bool = False
    ) -> dict[UUID, Any]:
        """The aggregates that exist among `ids`, current: shared with the cache, so a command
        must change a copy. With `latest_known`, those held at the version `known_versions`
        notes are taken as current without a read (a save on one that is not fails).

        One query for a whole batch on PostgreSQL (two on SQLite), where the repository would
        spend one or two per aggregate: the latest snapshots of those not cached (only
        `snapshotted` ones, if given), their customer keys and those of cached relationships
        whose key this process has held too long, and every event after what is known of each.
        What it folds goes into the cache, as the repository's get would put it; what a save
        wrote goes there too, so this process need not read back its own events.
        """
        cache = self.repository.cache
        if self.store.kind == "memory" or cache is None:
            return {i: self.repository.get(i) for i in ids if self._exists_id(i)}
        known: dict[UUID, Any] = {}
        for rid in ids:
            with contextlib.suppress(KeyError):
                known[rid] = cache.get(rid)
        unseen = {i for i in ids if i not in known and (snapshotted is None or i in snapshotted)}
        held_too_long = self.customer_keys.not_held(
            rid for rid, aggregate in known.items() if isinstance(aggregate, Relationship)
        )
        latest = self.known_versions if latest_known else None
        unread = set() if latest is None else {
            rid for rid, aggregate in known.items()
            if rid not in held_too_long and latest.is_latest(rid, aggregate.version)
        }  # fmt: skip
        after = {rid: known[rid].version if rid in known else 0 for rid in ids if rid not in unread}
        if not after:
            return known
        snapshots, events = self._stored(after, unseen, held_too_long)
        for snapshot in snapshots:
            folded: Any = self.mapper.to_domain_event(snapshot)
            known[cast(UUID, snapshot.originator_id)] = folded.mutate(None)
        changed: dict[UUID, Any] = {}
        for stored in events:
            rid = cast(UUID, stored.originator_id)
            if rid not in changed:  # never change what the cache holds
                changed[rid] = copy.deepcopy(known[rid]) if rid in known else None
            event: Any = self.mapper.to_domain_event(stored)
            changed[rid] = event.mutate(changed[rid])
        known.update(changed)
        self._cache(changed.values())
        self._note_versions(known[rid] for rid in after if rid in known)
        return known

    def _note_versions(self, aggregates: Iterable[Aggregate]) -> None:
        if self.known_versions is not None:
            for aggregate in aggregates:
                self.known_versions.note(aggregate.id, aggregate.version)

    def _cache(self, aggregates: Iterable[Aggregate]) -> None:
        """Keeps relationships and policies as last seen, saved or loaded (not claims: each is
        read once or twice, and they would push the others out)."""
        cache = self.repository.cache
        if cache is not None:
            for aggregate in aggregates:
                if isinstance(aggregate, Relationship | BrandPolicy):
                    cache.put(aggregate.id, aggregate)

    def _stored(
        self, after: dict[UUID, int], unseen: set[UUID], held_too_long: set[UUID]
    ) -> tuple[list[StoredEvent], list[StoredEvent]]:
        """The latest snapshots of the `unseen` relationships, and the events of each after its
        `after` version or its snapshot. On PostgreSQL the same query reads the customer keys of
        the unseen ones and of those seen before whose key was `held_too_long` into the key
        cache, which their events and save need next."""
        datastore = cast(Any, self.recorder).datastore
        snapshots: list[StoredEvent] = []
        events: list[StoredEvent] = []
        if self.store.is_sqlite:
            snapshots = _sqlite_stored(datastore, _LATEST_SNAPSHOTS, dict.fromkeys(unseen, 0))
            versions = {s.originator_id: s.originator_version for s in snapshots}
            return snapshots, _sqlite_stored(datastore, _EVENTS_AFTER, {**after, **versions})
        keyless = unseen | held_too_long
        wanted = json_rows(
            ((i, n, i in unseen, i in keyless) for i, n in after.items()),
            ("id", "after", "unseen", "key"),
        )
        with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            rows = cursor.execute(_LOAD_POSTGRES, [wanted], prepare=True, binary=True).fetchall()
        keys: list[tuple[UUID, str, bytes]] = []
        for kind, rid, version, topic, state in rows:
            if kind == "k":  # a key row holds the brand in `topic`, the wrapped key in `state`
                keys.append((rid, topic, bytes(state)))
            else:
                found = snapshots if kind == "s" else events
                found.append(StoredEvent(rid, version, topic, bytes(state)))
        # Those seen before exist; of the unseen, those with a snapshot or events. A missing key
        # row of an existing relationship is an erased customer.
        stored = {cast(UUID, s.originator_id) for s in snapshots + events}
        existing = held_too_long | (stored & unseen)
        self.customer_keys.preload(existing, lambda missing: keys)
        return snapshots, events

    def _exists_id(self, rid: UUID) -> bool:
        return bool(list(self.events.get(rid, limit=1)))

    def _look_up_ids(self, brand: str, batch: dict[int, PostedEvent]) -> dict[int, Recording]:
        """The earlier recordings of these event ids; other content under a known id is a conflict."""
        found: dict[int, Recording] = {}
        conflicts: dict[int, LedgerError] = {}
        claims = self.recorder.event_id_claims(brand, [p.event_id for p in batch.values()])  # type: ignore[attr-defined]
        for i, posted in batch.items():
            claim = claims.get(posted.event_id)
            if claim is None:
                continue
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

    # --- the push gate ------------------------------------------------------------------------

    def decide_push(
        self,
        brand: str,
        request: PushRequest | Mapping[str, Any],
        scores: Scores | ScoresProvider | None = None,
        now: datetime | None = None,
        earliest: datetime | None = None,
    ) -> Decision:
        """Asks the gate, and records its decision as `push.decided` on the relationship.

        The decision is saved with the relationship version it was evaluated on: if anything was
        written to the relationship meanwhile (a consent withdrawal, a racing decision), the save
        fails and the push is decided again on the new state. A repeated push_id gets its recorded
        decision back, unless it was deferred and its retry_after has come. A customer without a
        relationship gets one, opened by the decision. A push decided anew as at a `now` before
        `earliest` (the API's bound on `send_at`) is refused; a repeat is answered whatever its
        `now`, as a CRM retrying it later must be.
        """
        push = PushRequest.from_dict(
            request.as_dict() if isinstance(request, PushRequest) else request
        )
        moment = now or datetime.now(UTC)
        rid, pid = relationship_id(brand, push.customer), policy_id(brand)
        # True once the push id proved claimed by this relationship, which no longer holds the
        # push: decided or sent long ago and forgotten since (Relationship._forget_old).
        forgotten = False
        for attempt in range(self.max_attempts):
            # The relationship and the brand's policy: one query, usually returning nothing new,
            # and none at all on the first attempt if this server's workers know nothing newer
            # (the save checks the versions of both).
            current = self._load_many({rid, pid}, snapshotted={rid}, latest_known=attempt == 0)
            found = current.get(rid)
            relationship = copy.deepcopy(found) if found else Relationship(brand, push.customer)
            recorded = self._recorded_decision(relationship, push, moment, forgotten)
            if recorded is not None:
                return Decision.repeated(recorded)
            if earliest is not None and moment < earliest:
                raise InvalidPushRequest(
                    f"send_at must not be before {earliest.isoformat()}: too far back to decide",
                    field="send_at",
                )
            policy_aggregate = current.get(pid)
            policy = self._current_policy(brand, policy_aggregate)
            decision = evaluate(
                relationship,
                self._scores(scores, relationship, moment, policy),
                policy,
                push,
                moment,
            )
            claim = None if forgotten else push_claim(brand, push.push_id, relationship)
            claims = [claim] if claim else []
            envelope = self._decision_envelope(relationship, push, moment)
            relationship.record_push_decision(envelope, push.push_id, push.as_dict(), decision)
            keys, new_keys = self._customer_keys(brand, {relationship.id: relationship})
            read = [(pid, policy_aggregate.version if policy_aggregate else 0)]
            try:
                self._save_with_keys(
                    keys, new_keys, relationship, **{PUSH_IDS: claims, READS: read}
                )
            except IntegrityError:
                recorder: Any = self.recorder  # the ledger's (domain/recorders.py)
                owner = recorder.push_id_owner(brand, push.push_id) if claims else None
                if owner not in (None, rid):
                    raise PushIdConflict(push.push_id) from None
                # Claimed by this relationship: a racing decision of this push (the next attempt
                # sees it recorded), or one the relationship has forgotten (read from the log).
                forgotten = forgotten or owner == rid
                continue  # the relationship or policy changed meanwhile (or this push was decided)
            return Decision(decision)
        raise ConcurrencyConflict(
            f"the relationship kept changing; gave up after {self.max_attempts} attempts"
        )

    def _current_policy(self, brand: str, aggregate: BrandPolicy | None) -> Policy:
        """The policy the brand's aggregate holds (the default without one), built once per
        version: building one copies its settings, a tenth of a decision's Python. A version's
        settings are a dict of its own, never changed in place, so it tells the version."""
        settings = aggregate.settings if aggregate else DEFAULT_POLICY
        memo = self._policies.get(brand)
        if memo is None or memo[0] is not settings:
            policy = aggregate.policy() if aggregate else Policy.default(brand)
            memo = self._policies[brand] = (settings, policy)
        return memo[1]

    def gate_scores(
        self, relationship: Relationship, now: datetime, policy: Policy | None = None
    ) -> Scores:
        """A relationship's scores as the gate reads them: from its own state, at `now`, on its
        brand's P as base rate, under the half-life of the brand's policy (read when not given)."""
        rates = self.base_rates(relationship.brand, now)
        return self._scores_at(relationship, now, rates, policy or self.policy(relationship.brand))

    def _scores_at(
        self, relationship: Relationship, now: datetime, rates: Mapping[str, float], policy: Policy
    ) -> Scores:
        return gate_view(self.relationship_trust(relationship, now, rates, policy))

    def relationship_trust(
        self, relationship: Relationship, at: datetime, rates: Mapping[str, float], policy: Policy
    ) -> trust.Scores:
        """The relationship's scores at `at` on these base rates, under the half-life of the
        brand's `policy`: what the gate decides on, and what every trust answer shows."""
        half_life = timedelta(days=policy.trust_half_life_days)
        if half_life == trust.HALF_LIFE:
            return relationship.trust(at, rates)
        # Evidence is kept at the default half-life; another one means folding it again, from
        # its stored events and those not saved yet (all of a customer's first decision's).
        pending = relationship.pending_events
        stored = self.events.get(relationship.id, lte=relationship.version - len(pending))
        events = cast(Any, [*stored, *pending])
        return refold(events, half_life).trust(at, rates, half_life)

    def _scores(
        self,
        scores: Scores | ScoresProvider | None,
        relationship: Relationship,
        now: datetime,
        policy: Policy,
    ) -> Scores:
        if scores is None:
            return self.gate_scores(relationship, now, policy)
        return scores(relationship, now) if callable(scores) else scores

    def _recorded_decision(
        self, relationship: Relationship, push: PushRequest, now: datetime, forgotten: bool = False
    ) -> dict[str, Any] | None:
        """The decision already recorded for this push_id, unless it was a defer now due again.
        Once the customer is erased, nothing more is recorded for them, and a repeat is told so
        (its recorded request reads "[erased]" and cannot be compared any more). A push the
        relationship has `forgotten` is looked for in its log (a repeat of it was refused as a
        concurrency conflict after five attempts, each failing to claim its own push id)."""
        relationship.require_not_erased()
        sequence = relationship.items["push"].get(push.push_id, {}).get("decision_sequence")
        if sequence is None and forgotten:
            sequence = self._last_decision_in_log(relationship.id, push.push_id)
        if sequence is None:
            return None
        decided = self._decision_event(relationship.id, sequence)
        if decided.request != push.as_dict():
            raise PushIdConflict(push.push_id)
        decision: dict[str, Any] = decided.decision
        if decision["outcome"] == "defer" and decision["retry_after"] <= now:
            return None
        return decision

    def _decision_event(self, rid: UUID, sequence: int) -> PushDecided:
        event: Any = next(iter(self.events.get(rid, gt=sequence - 1, lte=sequence)))
        decided: PushDecided = event
        return decided

    # --- the audit of decisions ----------------------------------------------------------------

    def audit_push_decision(self, brand: str, push_id: str) -> dict[str, Any]:
        """The push's recorded decision next to a fresh evaluation of it (see `audit_decision`)."""
        owner = self.recorder.push_id_owner(brand, push_id)  # type: ignore[attr-defined]
        if owner is None:
            raise DecisionNotFound(f"no decision for push {push_id!r}")
        relationship: Relationship = self.repository.get(owner)
        sequence = relationship.items["push"].get(push_id, {}).get("decision_sequence")
        if sequence is None:  # a push the relationship has forgotten (items pruned): in the log
            sequence = self._last_decision_in_log(owner, push_id)
        if sequence is None:
            raise DecisionNotFound(f"no decision for push {push_id!r}")
        return self.audit_decision(relationship.id, sequence)

    def _last_decision_in_log(self, rid: UUID, push_id: str) -> int | None:
        """The sequence of the push's last push.decided, read from the relationship's log: a
        relationship keeps its newest closed pushes only (Relationship._forget_old), and the
        audit of an older one must not depend on that. Decodes the decisions alone."""
        found = None
        for stored in self.recorder.select_events(rid):
            if stored.topic == PushDecided.TOPIC:  # type: ignore[attr-defined]
                event: Any = self.mapper.to_domain_event(stored)
                if event.push_id == push_id:
                    found = int(event.originator_version)
        return found

    def audit_decision(self, rid: UUID, sequence: int) -> dict[str, Any]:
        """Evaluates a recorded decision again, from exactly the relationship's events recorded
        before it, under the policy version it names, at its decision time, on the base rates it
        recorded (the brand's P is read from a projection, which may lag; recording it is what
        makes the audit exact). `reproduced` says whether the two agree."""
        decided = self._decision_event(rid, sequence)
        before: Relationship = self.repository.get(rid, version=sequence - 1)
        recorded = decided.decision
        policy = self.policy(before.brand, version=recorded["policy_version"])
        rates = {name: recorded["scores"][name]["a"] for name in trust.DIMENSIONS}
        scores = self._scores_at(before, decided.occurred_at, rates, policy)
        again = evaluate(
            before, scores, policy, PushRequest.from_dict(decided.request), decided.occurred_at
        )
        differences = [
            f"{key}: recorded {recorded.get(key)!r}, re-evaluated {again.get(key)!r}"
            for key in sorted(set(recorded) | set(again))
            if recorded.get(key) != again.get(key)
        ]
        return {
            "push_id": decided.push_id,
            "event_id": decided.event_id,
            "decided_at": decided.occurred_at,
            "recorded_at": decided.timestamp,
            "request": decided.request,
            "recorded": recorded,
            "reevaluated": again,
            "reproduced": not differences,
            "differences": differences,
        }

    def decisions(
        self, brand: str | None = None, since: datetime | None = None
    ) -> Iterator[tuple[str, UUID, int]]:
        """Every recorded decision in log order, as (brand, relationship id, sequence): of one
        brand, or made (in event time) since a moment, if given."""
        brands: dict[UUID, str] = {}
        after = 0
        while True:
            page = self.recorder.select_notifications(after + 1, 500, topics=[PushDecided.TOPIC])  # type: ignore[attr-defined]
            for notification in page:
                rid = cast(UUID, notification.originator_id)
                if since is not None:
                    decided: Any = self.mapper.to_domain_event(notification)
                    if decided.occurred_at < since:
                        continue
                if rid not in brands:
                    opened: Any = next(iter(self.events.get(rid, lte=1)))
                    brands[rid] = opened.brand
                if brand is None or brands[rid] == brand:
                    yield brands[rid], rid, notification.originator_version
            if len(page) < 500:
                return
            after = page[-1].id

    @staticmethod
    def _decision_envelope(
        relationship: Relationship, push: PushRequest, now: datetime
    ) -> Envelope:
        """The gate's own envelope: its event_id is derived from the relationship and version."""
        key = json.dumps(["push.decided", str(relationship.id), relationship.version + 1])
        return Envelope(f"gate-{uuid5(NAMESPACE, key)}", now, actor="gate", channel=push.channel)

    # --- the brand's push policy ---------------------------------------------------------------

    def policy(
        self, brand: str, version: int | None = None, as_of: datetime | None = None
    ) -> Policy:
        """The brand's policy now, at `version` (0 is the default), or at record time `as_of`."""
        if as_of is not None:
            version = self._policy_version_at(brand, as_of) if version is None else version
        if version == 0:
            return Policy.default(brand)
        try:
            policy: BrandPolicy = self.repository.get(policy_id(brand), version=version)
        except AggregateNotFoundError:
            if version is None:
                return Policy.default(brand)
            raise PolicyNotFound(f"the policy has no version {version}") from None
        if version is not None and policy.version != version:
            raise PolicyNotFound(f"the policy has no version {version}")
        return policy.policy()

    def set_policy(self, brand: str, changes: Mapping[str, Any]) -> Policy:
        """Changes the brand's policy; returns the new version (the same if nothing changed)."""
        for _ in range(self.max_attempts):
            try:
                policy: BrandPolicy = self.repository.get(policy_id(brand))
            except AggregateNotFoundError:
                if merged_policy(DEFAULT_POLICY, changes) == DEFAULT_POLICY:
                    return Policy.default(brand)  # version 0 stays, as a later version would
                policy = BrandPolicy.adopt(brand, changes)
            else:
                policy.change(changes)
            if not policy.pending_events:
                return policy.policy()
            try:
                self.save(policy)
            except IntegrityError:
                continue
            return policy.policy()
        raise ConcurrencyConflict(
            f"the policy kept changing; gave up after {self.max_attempts} attempts"
        )

    def _policy_version_at(self, brand: str, as_of: datetime) -> int:
        return policy_version_at(self.policy_history(brand), as_of)

    def policy_history(self, brand: str) -> list[tuple[datetime, int]]:
        """When each version of the brand's policy was recorded, and its number, oldest first
        (version 0, the default, is never recorded): one read of its events."""
        events: Iterable[Any] = self.events.get(policy_id(brand))
        return [(event.timestamp, event.originator_version) for event in events]

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

    def relationship(
        self, brand: str, customer: str, as_of: datetime | None = None
    ) -> Relationship:
        """The relationship's state now, or as the ledger knew it at record time `as_of`: not
        found before its first interaction, as the timeline has it (its opening is recorded
        microseconds before, in the same save)."""
        rid = relationship_id(brand, customer)
        if as_of is None:
            return self._get(rid, customer)
        try:
            version = None
            for event in cast(Any, self.events.get(rid)):
                if event.timestamp > as_of:
                    break
                if version is not None or isinstance(event, Interaction):
                    version = event.originator_version
            if version is None:
                raise RelationshipNotFound(f"no relationship with customer {customer!r} at {as_of}")
            relationship: Relationship = self.repository.get(rid, version=version)
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
        """The relationship as stored now, a copy of its own (the caller may change it), through
        the bulk loader: one query, where the library's repository spends three on a relationship
        this process has not seen (its snapshot, its events, its key), 0.37 ms against 1.1-1.3."""
        found = self._load_many({rid}).get(rid)
        if found is None:
            raise RelationshipNotFound(f"no relationship with customer {customer!r}")
        relationship: Relationship = copy.deepcopy(found)
        return relationship

    def _exists(self, brand: str, customer: str) -> bool:
        return self._exists_id(relationship_id(brand, customer))


def _sqlite_stored(datastore: Any, query: str, after: dict[Any, int]) -> list[StoredEvent]:
    """Stored events or snapshots of many relationships (each after its version), by one query."""
    if not after:
        return []
    values = ", ".join("(?, ?)" for _ in after)
    pairs = [x for rid, version in after.items() for x in (rid.hex, version)]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(query.format(values=values), pairs)
        rows = cursor.fetchall()
    return [StoredEvent(UUID(r[0]), r[1], r[2], bytes(r[3])) for r in rows]


def push_claim(brand: str, push_id: str, relationship: Relationship) -> PushIdClaim | None:
    """A brand's push id belongs to one customer: the first decision or send under it claims it
    for its relationship, in the same save, which fails if another customer holds it. None when
    this relationship decided or sent it before (claimed then)."""
    if push_id in relationship.items["push"]:
        return None
    return PushIdClaim(brand, push_id, relationship.id)


def _failing_fast(
    get_connection: Callable[[], AbstractContextManager[Any]],
) -> Callable[[], AbstractContextManager[Any]]:
    """The datastore's `get_connection`, handing out only connections whose server is still there,
    and raising StoreUnavailable when its pool waited in vain for one (the server is down or
    unreachable). The library wraps that timeout in the OperationalError its recorders retry ten
    times, each after the pool's whole wait: a write met by a stopped server answered after 92 s,
    and a worker under gunicorn is killed at 30. And after a restart, each pooled connection
    failed the first statement that used it, which only the library's own statements retried.
    A statement a frozen server never answered (domain/timeouts.py) is StoreUnanswered, for the
    same reason: retried, each try would wait the whole statement timeout again."""

    @contextlib.contextmanager
    def connection() -> Iterator[Any]:
        try:
            for _ in range(LOST_CONNECTIONS):
                with get_connection() as conn:
                    if still_open(conn):
                        yield conn
                        return
                # its server went away (a restart): handed back, the pool drops it; take another
            with get_connection() as conn:
                yield conn
        except OperationalError as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise StoreUnavailable(f"the database cannot be reached: {error}") from error
            if isinstance(error.__cause__, Unanswered):
                # Not the library's retry: each would wait the whole timeout again.
                raise StoreUnanswered(str(error)) from error
            raise

    return connection


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
