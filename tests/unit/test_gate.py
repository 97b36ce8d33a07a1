"""The push gate's rules, each alone, allowing and denying or deferring, with their evidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.application import Ledger
from domain.brand import DEFAULT_POLICY, Policy
from domain.errors import InvalidPushRequest, PushIdConflict
from domain.gate import (
    RULES,
    PushRequest,
    allowance,
    evaluate,
    quiet_until,
    required_evidence,
)
from domain.relationship import (
    MEMORY_ITEMS,
    Envelope,
    PostedEvent,
    PushDecided,
    Relationship,
    relationship_id,
)
from domain.storage import Store
from domain.trust import DIMENSIONS, derived_evidence
from tests.factories import posted
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push, scores
from tests.random_refs import random_event_id

DEFAULT = Policy.default("brand-a")
GOOD = scores()


def policy(**changes: Any) -> Policy:
    settings = {**DEFAULT_POLICY, **changes}
    return Policy.from_settings("brand-a", 7, settings)


def having(*events: PostedEvent) -> Relationship:
    relationship = Relationship("brand-a", "cust-1")
    for event in events:
        relationship.record(event)
    return relationship


def consented(
    *events: PostedEvent, categories: tuple[str, ...] = ("purchase_history",)
) -> Relationship:
    return having(grant(categories=categories), *events)


def decide(
    relationship: Relationship,
    request: PushRequest | None = None,
    trust: dict[str, Any] = GOOD,
    in_force: Policy = DEFAULT,
    now: datetime = NOON,
) -> dict[str, Any]:
    return evaluate(relationship, trust, in_force, request or push(), now)


def reason(decision: dict[str, Any], rule: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in decision["reasons"] if r["rule"] == rule)
    return found


def allowed_push(
    relationship: Relationship, at: datetime, kind: str = "offer", outcome: str = "allow"
) -> str:
    """Records a decision on the relationship as the gate would; returns its event id."""
    request = push(kind=kind)
    envelope = Envelope(f"gate-{request.push_id}", at)
    relationship.record_push_decision(
        envelope, request.push_id, request.as_dict(), {"outcome": outcome}
    )
    return envelope.event_id


def unwanted(relationship: Relationship, at: datetime) -> str:
    push_id = f"sent-{at.isoformat()}"
    relationship.record(replace(posted("push.sent", push_id=push_id, at=at), channel="push"))
    feedback = posted("push.feedback", push_id=push_id, reaction="unwanted", at=at)
    relationship.record(feedback)
    return feedback.event_id


# --- every rule is evaluated and reported ------------------------------------------------------


@pytest.mark.parametrize("kind", ["service", "offer", "advice"])
def test_all_seven_rules_are_reported_in_order_even_after_one_fails(kind: str) -> None:
    decision = decide(
        having(), push(kind=kind, purpose="support" if kind == "service" else "marketing")
    )
    assert [r["rule"] for r in decision["reasons"]] == [
        "consent",
        "objection",
        "open_breaches",
        "trust",
        "personalisation_depth",
        "frequency",
        "quiet_hours",
    ]
    assert list(RULES) == [r["rule"] for r in decision["reasons"]]
    assert decision["policy_version"] == 0
    assert decision["scores"] == GOOD


def test_an_allowed_push_passes_every_rule() -> None:
    decision = decide(consented())
    assert decision["outcome"] == "allow"
    assert all(r["passed"] for r in decision["reasons"])
    assert "retry_after" not in decision


# --- 1. consent ---------------------------------------------------------------------------------


def test_consent_covering_every_category_on_the_channel_passes_with_the_grant_as_evidence() -> None:
    consent = grant(categories=("purchase_history", "location"))
    decision = decide(having(consent), push(categories=("purchase_history", "location")))
    assert reason(decision, "consent") == {
        "rule": "consent",
        "passed": True,
        "detail": "active consent for marketing on push, covering location, purchase_history",
        "evidence": [consent.event_id],
    }


def test_the_creepy_personalisation_story() -> None:
    """An internet provider's customer consented to marketing pushes using their purchase history;
    the provider asks to push an offer personalised with their browsing history."""
    consent = grant(purpose="marketing", channels=("push",), categories=("purchase_history",))
    fibre = Relationship("fibrenet", "subscriber-81")
    fibre.record(consent)
    request = push(customer="subscriber-81", categories=("browsing_history", "purchase_history"))
    decision = evaluate(fibre, GOOD, Policy.default("fibrenet"), request, NOON)
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent") == {
        "rule": "consent",
        "passed": False,
        "detail": "consent for marketing on push does not cover browsing_history",
        "evidence": [consent.event_id],
    }


def test_consent_withdrawn_on_the_channel_denies_with_the_withdrawal_as_evidence() -> None:
    withdrawal = posted(
        "consent.withdrawn", purpose="marketing", channels=["push"], at=NOON - timedelta(days=1)
    )
    decision = decide(consented(withdrawal))
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent")["passed"] is False
    assert reason(decision, "consent")["evidence"] == [withdrawal.event_id]
    assert "withdrawn" in reason(decision, "consent")["detail"]


def test_expired_consent_denies() -> None:
    consent = grant(expires_at=NOON - timedelta(minutes=1))
    decision = decide(having(consent))
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent")["evidence"] == [consent.event_id]
    assert "expired" in reason(decision, "consent")["detail"]


def test_consent_granted_after_the_decision_time_is_not_yet_consent() -> None:
    """A decision as at a moment (`send_at`, up to 5 minutes back) before the customer granted
    consent: the push went before there was consent, and was allowed."""
    consent = grant(at=NOON + timedelta(minutes=1))
    decision = decide(having(consent))
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent") == {
        "rule": "consent",
        "passed": False,
        "detail": f"consent for marketing on push is granted only from {consent.occurred_at.isoformat()}",
        "evidence": [consent.event_id],
    }
    assert reason(decide(having(consent), now=consent.occurred_at), "consent")["passed"] is True


def test_consent_not_yet_expired_passes() -> None:
    decision = decide(having(grant(expires_at=NOON + timedelta(minutes=1))))
    assert reason(decision, "consent")["passed"] is True


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        pytest.param(push(channel="sms"), "no consent for marketing on sms", id="other-channel"),
        pytest.param(
            push(purpose="profiling"), "no consent for profiling on push", id="other-purpose"
        ),
    ],
)
def test_no_consent_for_the_purpose_on_the_channel_denies(
    request_: PushRequest, detail: str
) -> None:
    decision = decide(consented(), request_)
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent") == {
        "rule": "consent",
        "passed": False,
        "detail": detail,
        "evidence": [],
    }


# --- 2. objection -------------------------------------------------------------------------------


def test_no_objection_passes() -> None:
    assert reason(decide(consented()), "objection")["passed"] is True


@pytest.mark.parametrize("kind", ["offer", "advice"])
def test_an_objection_to_every_purpose_denies_offers_and_advice(kind: str) -> None:
    objection = posted("consent.withdrawn", purpose="*", at=NOON - timedelta(days=1))
    decision = decide(consented(objection), push(kind=kind))
    assert decision["outcome"] == "deny"
    assert reason(decision, "objection")["passed"] is False
    assert reason(decision, "objection")["evidence"] == [objection.event_id]


def withdrawal(at: datetime, purpose: str = "marketing", **data: Any) -> PostedEvent:
    return posted("consent.withdrawn", purpose=purpose, at=at, **data)


def test_an_objection_on_some_channels_objects_on_those_channels_only() -> None:
    """DESIGN.md: `consent.withdrawn` names a purpose (or `*`, every purpose) and, optionally,
    the channels withdrawn. A withdrawal of `*` on sms denied offers on push as well, although
    the customer still consented there: the objection rule over-blocked."""
    both = grant(channels=("push", "sms"), at=NOON - timedelta(days=9))
    objection = withdrawal(NOON - timedelta(days=1), purpose="*", channels=["sms"])
    relationship = having(both, objection)
    on_push = decide(relationship, push(channel="push"))
    assert on_push["outcome"] == "allow", on_push
    assert reason(on_push, "objection") == {
        "rule": "objection",
        "passed": True,
        "detail": "the customer objected to offers and advice on sms, not push",
        "evidence": [],
    }
    on_sms = reason(decide(relationship, push(channel="sms")), "objection")
    assert (on_sms["passed"], on_sms["evidence"]) == (False, [objection.event_id])
    assert " on sms at " in on_sms["detail"]


def test_objections_on_several_channels_each_stand_on_their_own() -> None:
    both = grant(channels=("push", "sms", "email"), at=NOON - timedelta(days=9))
    on_sms = withdrawal(NOON - timedelta(days=2), purpose="*", channels=["sms"])
    on_push = withdrawal(NOON - timedelta(days=3), purpose="*", channels=["push"])
    relationship = having(both, on_sms, on_push)
    for channel, expected in (("sms", [on_sms.event_id]), ("push", [on_push.event_id])):
        assert reason(decide(relationship, push(channel=channel)), "objection")["evidence"] == (
            expected
        )
    assert reason(decide(relationship, push(channel="email")), "objection")["passed"] is True


def test_a_grant_posted_late_does_not_undo_an_objection_made_after_it() -> None:
    """A CRM syncing late: the customer objected at 10:00 (posted first), the grant they had
    given at 09:00 arrives after it. The latest act in event time holds, not the latest posted."""
    objection = withdrawal(NOON - timedelta(hours=2), purpose="*")
    late = grant(at=NOON - timedelta(hours=3))
    decision = decide(having(grant(at=NOON - timedelta(days=9)), objection, late))
    assert decision["outcome"] == "deny"
    assert reason(decision, "objection")["evidence"] == [objection.event_id]
    assert reason(decision, "consent")["evidence"] == [objection.event_id]
    assert "withdrawn" in reason(decision, "consent")["detail"]


def test_a_grant_posted_late_does_not_undo_a_withdrawal_made_after_it() -> None:
    channel = withdrawal(NOON - timedelta(hours=2), channels=["push"])
    late = grant(at=NOON - timedelta(hours=3), categories=("browsing_history", "purchase_history"))
    decision = decide(having(grant(at=NOON - timedelta(days=9)), channel, late))
    assert decision["outcome"] == "deny"
    assert reason(decision, "consent")["evidence"] == [channel.event_id]


def test_a_grant_posted_late_on_a_new_purpose_is_withdrawn_by_the_objection_after_it() -> None:
    objection = withdrawal(NOON - timedelta(hours=5), purpose="*")
    renewed = grant(purpose="newsletter", at=NOON - timedelta(hours=4))
    late = grant(at=NOON - timedelta(hours=6))
    decision = decide(having(objection, renewed, late))
    assert reason(decision, "objection")["passed"] is True  # the later grant lifted it
    assert reason(decision, "consent")["passed"] is False
    assert reason(decision, "consent")["evidence"] == [objection.event_id]


def test_a_withdrawal_posted_late_does_not_undo_a_grant_made_after_it() -> None:
    renewed = grant(at=NOON - timedelta(hours=2))
    late = withdrawal(NOON - timedelta(hours=3), purpose="*")
    decision = decide(having(grant(at=NOON - timedelta(days=9)), renewed, late))
    assert reason(decision, "objection")["passed"] is True
    assert reason(decision, "consent") == {
        "rule": "consent",
        "passed": True,
        "detail": "active consent for marketing on push, covering purchase_history",
        "evidence": [renewed.event_id],
    }


CONSENT_ACTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["grant", "withdraw", "withdraw-all-channels", "object", "object-on-channels"]
        ),
        st.sampled_from(["marketing", "advice"]),
        st.sampled_from([("push",), ("sms",), ("push", "sms")]),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(CONSENT_ACTS, st.randoms(use_true_random=False))
def test_consents_posted_in_any_order_read_as_posted_in_time_order(
    acts: list[tuple[str, str, tuple[str, ...]]], rng: Any
) -> None:
    """The consent rule and the objection rule see the latest act in event time on each purpose
    and channel, whatever order the acts were posted in."""
    first = [
        grant(purpose=p, channels=("push", "sms"), at=NOON - timedelta(days=30))
        for p in ("marketing", "advice")
    ]
    events = []
    for n, (act, purpose, channels) in enumerate(acts):
        at = NOON - timedelta(days=20) + timedelta(hours=n)
        if act == "grant":
            events.append(grant(purpose=purpose, channels=channels, at=at))
        elif act == "withdraw":
            events.append(withdrawal(at, purpose=purpose, channels=list(channels)))
        elif act == "object-on-channels":
            events.append(withdrawal(at, purpose="*", channels=list(channels)))
        else:
            events.append(withdrawal(at, purpose="*" if act == "object" else purpose))
    shuffled = list(events)
    rng.shuffle(shuffled)
    in_order, posted_late = having(*first, *events), having(*first, *shuffled)
    for purpose in ("marketing", "advice"):
        for channel in ("push", "sms"):
            request = push(purpose=purpose, channel=channel)
            expected, found = decide(in_order, request), decide(posted_late, request)
            for rule in ("consent", "objection"):
                assert reason(found, rule) == reason(expected, rule)


# --- 3. open breaches ---------------------------------------------------------------------------

DUE = NOON - timedelta(days=2)


def promise(due_at: datetime, *closing: str) -> list[PostedEvent]:
    made = posted(
        "promise.made",
        promise_id="p1",
        summary="call back",
        due_at=due_at,
        at=due_at - timedelta(days=1),
    )
    return [made, *(posted(t, promise_id="p1", at=due_at) for t in closing)]


def reneged(at: datetime) -> list[PostedEvent]:
    return [
        posted("offer.made", offer_id="o1", summary="free month", at=at - timedelta(days=1)),
        posted("offer.reneged", offer_id="o1", reason="promo ended", at=at),
    ]


def reported(at: datetime, *then: str) -> list[PostedEvent]:
    data = {
        "error.admitted": {"summary": "s", "severity": "minor", "discovered_by": "customer"},
        "error.disputed": {"reason": "no"},
        "error.withdrawn": {},
    }
    report = posted(
        "error.reported", error_id="x1", summary="wrong bill", reported_by="customer", at=at
    )
    return [report, *(posted(t, error_id="x1", at=at + timedelta(days=1), **data[t]) for t in then)]


BREACHES = [
    pytest.param(promise(DUE), 0, id="promise-open-past-due-plus-24h"),
    pytest.param(reneged(NOON - timedelta(days=29)), 1, id="offer-reneged-29-days-ago"),
    pytest.param(reported(NOON - timedelta(days=8)), 0, id="report-unadmitted-8-days"),
    pytest.param(
        reported(NOON - timedelta(days=8), "error.disputed"), 0, id="report-disputed-8-days"
    ),
]
NO_BREACHES = [
    pytest.param(promise(NOON - timedelta(hours=23)), id="promise-open-within-24h-of-due"),
    pytest.param(promise(DUE, "promise.kept"), id="promise-kept-late"),
    pytest.param(promise(DUE, "promise.released"), id="promise-released"),
    pytest.param(reneged(NOON - timedelta(days=31)), id="offer-reneged-31-days-ago"),
    pytest.param(reported(NOON - timedelta(days=6)), id="report-within-grace"),
    pytest.param(reported(NOON - timedelta(days=8), "error.admitted"), id="report-admitted"),
    pytest.param(reported(NOON - timedelta(days=8), "error.withdrawn"), id="report-withdrawn"),
]


@pytest.mark.parametrize(("history", "evidence_index"), BREACHES)
def test_an_open_breach_denies_offers_naming_its_event(
    history: list[PostedEvent], evidence_index: int
) -> None:
    decision = decide(consented(*history))
    assert decision["outcome"] == "deny"
    assert reason(decision, "open_breaches")["passed"] is False
    assert reason(decision, "open_breaches")["evidence"] == [history[evidence_index].event_id]


@pytest.mark.parametrize("history", NO_BREACHES)
def test_a_resolved_or_recent_matter_is_no_breach(history: list[PostedEvent]) -> None:
    decision = decide(consented(*history))
    assert reason(decision, "open_breaches") == {
        "rule": "open_breaches",
        "passed": True,
        "detail": "no open breach",
        "evidence": [],
    }


def test_open_breaches_block_selling_not_advice() -> None:
    advice = grant(purpose="advice")
    decision = decide(having(advice, *promise(DUE)), push(kind="advice", purpose="advice"))
    assert reason(decision, "open_breaches")["passed"] is True
    assert reason(decision, "open_breaches")["detail"] == "does not apply to advice pushes"


@pytest.mark.parametrize(
    ("history", "arises"),
    [
        pytest.param(promise(DUE), DUE + timedelta(hours=24), id="promise-overdue"),
        pytest.param(
            reported(NOON - timedelta(days=8)), NOON - timedelta(days=1), id="report-unadmitted"
        ),
    ],
)
def test_a_breach_blocks_selling_exactly_when_trust_counts_it(
    history: list[PostedEvent], arises: datetime
) -> None:
    """DESIGN.md: "past" its grace period, for the open-breaches rule and for the derived trust
    evidence alike. The rule counted from just after the deadline, trust from the deadline
    itself: at that instant the gate allowed an offer on trust already lowered by the breach."""
    relationship = consented(*history)
    for now in (arises - timedelta(microseconds=1), arises, arises + timedelta(microseconds=1)):
        blocked = not reason(decide(relationship, now=now), "open_breaches")["passed"]
        counted = bool(derived_evidence(relationship.items, now))
        assert blocked == counted == (now > arises), now


def test_every_open_breach_is_named() -> None:
    history = [
        *promise(DUE),
        *reneged(NOON - timedelta(days=3)),
        *reported(NOON - timedelta(days=9)),
    ]
    found = reason(decide(consented(*history)), "open_breaches")
    assert found["evidence"] == [history[0].event_id, history[2].event_id, history[3].event_id]
    assert (
        "promise p1" in found["detail"]
        and "offer o1" in found["detail"]
        and "error x1" in found["detail"]
    )


# --- 4. trust -----------------------------------------------------------------------------------


def test_offers_need_consistency_and_honesty_at_the_threshold() -> None:
    decision = decide(consented(), trust=scores(consistency=0.5, honesty=0.5, expertise=0.0))
    assert reason(decision, "trust") == {
        "rule": "trust",
        "passed": True,
        "detail": "consistency P 0.500 >= threshold 0.500; honesty P 0.500 >= threshold 0.500",
        "evidence": ["evidence-consistency", "evidence-honesty"],
    }


@pytest.mark.parametrize("dimension", ["consistency", "honesty"])
def test_an_offer_below_the_threshold_on_either_dimension_is_denied(dimension: str) -> None:
    decision = decide(consented(), trust=scores(**{dimension: 0.49}))
    assert decision["outcome"] == "deny"
    assert reason(decision, "trust")["passed"] is False
    assert f"{dimension} P 0.490 < threshold 0.500" in reason(decision, "trust")["detail"]


def test_advice_needs_expertise_only() -> None:
    advice = having(grant(purpose="advice"))
    request = push(kind="advice", purpose="advice")
    assert reason(decide(advice, request, scores(0.1, expertise=0.6)), "trust")["passed"] is True
    denied = decide(advice, request, scores(0.9, expertise=0.4))
    assert (denied["outcome"], reason(denied, "trust")["evidence"]) == (
        "deny",
        ["evidence-expertise"],
    )


def test_the_threshold_is_the_policy_s() -> None:
    strict = policy(
        thresholds={"offer": {"consistency": 0.9, "honesty": 0.5}, "advice": {"expertise": 0.5}}
    )
    decision = decide(consented(), trust=scores(0.8), in_force=strict)
    assert (decision["outcome"], decision["policy_version"]) == ("deny", 7)
    assert "consistency P 0.800 < threshold 0.900" in reason(decision, "trust")["detail"]


def test_a_missing_score_fails_the_trust_rule() -> None:
    decision = decide(consented(), trust={"consistency": {"P": 0.9}, "overall": 0.9})
    assert reason(decision, "trust")["passed"] is False
    assert "no honesty score" in reason(decision, "trust")["detail"]


def test_float_noise_at_the_threshold_does_not_deny() -> None:
    assert reason(decide(consented(), trust=scores(0.5 - 1e-12)), "trust")["passed"] is True


# --- 5. personalisation depth -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("categories", "u", "passed"),
    [
        pytest.param((), 1.0, True, id="no-category-needs-no-evidence"),
        pytest.param(("a",), 0.9, True, id="one-category-needs-0.1"),
        pytest.param(("a",), 0.95, False, id="one-category-with-0.05"),
        pytest.param(("a", "b", "c"), 0.7, True, id="three-need-0.3"),
        pytest.param(("a", "b", "c"), 0.75, False, id="three-with-0.25"),
        pytest.param(("health",), 0.75, False, id="a-sensitive-category-counts-3"),
        pytest.param(("health",), 0.7, True, id="a-sensitive-category-with-0.3"),
        pytest.param(tuple(f"c{i}" for i in range(20)), 0.2, True, id="capped-at-0.8"),
        pytest.param(tuple(f"c{i}" for i in range(20)), 0.25, False, id="capped-with-0.75"),
    ],
)
def test_more_categories_need_more_relationship_evidence(
    categories: tuple[str, ...], u: float, passed: bool
) -> None:
    consent = grant(categories=categories)
    decision = decide(having(consent), push(categories=categories), trust=scores(0.8, u=u))
    assert reason(decision, "personalisation_depth")["passed"] is passed
    assert decision["outcome"] == ("allow" if passed else "deny")


def test_the_depth_reason_names_sensitive_categories_and_the_score_evidence() -> None:
    categories = ("health", "purchase_history")
    decision = decide(
        having(grant(categories=categories)), push(categories=categories), trust=scores(u=0.9)
    )
    assert reason(decision, "personalisation_depth") == {
        "rule": "personalisation_depth",
        "passed": False,
        "detail": "2 data categories (1 sensitive: health) need relationship evidence 0.400, "
        "the relationship has 0.100",
        "evidence": ["evidence-consistency", "evidence-honesty", "evidence-expertise"],
    }


def test_a_dimension_without_a_score_counts_as_no_evidence() -> None:
    trust = {"consistency": {"P": 0.9, "u": 0.0}, "honesty": {"P": 0.9, "u": 0.0}, "overall": 0.9}
    decision = decide(consented(), push(categories=("a", "b", "c", "d")), trust=trust)
    assert "the relationship has 0.667" in reason(decision, "personalisation_depth")["detail"]


@given(
    st.sets(st.sampled_from(["a", "b", "health", "genetic", "x", "y"])),
    st.sampled_from(["z", "children"]),
)
def test_another_category_never_needs_less_evidence_and_never_more_than_the_cap(
    categories: set[str], extra: str
) -> None:
    before = required_evidence(categories, DEFAULT)
    after = required_evidence(categories | {extra}, DEFAULT)
    assert before <= after <= DEFAULT.personalisation_depth["cap"]


# --- 6. frequency -------------------------------------------------------------------------------


def test_pushes_within_the_allowance_pass_and_are_the_evidence() -> None:
    relationship = consented()
    ids = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (3, 2, 1)]
    found = reason(decide(relationship, trust=scores(0.5)), "frequency")
    assert found["passed"] is True
    assert found["evidence"] == ids
    assert (
        found["detail"] == "3 allowed in 7 days, 0 unwanted in 30 days: within the allowance of 4"
    )


def test_over_the_allowance_defers_until_the_oldest_push_leaves_the_7_days() -> None:
    relationship = consented()
    oldest = NOON - timedelta(days=6, hours=2)
    ids = [
        allowed_push(relationship, at)
        for at in (oldest, *(NOON - timedelta(days=d) for d in (3, 2, 1)))
    ]
    decision = decide(relationship, trust=scores(0.5))
    found = reason(decision, "frequency")
    assert (decision["outcome"], decision["retry_after"]) == ("defer", oldest + timedelta(days=7))
    assert (found["passed"], found["evidence"], found["retry_after"]) == (
        False,
        ids,
        oldest + timedelta(days=7),
    )


@pytest.mark.parametrize(("overall", "expected"), [(0.0, 2), (0.5, 4), (0.75, 5), (1.0, 6)])
def test_the_allowance_grows_with_overall_trust(overall: float, expected: int) -> None:
    assert allowance(4, overall, 0) == expected
    relationship = consented()
    for _ in range(expected - 1):
        allowed_push(relationship, NOON - timedelta(days=1))
    assert decide(relationship, trust=scores(overall=overall))["outcome"] == "allow"
    allowed_push(relationship, NOON - timedelta(days=1))
    assert decide(relationship, trust=scores(overall=overall))["outcome"] == "defer"


def test_an_unwanted_reaction_in_30_days_halves_the_allowance_and_is_evidence() -> None:
    relationship = consented()
    reaction = unwanted(relationship, NOON - timedelta(days=20))
    pushes = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (2, 1)]
    found = reason(decide(relationship, trust=scores(0.5)), "frequency")
    assert found["passed"] is False
    assert found["evidence"] == [*pushes, reaction]
    assert "allowance of 2" in found["detail"]
    assert found["retry_after"] == NOON - timedelta(days=2) + timedelta(days=7)


def test_an_unwanted_reaction_older_than_30_days_does_not_count() -> None:
    relationship = consented()
    unwanted(relationship, NOON - timedelta(days=31))
    for d in (2, 1):
        allowed_push(relationship, NOON - timedelta(days=d))
    assert reason(decide(relationship, trust=scores(0.5)), "frequency")["passed"] is True


def test_a_slot_can_free_up_when_an_unwanted_reaction_leaves_the_30_days() -> None:
    relationship = consented()
    first = unwanted(relationship, NOON - timedelta(days=29))
    unwanted(relationship, NOON - timedelta(days=28))
    allowed_push(relationship, NOON - timedelta(days=1))
    allowed_push(relationship, NOON - timedelta(hours=1))
    assert [allowance(4, 0.5, n) for n in (2, 1, 0)] == [1, 2, 4]
    found = reason(decide(relationship, trust=scores(0.5)), "frequency")
    assert first in found["evidence"]
    # In a day one reaction has left (an allowance of 2, both pushes still in); in two, both have.
    assert found["retry_after"] == NOON + timedelta(days=2)


def test_only_allowed_offers_and_advice_of_the_last_7_days_count() -> None:
    relationship = consented()
    allowed_push(relationship, NOON - timedelta(days=7))
    allowed_push(relationship, NOON - timedelta(days=1), kind="service")
    allowed_push(relationship, NOON - timedelta(days=1), outcome="deny")
    allowed_push(relationship, NOON - timedelta(days=1), outcome="defer")
    counted = allowed_push(relationship, NOON - timedelta(days=1), kind="advice")
    found = reason(decide(relationship, trust=scores(0.0)), "frequency")
    assert (found["passed"], found["evidence"]) == (True, [counted])


def test_an_allowance_of_zero_denies_since_waiting_does_not_help() -> None:
    decision = decide(consented(), trust=scores(0.4), in_force=policy(frequency_cap=1))
    assert allowance(1, 0.4, 0) == 0
    assert decision["outcome"] == "deny"
    assert "retry_after" not in reason(decision, "frequency")
    assert "no push can be sent" in reason(decision, "frequency")["detail"]


def test_many_later_decisions_do_not_make_the_gate_forget_the_allowed_pushes() -> None:
    """Closed items are pruned by count: a CRM asking again and again under new push ids (each
    deferred or denied) pushed the week's allowed pushes out of memory, and the cap was lifted."""
    relationship = consented()
    counted = [allowed_push(relationship, NOON - timedelta(days=3, minutes=-i)) for i in range(4)]
    for i in range(2 * MEMORY_ITEMS + 1):
        allowed_push(relationship, NOON - timedelta(days=2, minutes=-i), outcome="defer")
    found = reason(decide(relationship, trust=scores(0.5)), "frequency")
    assert (found["passed"], found["evidence"]) == (False, counted)


def test_many_later_closed_offers_do_not_make_the_gate_forget_a_reneged_one() -> None:
    history = reneged(NOON - timedelta(days=3))
    offers = [
        posted(type_, offer_id=f"o-{i}", at=NOON - timedelta(days=2), **data)
        for i in range(2 * MEMORY_ITEMS + 1)
        for type_, data in (("offer.made", {"summary": "s"}), ("offer.declined", {}))
    ]
    found = reason(decide(consented(*history, *offers)), "open_breaches")
    assert (found["passed"], found["evidence"]) == (False, [history[1].event_id])


def declined(relationship: Relationship, at: datetime) -> str:
    """An offer made and declined at `at`; returns the decline's event id."""
    offer_id = f"o-{random_event_id()}"
    relationship.record(posted("offer.made", offer_id=offer_id, summary="s", at=at))
    decline = posted("offer.declined", offer_id=offer_id, at=at)
    relationship.record(decline)
    return decline.event_id


COUNTING_DECLINES = policy(declines_per_halving=3)


def test_every_full_declines_per_halving_in_30_days_halves_the_allowance_and_is_evidence() -> None:
    relationship = consented()
    declines = [declined(relationship, NOON - timedelta(days=d)) for d in (27, 10, 5)]
    pushes = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (2, 1)]
    found = reason(decide(relationship, trust=scores(0.5), in_force=COUNTING_DECLINES), "frequency")
    assert (found["passed"], found["evidence"]) == (False, [*pushes, *declines])
    assert found["detail"] == (
        "2 allowed in 7 days, 0 unwanted in 30 days, 3 declined in 30 days (every 3 halve the"
        " allowance): the allowance of 2 is used up until"
        f" {(NOON + timedelta(days=3)).isoformat()}"
    )
    # The oldest decline leaves the 30 days in 3 days (two left: no halving), before any push
    # leaves the 7 days.
    assert found["retry_after"] == NOON + timedelta(days=3)


def test_fewer_declines_than_declines_per_halving_allow_and_are_named() -> None:
    relationship = consented()
    declines = [declined(relationship, NOON - timedelta(days=d)) for d in (20, 3)]
    pushes = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (3, 2, 1)]
    found = reason(decide(relationship, trust=scores(0.5), in_force=COUNTING_DECLINES), "frequency")
    assert (found["passed"], found["evidence"]) == (True, [*pushes, *declines])
    assert found["detail"] == (
        "3 allowed in 7 days, 0 unwanted in 30 days, 2 declined in 30 days (every 3 halve the"
        " allowance): within the allowance of 4"
    )


def test_declines_and_unwanted_reactions_halve_the_allowance_together() -> None:
    relationship = consented()
    reaction = unwanted(relationship, NOON - timedelta(days=12))
    declines = [declined(relationship, NOON - timedelta(days=d)) for d in (9, 8)]
    push_id = allowed_push(relationship, NOON - timedelta(days=1))
    in_force = policy(declines_per_halving=2)
    assert allowance(4, 0.5, 2) == 1
    found = reason(decide(relationship, trust=scores(0.5), in_force=in_force), "frequency")
    assert (found["passed"], found["evidence"]) == (False, [push_id, reaction, *declines])
    assert "1 unwanted in 30 days, 2 declined in 30 days" in found["detail"]


def test_declines_older_than_30_days_are_not_counted() -> None:
    relationship = consented()
    for days in (31, 30, 30):  # a decline exactly 30 days old has left, as a reaction has
        declined(relationship, NOON - timedelta(days=days))
    pushes = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (3, 2, 1)]
    found = reason(decide(relationship, trust=scores(0.5), in_force=COUNTING_DECLINES), "frequency")
    assert (found["passed"], found["evidence"]) == (True, pushes)
    assert "0 declined in 30 days" in found["detail"]


@pytest.mark.parametrize(
    "in_force",
    [
        pytest.param(DEFAULT, id="version-0"),
        pytest.param(
            Policy.from_settings(
                "brand-a",
                3,
                {k: v for k, v in DEFAULT_POLICY.items() if k != "declines_per_halving"},
            ),
            id="a-version-stored-before-the-field",
        ),
        pytest.param(policy(declines_per_halving=None), id="set-to-null"),
    ],
)
def test_a_policy_without_declines_per_halving_counts_no_decline(in_force: Policy) -> None:
    """Decisions recorded before the field existed must still reproduce: the rule reads, and
    says, exactly what it did then."""
    relationship = consented()
    for days in (3, 2, 1):
        declined(relationship, NOON - timedelta(days=days))
    pushes = [allowed_push(relationship, NOON - timedelta(days=d)) for d in (3, 2, 1)]
    assert in_force.declines_per_halving is None
    found = reason(decide(relationship, trust=scores(0.5), in_force=in_force), "frequency")
    assert found == {
        "rule": "frequency",
        "passed": True,
        "detail": "3 allowed in 7 days, 0 unwanted in 30 days: within the allowance of 4",
        "evidence": pushes,
    }


def test_many_later_closed_offers_do_not_make_the_gate_forget_a_decline() -> None:
    relationship = consented()
    declines = [declined(relationship, NOON - timedelta(days=20, minutes=-i)) for i in range(3)]
    later = NOON - timedelta(days=2)
    for i in range(2 * MEMORY_ITEMS + 1):
        relationship.record(posted("offer.made", offer_id=f"later-{i}", summary="s", at=later))
        relationship.record(posted("offer.honored", offer_id=f"later-{i}", at=later))
    found = reason(decide(relationship, trust=scores(0.5), in_force=COUNTING_DECLINES), "frequency")
    assert "3 declined in 30 days" in found["detail"]
    assert found["evidence"] == declines


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 14 * 24), min_size=1, max_size=40),
    st.floats(0, 1),
    st.integers(1, 6),
)
def test_no_7_days_ever_hold_more_allowed_pushes_than_the_allowance(
    hours: list[int], overall: float, cap: int
) -> None:
    relationship = consented()
    in_force = policy(frequency_cap=cap, **{"quiet_hours": {"start": "00:00", "end": "00:00"}})
    allowed: list[datetime] = []
    for hour in sorted(hours):
        now = NOON - timedelta(days=15) + timedelta(hours=hour)
        if (
            decide(relationship, trust=scores(overall=overall), in_force=in_force, now=now)[
                "outcome"
            ]
            == "allow"
        ):
            allowed.append(now)
            allowed_push(relationship, now)
    limit = allowance(cap, overall, 0)
    for start in allowed:
        assert sum(1 for t in allowed if start <= t < start + timedelta(days=7)) <= limit


# --- 7. quiet hours -----------------------------------------------------------------------------

DAY = datetime(2026, 1, 14, tzinfo=UTC)  # winter: Paris is UTC+1


def consented_by_day(*events: PostedEvent) -> Relationship:
    """Consent given before DAY, so decisions on DAY see it."""
    return having(grant(at=DAY - timedelta(days=30)), *events)


@pytest.mark.parametrize(
    ("hour", "until"),
    [
        pytest.param(timedelta(hours=12), None, id="noon"),
        pytest.param(timedelta(hours=20, minutes=59), None, id="just-before"),
        pytest.param(timedelta(hours=21), DAY + timedelta(days=1, hours=8), id="at-the-start"),
        pytest.param(timedelta(hours=23), DAY + timedelta(days=1, hours=8), id="before-midnight"),
        pytest.param(timedelta(hours=3), DAY + timedelta(hours=8), id="after-midnight"),
        pytest.param(timedelta(hours=8), None, id="at-the-end"),
    ],
)
def test_the_brand_s_quiet_hours_defer_until_they_end(
    hour: timedelta, until: datetime | None
) -> None:
    decision = decide(consented_by_day(), now=DAY + hour)
    found = reason(decision, "quiet_hours")
    assert found["passed"] is (until is None)
    assert found.get("retry_after") == until
    assert decision["outcome"] == ("allow" if until is None else "defer")
    assert decision.get("retry_after") == until


def test_the_customer_s_own_quiet_hours_in_their_time_zone() -> None:
    zone = posted("preferences.updated", timezone="Europe/Paris", at=DAY - timedelta(days=5))
    hours = posted(
        "preferences.updated",
        quiet_hours={"start": "22:00", "end": "07:00"},
        at=DAY - timedelta(days=5),
    )
    relationship = consented_by_day(zone, hours)
    decision = decide(relationship, now=DAY + timedelta(hours=21, minutes=30))  # 22:30 in Paris
    found = reason(decision, "quiet_hours")
    assert found["evidence"] == [hours.event_id, zone.event_id]
    assert found["retry_after"] == DAY + timedelta(days=1, hours=6)  # 07:00 in Paris
    assert "22:00-07:00 Europe/Paris (the customer's)" in found["detail"]
    assert reason(decide(relationship, now=DAY + timedelta(hours=20, minutes=30)), "quiet_hours")[
        "passed"
    ]


def test_the_brand_s_quiet_hours_in_the_customer_s_time_zone() -> None:
    zone = posted("preferences.updated", timezone="America/New_York", at=DAY - timedelta(days=5))
    decision = decide(consented_by_day(zone), now=DAY + timedelta(hours=23))  # 18:00 in New York
    assert reason(decision, "quiet_hours")["passed"] is True
    later = decide(
        consented_by_day(zone), now=DAY + timedelta(days=1, hours=3)
    )  # 22:00 in New York
    assert later["retry_after"] == DAY + timedelta(days=1, hours=13)  # 08:00 in New York


def test_the_brand_s_time_zone_when_the_customer_set_none() -> None:
    in_paris = policy(timezone="Europe/Paris")
    decision = decide(
        consented_by_day(), in_force=in_paris, now=DAY + timedelta(hours=20, minutes=30)
    )
    assert decision["retry_after"] == DAY + timedelta(days=1, hours=7)  # 08:00 in Paris


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "localtime", "posix/Europe/Paris"])
def test_an_unknown_customer_time_zone_falls_back_to_the_brand_s(name: str) -> None:
    """A host's file that is not an IANA zone ("localtime") is unknown too: the decision must
    not depend on the server's configuration."""
    zone = posted("preferences.updated", timezone=name, at=DAY - timedelta(days=5))
    found = reason(decide(consented_by_day(zone), now=DAY + timedelta(hours=12)), "quiet_hours")
    assert (found["passed"], found["evidence"]) == (True, [])
    assert "UTC (the brand's policy)" in found["detail"]


def test_preferences_dated_after_the_decision_time_are_not_yet_in_force() -> None:
    """A decision as at a past `send_at` used the customer's quiet hours and time zone as last
    posted, even when they were set after that moment; consent, by contrast, is read as at the
    decision time. The settings in force then apply, the latest in event time."""
    paris = posted("preferences.updated", timezone="Europe/Paris", at=DAY - timedelta(days=5))
    evening = {"start": "22:00", "end": "07:00"}
    hours = posted("preferences.updated", quiet_hours=evening, at=DAY - timedelta(days=5))
    later = {"start": "20:00", "end": "09:00"}
    changed = posted("preferences.updated", quiet_hours=later, at=DAY + timedelta(hours=21))
    relationship = consented_by_day(paris, hours, changed)
    before = reason(decide(relationship, now=DAY + timedelta(hours=20)), "quiet_hours")  # 21:00
    assert (before["passed"], before["evidence"]) == (True, [hours.event_id, paris.event_id])
    assert "22:00-07:00 Europe/Paris (the customer's)" in before["detail"]
    after = reason(decide(relationship, now=DAY + timedelta(hours=21)), "quiet_hours")  # 22:00
    assert (after["passed"], after["evidence"]) == (False, [changed.event_id, paris.event_id])
    assert after["retry_after"] == DAY + timedelta(days=1, hours=8)  # 09:00 in Paris
    first = posted("preferences.updated", timezone="Asia/Tokyo", at=DAY + timedelta(hours=1))
    relationship = consented_by_day(first)
    none_yet = reason(decide(relationship, now=DAY), "quiet_hours")
    assert (none_yet["evidence"], "UTC (the brand's policy)" in none_yet["detail"]) == ([], True)


def test_preferences_posted_out_of_time_order_read_as_in_time_order() -> None:
    """The latest setting in event time holds, not the latest posted: a CRM syncing late must
    not put back a time zone the customer has since changed."""
    old = posted("preferences.updated", timezone="Asia/Tokyo", at=DAY - timedelta(days=9))
    new = posted("preferences.updated", timezone="Europe/Paris", at=DAY - timedelta(days=2))
    for relationship in (consented_by_day(old, new), consented_by_day(new, old)):
        found = reason(decide(relationship, now=DAY + timedelta(hours=12)), "quiet_hours")
        assert (found["evidence"], "Europe/Paris" in found["detail"]) == ([new.event_id], True)
        assert relationship.preferences == {"timezone": "Europe/Paris"}


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    none = policy(quiet_hours={"start": "00:00", "end": "00:00"})
    assert (
        decide(consented_by_day(), in_force=none, now=DAY + timedelta(hours=3))["outcome"]
        == "allow"
    )


def test_quiet_hours_ending_in_the_hour_the_clocks_go_back_end_at_the_second_one() -> None:
    paris, window = ZoneInfo("Europe/Paris"), {"start": "01:00", "end": "02:30"}
    # 2025-10-26: Paris goes from 03:00 CEST back to 02:00 CET, so 02:15 happens twice.
    first_0215 = datetime(2025, 10, 26, 0, 15, tzinfo=UTC)
    second_0215 = datetime(2025, 10, 26, 1, 15, tzinfo=UTC)
    assert quiet_until(first_0215, window, paris) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert quiet_until(second_0215, window, paris) == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)


CLOCK = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    CLOCK,
    CLOCK,
    st.sampled_from(
        ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
    ),
)
def test_quiet_hours_end_after_now_and_their_end_is_not_quiet(
    at: datetime, start: str, end: str, name: str
) -> None:
    zone, window = ZoneInfo(name), {"start": start, "end": end}
    until = quiet_until(at, window, zone)
    if until is not None:
        assert at < until <= at + timedelta(days=1, hours=1)
        assert quiet_until(until, window, zone) is None


# --- the outcome --------------------------------------------------------------------------------


def test_deny_beats_defer() -> None:
    decision = decide(having(), now=DAY + timedelta(hours=23))
    assert reason(decision, "quiet_hours")["passed"] is False
    assert (decision["outcome"], "retry_after" in decision) == ("deny", False)


def test_on_defer_retry_after_is_when_every_deferring_rule_passes() -> None:
    relationship = consented()
    oldest = (
        NOON - timedelta(days=7) + timedelta(hours=11)
    )  # leaves the 7 days at 23:00, in quiet hours
    for at in (
        oldest,
        NOON - timedelta(days=1),
        NOON - timedelta(days=1),
        NOON - timedelta(days=1),
    ):
        allowed_push(relationship, at)
    decision = decide(relationship, trust=scores(0.5))
    assert reason(decision, "frequency")["retry_after"] == NOON + timedelta(hours=11)
    assert reason(decision, "quiet_hours")["passed"] is True
    assert decision["retry_after"] == NOON + timedelta(hours=20)  # 08:00 the next day


# --- service pushes -----------------------------------------------------------------------------


def test_service_pushes_skip_consent_breaches_trust_depth_and_frequency() -> None:
    objection = posted("consent.withdrawn", purpose="*", at=NOON - timedelta(days=1))
    relationship = having(grant(), objection, *promise(DUE), *reneged(NOON - timedelta(days=1)))
    for _ in range(10):
        allowed_push(relationship, NOON - timedelta(hours=1))
    request = push(
        kind="service", purpose=None, categories=("health", "browsing_history", "location")
    )
    decision = decide(relationship, request, trust=scores(0.0, u=1.0))
    assert decision["outcome"] == "allow"
    for rule in (
        "consent",
        "objection",
        "open_breaches",
        "trust",
        "personalisation_depth",
        "frequency",
    ):
        assert reason(decision, rule) == {
            "rule": rule,
            "passed": True,
            "detail": "does not apply to service pushes",
            "evidence": [],
        }


def test_service_pushes_keep_quiet_hours() -> None:
    decision = decide(having(), push(kind="service", purpose=None), now=DAY + timedelta(hours=23))
    assert (decision["outcome"], decision["retry_after"]) == (
        "defer",
        DAY + timedelta(days=1, hours=8),
    )


# --- the request --------------------------------------------------------------------------------

VALID = {
    "push_id": "p1",
    "customer": "c1",
    "kind": "offer",
    "channel": "push",
    "purpose": "marketing",
    "data_categories": ["b", "a", "a"],
}


def test_a_request_reads_from_simple_types_with_categories_sorted_once() -> None:
    request = PushRequest.from_dict(VALID)
    assert request.data_categories == ("a", "b")
    assert request.as_dict() == {**VALID, "data_categories": ["a", "b"]}
    assert PushRequest.from_dict({**VALID, "kind": "service", "purpose": None}).purpose is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "spam"}, "kind"),
        ({"push_id": ""}, "push_id"),
        ({"customer": "x" * 129}, "customer"),
        ({"channel": None}, "channel"),
        ({"purpose": None}, "purpose"),
        ({"data_categories": "purchase_history"}, "data_categories"),
        ({"data_categories": [1]}, "data_categories"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_request_is_rejected_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPushRequest) as rejected:
        PushRequest.from_dict({**VALID, **change})
    assert rejected.value.field == field


def test_the_decision_time_needs_an_offset() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        decide(consented(), now=NOON.replace(tzinfo=None))


# --- Ledger.decide_push on the in-memory store ---------------------------------------------------


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def granted(ledger: Ledger, customer: str = "cust-1", **policy_changes: Any) -> None:
    ledger.record("brand-a", grant(customer))
    ledger.set_policy("brand-a", {**NO_QUIET_HOURS, **policy_changes})


def test_a_decision_is_recorded_as_push_decided_on_the_relationship(memory_ledger: Ledger) -> None:
    granted(memory_ledger)
    request = push()
    decision = memory_ledger.decide_push("brand-a", request, GOOD, NOON)
    assert (decision["outcome"], decision["policy_version"]) == ("allow", 1)
    recorded = memory_ledger.interactions("brand-a", "cust-1")[-1]
    assert isinstance(recorded, PushDecided)
    assert (recorded.push_id, recorded.occurred_at, recorded.actor) == (
        request.push_id,
        NOON,
        "gate",
    )
    assert (recorded.request, recorded.decision) == (request.as_dict(), decision)
    assert recorded.event_id.startswith("gate-")


def test_a_repeated_push_id_gets_the_recorded_decision_unchanged(memory_ledger: Ledger) -> None:
    granted(memory_ledger)
    request = push()
    first = memory_ledger.decide_push("brand-a", request, GOOD, NOON)
    memory_ledger.record("brand-a", posted("consent.withdrawn", purpose="marketing", at=NOON))
    again = memory_ledger.decide_push(
        "brand-a", request.as_dict(), scores(0.1), NOON + timedelta(hours=1)
    )
    assert again == first
    assert memory_ledger.relationship("brand-a", "cust-1").counts["push.decided"] == 1


def test_a_push_id_asked_again_with_another_request_is_a_conflict(memory_ledger: Ledger) -> None:
    granted(memory_ledger)
    request = push()
    memory_ledger.decide_push("brand-a", request, GOOD, NOON)
    with pytest.raises(PushIdConflict):
        memory_ledger.decide_push("brand-a", replace(request, channel="email"), GOOD, NOON)
    with pytest.raises(PushIdConflict):
        memory_ledger.decide_push("brand-a", replace(request, customer="cust-2"), GOOD, NOON)
    assert memory_ledger.decide_push("brand-b", replace(request, customer="cust-2"), GOOD, NOON)


def test_the_frequency_cap_is_reached_after_its_allowance_of_allows(memory_ledger: Ledger) -> None:
    granted(memory_ledger, frequency_cap=3)
    times = [NOON + timedelta(hours=h) for h in range(5)]
    outcomes = [
        memory_ledger.decide_push("brand-a", push(), scores(0.5), t)["outcome"] for t in times
    ]
    assert outcomes == ["allow", "allow", "allow", "defer", "defer"]
    last = memory_ledger.decide_push("brand-a", push(), scores(0.5), times[-1])
    assert last["retry_after"] == times[0] + timedelta(days=7)


def test_a_deferred_push_is_decided_again_once_its_retry_after_has_come(
    memory_ledger: Ledger,
) -> None:
    memory_ledger.record("brand-a", grant())
    request, night = push(), NOON - timedelta(hours=14)  # 22:00, in the default quiet hours
    deferred = memory_ledger.decide_push("brand-a", request, GOOD, night)
    assert (deferred["outcome"], deferred["retry_after"]) == ("defer", NOON - timedelta(hours=4))
    assert (
        memory_ledger.decide_push("brand-a", request, GOOD, night + timedelta(hours=1)) == deferred
    )
    allowed = memory_ledger.decide_push("brand-a", request, GOOD, deferred["retry_after"])
    assert allowed["outcome"] == "allow"
    assert memory_ledger.relationship("brand-a", "cust-1").counts["push.decided"] == 2


def test_a_push_for_a_customer_without_a_relationship_opens_one(memory_ledger: Ledger) -> None:
    offer = memory_ledger.decide_push("brand-a", push(customer="new-1"), GOOD, NOON)
    assert offer["outcome"] == "deny"
    assert reason(offer, "consent")["detail"] == "no consent for marketing on push"
    service = memory_ledger.decide_push(
        "brand-a", push("service", customer="new-2", purpose=None), GOOD, NOON
    )
    assert service["outcome"] == "allow"
    assert list(memory_ledger.customers("brand-a")) == ["new-1", "new-2"]


def test_a_withdrawal_is_seen_by_the_next_decision(memory_ledger: Ledger) -> None:
    granted(memory_ledger)
    assert memory_ledger.decide_push("brand-a", push(), GOOD, NOON)["outcome"] == "allow"
    memory_ledger.record("brand-a", posted("consent.withdrawn", purpose="marketing", at=NOON))
    assert memory_ledger.decide_push("brand-a", push(), GOOD, NOON)["outcome"] == "deny"


def test_every_recorded_decision_re_evaluates_the_same_under_its_policy_version(
    memory_ledger: Ledger,
) -> None:
    granted(memory_ledger, frequency_cap=2)
    memory_ledger.decide_push("brand-a", push(), scores(0.5), NOON)
    memory_ledger.set_policy("brand-a", {"frequency_cap": 1})
    memory_ledger.decide_push("brand-a", push(), scores(0.5), NOON + timedelta(hours=1))
    memory_ledger.set_policy("brand-a", {"frequency_cap": 5})
    memory_ledger.decide_push("brand-a", push(), scores(0.5), NOON + timedelta(hours=2))
    rid = relationship_id("brand-a", "cust-1")
    decisions = [
        e for e in memory_ledger.interactions("brand-a", "cust-1") if isinstance(e, PushDecided)
    ]
    assert [d.decision["outcome"] for d in decisions] == ["allow", "defer", "allow"]
    assert [d.decision["policy_version"] for d in decisions] == [1, 2, 3]
    for decided in decisions:
        before: Relationship = memory_ledger.repository.get(
            rid, version=decided.originator_version - 1
        )
        in_force = memory_ledger.policy("brand-a", version=decided.decision["policy_version"])
        request = PushRequest.from_dict(decided.request)
        again = evaluate(before, decided.decision["scores"], in_force, request, decided.occurred_at)
        assert again == decided.decision


def test_scores_can_come_from_a_provider_given_the_relationship_and_time(
    memory_ledger: Ledger,
) -> None:
    granted(memory_ledger)
    seen: list[tuple[str, datetime]] = []

    def provider(relationship: Relationship, now: datetime) -> dict[str, Any]:
        seen.append((relationship.customer, now))
        return scores(0.2)

    decision = memory_ledger.decide_push("brand-a", push(), provider, NOON)
    assert (decision["outcome"], decision["scores"], seen) == (
        "deny",
        scores(0.2),
        [("cust-1", NOON)],
    )


@pytest.mark.parametrize(("brand_p", "passed"), [(0.9, True), (0.1, False)])
def test_without_scores_the_gate_scores_the_relationship_on_its_brands_p(
    memory_ledger: Ledger, brand_p: float, passed: bool
) -> None:
    granted(memory_ledger)
    memory_ledger.base_rates = lambda brand, at: dict.fromkeys(DIMENSIONS, brand_p)
    decision = memory_ledger.decide_push("brand-a", push(), now=NOON)
    trust_reason = next(r for r in decision["reasons"] if r["rule"] == "trust")
    assert trust_reason["passed"] is passed
    assert decision["scores"]["honesty"]["a"] == brand_p
    assert decision["scores"]["honesty"]["P"] == pytest.approx(brand_p)  # no evidence yet: u = 1


def test_a_bad_request_decides_and_stores_nothing(memory_ledger: Ledger) -> None:
    with pytest.raises(InvalidPushRequest):
        memory_ledger.decide_push("brand-a", {**VALID, "kind": "spam"}, GOOD, NOON)
    assert list(memory_ledger.customers("brand-a")) == []


def test_what_the_gate_reads_survives_a_snapshot(memory_ledger: Ledger) -> None:
    granted(memory_ledger, frequency_cap=1000)
    memory_ledger.record("brand-a", posted("preferences.updated", timezone="Europe/Paris"))
    memory_ledger.record("brand-a", posted("push.sent", push_id="earlier", at=NOON))
    memory_ledger.record("brand-a", posted("push.feedback", push_id="earlier", reaction="unwanted"))
    memory_ledger.record("brand-a", posted("consent.withdrawn", purpose="*", channels=["sms"]))
    for minute in range(60):
        memory_ledger.decide_push("brand-a", push(), GOOD, NOON + timedelta(minutes=minute))
    rid = relationship_id("brand-a", "cust-1")
    assert memory_ledger.snapshots is not None and list(memory_ledger.snapshots.get(rid))
    cached: Relationship = memory_ledger.repository.get(rid)
    rebuilt: Relationship = memory_ledger.repository.get(rid, version=cached.version)
    assert len(rebuilt.unwanted) == 1
    assert len(rebuilt.withdrawals) == 1 and rebuilt.granted_at is not None
    assert (rebuilt.items, rebuilt.preferences_by, rebuilt.unwanted) == (
        cached.items,
        cached.preferences_by,
        cached.unwanted,
    )
    assert (rebuilt.consents, rebuilt.objections, rebuilt.granted_at, rebuilt.withdrawals) == (
        cached.consents,
        cached.objections,
        cached.granted_at,
        cached.withdrawals,
    )


def test_a_request_built_in_code_is_checked_too(memory_ledger: Ledger) -> None:
    with pytest.raises(InvalidPushRequest):
        memory_ledger.decide_push("brand-a", replace(push(), kind="spam"), GOOD, NOON)
    unsorted = replace(push(), data_categories=("b", "a"))
    decided = memory_ledger.decide_push("brand-a", unsorted, GOOD, NOON)
    repeat = replace(unsorted, data_categories=("a", "b"))
    assert memory_ledger.decide_push("brand-a", repeat, GOOD, NOON) == decided


def test_a_push_id_sent_before_it_was_asked_about_is_still_claimed(memory_ledger: Ledger) -> None:
    memory_ledger.record("brand-a", posted("push.sent", "cust-1", push_id="early", at=NOON))
    request = push("service", push_id="early", purpose=None)
    memory_ledger.decide_push("brand-a", request, GOOD, NOON)
    with pytest.raises(PushIdConflict):
        memory_ledger.decide_push("brand-a", replace(request, customer="cust-2"), GOOD, NOON)
