"""The relationship: one brand x one customer, one event stream, every interaction an event.

Each type of DESIGN.md's event catalogue is an explicit event class with a stable topic
(``trustledger:<type>``) and a command on :class:`Relationship` that guards it. The aggregate
keeps its state folded (open promises, offers and error reports, consents, preferences, counts,
trust evidence) and forgets closed references after :data:`MEMORY` of event time, so loading and
appending cost the same whatever the length of the history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import register_topic

from domain import trust as trust_model
from domain.errors import CustomerErased, DuplicateReference, RejectedEvent, UnknownReference
from domain.snapshots import RelationshipSnapshot

NAMESPACE = UUID("6f1d5a3e-8a4b-5c2e-9d47-3b1f0e2a7c55")
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No interaction is older: trust decays over event time, and a date centuries back would leave
the evidence unable to be evaluated at it."""
MEMORY = timedelta(days=400)
"""How long a closed reference (a kept promise, an admitted error) is remembered, in event time.

Afterwards a repeat is still rejected (nothing is open under that id), only with a plainer message.
"""
MEMORY_ITEMS = 200
"""This many closed items of each kind are kept (the newest) by each prune, whatever their age,
so a relationship's state stays bounded however long its history. A prune runs when a kind's
items have doubled since the last (`_forget_old`), so up to twice as many are held in between.
Reopening a case or giving feedback on a push that was pruned is rejected as unknown."""
ENVELOPE = ("event_id", "occurred_at", "actor", "channel")
SEVERITIES = ("minor", "major", "critical")
DISCOVERERS = ("brand", "customer", "regulator", "third_party")
REACTIONS = ("opened", "clicked", "dismissed", "unwanted", "unsubscribed")
EVERY_PURPOSE = "*"
PREFERENCES = ("timezone", "quiet_hours")
UNWANTED_MEMORY = timedelta(days=31)
"""How long an `unwanted` push reaction is kept: the gate's 30 days and a day's margin."""
ALLOWED_PUSH_MEMORY = timedelta(days=8)
"""How long an allowed offer or advice push is never pruned: the frequency rule's 7 days and a
day's margin (for decisions slightly behind the latest event)."""
RENEGED_OFFER_MEMORY = timedelta(days=31)
"""How long a reneged offer is never pruned: the open-breaches rule's 30 days and a day's margin."""
DECLINED_OFFER_MEMORY = timedelta(days=31)
"""How long a declined offer is never pruned: the frequency rule's 30 days of declines (for a
policy that counts them) and a day's margin."""
ERASED = "[erased]"
"""What a personal field reads as once the customer is erased (their key destroyed)."""


@lru_cache(maxsize=65536)
def relationship_id(brand: str, customer: str) -> UUID:
    """The stable id of a brand x customer relationship (kept for the customers seen lately:
    a batch asks for each several times)."""
    return uuid5(NAMESPACE, json.dumps(["relationship", brand, customer]))


@dataclass(frozen=True)
class Envelope:
    """What every posted event carries besides its data."""

    event_id: str
    occurred_at: datetime
    actor: str | None = None
    channel: str | None = None


def _require_expiry_after(env: Envelope, expires_at: datetime | None) -> None:
    """An offer's or a consent's expiry comes after the event that makes it: one at or before
    it would read expired from the start, which no CRM means to say."""
    if expires_at is None:
        return
    if expires_at.tzinfo is None:  # compared with occurred_at, which has an offset
        raise RejectedEvent("expires_at needs a UTC offset", field="expires_at")
    if expires_at <= env.occurred_at:
        raise RejectedEvent(
            f"expires_at ({expires_at.isoformat()}) must be after occurred_at"
            f" ({env.occurred_at.isoformat()}): it would have expired before it began",
            field="expires_at",
        )


@dataclass(frozen=True)
class PostedEvent:
    """One event as a brand posts it, its data already parsed into Python values."""

    event_id: str
    type: str
    customer: str
    occurred_at: datetime
    actor: str | None = None
    channel: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def envelope(self) -> Envelope:
        return Envelope(self.event_id, self.occurred_at, self.actor, self.channel)

    def canonical(self) -> bytes:
        """The content in one canonical form, to fingerprint (with the customer key: see Ledger)."""
        content = {
            "type": self.type,
            "customer": self.customer,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "channel": self.channel,
            "data": self.data,
        }
        canonical = json.dumps(content, sort_keys=True, default=_canonical, separators=(",", ":"))
        return canonical.encode()


def _simple(value: Any) -> Any:
    """The value with datetimes as RFC 3339 strings, for JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _simple(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_simple(v) for v in value]
    return value


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


class Interaction(Aggregate.Event):
    """Base of every event of the catalogue: the envelope; subclasses add their data."""

    TYPE: ClassVar[str] = ""
    PERSONAL: ClassVar[tuple[str, ...]] = ("actor",)
    """Fields that identify or describe the person: encrypted at rest, masked after erasure."""

    event_id: str
    occurred_at: datetime
    actor: str | None
    channel: str | None

    @classmethod
    def data_fields(cls) -> tuple[str, ...]:
        return _data_fields(cls)

    @classmethod
    def required_fields(cls) -> tuple[str, ...]:
        return _required_fields(cls)

    @property
    def data(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.data_fields()}

    @property
    def recorded_at(self) -> datetime:
        return self.timestamp

    def as_dict(self) -> dict[str, Any]:
        """The event in simple types (timestamps as RFC 3339 strings), as operators and the API show it."""
        return {
            "event_id": self.event_id,
            "type": self.TYPE,
            "sequence": self.originator_version,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.timestamp.isoformat(),
            "actor": self.actor,
            "channel": self.channel,
            "data": _simple(self.data),
        }

    def apply(self, relationship: Relationship) -> None:
        relationship.note(self)
        self.fold(relationship)

    def fold(self, relationship: Relationship) -> None:
        """This event's effect on the relationship's state; most events only count."""


@cache
def _data_fields(cls: type[Interaction]) -> tuple[str, ...]:
    skip = {*ENVELOPE, "originator_id", "originator_version", "timestamp"}
    return tuple(f.name for f in fields(cls) if f.name not in skip)


@cache
def _required_fields(cls: type[Interaction]) -> tuple[str, ...]:
    optional = {f.name for f in fields(cls) if "None" in str(f.type)}
    return tuple(name for name in _data_fields(cls) if name not in optional)


CATALOGUE: dict[str, type[Interaction]] = {}
I = TypeVar("I", bound=type[Interaction])  # noqa: E741


def interaction(type_: str, *, personal: tuple[str, ...] = ()) -> Callable[[I], I]:
    """Registers an event class under its catalogue type, with a topic that never moves."""

    def register(cls: I) -> I:
        cls.TYPE = type_
        cls.TOPIC = f"trustledger:{type_}"  # type: ignore[attr-defined]
        cls.PERSONAL = ("actor", *personal)
        register_topic(cls.TOPIC, cls)  # type: ignore[attr-defined]
        CATALOGUE[type_] = cls
        return cls

    return register


# --- promises -------------------------------------------------------------------------------


@interaction("promise.made", personal=("summary",))
class PromiseMade(Interaction):
    promise_id: str
    summary: str
    due_at: datetime

    def fold(self, relationship: Relationship) -> None:
        relationship.open_item("promise", self.promise_id, self, due_at=self.due_at)


@interaction("promise.kept")
class PromiseKept(Interaction):
    promise_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("promise", self.promise_id, self, "kept")


@interaction("promise.broken", personal=("reason",))
class PromiseBroken(Interaction):
    promise_id: str
    reason: str | None

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("promise", self.promise_id, self, "broken")


@interaction("promise.released", personal=("reason",))
class PromiseReleased(Interaction):
    promise_id: str
    reason: str | None

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("promise", self.promise_id, self, "released")


# --- offers ---------------------------------------------------------------------------------


@interaction("offer.made", personal=("summary",))
class OfferMade(Interaction):
    offer_id: str
    summary: str
    expires_at: datetime | None
    claims: list[str] | None

    def fold(self, relationship: Relationship) -> None:
        relationship.open_item("offer", self.offer_id, self, expires_at=self.expires_at)


@interaction("offer.accepted")
class OfferAccepted(Interaction):
    offer_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.mark_item("offer", self.offer_id, self, "accepted")


@interaction("offer.declined")
class OfferDeclined(Interaction):
    offer_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("offer", self.offer_id, self, "declined")


@interaction("offer.honored")
class OfferHonored(Interaction):
    offer_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("offer", self.offer_id, self, "honored")


@interaction("offer.reneged", personal=("reason",))
class OfferReneged(Interaction):
    offer_id: str
    reason: str

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("offer", self.offer_id, self, "reneged")


# --- errors ---------------------------------------------------------------------------------


@interaction("error.admitted", personal=("summary",))
class ErrorAdmitted(Interaction):
    error_id: str
    summary: str
    severity: str
    discovered_by: str

    def fold(self, relationship: Relationship) -> None:
        if self.error_id in relationship.items["error"]:
            relationship.close_item("error", self.error_id, self, "admitted")
        else:
            relationship.open_item("error", self.error_id, self)
            relationship.close_item("error", self.error_id, self, "admitted")


@interaction("error.reported", personal=("summary", "reported_by"))
class ErrorReported(Interaction):
    error_id: str
    summary: str
    reported_by: str

    def fold(self, relationship: Relationship) -> None:
        relationship.open_item("error", self.error_id, self)


@interaction("error.disputed", personal=("reason",))
class ErrorDisputed(Interaction):
    error_id: str
    reason: str

    def fold(self, relationship: Relationship) -> None:
        relationship.mark_item("error", self.error_id, self, "disputed")


@interaction("error.confirmed", personal=("by",))
class ErrorConfirmed(Interaction):
    error_id: str
    by: str

    def fold(self, relationship: Relationship) -> None:
        relationship.mark_item("error", self.error_id, self, "confirmed")


@interaction("error.withdrawn")
class ErrorWithdrawn(Interaction):
    error_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("error", self.error_id, self, "withdrawn")


# --- support: questions, cases, advice ------------------------------------------------------


@interaction("question.answered")
class QuestionAnswered(Interaction):
    case_id: str
    topic: str
    resolved: bool
    rating: int | None

    def fold(self, relationship: Relationship) -> None:
        relationship.remember_item("case", self.case_id, self, "answered")


@interaction("case.reopened")
class CaseReopened(Interaction):
    case_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.remember_item("case", self.case_id, self, "reopened")


@interaction("advice.given", personal=("summary",))
class AdviceGiven(Interaction):
    advice_id: str
    topic: str
    summary: str

    def fold(self, relationship: Relationship) -> None:
        relationship.open_item("advice", self.advice_id, self)


@interaction("advice.rated")
class AdviceRated(Interaction):
    advice_id: str
    helpful: bool

    def fold(self, relationship: Relationship) -> None:
        relationship.close_item("advice", self.advice_id, self, "rated")


# --- consent and preferences ----------------------------------------------------------------


@interaction("consent.granted")
class ConsentGranted(Interaction):
    purpose: str
    channels: list[str]
    data_categories: list[str]
    notice_version: str
    method: str
    expires_at: datetime | None
    jurisdiction: str | None

    def fold(self, relationship: Relationship) -> None:
        terms = {
            "status": "granted",
            "data_categories": list(self.data_categories),
            "notice_version": self.notice_version,
            "method": self.method,
            "expires_at": self.expires_at,
            "jurisdiction": self.jurisdiction,
            "since": self.occurred_at,
            "event_id": self.event_id,
        }
        relationship.grant(self.purpose, self.channels, terms)


@interaction("consent.withdrawn")
class ConsentWithdrawn(Interaction):
    purpose: str
    channels: list[str] | None

    def fold(self, relationship: Relationship) -> None:
        if self.purpose == EVERY_PURPOSE:
            relationship.object_to_all(self, self.channels)
        relationship.withdraw(self.purpose, self.channels, self)


@interaction("preferences.updated")
class PreferencesUpdated(Interaction):
    timezone: str | None
    quiet_hours: dict[str, str] | None

    def fold(self, relationship: Relationship) -> None:
        for name in PREFERENCES:
            value = getattr(self, name)
            if value is not None:
                relationship.set_preference(
                    name, dict(value) if name == "quiet_hours" else value, self
                )


# --- pushes ---------------------------------------------------------------------------------


@interaction("push.decided", personal=("request.customer",))
class PushDecided(Interaction):
    """Written by the gate, never posted: the decision, its reasons and the policy version."""

    push_id: str
    request: dict[str, Any]
    decision: dict[str, Any]

    def fold(self, relationship: Relationship) -> None:
        # A push sent before it was asked about stays "sent", so its feedback is still accepted.
        known = relationship.items["push"].get(self.push_id, {})
        relationship.remember_item(
            "push",
            self.push_id,
            self,
            "sent" if known.get("status") == "sent" else "decided",
            outcome=self.decision.get("outcome"),
            purpose=self.request.get("purpose"),
            channel=self.request.get("channel"),
            push_kind=self.request.get("kind"),
            retry_after=self.decision.get("retry_after"),
            decided_at=self.occurred_at,
            decided_by=self.event_id,
            decision_sequence=self.originator_version,
        )


@interaction("push.sent")
class PushSent(Interaction):
    push_id: str

    def fold(self, relationship: Relationship) -> None:
        relationship.remember_item("push", self.push_id, self, "sent", sent_channel=self.channel)


@interaction("push.feedback")
class PushFeedback(Interaction):
    push_id: str
    reaction: str

    def fold(self, relationship: Relationship) -> None:
        if self.reaction == "unwanted":
            relationship.note_unwanted(self)
        if self.reaction != "unsubscribed":
            return
        push = relationship.items["push"][self.push_id]
        channel = push.get("sent_channel") or push.get("channel")  # the one it came by
        # A push of no purpose (sent without a decision): every purpose, as its receipt says,
        # kept so that a grant posted after it, dated before it, is withdrawn by it too.
        purpose = push.get("purpose") or EVERY_PURPOSE
        relationship.withdraw(purpose, [channel] if channel else None, self)


# --- the aggregate --------------------------------------------------------------------------

OPEN = ("open", "accepted", "disputed", "confirmed")
"""States of an item that is still open: never forgotten, since its deadline still counts."""
KINDS = ("promise", "offer", "error", "case", "advice", "push")


class Relationship(Aggregate, created_event_name="Opened"):
    """One brand x one customer: the stream every interaction of the pair is recorded on."""

    TOPIC = "trustledger:relationship"
    PERSONAL: ClassVar[tuple[str, ...]] = ("customer",)
    """State that identifies the person: encrypted in snapshots, masked after erasure."""
    erased: dict[str, Any] | None = None
    """Who erased the customer, when and why; None while they are not erased."""
    granted_at: datetime | None = None
    """The event time of the latest consent granted (for any purpose): an objection dated before
    it was lifted by it. (A class default: snapshots taken before it was kept lack it.)"""
    withdrawals: Sequence[dict[str, Any]] = ()
    """The latest withdrawal of each (purpose or "*", channels or None) that names every purpose
    or every channel: a grant posted late, dated before one that covers it, is withdrawn by it,
    even on a purpose or channel the withdrawal did not know. (A class default, as above.)"""
    objections: Sequence[dict[str, Any]] | None = None
    """The standing objections (withdrawals of "*" no grant dated after has lifted), the latest
    for each set of channels named (`channels` None: every channel), each with `since`,
    `event_id` and `sequence`. None in snapshots taken before objections were kept by channel:
    `objection`, the one standing objection then, is read for them."""
    objection: dict[str, Any] | None = None
    """The one standing objection of snapshots taken before `objections` (a class default)."""
    preference_history: Mapping[str, Sequence[dict[str, Any]]] | None = None
    """Each preference's settings in event time, oldest first (`at`, `sequence`, `value`,
    `event_id`), so the gate reads those in force at its decision time (`preferences_at`).
    None in snapshots taken before: their `preferences` count as set since EARLIEST."""

    Snapshot = RelationshipSnapshot
    """Its items in columns (domain/snapshots.py); those written before read as they were."""

    class Event(Aggregate.Event):
        TOPIC = "trustledger:relationship.event"

    class Opened(Aggregate.Created):
        TOPIC = "trustledger:relationship.opened"
        PERSONAL = ("customer",)
        brand: str
        customer: str

    class Erased(Event):
        """The customer's key was destroyed: who asked, and why. Holds nothing personal itself."""

        TOPIC = "trustledger:relationship.erased"
        requested_by: str
        reason: str

        def apply(self, relationship: Relationship) -> None:
            relationship.customer = ERASED
            relationship.erased = {
                "at": self.timestamp,
                "requested_by": self.requested_by,
                "reason": self.reason,
                "sequence": self.originator_version,
            }

    @staticmethod
    def create_id(brand: str, customer: str) -> UUID:
        return relationship_id(brand, customer)

    def __init__(self, brand: str, customer: str) -> None:
        self.brand = brand
        self.customer = customer
        self.items: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.consents: dict[str, dict[str, dict[str, Any]]] = {}
        self.objections = []
        self.granted_at = None
        self.withdrawals = []
        self.preferences: dict[str, Any] = {}
        """Each preference as set by the latest setting in event time."""
        self.preferences_by: dict[str, str] = {}
        """The event id that set each preference, for the gate's evidence."""
        self.preference_history = {}
        self.unwanted: list[dict[str, Any]] = []
        """`unwanted` push reactions of the last UNWANTED_MEMORY of event time, oldest first."""
        self.counts: dict[str, int] = {}
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self._prune_at: dict[str, int] = {}
        self.evidence: dict[str, Any] = trust_model.empty_evidence()
        """Trust evidence, kept incrementally in plain JSON values (see trust.empty_evidence)."""

    # --- commands: each guards its rule, then records its event -----------------------------

    def record(self, posted: PostedEvent) -> None:
        """Records one posted event through the command of its type."""
        self.require_not_erased()
        cls = CATALOGUE.get(posted.type)
        if cls is None or cls is PushDecided:
            raise RejectedEvent(f"unknown event type {posted.type!r}", field="type")
        unknown = sorted(set(posted.data) - set(cls.data_fields()))
        if unknown:
            raise RejectedEvent(
                f"unknown data field(s) for {cls.TYPE}: {', '.join(unknown)}", field="data"
            )
        missing = [name for name in cls.required_fields() if posted.data.get(name) is None]
        if missing:
            raise RejectedEvent(
                f"missing data field(s) for {cls.TYPE}: {', '.join(missing)}", field="data"
            )
        if _holds_nul(posted):
            raise RejectedEvent("text may not contain NUL characters", field="data")
        data = {name: posted.data.get(name) for name in cls.data_fields()}
        COMMANDS[cls](self, posted.envelope, **data)

    def make_promise(self, env: Envelope, promise_id: str, summary: str, due_at: datetime) -> None:
        self._require_new("promise", promise_id)
        if due_at.tzinfo is None:  # trust compares it with occurred_at, which has an offset
            raise RejectedEvent("due_at needs a UTC offset", field="due_at")
        self._trigger(PromiseMade, env, promise_id=promise_id, summary=summary, due_at=due_at)

    def keep_promise(self, env: Envelope, promise_id: str) -> None:
        self._require_open("promise", promise_id)
        self._trigger(PromiseKept, env, promise_id=promise_id)

    def break_promise(self, env: Envelope, promise_id: str, reason: str | None = None) -> None:
        self._require_open("promise", promise_id)
        self._trigger(PromiseBroken, env, promise_id=promise_id, reason=reason)

    def release_promise(self, env: Envelope, promise_id: str, reason: str | None = None) -> None:
        self._require_open("promise", promise_id)
        self._trigger(PromiseReleased, env, promise_id=promise_id, reason=reason)

    def make_offer(
        self,
        env: Envelope,
        offer_id: str,
        summary: str,
        expires_at: datetime | None = None,
        claims: list[str] | None = None,
    ) -> None:
        self._require_new("offer", offer_id)
        _require_expiry_after(env, expires_at)
        self._trigger(
            OfferMade, env, offer_id=offer_id, summary=summary, expires_at=expires_at, claims=claims
        )

    def accept_offer(self, env: Envelope, offer_id: str) -> None:
        self._require_open("offer", offer_id, statuses=("open",))
        self._trigger(OfferAccepted, env, offer_id=offer_id)

    def decline_offer(self, env: Envelope, offer_id: str) -> None:
        self._require_open("offer", offer_id, statuses=("open",))
        self._trigger(OfferDeclined, env, offer_id=offer_id)

    def honor_offer(self, env: Envelope, offer_id: str) -> None:
        self._require_open("offer", offer_id)
        self._trigger(OfferHonored, env, offer_id=offer_id)

    def renege_offer(self, env: Envelope, offer_id: str, reason: str) -> None:
        self._require_open("offer", offer_id)
        self._trigger(OfferReneged, env, offer_id=offer_id, reason=reason)

    def admit_error(
        self, env: Envelope, error_id: str, summary: str, severity: str, discovered_by: str
    ) -> None:
        _require_choice("severity", severity, SEVERITIES)
        _require_choice("discovered_by", discovered_by, DISCOVERERS)
        known = self.items["error"].get(error_id)
        if known is not None and known["status"] not in OPEN:
            raise DuplicateReference(
                f"error {error_id!r} is already {known['status']}", field="error_id"
            )
        self._trigger(
            ErrorAdmitted,
            env,
            error_id=error_id,
            summary=summary,
            severity=severity,
            discovered_by=discovered_by,
        )

    def report_error(self, env: Envelope, error_id: str, summary: str, reported_by: str) -> None:
        self._require_new("error", error_id)
        self._trigger(
            ErrorReported, env, error_id=error_id, summary=summary, reported_by=reported_by
        )

    def dispute_error(self, env: Envelope, error_id: str, reason: str) -> None:
        self._require_open("error", error_id, statuses=("open",))
        self._trigger(ErrorDisputed, env, error_id=error_id, reason=reason)

    def confirm_error(self, env: Envelope, error_id: str, by: str) -> None:
        self._require_open("error", error_id, statuses=("open", "disputed"))
        self._trigger(ErrorConfirmed, env, error_id=error_id, by=by)

    def withdraw_error(self, env: Envelope, error_id: str) -> None:
        self._require_open("error", error_id)
        self._trigger(ErrorWithdrawn, env, error_id=error_id)

    def answer_question(
        self, env: Envelope, case_id: str, topic: str, resolved: bool, rating: int | None = None
    ) -> None:
        if rating is not None and not 1 <= rating <= 5:
            raise RejectedEvent("rating must be from 1 to 5", field="rating")
        self._trigger(
            QuestionAnswered, env, case_id=case_id, topic=topic, resolved=resolved, rating=rating
        )

    def reopen_case(self, env: Envelope, case_id: str) -> None:
        if case_id not in self.items["case"]:
            raise UnknownReference(f"case {case_id!r} was never answered", field="case_id")
        self._trigger(CaseReopened, env, case_id=case_id)

    def give_advice(self, env: Envelope, advice_id: str, topic: str, summary: str) -> None:
        self._require_new("advice", advice_id)
        self._trigger(AdviceGiven, env, advice_id=advice_id, topic=topic, summary=summary)

    def rate_advice(self, env: Envelope, advice_id: str, helpful: bool) -> None:
        self._require_open("advice", advice_id)
        self._trigger(AdviceRated, env, advice_id=advice_id, helpful=helpful)

    def grant_consent(
        self,
        env: Envelope,
        purpose: str,
        channels: list[str],
        data_categories: list[str],
        notice_version: str,
        method: str,
        expires_at: datetime | None = None,
        jurisdiction: str | None = None,
    ) -> None:
        if purpose == EVERY_PURPOSE:
            raise RejectedEvent("consent is granted for one purpose, not '*'", field="purpose")
        if not channels:
            raise RejectedEvent("consent needs at least one channel", field="channels")
        _require_expiry_after(env, expires_at)
        self._trigger(
            ConsentGranted,
            env,
            purpose=purpose,
            channels=list(channels),
            data_categories=list(data_categories),
            notice_version=notice_version,
            method=method,
            expires_at=expires_at,
            jurisdiction=jurisdiction,
        )

    def withdraw_consent(
        self, env: Envelope, purpose: str, channels: list[str] | None = None
    ) -> None:
        if purpose != EVERY_PURPOSE:
            granted = self.consents.get(purpose)
            if not granted:
                raise UnknownReference(
                    f"consent for {purpose!r} was never granted", field="purpose"
                )
            unknown = sorted(set(channels or ()) - set(granted))
            if unknown:
                raise UnknownReference(
                    f"consent for {purpose!r} was never granted on {', '.join(unknown)}",
                    field="channels",
                )
        self._trigger(
            ConsentWithdrawn, env, purpose=purpose, channels=list(channels) if channels else None
        )

    def update_preferences(
        self, env: Envelope, timezone: str | None = None, quiet_hours: dict[str, str] | None = None
    ) -> None:
        if timezone is None and quiet_hours is None:
            raise RejectedEvent("preferences.updated needs timezone or quiet_hours", field="data")
        self._trigger(PreferencesUpdated, env, timezone=timezone, quiet_hours=quiet_hours)

    def record_push_sent(self, env: Envelope, push_id: str) -> None:
        self._trigger(PushSent, env, push_id=push_id)

    def record_push_feedback(self, env: Envelope, push_id: str, reaction: str) -> None:
        _require_choice("reaction", reaction, REACTIONS)
        if self.items["push"].get(push_id, {}).get("status") != "sent":
            raise UnknownReference(f"push {push_id!r} was never sent", field="push_id")
        self._trigger(PushFeedback, env, push_id=push_id, reaction=reaction)

    def record_push_decision(
        self, env: Envelope, push_id: str, request: dict[str, Any], decision: dict[str, Any]
    ) -> None:
        """The gate's own command: not reachable through :meth:`record`."""
        self._trigger(PushDecided, env, push_id=push_id, request=request, decision=decision)

    # --- trust: the scores, evaluated at a time the caller gives -----------------------------

    def trust(
        self,
        at: datetime,
        base_rates: Mapping[str, float] | None = None,
        half_life: timedelta | None = trust_model.HALF_LIFE,
    ) -> trust_model.Scores:
        """Each dimension's opinion and top events at event time `at`, and the overall score.

        `base_rates` are the brand's own P per dimension (0.5 where missing). The evidence is kept
        decayed at one half-life: for another one, :func:`refold` the relationship's events first.
        """
        kept = trust_model.half_life_of(self.evidence)
        if kept != half_life:
            raise ValueError(f"evidence is kept at half-life {kept}, not {half_life}: refold it")
        derived = trust_model.derived_evidence(self.items, at)
        return trust_model.scores(self.evidence, at, base_rates, derived)

    def erase(self, requested_by: str, reason: str) -> None:
        """Records the erasure of the customer; the ledger then destroys their key."""
        self.require_not_erased()
        self.trigger_event(self.Erased, requested_by=requested_by, reason=reason)

    # --- guards ------------------------------------------------------------------------------

    def require_not_erased(self) -> None:
        if self.erased is not None:
            raise CustomerErased(
                f"the customer was erased at {self.erased['at'].isoformat()}:"
                " nothing more is recorded for them"
            )

    def _require_new(self, kind: str, item_id: str) -> None:
        known = self.items[kind].get(item_id)
        if known is not None:
            raise DuplicateReference(
                f"{kind} {item_id!r} already exists ({known['status']})", field=f"{kind}_id"
            )

    def _require_open(self, kind: str, item_id: str, statuses: tuple[str, ...] = OPEN) -> None:
        known = self.items[kind].get(item_id)
        if known is None:
            verb = "given" if kind == "advice" else "made" if kind != "error" else "reported"
            raise UnknownReference(f"{kind} {item_id!r} was never {verb}", field=f"{kind}_id")
        if known["status"] not in statuses:
            raise UnknownReference(
                f"{kind} {item_id!r} is already {known['status']}", field=f"{kind}_id"
            )

    def _trigger(self, cls: type[Interaction], env: Envelope, **data: Any) -> None:
        self.require_not_erased()
        if env.occurred_at.tzinfo is None:
            raise RejectedEvent("occurred_at needs a UTC offset", field="occurred_at")
        if env.occurred_at > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise RejectedEvent(
                "occurred_at is more than 5 minutes in the future", field="occurred_at"
            )
        if env.occurred_at < EARLIEST:
            raise RejectedEvent("occurred_at is before 1970", field="occurred_at")
        self.trigger_event(
            cls,
            event_id=env.event_id,
            occurred_at=env.occurred_at,
            actor=env.actor,
            channel=env.channel,
            **data,
        )

    # --- the fold: called by the events as they are applied ----------------------------------

    def note(self, event: Interaction) -> None:
        pieces = self.evidence_of(event)
        if pieces:
            self.evidence = trust_model.with_pieces(self.evidence, pieces)
        self.counts[event.TYPE] = self.counts.get(event.TYPE, 0) + 1
        if self.first_at is None or event.occurred_at < self.first_at:
            self.first_at = event.occurred_at
        if self.last_at is None or event.occurred_at > self.last_at:
            self.last_at = event.occurred_at

    def evidence_of(self, event: Interaction) -> list[trust_model.Piece]:
        """The trust evidence the event carries, judged by the promise or error it refers to.

        Called before the event's fold, so the item is as it was before (e.g. still disputed).
        """
        if not trust_model.carries_evidence(event.TYPE):
            return []
        kind = event.TYPE.split(".")[0]
        item = self.items.get(kind, {}).get(getattr(event, f"{kind}_id", ""))
        return trust_model.evidence_of(
            event.TYPE, event.event_id, event.occurred_at, event.data, item
        )

    def open_item(self, kind: str, item_id: str, event: Interaction, **info: Any) -> None:
        self.items[kind][item_id] = {
            "status": "open",
            "opened_at": event.occurred_at,
            "at": event.occurred_at,
            "event_id": event.event_id,
            **info,
        }

    def mark_item(self, kind: str, item_id: str, event: Interaction, status: str) -> None:
        self.items[kind][item_id] = {
            **self.items[kind][item_id],
            "status": status,
            "at": event.occurred_at,
            f"{status}_by": event.event_id,
        }

    def close_item(self, kind: str, item_id: str, event: Interaction, status: str) -> None:
        self.mark_item(kind, item_id, event, status)
        self._forget_old(kind)

    def remember_item(
        self, kind: str, item_id: str, event: Interaction, status: str, **info: Any
    ) -> None:
        self.items[kind][item_id] = {
            "opened_at": event.occurred_at,
            **self.items[kind].get(item_id, {}),
            "status": status,
            "at": event.occurred_at,
            "event_id": event.event_id,
            **info,
        }
        self._forget_old(kind)

    # Consent is folded in event time: on each purpose and channel the latest act the customer
    # made holds, whatever order the brand posted the acts in (a CRM syncing late must not revive
    # a consent withdrawn after it). Ties in event time go to the act recorded later.

    def grant(self, purpose: str, channels: list[str], terms: dict[str, Any]) -> None:
        """A grant on each channel not decided by a later act; withdrawn at once by a later
        withdrawal that covers it; lifting an objection made before it."""
        at = terms["since"]
        granted = self.consents.setdefault(purpose, {})
        for channel in channels:
            known = granted.get(channel)
            if known is not None and known["since"] > at:
                continue
            later = _latest_covering(self.withdrawals, purpose, channel, after=at)
            granted[channel] = terms if later is None else {**terms, **_withdrawn_by(later)}
        standing = self.standing_objections()
        if any(o["since"] <= at for o in standing):
            self.objections = [o for o in standing if o["since"] > at]
        if self.granted_at is None or at > self.granted_at:
            self.granted_at = at

    def object_to_all(self, event: Interaction, channels: list[str] | None) -> None:
        """An objection (on the channels named, else on every one) stands unless a consent was
        granted after it, in event time; it replaces an earlier one on the same channels."""
        at = event.occurred_at
        if self.granted_at is not None and self.granted_at > at:
            return
        covers = sorted(set(channels)) if channels else None
        standing = self.standing_objections()
        kept = [o for o in standing if o["channels"] == covers]
        if kept and kept[0]["since"] > at:
            return
        entry = {"event_id": event.event_id, "since": at, "channels": covers}
        entry["sequence"] = event.originator_version
        self.objections = [*(o for o in standing if o not in kept), entry]  # a new list, as below

    def standing_objections(self) -> list[dict[str, Any]]:
        """The objections standing (a snapshot's from before they were kept by channel: its one
        objection, on the channels its withdrawal named)."""
        if self.objections is not None:
            return list(self.objections)
        if self.objection is None:
            return []
        event_id = self.objection["event_id"]
        named = [w["channels"] for w in self.withdrawals if w["event_id"] == event_id]
        return [{**self.objection, "channels": named[0] if named else None, "sequence": 0}]

    def objection_on(self, channel: str) -> dict[str, Any] | None:
        """The standing objection that covers the channel: the latest in event time (then in
        record order), if several do. A withdrawal of "*" on some channels objects on those only."""
        covering = [
            o
            for o in self.standing_objections()
            if o["channels"] is None or channel in o["channels"]
        ]
        return max(covering, key=lambda o: (o["since"], o["sequence"]), default=None)

    def withdraw(self, purpose: str, channels: list[str] | None, event: Interaction) -> None:
        at = event.occurred_at
        purposes = list(self.consents) if purpose == EVERY_PURPOSE else [purpose]
        for name in purposes:
            granted = self.consents.get(name, {})
            for channel in channels or list(granted):
                if channel in granted and granted[channel]["since"] <= at:
                    granted[channel] = {**granted[channel], **_withdrawn_by(event)}
        self._remember_withdrawal(purpose, channels, event)

    def _remember_withdrawal(
        self, purpose: str, channels: list[str] | None, event: Interaction
    ) -> None:
        """Keeps the latest withdrawal of every purpose or of every channel, one per (purpose,
        channels): bounded by their distinct sets. A withdrawal of named channels of one purpose
        is kept on those channels' consents; on a channel with none (an unsubscribe from a push
        on a channel never consented to), it is kept here, on those channels alone."""
        if purpose != EVERY_PURPOSE and channels:
            granted = self.consents.get(purpose, {})
            channels = [channel for channel in channels if channel not in granted]
            if not channels:
                return
        covers = sorted(set(channels)) if channels else None
        kept = [w for w in self.withdrawals if (w["purpose"], w["channels"]) == (purpose, covers)]
        if kept and kept[0]["since"] > event.occurred_at:
            return
        entry = {"purpose": purpose, "channels": covers, **_withdrawn_by(event)}
        others = [w for w in self.withdrawals if w not in kept]
        self.withdrawals = [*others, entry]  # a new list: copies of the aggregate share it

    def set_preference(self, name: str, value: Any, event: Interaction) -> None:
        """A setting of one preference, kept in event time (ties: the one recorded later); the
        latest is `preferences[name]`. Settings superseded more than MEMORY before the latest
        event, and all but the newest MEMORY_ITEMS, are forgotten."""
        setting = {"at": event.occurred_at, "sequence": event.originator_version}
        setting |= {"value": value, "event_id": event.event_id}
        history = self._preference_history()
        settings = sorted([*history.get(name, ()), setting], key=_in_event_time)
        horizon = (self.last_at or event.occurred_at) - MEMORY
        superseded = [n for n, s in enumerate(settings[1:]) if s["at"] < horizon]
        settings = settings[superseded[-1] + 1 if superseded else 0 :][-MEMORY_ITEMS:]
        self.preference_history = {**history, name: settings}  # a new dict: copies share it
        self.preferences[name] = settings[-1]["value"]
        self.preferences_by[name] = settings[-1]["event_id"]

    def preferences_at(self, at: datetime) -> tuple[dict[str, Any], dict[str, str]]:
        """The preferences in force at event time `at` (the latest setting of each at or before
        it), and the event that set each."""
        values, set_by = {}, {}
        for name, settings in self._preference_history().items():
            dated = [s for s in settings if s["at"] <= at]
            if dated:
                values[name], set_by[name] = dated[-1]["value"], dated[-1]["event_id"]
        return values, set_by

    def _preference_history(self) -> Mapping[str, Sequence[dict[str, Any]]]:
        if self.preference_history is not None:
            return self.preference_history
        return {  # a snapshot from before the history: its preferences, undated
            name: [
                {
                    "at": EARLIEST,
                    "sequence": 0,
                    "value": value,
                    "event_id": self.preferences_by.get(name),
                }
            ]
            for name, value in self.preferences.items()
        }

    def __deepcopy__(self, memo: dict[int, Any]) -> Relationship:
        """A copy that shares no mutable state with this one, made in O(kinds + items).

        The repository hands out a copy of its cached relationship for every command; a real
        deepcopy of a long relationship's state would cost more than the command. The fold never
        changes an item, consent or evidence dict in place (it replaces them), so copying the
        containers suffices.
        """
        copy = object.__new__(type(self))
        state = dict(self.__dict__)
        state["items"] = {kind: dict(items) for kind, items in self.items.items()}
        state["consents"] = {purpose: dict(channels) for purpose, channels in self.consents.items()}
        for name in ("preferences", "preferences_by", "counts", "_prune_at"):
            state[name] = dict(state[name])
        state["unwanted"] = list(self.unwanted)
        state["_pending_events"] = list(self._pending_events)
        copy.__dict__.update(state)
        return copy

    def note_unwanted(self, event: Interaction) -> None:
        """Keeps an `unwanted` reaction for the frequency rule, dropping those too old to count."""
        self.unwanted.append({"at": event.occurred_at, "event_id": event.event_id})
        self.unwanted.sort(key=lambda reaction: reaction["at"])
        horizon = (self.last_at or event.occurred_at) - UNWANTED_MEMORY
        self.unwanted = [reaction for reaction in self.unwanted if reaction["at"] >= horizon]

    def declines(self) -> list[tuple[datetime, str]]:
        """(event time, event id) of each `offer.declined` the relationship still holds, oldest
        first (ties by event id, however the state was folded), for the frequency rule.

        Read from the declined offers, which every relationship kept before the rule counted
        declines, so snapshots taken before read theirs; those of the last DECLINED_OFFER_MEMORY
        are never pruned by count (`_gate_counts`).
        """
        return sorted(
            (offer["at"], offer["declined_by"])
            for offer in self.items["offer"].values()
            if offer["status"] == "declined"
        )

    def _forget_old(self, kind: str) -> None:
        """Drops closed items older than MEMORY, and all but the newest MEMORY_ITEMS closed ones.

        Runs only when the map has doubled since it last ran, so it costs O(1) per event amortised.
        """
        items = self.items[kind]
        if len(items) < self._prune_at.get(kind, 2 * MEMORY_ITEMS) or self.last_at is None:
            return
        horizon = self.last_at - MEMORY
        closed = [
            i
            for i, item in items.items()
            if item["status"] not in OPEN and not _gate_counts(kind, item, self.last_at)
        ]
        surplus = len(closed) - MEMORY_ITEMS
        for n, item_id in enumerate(closed):
            if n < surplus or items[item_id]["at"] < horizon:
                del items[item_id]
        self._prune_at[kind] = max(2 * MEMORY_ITEMS, 2 * len(items))


def _in_event_time(setting: Mapping[str, Any]) -> tuple[datetime, int]:
    return setting["at"], setting["sequence"]


def _withdrawn_by(event: Interaction | Mapping[str, Any]) -> dict[str, Any]:
    """What a withdrawal makes of a consent: withdrawn, since the withdrawal, with it as evidence."""
    if isinstance(event, Mapping):
        return {"status": "withdrawn", "since": event["since"], "event_id": event["event_id"]}
    return {"status": "withdrawn", "since": event.occurred_at, "event_id": event.event_id}


def _latest_covering(
    withdrawals: Iterable[Mapping[str, Any]], purpose: str, channel: str, after: datetime
) -> Mapping[str, Any] | None:
    """The latest withdrawal dated after `after` that covers the purpose on the channel."""
    covering = [
        w
        for w in withdrawals
        if w["purpose"] in (purpose, EVERY_PURPOSE)
        and (w["channels"] is None or channel in w["channels"])
        and w["since"] > after
    ]
    return max(covering, key=lambda w: w["since"], default=None)


def consent_ended(
    acts: Iterable[Mapping[str, Any]], purpose: str, channel: str, at: datetime
) -> Mapping[str, Any] | None:
    """What ended the consent on the purpose and channel by event time `at`, if the customer's
    latest act there by then (ties: the one recorded later) was a withdrawal (`ended`
    "withdrawn", at its time) or a grant whose `expires_at` had come (`ended` "expired", at its
    expiry); else None.

    `acts` are the relationship's consent acts: `act` ("granted" or "withdrawn"; others are
    skipped), `purpose` (None or "*": every purpose), `channels` (None: every channel), `at`,
    `sequence`, and a grant's `expires_at`. The same reading as the fold's (`grant`, `withdraw`)
    and the gate's (an expired consent is none), but of any moment, for the findings: an
    objection on the channel withdraws every purpose there, so it is one of these.
    """
    latest: Mapping[str, Any] | None = None
    for act in acts:
        if act["at"] > at or (latest is not None and _later_act(latest, act)):
            continue
        if act["act"] == "granted":
            covers = act["purpose"] == purpose and channel in act["channels"]
        elif act["act"] != "withdrawn":  # not a consent act (a send)
            continue
        else:
            covers = act["purpose"] in (None, EVERY_PURPOSE, purpose)
            covers = covers and (act["channels"] is None or channel in act["channels"])
        if covers:
            latest = act
    if latest is None:
        return None
    if latest["act"] == "withdrawn":
        return {**latest, "ended": "withdrawn", "ended_at": latest["at"]}
    expires = latest.get("expires_at")
    if expires is not None and expires <= at:
        return {**latest, "ended": "expired", "ended_at": expires}
    return None


def _later_act(act: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    return bool((act["at"], act["sequence"]) > (than["at"], than["sequence"]))


def _gate_counts(kind: str, item: Mapping[str, Any], last_at: datetime) -> bool:
    """Whether the push gate still counts this closed item: an offer or advice push it allowed
    in its frequency window, an offer reneged in its 30 days, an offer declined in its 30 days.
    Such items are never pruned by count (they are bounded by the allowance, by what the brand
    reneged on and by the offers declined in a month), or many later decisions or offers would
    make the gate forget them and allow what it must not."""
    if kind == "push":
        return (
            item.get("outcome") == "allow"
            and item.get("push_kind") in ("offer", "advice")
            and item["decided_at"] > last_at - ALLOWED_PUSH_MEMORY
        )
    if kind != "offer":
        return False
    memory = {"reneged": RENEGED_OFFER_MEMORY, "declined": DECLINED_OFFER_MEMORY}
    return item["status"] in memory and item["at"] > last_at - memory[item["status"]]


def masked(type_: str, fields_: Mapping[str, Any]) -> dict[str, Any]:
    """An event's fields (its data, and its actor if given) as they read once the customer is
    erased: each personal field that holds something reads "[erased]", as the mapper shows it."""
    copy: dict[str, Any] = json.loads(json.dumps(fields_, default=str))
    for name in CATALOGUE[type_].PERSONAL:
        _mask(copy, name.split("."))
    return copy


def _mask(values: dict[str, Any], path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if values.get(head) is not None:
            values[head] = ERASED
    elif isinstance(values.get(head), dict):
        _mask(values[head], rest)


def _holds_nul(value: Any) -> bool:
    """Whether any text in the value holds a NUL, which PostgreSQL's text cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, PostedEvent):
        return _holds_nul([value.event_id, value.customer, value.actor, value.channel, value.data])
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def _require_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RejectedEvent(f"{name} must be one of {', '.join(choices)}", field=name)


def refold(events: Iterable[CanMutateAggregate[UUID]], half_life: timedelta | None) -> Relationship:
    """The relationship folded again from all its events, its evidence kept at another half-life.

    For a brand policy whose half-life is not HALF_LIFE, the one relationships keep: O(events).
    """
    relationship: Relationship | None = None
    for event in events:
        relationship = cast(Relationship, event.mutate(relationship))
        if isinstance(event, Relationship.Opened):
            relationship.evidence = trust_model.empty_evidence(half_life)
    if relationship is None:
        raise ValueError("a relationship is refolded from its events, and there are none")
    return relationship


COMMANDS: dict[type[Interaction], Callable[..., None]] = {
    PromiseMade: Relationship.make_promise,
    PromiseKept: Relationship.keep_promise,
    PromiseBroken: Relationship.break_promise,
    PromiseReleased: Relationship.release_promise,
    OfferMade: Relationship.make_offer,
    OfferAccepted: Relationship.accept_offer,
    OfferDeclined: Relationship.decline_offer,
    OfferHonored: Relationship.honor_offer,
    OfferReneged: Relationship.renege_offer,
    ErrorAdmitted: Relationship.admit_error,
    ErrorReported: Relationship.report_error,
    ErrorDisputed: Relationship.dispute_error,
    ErrorConfirmed: Relationship.confirm_error,
    ErrorWithdrawn: Relationship.withdraw_error,
    QuestionAnswered: Relationship.answer_question,
    CaseReopened: Relationship.reopen_case,
    AdviceGiven: Relationship.give_advice,
    AdviceRated: Relationship.rate_advice,
    ConsentGranted: Relationship.grant_consent,
    ConsentWithdrawn: Relationship.withdraw_consent,
    PreferencesUpdated: Relationship.update_preferences,
    PushSent: Relationship.record_push_sent,
    PushFeedback: Relationship.record_push_feedback,
    PushDecided: Relationship.record_push_decision,
}
POSTABLE_TYPES = tuple(t for t, cls in CATALOGUE.items() if cls is not PushDecided)
