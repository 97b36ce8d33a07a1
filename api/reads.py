"""The API's reads, behind one seam: a customer's timeline, consents, trust, consent receipts and
export; the brand's trust, its customers by score, and the compliance findings.

They come from the read models of projections/. A read first catches the read models up with
the log (applying whatever is recorded beyond their position, exactly once, as any projection
worker would), so a read right after an acknowledged write always includes it, whether or not
a `trustledger project` worker is running. With a hot standby set (TRUSTLEDGER_REPLICA_URL), the
read is answered from the standby's read models when they hold as much (api/replica.py). A
customer the brand never had, or did not have yet at `as_of`, is not found.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from api.replica import Replica
from domain.application import Ledger
from domain.brand import Policy, policy_version_at
from domain.errors import RelationshipNotFound
from domain.relationship import EVERY_PURPOSE, relationship_id
from domain.storage import Store
from domain.timeouts import STATEMENT_TIMEOUT
from projections import consents as consent_model
from projections import decisions as decision_model
from projections import relationships as relationship_model
from projections import timeline as timeline_model
from projections import trust as trust_model
from projections.db import Database
from projections.paging import ListPage
from projections.runner import Runner
from projections.trust_line import TrustLines


class ReadSide:
    """One process's read models: a runner that catches them up, a connection to read them, and
    one to read them on a hot standby (`replica`), if there is one."""

    def __init__(
        self,
        ledger: Ledger,
        replica: Store | None = None,
        replica_wait: float = 0.5,
        timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.ledger = ledger
        self.runner = Runner(ledger)
        self.db = Database(ledger.store, ledger.customer_keys)
        self.replica: Replica | None = None
        if replica is not None:
            models = [m.name for m in self.runner.models]
            self.replica = Replica(replica, self.db, models, replica_wait, timeout)
        self.trust_lines = TrustLines()
        """The brands' and relationships' lines of the trust charts, folded on as they grow."""
        self._catching_up = threading.Lock()

    def caught_up(self) -> Database:
        """The read models, once they hold everything the log held when this was called: the
        standby's if they hold it in time, else the primary's."""
        with self._catching_up:  # the runner's connection serves one thread at a time
            head = self.runner.head()
            self.runner.run_once(head=head)
        held = self.replica.holding(head) if self.replica is not None else None
        return self.db if held is None else held

    def close(self) -> None:
        self.runner.close()
        self.db.close()
        if self.replica is not None:
            self.replica.close()


def timeline_page(
    reads: ReadSide,
    brand: str,
    customer: str,
    *,
    limit: int,
    cursor: str | None = None,
    types: Collection[str] | None = None,
    as_of: datetime | None = None,
) -> ListPage:
    """One page of the customer's events, newest first, after `cursor` (a `next_cursor`)."""
    db = known(reads, brand, customer, as_of)
    return timeline_model.timeline_page(
        db, brand, customer, limit=limit, cursor=cursor, types=tuple(types or ()), as_of=as_of
    )


def consents(
    reads: ReadSide, brand: str, customer: str, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Every consent per purpose and channel as known at `as_of` (or now); expired ones say so."""
    db = known(reads, brand, customer, as_of)
    return consent_model.consents(db, brand, customer, as_of)


def objections(
    reads: ReadSide, brand: str, customer: str, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """The customer's objections to all offers and advice, as known at `as_of` (or now): the
    gate denies them on the objections' channels whatever the consents say, so every consents
    answer shows them beside them."""
    return consent_model.objections(known(reads, brand, customer, as_of), brand, customer, as_of)


def known(reads: ReadSide, brand: str, customer: str, as_of: datetime | None) -> Database:
    """The caught-up read models, if the brand had this customer (at `as_of`); else not found."""
    db = reads.caught_up()
    if not timeline_model.has_relationship(db, brand, customer, as_of):
        raise RelationshipNotFound(f"no relationship with customer {customer!r}")
    return db


# --- trust ----------------------------------------------------------------------------------------


def customer_trust(
    reads: ReadSide, brand: str, customer: str, *, as_of: datetime | None = None
) -> dict[str, Any]:
    """The relationship's opinion per dimension at `as_of` (or now), on its brand's P then as
    base rate and under the half-life of its policy then: the brand as the ledger knew it at that
    record time, and as the gate reads it."""
    ledger = reads.ledger
    relationship = ledger.relationship(brand, customer, as_of)
    db = reads.caught_up()
    at = as_of or datetime.now(UTC)
    rates = trust_model.base_rates(trust_model.brand_scores(db, brand, at=at, as_of=as_of))
    scores = ledger.relationship_trust(relationship, at, rates, ledger.policy(brand, as_of=as_of))
    types = trust_model.event_types(db, brand, trust_model.top_event_ids(scores))
    return trust_model.scores_as_dict(scores, types)


def brand_trust(reads: ReadSide, brand: str, *, as_of: datetime | None = None) -> dict[str, Any]:
    """The brand's own opinion per dimension (base rate 0.5), now or as known at `as_of`."""
    db = reads.caught_up()
    scores = trust_model.brand_scores(db, brand, as_of=as_of)
    types = trust_model.event_types(db, brand, trust_model.top_event_ids(scores))
    return trust_model.scores_as_dict(scores, types)


def customers(
    reads: ReadSide, brand: str, *, below: Mapping[str, float], limit: int, cursor: str | None
) -> dict[str, Any]:
    """A page of the brand's customers: below every threshold given, lowest first on the first."""
    page = relationship_model.customers(
        reads.caught_up(), brand, below=dict(below), limit=limit, cursor=cursor
    )
    return {"customers": page.items, "next_cursor": page.next_cursor}


# --- compliance -----------------------------------------------------------------------------------


def findings(reads: ReadSide, brand: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Pushes the brand reported sent without an allow: one page, newest first, each with its
    customer's reference and whether they were erased (None and False where the relationships
    read model does not hold it)."""
    db = reads.caught_up()
    page = decision_model.findings(db, brand, limit, cursor)
    rids = {finding["relationship_id"] for finding in page.items}
    names = relationship_model.references(db, brand, rids)
    for finding in page.items:
        finding["customer"], finding["erased"] = names.get(
            finding["relationship_id"], (None, False)
        )
    return {"findings": page.items, "next_cursor": page.next_cursor}


RECEIPT_VERSION = "KI-CR-v1.1.0"
RECEIPT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:trustledger:consent-receipt")
CONSENT_TYPES = ("consent.granted", "consent.withdrawn")
NO_JURISDICTION = "unspecified"


def policy_url(brand: str, notice_version: str | None) -> str:
    """The notice a consent was given under, named until brands configure a policy URL."""
    return f"urn:trustledger:notice:{brand}:{notice_version or 'unknown'}"


def consent_receipts(reads: ReadSide, brand: str, customer: str) -> dict[str, Any]:
    """One Kantara Consent Receipt (v1.1 fields) per consent event of the customer, oldest first."""
    db = known(reads, brand, customer, None)
    principal = reads.ledger.relationship(brand, customer).customer
    return {"receipts": _receipts(reads, db, brand, customer, principal)}


def _receipts(
    reads: ReadSide, db: Database, brand: str, customer: str, principal: str
) -> list[dict[str, Any]]:
    events = [
        _withdrawal(db, brand, item) if item["type"] == "push.feedback" else item
        for item in _all_events(db, brand, customer)
        if item["type"] in CONSENT_TYPES or _unsubscribed(item)
    ]
    # Per purpose and channel, the latest grant and its place in the list: a withdrawal's terms.
    granted: dict[str, dict[str, tuple[int, Mapping[str, Any]]]] = {}
    policy_at = PoliciesInForce(reads.ledger, brand)
    receipts = []
    for n, event in enumerate(events):
        data = event["data"]
        on = granted.setdefault(data["purpose"], {})
        if event["type"] == "consent.granted":
            on.update(dict.fromkeys(data["channels"], (n, data)))
            grant: Mapping[str, Any] = data
        else:
            grant = _withdrawn_terms(on, data.get("channels"))
        receipts.append(_receipt(brand, principal, event, grant, policy_at(event["recorded_at"])))
    return receipts


def _withdrawn_terms(
    on: Mapping[str, tuple[int, Mapping[str, Any]]], channels: list[str] | None
) -> dict[str, Any]:
    """The terms a withdrawal ended: the latest grant on the channels it names (none: on any
    channel the purpose was granted on). The purpose's latest grant on any channel was taken
    before: a withdrawal on email carried the categories, notice and jurisdiction of a grant
    on sms alone."""
    named = [channel for channel in (channels or on) if channel in on]
    if not named:
        return {}
    _, latest = max((on[channel] for channel in named), key=lambda placed: placed[0])
    return dict(latest)


class PoliciesInForce:
    """The brand's policy version in force at a record time, for one answer's receipts: the
    current one if it was set by then (versions only follow one another), else the version
    read back, each once. A receipt takes its controller and its sensitive categories from it,
    so a later policy changes no receipt. Each act before the current version read the
    policy's events, then its version: two reads an act."""

    def __init__(self, ledger: Ledger, brand: str) -> None:
        self.ledger = ledger
        self.brand = brand
        self.current = ledger.policy(brand)
        self._history: list[tuple[datetime, int]] | None = None
        self._versions: dict[int, Policy] = {self.current.version: self.current}

    def __call__(self, at: datetime) -> Policy:
        if self.current.set_at is None or self.current.set_at <= at:
            return self.current
        if self._history is None:
            self._history = self.ledger.policy_history(self.brand)
        version = policy_version_at(self._history, at)
        if version not in self._versions:
            self._versions[version] = self.ledger.policy(self.brand, version=version)
        return self._versions[version]


CONTROLLER_FIELDS = {
    "name": "piiController",
    "contact": "contact",
    "address": "address",
    "email": "email",
    "phone": "phone",
    "url": "piiControllerUrl",
}
"""The brand policy's controller fields, by their names in a receipt's piiControllers."""


def _controllers(brand: str, controller: Mapping[str, str | None]) -> list[dict[str, str]]:
    """The receipt's piiControllers: the brand as it described itself in the policy in force at
    the consent's record time (its slug, if it gave no name), each field it left null left out."""
    named = {field: controller.get(name) for name, field in CONTROLLER_FIELDS.items()}
    return [{"piiController": brand, **{k: v for k, v in named.items() if v is not None}}]


def _unsubscribed(item: Mapping[str, Any]) -> bool:
    return bool(item["type"] == "push.feedback" and item["data"].get("reaction") == "unsubscribed")


def _withdrawal(db: Database, brand: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """An `unsubscribed` reaction as the withdrawal it is (DESIGN.md: it "withdraws that purpose
    on that channel"), for its receipt: a push of no purpose withdraws every one."""
    purpose, channel = decision_model.unsubscribed_from(db, brand, item["data"]["push_id"])
    data = {"purpose": purpose or EVERY_PURPOSE, "channels": [channel] if channel else None}
    return {**item, "type": "consent.withdrawn", "data": data}


def _receipt(
    brand: str,
    principal: str,
    event: Mapping[str, Any],
    grant: Mapping[str, Any],
    policy: Policy,
) -> dict[str, Any]:
    """One receipt, under the brand's `policy` in force when the consent act was recorded: the
    categories it treats as special, and the brand's own description as data controller."""
    data, withdrawn = event["data"], event["type"] == "consent.withdrawn"
    controller = policy.controller
    special = sorted(set(policy.sensitive_categories) & set(grant.get("data_categories") or []))
    expires_at = grant.get("expires_at") if not withdrawn else None
    purpose = {
        "purpose": data["purpose"],
        "purposeCategory": [data["purpose"]],
        "consentType": "EXPLICIT",
        "piiCategory": list(grant.get("data_categories") or []),
        "primaryPurpose": True,
        "termination": "withdrawn" if withdrawn else (expires_at or "on withdrawal"),
        "thirdPartyDisclosure": False,
    }
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": grant.get("jurisdiction") or NO_JURISDICTION,
        "consentTimestamp": int(event["occurred_at"].timestamp()),
        "collectionMethod": "withdrawal" if withdrawn else grant.get("method"),
        "consentReceiptID": str(uuid.uuid5(RECEIPT_NAMESPACE, f"{brand}/{event['event_id']}")),
        "language": "en",
        "piiPrincipalId": principal,
        "piiControllers": _controllers(brand, controller),
        "policyUrl": controller.get("privacy_policy_url")
        or policy_url(brand, grant.get("notice_version")),
        "services": [{"service": data["purpose"], "purposes": [purpose]}],
        "sensitive": bool(special),
        "spiCat": special,
        "status": "withdrawn" if withdrawn else "granted",
        "channels": _channels(data),
        "event_id": event["event_id"],
    }


def _channels(data: Mapping[str, Any]) -> list[str] | None:
    """The channels of a receipt: those its act named; None for every channel, a withdrawal that
    named none (of one purpose or of `*`), as the consents' `objections` say it. Such a
    withdrawal is enforced on every channel, not only those granted when it was recorded: the
    consents read model and the gate hold a grant posted after it but dated before it, on any
    channel, withdrawn by it, so its receipt says so."""
    named = data.get("channels")
    return list(named) if named else None


def _all_events(db: Database, brand: str, customer: str) -> list[dict[str, Any]]:
    """Every event of the customer as the timeline shows it, oldest first."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = timeline_model.timeline_page(db, brand, customer, limit=500, cursor=cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return list(reversed(items))
        cursor = page.next_cursor


def export(reads: ReadSide, brand: str, customer: str) -> dict[str, Any]:
    """Everything held about the customer, in one document (GDPR Art. 15 and 20)."""
    db = known(reads, brand, customer, None)
    principal = reads.ledger.relationship(brand, customer).customer
    rid = str(relationship_id(brand, customer))
    return {
        "format": "trustledger-export-v1",
        "brand": brand,
        "customer": principal,
        "relationship_id": rid,
        "exported_at": datetime.now(UTC),
        "events": _all_events(db, brand, customer),
        "consents": consent_model.consents(db, brand, customer),
        "consent_receipts": _receipts(reads, db, brand, customer, principal),
        "decisions": decision_model.decisions_of(db, rid),
        "trust": customer_trust(reads, brand, customer),
    }
