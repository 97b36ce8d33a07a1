"""The relationship aggregate: every catalogue type, every rule, snapshots."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import DuplicateReference, RejectedEvent, UnknownReference
from domain.relationship import (
    CATALOGUE,
    MEMORY,
    MEMORY_ITEMS,
    POSTABLE_TYPES,
    PostedEvent,
    Relationship,
    relationship_id,
)
from tests.factories import LATER, NOW, posted, story, story_push_id


def recorded(*events: object) -> Relationship:
    relationship = Relationship("brand-a", "cust-1")
    for event in events:
        relationship.record(event)  # type: ignore[arg-type]
    return relationship


def test_the_id_is_derived_from_brand_and_customer() -> None:
    assert Relationship("brand-a", "cust-1").id == relationship_id("brand-a", "cust-1")
    assert relationship_id("brand-a", "cust-1") != relationship_id("brand-b", "cust-1")
    assert relationship_id("a\x1fb", "c") != relationship_id("a", "b\x1fc")


def test_every_postable_type_is_recorded_with_its_envelope_and_data() -> None:
    events = story()
    relationship = recorded(*events)
    pending = relationship.collect_events()[1:]
    assert [e.TYPE for e in pending] == [e.type for e in events]  # type: ignore[attr-defined]
    assert {e.type for e in events} == set(POSTABLE_TYPES)
    for sent, stored in zip(events, pending, strict=True):
        assert stored.event_id == sent.event_id  # type: ignore[attr-defined]
        assert stored.occurred_at == sent.occurred_at  # type: ignore[attr-defined]
        assert stored.actor == "agent-7"  # type: ignore[attr-defined]
        assert {k: v for k, v in stored.data.items() if v is not None} == {  # type: ignore[attr-defined]
            k: v for k, v in sent.data.items() if v is not None
        }


def test_topics_are_explicit_and_stable() -> None:
    assert CATALOGUE["promise.made"].TOPIC == "trustledger:promise.made"  # type: ignore[attr-defined]
    assert all(f"trustledger:{t}" == cls.TOPIC for t, cls in CATALOGUE.items())  # type: ignore[attr-defined]
    assert Relationship.TOPIC == "trustledger:relationship"


def test_the_fold_keeps_open_items_consents_and_counts() -> None:
    relationship = recorded(*story())
    assert relationship.items["promise"]["p1"]["status"] == "kept"
    assert relationship.items["offer"]["o3"]["status"] == "reneged"
    assert relationship.items["error"]["x2"]["status"] == "confirmed"
    assert relationship.consents["marketing"]["email"]["status"] == "granted"
    assert relationship.consents["marketing"]["push"]["status"] == "withdrawn"
    assert relationship.preferences == {
        "timezone": "Europe/Paris",
        "quiet_hours": {"start": "21:00", "end": "08:00"},
    }
    assert relationship.counts["promise.made"] == 3
    assert sum(relationship.counts.values()) == len(story())


# fmt: off
REJECTIONS = [
    pytest.param([], posted("promise.kept", promise_id="nope"), UnknownReference, id="keep-unknown-promise"),
    pytest.param([posted("promise.made", promise_id="p", summary="s", due_at=LATER), posted("promise.kept", promise_id="p")],
                 posted("promise.broken", promise_id="p"), UnknownReference, id="break-kept-promise"),
    pytest.param([], posted("promise.released", promise_id="p"), UnknownReference, id="release-unknown"),
    pytest.param([posted("promise.made", promise_id="p", summary="s", due_at=LATER)],
                 posted("promise.made", promise_id="p", summary="again", due_at=LATER), DuplicateReference, id="promise-twice"),
    pytest.param([], posted("offer.accepted", offer_id="o"), UnknownReference, id="accept-unknown-offer"),
    pytest.param([], posted("offer.honored", offer_id="o"), UnknownReference, id="honor-unknown-offer"),
    pytest.param([posted("offer.made", offer_id="o", summary="s"), posted("offer.declined", offer_id="o")],
                 posted("offer.honored", offer_id="o"), UnknownReference, id="honor-declined-offer"),
    pytest.param([posted("error.admitted", error_id="e", summary="s", severity="minor", discovered_by="brand")],
                 posted("error.admitted", error_id="e", summary="s", severity="minor", discovered_by="brand"),
                 DuplicateReference, id="admit-twice"),
    pytest.param([], posted("error.admitted", error_id="e", summary="s", severity="huge", discovered_by="brand"),
                 RejectedEvent, id="bad-severity"),
    pytest.param([], posted("error.disputed", error_id="e", reason="r"), UnknownReference, id="dispute-unreported"),
    pytest.param([], posted("error.withdrawn", error_id="e"), UnknownReference, id="withdraw-unreported"),
    pytest.param([], posted("case.reopened", case_id="c"), UnknownReference, id="reopen-unknown-case"),
    pytest.param([], posted("advice.rated", advice_id="a", helpful=True), UnknownReference, id="rate-unknown-advice"),
    pytest.param([], posted("consent.withdrawn", purpose="marketing"), UnknownReference, id="withdraw-never-granted"),
    pytest.param([posted("consent.granted", purpose="m", channels=["email"], data_categories=[], notice_version="1", method="web")],
                 posted("consent.withdrawn", purpose="m", channels=["sms"]), UnknownReference, id="withdraw-other-channel"),
    pytest.param([], posted("push.feedback", push_id="x", reaction="opened"), UnknownReference, id="feedback-unsent-push"),
    pytest.param([], posted("question.answered", case_id="c", topic="t", resolved=True, rating=9), RejectedEvent, id="rating-range"),
    pytest.param([], posted("promise.made", promise_id="p", summary="s", due_at=LATER, colour="red"), RejectedEvent, id="unknown-field"),
    pytest.param([], posted("promise.made", promise_id="p", due_at=LATER), RejectedEvent, id="missing-field"),
    pytest.param([], posted("push.decided", push_id="x", request={}, decision={}), RejectedEvent, id="decided-is-not-postable"),
    pytest.param([], posted("promise.bent", promise_id="p"), RejectedEvent, id="unknown-type"),
    # Well past the 5-minute tolerance: NOW is fixed at import, and the suite runs for minutes.
    pytest.param([], posted("push.sent", at=NOW + timedelta(hours=1), push_id="x"), RejectedEvent, id="future"),
    pytest.param([], posted("push.sent", at=datetime(1, 1, 1, tzinfo=UTC), push_id="x"), RejectedEvent, id="before-1970"),
    pytest.param([], posted("question.answered", case_id="c\x00", topic="t", resolved=True), RejectedEvent, id="nul"),
    # An expiry at or before the event's own time: expired as it was made.
    pytest.param([], posted("offer.made", offer_id="o", summary="s", expires_at=NOW - timedelta(days=1)), RejectedEvent, id="offer-expired-when-made"),
    pytest.param([], posted("offer.made", offer_id="o", summary="s", expires_at=NOW), RejectedEvent, id="offer-expiring-as-made"),
    pytest.param([], posted("consent.granted", purpose="m", channels=["email"], data_categories=[], notice_version="1", method="web",
                            expires_at=NOW - timedelta(seconds=1)), RejectedEvent, id="consent-expired-when-granted"),
    pytest.param([], posted("consent.granted", purpose="m", channels=["email"], data_categories=[], notice_version="1", method="web",
                            expires_at=datetime(2030, 1, 1)), RejectedEvent, id="consent-expiry-without-offset"),
]
# fmt: on


@pytest.mark.parametrize(("history", "event", "error"), REJECTIONS)
def test_what_cannot_be_true_is_rejected_and_changes_nothing(
    history: list[object], event: object, error: type[Exception]
) -> None:
    relationship = recorded(*history)
    before = (relationship.version, repr(relationship.items), repr(relationship.consents))
    with pytest.raises(error):
        relationship.record(event)  # type: ignore[arg-type]
    assert (relationship.version, repr(relationship.items), repr(relationship.consents)) == before


def test_a_little_in_the_future_is_tolerated() -> None:
    relationship = recorded(posted("push.sent", at=NOW + timedelta(minutes=4), push_id="x"))
    assert relationship.counts == {"push.sent": 1}


def test_an_objection_withdraws_every_purpose_and_a_new_grant_lifts_it() -> None:
    grant: dict[str, Any] = {
        "channels": ["email"],
        "data_categories": [],
        "notice_version": "1",
        "method": "web",
    }
    relationship = recorded(
        posted("consent.granted", purpose="marketing", **grant),
        posted("consent.granted", purpose="advice", **grant),
        posted("consent.withdrawn", purpose="*"),
    )
    assert relationship.objection_on("push") is not None
    assert {c["email"]["status"] for c in relationship.consents.values()} == {"withdrawn"}
    relationship.record(posted("consent.granted", purpose="advice", **grant))
    assert relationship.objection_on("push") is None
    assert relationship.consents["advice"]["email"]["status"] == "granted"
    assert relationship.consents["marketing"]["email"]["status"] == "withdrawn"


def unsubscribe(relationship: Relationship, outcome: str) -> PostedEvent:
    """A marketing push on the push channel decided, sent, and unsubscribed from; the reaction."""
    relationship.record_push_decision(
        posted("push.sent").envelope,
        "push-9",
        {"purpose": "marketing", "channel": "push"},
        {"outcome": outcome},
    )
    relationship.record(replace(posted("push.sent", push_id="push-9"), channel="push"))
    unsubscribed = posted("push.feedback", push_id="push-9", reaction="unsubscribed")
    relationship.record(unsubscribed)
    return unsubscribed


def test_unsubscribing_from_a_push_withdraws_its_purpose_on_its_channel() -> None:
    relationship = recorded(
        posted(
            "consent.granted",
            purpose="marketing",
            channels=["email", "push"],
            data_categories=[],
            notice_version="1",
            method="web",
        ),
    )
    unsubscribe(relationship, "allow")
    assert relationship.consents["marketing"]["push"]["status"] == "withdrawn"
    assert relationship.consents["marketing"]["email"]["status"] == "granted"


def test_an_unsubscribe_on_a_channel_never_consented_to_withdraws_a_grant_dated_before_it() -> None:
    """In event time the grant came first: posted after the unsubscribe, it is withdrawn by it."""
    terms: dict[str, Any] = {"data_categories": [], "notice_version": "1", "method": "web"}
    relationship = recorded(
        posted("consent.granted", purpose="marketing", channels=["email"], **terms)
    )
    unsubscribed = unsubscribe(relationship, "deny")
    late = posted(
        "consent.granted",
        purpose="marketing",
        channels=["push"],
        at=unsubscribed.occurred_at - timedelta(days=1),
        **terms,
    )
    relationship.record(late)
    withdrawn = relationship.consents["marketing"]["push"]
    assert (withdrawn["status"], withdrawn["event_id"]) == ("withdrawn", unsubscribed.event_id)
    assert relationship.consents["marketing"]["email"]["status"] == "granted"
    newer = posted(
        "consent.granted",
        purpose="marketing",
        channels=["push"],
        at=unsubscribed.occurred_at + timedelta(seconds=1),
        **terms,
    )
    relationship.record(newer)
    assert relationship.consents["marketing"]["push"]["status"] == "granted"


def test_closed_references_are_forgotten_after_the_memory_so_state_stays_bounded() -> None:
    relationship = Relationship("brand-a", "cust-1")
    start = NOW - MEMORY * 3
    for i in range(3000):
        at = start + timedelta(hours=i * 8)
        relationship.record(
            posted("question.answered", at=at, case_id=f"c{i}", topic="t", resolved=True)
        )
    assert len(relationship.items["case"]) <= 2 * MEMORY_ITEMS
    assert "c2999" in relationship.items["case"]
    assert "c0" not in relationship.items["case"]


def test_closed_items_within_the_memory_are_capped_by_count() -> None:
    relationship = Relationship("brand-a", "cust-1")
    for i in range(5 * MEMORY_ITEMS):
        relationship.record(posted("question.answered", case_id=f"c{i}", topic="t", resolved=True))
    assert len(relationship.items["case"]) <= 2 * MEMORY_ITEMS
    assert f"c{5 * MEMORY_ITEMS - 1}" in relationship.items["case"]


def test_open_items_are_never_forgotten() -> None:
    relationship = Relationship("brand-a", "cust-1")
    old = NOW - MEMORY * 3
    relationship.record(posted("promise.made", at=old, promise_id="old", summary="s", due_at=old))
    for i in range(2000):
        relationship.record(
            posted(
                "question.answered",
                at=NOW - timedelta(minutes=i),
                case_id=f"c{i}",
                topic="t",
                resolved=True,
            )
        )
    assert relationship.items["promise"]["old"]["status"] == "open"


def test_a_copy_shares_no_state_the_fold_changes() -> None:
    import copy as copying

    original = recorded(*story()[:12])
    original.record_push_decision(
        posted("push.sent").envelope,
        story_push_id("cust-1"),
        {"purpose": "marketing", "channel": "push"},
        {"outcome": "allow"},
    )
    original.collect_events()
    before = repr(vars(original))
    duplicate = copying.deepcopy(original)
    for event in story()[12:]:
        duplicate.record(event)
    duplicate.record(posted("push.feedback", push_id=story_push_id("cust-1"), reaction="unwanted"))
    duplicate.record(posted("consent.withdrawn", purpose="*"))
    assert repr(vars(original)) == before
    assert repr(vars(duplicate)) != before
    fresh = recorded(*story()[:12])
    assert vars(copying.deepcopy(fresh)).keys() == vars(fresh).keys()
