"""The domain's own errors: what a caller sent cannot be true, or cannot be recorded now."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger reports to its callers."""


class RejectedEvent(LedgerError):
    """An event breaks a rule of the relationship; nothing was stored."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownReference(RejectedEvent):
    """The event refers to a promise, offer, error, case, advice or push the ledger never saw open."""


class DuplicateReference(RejectedEvent):
    """The event opens something (a promise, an offer, ...) under an id already in use."""


class EventIdConflict(LedgerError):
    """The brand reused one of its event ids for different content."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event_id {event_id!r} was already recorded with other content")
        self.event_id = event_id


class ConcurrencyConflict(LedgerError):
    """Concurrent writers kept changing the relationship; the write was given up after retries."""


class BatchRejected(LedgerError):
    """One or more events of a batch were rejected; nothing of the batch was stored."""

    def __init__(self, errors: dict[int, LedgerError]) -> None:
        first = min(errors)
        super().__init__(
            f"{len(errors)} event(s) rejected, the first at index {first}: {errors[first]}"
        )
        self.errors = errors


class RelationshipNotFound(LedgerError):
    """No relationship for this brand and customer (or it belongs to another brand)."""


class InvalidPolicy(LedgerError):
    """A policy change names an unknown field or a value out of range; no version was made."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PolicyNotFound(LedgerError):
    """The brand's policy has no such version."""


class InvalidPushRequest(LedgerError):
    """A request to the push gate is missing a field or has a wrong value; nothing was decided."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PushIdConflict(LedgerError):
    """The brand used one of its push ids again for another request or another customer: a push
    id names one push, to one customer, from its first decision or send."""

    def __init__(self, push_id: str, sent: bool = False) -> None:
        super().__init__(
            f"push_id {push_id!r} belongs to another customer's push"
            if sent
            else f"push_id {push_id!r} was already decided for another request"
        )
        self.push_id = push_id


class DecisionNotFound(LedgerError):
    """No decision was recorded for this push (or it belongs to another brand)."""


class CustomerErased(RejectedEvent):
    """The customer was erased (crypto-shredded): the ledger records nothing more for them."""

    def __init__(self, message: str = "the customer was erased: nothing more is recorded") -> None:
        super().__init__(message, field="customer")


class MasterKeyError(LedgerError):
    """The master key is missing, malformed, or not the one this database's customer keys need."""


class StoreNotMigrated(LedgerError):
    """The database's tables are at another revision than this version of the ledger needs."""


class StoreMigratedAway(LedgerError):
    """The database was migrated, while this process ran, to a revision other than the one its
    code knows: the process refuses every write from then on (and the reads that would show a
    format it cannot read), until it is replaced by a process of the version that migrated it."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the database was migrated to revision {revision} by another version of Trust"
            " Ledger; restart this process"
        )
        self.revision = revision


class StoreUnavailable(LedgerError):
    """The database cannot be reached, or lost the connection, for now: nothing was stored by
    the call that met it, and the same call later may well succeed."""


class StoreUnanswered(StoreUnavailable):
    """The database took a statement and did not answer it within the statement timeout (a
    frozen server, a network that drops packets): a write it was may yet be carried out when
    the server wakes, so the call's outcome is unknown. Every write is idempotent on a repeat
    (event ids, push ids, a policy, an erasure): the same call again gets the first answer."""
