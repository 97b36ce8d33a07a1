"""What the relationship keeps, folded and bounded, for the push gate."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from domain.relationship import UNWANTED_MEMORY, Envelope, Relationship
from tests.factories import NOW, posted


def decided(relationship: Relationship, push_id: str, at: datetime, outcome: str = "allow") -> None:
    envelope = Envelope(f"gate-{push_id}", at)
    request = {"push_id": push_id, "kind": "offer", "purpose": "marketing", "channel": "push"}
    relationship.record_push_decision(envelope, push_id, request, {"outcome": outcome})


def sent_with_feedback(
    relationship: Relationship, push_id: str, reaction: str, at: datetime
) -> str:
    relationship.record(replace(posted("push.sent", push_id=push_id, at=at), channel="push"))
    feedback = posted("push.feedback", push_id=push_id, reaction=reaction, at=at)
    relationship.record(feedback)
    return feedback.event_id


def test_a_decided_push_keeps_its_decision_time_kind_and_event_even_after_it_is_sent() -> None:
    relationship = Relationship("brand-a", "cust-1")
    decided_at = NOW - timedelta(days=3)
    decided(relationship, "p1", at=decided_at)
    relationship.record(posted("push.sent", push_id="p1", at=NOW))
    push = relationship.items["push"]["p1"]
    assert (push["status"], push["at"]) == ("sent", NOW)
    assert (push["decided_at"], push["decided_by"], push["push_kind"], push["outcome"]) == (
        decided_at,
        "gate-p1",
        "offer",
        "allow",
    )
    assert push["decision_sequence"] == 2


def test_a_push_sent_before_it_was_asked_about_stays_sent() -> None:
    relationship = Relationship("brand-a", "cust-1")
    relationship.record(posted("push.sent", push_id="p1", at=NOW - timedelta(days=1)))
    decided(relationship, "p1", at=NOW)
    assert relationship.items["push"]["p1"]["status"] == "sent"
    relationship.record(posted("push.feedback", push_id="p1", reaction="opened"))


def test_unwanted_reactions_are_kept_for_30_days_of_event_time_and_no_longer() -> None:
    relationship = Relationship("brand-a", "cust-1")
    start = NOW - timedelta(days=120)
    ids = [
        sent_with_feedback(relationship, f"p{i}", "unwanted", start + timedelta(days=i))
        for i in range(0, 120, 3)
    ]
    kept = relationship.unwanted
    assert [reaction["event_id"] for reaction in kept] == ids[-len(kept) :]
    assert all(reaction["at"] >= NOW - UNWANTED_MEMORY - timedelta(days=3) for reaction in kept)
    assert len(kept) <= UNWANTED_MEMORY.days // 3 + 1


def test_other_reactions_are_not_unwanted() -> None:
    relationship = Relationship("brand-a", "cust-1")
    for i, reaction in enumerate(["opened", "clicked", "dismissed"]):
        sent_with_feedback(relationship, f"p{i}", reaction, NOW)
    assert relationship.unwanted == []


def test_a_snapshot_without_the_preference_history_keeps_its_preferences_in_force() -> None:
    """Snapshots taken before preferences were kept in event time hold only the latest: those
    stay in force at any time until a new setting."""
    relationship = Relationship("brand-a", "cust-1")
    zone = posted("preferences.updated", timezone="Europe/Paris", at=NOW - timedelta(days=9))
    relationship.record(zone)
    del relationship.__dict__["preference_history"]  # as a snapshot from before reads
    assert relationship.preferences_at(NOW - timedelta(days=900)) == (
        {"timezone": "Europe/Paris"},
        {"timezone": zone.event_id},
    )
    hours = posted("preferences.updated", quiet_hours={"start": "22:00", "end": "07:00"})
    relationship.record(hours)
    assert relationship.preferences_at(NOW)[1] == {
        "timezone": zone.event_id,
        "quiet_hours": hours.event_id,
    }


def test_the_events_that_set_each_preference_are_kept() -> None:
    relationship = Relationship("brand-a", "cust-1")
    zone = posted("preferences.updated", timezone="Europe/Paris")
    hours = posted("preferences.updated", quiet_hours={"start": "22:00", "end": "07:00"})
    relationship.record(zone)
    relationship.record(hours)
    assert relationship.preferences_by == {"timezone": zone.event_id, "quiet_hours": hours.event_id}
