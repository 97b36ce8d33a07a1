"""The trust model: opinion arithmetic, decay, every evidence rule, and its two forms agreeing."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import RejectedEvent
from domain.relationship import Interaction, PostedEvent, Relationship, refold
from domain.snapshots import ItemsInColumns
from domain.trust import (
    DIMENSIONS,
    HALF_LIFE,
    PRIOR_WEIGHT,
    Piece,
    Scores,
    brand_scores,
    derived_evidence,
    empty_evidence,
    opinion,
    scores,
    scores_from_pieces,
    with_pieces,
)

T0 = datetime(2020, 1, 1, tzinfo=UTC)  # far enough back for years of history before today
H = HALF_LIFE
evidence_amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


# --- helpers: events go through the relationship's commands, so the real fold runs --------

DAY = timedelta(days=1)
event_ids = itertools.count(1)


def post(relationship: Relationship, type_: str, at: datetime, **data: Any) -> str:
    """Records one event through the relationship's commands; returns its event id."""
    event_id = f"evt-{next(event_ids)}"
    relationship.record(PostedEvent(event_id, type_, relationship.customer, at, data=data))
    return event_id


def evidence(relationship: Relationship, at: datetime) -> dict[str, tuple[float, float]]:
    """Each dimension's decayed (r, s) at `at`."""
    scored = relationship.trust(at)
    return {
        name: (score.opinion.positive, score.opinion.negative)
        for name, score in scored.dimensions.items()
    }


def just_past(relationship: Relationship, at: datetime) -> dict[str, tuple[float, float]]:
    """(r, s) a microsecond after `at`, to 9 places (a microsecond's decay aside)."""
    found = evidence(relationship, at + timedelta(microseconds=1))
    return {name: (round(r, 9), round(s, 9)) for name, (r, s) in found.items()}


def nothing_but(**expected: tuple[float, float]) -> dict[str, tuple[float, float]]:
    return {name: expected.get(name, (0.0, 0.0)) for name in DIMENSIONS}


def promise(due: datetime) -> dict[str, Any]:
    return {"promise_id": "p1", "summary": "refund by Friday", "due_at": due}


def admission(severity: str = "minor", by: str = "brand", error_id: str = "x1") -> dict[str, Any]:
    return {"error_id": error_id, "summary": "fee", "severity": severity, "discovered_by": by}


def report(error_id: str = "x1") -> dict[str, Any]:
    return {"error_id": error_id, "summary": "wrong bill", "reported_by": "customer"}


DUE = T0 + 2 * DAY
OFFER: dict[str, Any] = {"offer_id": "o1", "summary": "10% off"}
ADVICE: dict[str, Any] = {"advice_id": "a1", "topic": "tariff", "summary": "switch to flex"}
ANSWER: dict[str, Any] = {"case_id": "c1", "topic": "billing"}
CONSENT: dict[str, Any] = {
    "purpose": "marketing",
    "channels": ["email"],
    "data_categories": ["purchase_history"],
    "notice_version": "2026-01",
    "method": "web_form",
}

Step = tuple[str, datetime, dict[str, Any]]


def step(type_: str, at: datetime = T0, /, **data: Any) -> Step:
    return (type_, at, data)


# --- the opinion ----------------------------------------------------------------------------


@given(r=evidence_amounts, s=evidence_amounts)
def test_with_base_rate_one_half_p_is_the_beta_reputation_expectation(r: float, s: float) -> None:
    held = opinion(r, s, 0.5)
    assert math.isclose(held.P, (r + 1) / (r + s + 2), rel_tol=1e-12)
    assert math.isclose(held.b + held.d + held.u, 1.0, rel_tol=1e-12)
    assert (held.positive, held.negative, held.a) == (r, s, 0.5)


@pytest.mark.parametrize(
    ("r", "s", "a", "expected"),
    [
        (0.0, 0.0, 0.8, (0.0, 0.0, 1.0, 0.8)),
        (2.0, 0.0, 0.5, (0.5, 0.0, 0.5, 0.75)),
        (1.0, 1.0, 0.2, (0.25, 0.25, 0.5, 0.35)),
        (6.0, 2.0, 0.9, (0.6, 0.2, 0.2, 0.78)),
    ],
)
def test_belief_disbelief_uncertainty_and_p_by_hand(
    r: float, s: float, a: float, expected: tuple[float, float, float, float]
) -> None:
    held = opinion(r, s, a)
    assert (held.b, held.d, held.u, held.P) == pytest.approx(expected, abs=1e-12)
    assert PRIOR_WEIGHT == 2.0


# --- decay, in both forms -------------------------------------------------------------------


def test_evidence_of_age_exactly_one_half_life_counts_exactly_one_half() -> None:
    relationship = Relationship("brand-t", "cust-t")
    event_id = post(relationship, "question.answered", T0, case_id="c1", topic="t", resolved=True)
    piece = Piece("expertise", event_id, T0, positive=1.0)
    for at, expected in [(T0, 1.0), (T0 + H, 0.5), (T0 + 2 * H, 0.25)]:
        assert evidence(relationship, at) == nothing_but(expertise=(expected, 0.0))
        assert scores_from_pieces([piece], at).dimensions["expertise"].opinion.positive == expected


def test_evidence_dated_after_the_evaluation_time_counts_more_than_its_face_value() -> None:
    # The same exponential both ways, so that the incremental form stays exact; the ledger
    # refuses events more than 5 minutes ahead, so at its own clock this is at most 1.0000134.
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "question.answered", T0 + H, case_id="c1", topic="t", resolved=False)
    assert evidence(relationship, T0) == nothing_but(expertise=(0.0, 2.0))
    with pytest.raises(ValueError, match="half-lives before"):
        relationship.trust(T0 + H - 1001 * H)


def test_without_decay_evidence_keeps_its_face_value_forever() -> None:
    piece = Piece("honesty", "e1", T0, negative=2.0)
    kept = with_pieces(empty_evidence(None), [piece])
    assert scores(kept, T0 + 1000 * H).dimensions["honesty"].opinion.negative == 2.0


def test_a_late_posted_older_piece_is_decayed_to_the_reference_time() -> None:
    newer = Piece("consistency", "new", T0 + H, positive=1.0)
    older = Piece("consistency", "old", T0, positive=1.0)
    kept = with_pieces(with_pieces(empty_evidence(), [newer]), [older])
    assert kept["at"] == T0 + H
    assert kept["dimensions"]["consistency"]["positive"] == pytest.approx(1.5, rel=1e-12)


def test_adding_evidence_leaves_the_kept_evidence_unchanged() -> None:
    before = empty_evidence()
    after = with_pieces(before, [Piece("honesty", "e1", T0, positive=1.0)])
    assert before == empty_evidence()
    assert after["dimensions"]["honesty"]["positive"] == 1.0


pieces = st.builds(
    Piece,
    dimension=st.sampled_from(DIMENSIONS),
    event_id=st.uuids().map(str),
    at=st.one_of(
        st.sampled_from([T0, T0 + H / 2, T0 + H]),  # shared times, so that ranks tie
        st.integers(0, 4 * 365 * 24 * 3600).map(lambda seconds: T0 + timedelta(seconds=seconds)),
    ),
    positive=st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]),
    negative=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
).filter(lambda piece: piece.mass > 0)


@given(
    batches=st.integers(0, 80).flatmap(
        lambda n: st.lists(st.lists(pieces, min_size=1, max_size=3), min_size=n, max_size=n)
    ),
    at=st.integers(-30, 5 * 365).map(lambda days: T0 + timedelta(days=days)),
    half_life=st.sampled_from([HALF_LIFE, timedelta(days=30), timedelta(days=1000), None]),
)
def test_the_incremental_form_equals_the_sum_over_every_piece(
    batches: list[list[Piece]], at: datetime, half_life: timedelta | None
) -> None:
    kept = empty_evidence(half_life)
    for batch in batches:  # one batch per event, in the order recorded, whatever their times
        kept = with_pieces(kept, batch)
    every_piece = [piece for batch in batches for piece in batch]
    assert_same_scores(scores(kept, at), scores_from_pieces(every_piece, at, half_life=half_life))


def assert_same_scores(incremental: Scores, from_scratch: Scores) -> None:
    assert incremental.at == from_scratch.at
    assert math.isclose(incremental.overall, from_scratch.overall, abs_tol=1e-9)
    for name in DIMENSIONS:
        one, other = incremental.dimensions[name], from_scratch.dimensions[name]
        for side in ("b", "d", "u", "P", "positive", "negative"):
            mine, theirs = getattr(one.opinion, side), getattr(other.opinion, side)
            assert math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-9)
        assert [(e.event_id, e.derived) for e in one.top_events] == [
            (e.event_id, e.derived) for e in other.top_events
        ]
        for mine_event, their_event in zip(one.top_events, other.top_events, strict=True):
            assert math.isclose(mine_event.weight, their_event.weight, rel_tol=1e-12)


# --- the catalogue's rules, event by event ---------------------------------------------------

MADE = step("promise.made", **promise(DUE))
OFFERED = step("offer.made", **OFFER)
REPORTED = step("error.reported", **report())
ADVISED = step("advice.given", **ADVICE)
LATE = DUE + 5 * DAY  # past the 24 hours of grace: the promise was overdue before it closed

RULES = [
    pytest.param([MADE, step("promise.kept", DUE, promise_id="p1")],
                 nothing_but(consistency=(1.0, 0.0)), id="promise-kept-by-due-at"),
    pytest.param([MADE, step("promise.kept", DUE + timedelta(hours=1), promise_id="p1")],
                 nothing_but(consistency=(0.5, 0.5)), id="promise-kept-late"),
    pytest.param([MADE, step("promise.kept", LATE, promise_id="p1")],
                 nothing_but(consistency=(0.5, 0.5)), id="promise-kept-after-overdue"),
    pytest.param([MADE, step("promise.broken", T0 + DAY, promise_id="p1")],
                 nothing_but(consistency=(0.0, 1.0)), id="promise-broken"),
    pytest.param([MADE, step("promise.broken", LATE, promise_id="p1")],
                 nothing_but(consistency=(0.0, 1.0)), id="promise-broken-after-overdue"),
    pytest.param([MADE, step("promise.released", LATE, promise_id="p1")],
                 nothing_but(), id="promise-released-after-overdue"),
    pytest.param([OFFERED, step("offer.accepted", offer_id="o1"),
                  step("offer.honored", T0 + DAY, offer_id="o1")],
                 nothing_but(consistency=(1.0, 0.0)), id="offer-honored"),
    pytest.param([OFFERED, step("offer.reneged", T0 + DAY, offer_id="o1", reason="r")],
                 nothing_but(consistency=(0.0, 1.0), honesty=(0.0, 1.0)), id="offer-reneged"),
    pytest.param([OFFERED, step("offer.declined", offer_id="o1")],
                 nothing_but(), id="offer-declined"),
    pytest.param([step("error.admitted", **admission("minor", "brand"))],
                 nothing_but(honesty=(1.0, 0.0)), id="admitted-minor-found-by-brand"),
    pytest.param([step("error.admitted", **admission("major", "brand"))],
                 nothing_but(honesty=(2.0, 0.0)), id="admitted-major-found-by-brand"),
    pytest.param([step("error.admitted", **admission("critical", "brand"))],
                 nothing_but(honesty=(3.0, 0.0)), id="admitted-critical-found-by-brand"),
    pytest.param([step("error.admitted", **admission("minor", "customer"))],
                 nothing_but(honesty=(0.5, 0.0)), id="admitted-minor-found-by-customer"),
    pytest.param([step("error.admitted", **admission("critical", "regulator"))],
                 nothing_but(honesty=(1.5, 0.0)), id="admitted-critical-found-by-regulator"),
    pytest.param([REPORTED, step("error.admitted", T0 + DAY, **admission("major", "customer"))],
                 nothing_but(honesty=(1.0, 0.0)), id="reported-then-admitted-in-grace"),
    pytest.param([REPORTED, step("error.disputed", error_id="x1", reason="r"),
                  step("error.confirmed", T0 + DAY, error_id="x1", by="ombudsman")],
                 nothing_but(honesty=(0.0, 2.0)), id="confirmed-after-a-dispute"),
    pytest.param([REPORTED, step("error.confirmed", T0 + DAY, error_id="x1", by="ombudsman")],
                 nothing_but(), id="confirmed-undisputed"),
    pytest.param([REPORTED, step("error.withdrawn", T0 + 3 * DAY, error_id="x1")],
                 nothing_but(), id="report-withdrawn"),
    pytest.param([step("question.answered", **ANSWER, resolved=True)],
                 nothing_but(expertise=(1.0, 0.0)), id="answered-resolved"),
    pytest.param([step("question.answered", **ANSWER, resolved=False, rating=5)],
                 nothing_but(expertise=(0.0, 1.0)), id="answered-unresolved"),
    pytest.param([step("question.answered", **ANSWER, resolved=True),
                  step("case.reopened", case_id="c1")],
                 nothing_but(expertise=(1.0, 1.0)), id="case-reopened"),
    pytest.param([ADVISED, step("advice.rated", advice_id="a1", helpful=True)],
                 nothing_but(expertise=(1.0, 0.0)), id="advice-helpful"),
    pytest.param([ADVISED, step("advice.rated", advice_id="a1", helpful=False)],
                 nothing_but(expertise=(0.0, 1.0)), id="advice-unhelpful"),
    pytest.param([step("consent.granted", **CONSENT),
                  step("preferences.updated", timezone="Europe/Paris"),
                  step("push.sent", push_id="push-1"),
                  step("push.feedback", push_id="push-1", reaction="unwanted"),
                  step("consent.withdrawn", purpose="*")],
                 nothing_but(), id="consent-preferences-pushes"),
]  # fmt: skip


@pytest.mark.parametrize(("history", "expected"), RULES)
def test_each_event_carries_the_evidence_of_the_catalogue(
    history: list[Step], expected: dict[str, tuple[float, float]]
) -> None:
    relationship = Relationship("brand-t", "cust-t")
    for type_, at, data in history:
        post(relationship, type_, at, **data)
    last = history[-1][1]  # evaluated when the last event happened: its evidence at face value
    assert evidence(relationship, last) == expected


def test_a_due_at_without_a_utc_offset_is_refused_since_trust_compares_it() -> None:
    relationship = Relationship("brand-t", "cust-t")
    with pytest.raises(RejectedEvent, match="due_at"):
        post(relationship, "promise.made", T0, **promise(DUE.replace(tzinfo=None)))
    assert relationship.items["promise"] == {}


# --- derived evidence, crossing its deadlines -----------------------------------------------

MICROSECOND = timedelta(microseconds=1)


def test_an_open_promise_counts_against_consistency_past_24_hours_after_its_due_at() -> None:
    relationship = Relationship("brand-t", "cust-t")
    made = post(relationship, "promise.made", T0, **promise(DUE))
    overdue = DUE + timedelta(hours=24)
    assert evidence(relationship, overdue) == nothing_but()
    assert just_past(relationship, overdue) == nothing_but(consistency=(0.0, 1.0))
    assert evidence(relationship, overdue + H) == nothing_but(consistency=(0.0, 0.5))
    [top] = relationship.trust(overdue + H).dimensions["consistency"].top_events
    assert (top.event_id, top.at, top.weight) == (made, overdue, 0.5)
    assert top.derived == "promise.overdue"


def test_keeping_an_overdue_promise_replaces_the_overdue_piece_with_the_late_keep() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "promise.made", T0, **promise(DUE))
    kept_at = DUE + 3 * DAY
    post(relationship, "promise.kept", kept_at, promise_id="p1")
    assert evidence(relationship, kept_at) == nothing_but(consistency=(0.5, 0.5))


def test_a_report_not_admitted_counts_against_honesty_past_seven_days_after_it() -> None:
    relationship = Relationship("brand-t", "cust-t")
    reported = post(relationship, "error.reported", T0, **report())
    grace_ends = T0 + 7 * DAY
    assert evidence(relationship, grace_ends) == nothing_but()
    assert just_past(relationship, grace_ends) == nothing_but(honesty=(0.0, 1.0))
    assert evidence(relationship, grace_ends + H) == nothing_but(honesty=(0.0, 0.5))
    [top] = relationship.trust(grace_ends + MICROSECOND).dimensions["honesty"].top_events
    assert (top.event_id, top.derived) == (reported, "error.unadmitted")


def test_a_disputed_then_confirmed_report_stays_unadmitted_and_adds_its_confirmation() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "error.reported", T0, **report())
    post(relationship, "error.disputed", T0 + DAY, error_id="x1", reason="the bill was right")
    assert just_past(relationship, T0 + 7 * DAY) == nothing_but(honesty=(0.0, 1.0))
    post(relationship, "error.confirmed", T0 + 8 * DAY, error_id="x1", by="ombudsman")
    assert evidence(relationship, T0 + 8 * DAY) == nothing_but(honesty=(0.0, 2.0 + 2 ** (-DAY / H)))


def test_a_late_admission_ends_the_unadmitted_piece_and_earns_the_admission() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "error.reported", T0, **report())
    post(relationship, "error.admitted", T0 + 9 * DAY, **admission("critical", "customer"))
    assert evidence(relationship, T0 + 9 * DAY) == nothing_but(honesty=(1.5, 0.0))


def test_a_report_withdrawn_after_its_grace_is_neutral() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "error.reported", T0, **report())
    post(relationship, "error.withdrawn", T0 + 10 * DAY, error_id="x1")
    assert evidence(relationship, T0 + 10 * DAY) == nothing_but()


# --- stories --------------------------------------------------------------------------------


def honesty_after_three_errors(*steps: tuple[str, timedelta, dict[str, Any]]) -> float:
    """Honesty P 120 days on, for three errors handled by the same steps, a month apart."""
    relationship = Relationship("brand-t", "cust-t")
    for month in range(3):
        start = T0 + month * 30 * DAY
        for type_, after, data in steps:
            post(relationship, type_, start + after, **{**data, "error_id": f"x{month}"})
        post(relationship, "question.answered", start, **ANSWER, resolved=True)
    scored = relationship.trust(T0 + 120 * DAY)
    assert scored.dimensions["expertise"].opinion.positive > 0  # all else equal, and not nothing
    return scored.dimensions["honesty"].opinion.P


def test_a_brand_that_admits_errors_first_ends_more_honest_than_one_that_never_admits() -> None:
    admits_first = honesty_after_three_errors(("error.admitted", timedelta(0), admission("major")))
    admits_late = honesty_after_three_errors(
        ("error.reported", timedelta(0), report()),
        ("error.admitted", 10 * DAY, admission("major", "customer")),
    )
    never_admits = honesty_after_three_errors(("error.reported", timedelta(0), report()))
    assert admits_first > admits_late > 0.5 > never_admits


def test_a_new_relationship_starts_at_the_brand_base_rate_with_full_uncertainty() -> None:
    brand = {"consistency": 0.81, "honesty": 0.64, "expertise": 0.37}
    scored = Relationship("brand-t", "cust-new").trust(T0, brand)
    for name, rate in brand.items():
        held = scored.dimensions[name].opinion
        assert (held.b, held.d, held.u, held.a, held.P) == (0.0, 0.0, 1.0, rate, rate)
    assert math.isclose(scored.overall, (0.81 + 0.64 + 0.37) / 3, rel_tol=1e-15)


def test_with_no_history_and_base_rate_one_half_every_score_is_one_half() -> None:
    scored = Relationship("brand-t", "cust-new").trust(T0)
    assert [score.opinion.P for score in scored.dimensions.values()] == [0.5, 0.5, 0.5]
    assert scored.overall == 0.5


def test_the_brand_base_rate_moves_p_only_through_uncertainty() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "question.answered", T0, case_id="c1", topic="t", resolved=True)
    low = relationship.trust(T0, {"expertise": 0.2}).dimensions["expertise"].opinion
    high = relationship.trust(T0, {"expertise": 0.9}).dimensions["expertise"].opinion
    assert (low.b, low.u) == (high.b, high.u) == (1 / 3, 2 / 3)
    assert math.isclose(high.P - low.P, 0.7 * 2 / 3, rel_tol=1e-12)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_base_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="base rate"):
        Relationship("brand-t", "cust-t").trust(T0, {"honesty": rate})


# --- no decay: the Beta reputation, through the fold -----------------------------------------


@given(
    outcomes=st.lists(st.tuples(st.booleans(), st.integers(0, 3 * 365)), max_size=40),
    later=st.integers(0, 10_000),
)
def test_without_decay_p_is_the_beta_expectation_of_the_counts(
    outcomes: list[tuple[bool, int]], later: int
) -> None:
    relationship = Relationship("brand-t", "cust-t")
    for i, (resolved, day) in enumerate(outcomes):
        post(
            relationship,
            "question.answered",
            T0 + day * DAY,
            case_id=f"c{i}",
            topic="t",
            resolved=resolved,
        )
    undecayed = refold(relationship.collect_events(), half_life=None)
    r = sum(resolved for resolved, _ in outcomes)
    s = len(outcomes) - r
    held = undecayed.trust(T0 + later * DAY, half_life=None).dimensions["expertise"].opinion
    assert (held.positive, held.negative) == (r, s)
    assert math.isclose(held.P, (r + 1) / (r + s + 2), rel_tol=1e-12)


def test_scores_at_another_half_life_need_a_refold() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "question.answered", T0, case_id="c1", topic="t", resolved=True)
    with pytest.raises(ValueError, match="refold"):
        relationship.trust(T0 + DAY, half_life=timedelta(days=30))
    refolded = refold(relationship.collect_events(), timedelta(days=30))
    held = refolded.trust(T0 + 30 * DAY, half_life=timedelta(days=30)).dimensions["expertise"]
    assert held.opinion.positive == 0.5


# --- the two forms agree, for random histories posted through the commands ------------------


def attempt(relationship: Relationship, step: tuple[str, int, int, bool, str, str, int]) -> None:
    """Posts one random step; the relationship may refuse it (a kept promise never made...)."""
    type_, ref, hours, flag, severity, discoverer, due_hours = step
    at = T0 + timedelta(hours=hours)
    kind = type_.split(".")[0]
    data: dict[str, Any] = {
        "promise": {"promise_id": f"p{ref}"},
        "offer": {"offer_id": f"o{ref}"},
        "error": {"error_id": f"x{ref}"},
        "advice": {"advice_id": f"a{ref}"},
    }.get(kind, {"case_id": f"c{ref}"})
    extra: dict[str, dict[str, Any]] = {
        "promise.made": {"summary": "s", "due_at": at + timedelta(hours=due_hours)},
        "offer.made": {"summary": "s"},
        "offer.reneged": {"reason": "r"},
        "error.admitted": {"summary": "s", "severity": severity, "discovered_by": discoverer},
        "error.reported": {"summary": "s", "reported_by": "customer"},
        "error.disputed": {"reason": "r"},
        "error.confirmed": {"by": "ombudsman"},
        "question.answered": {"topic": "t", "resolved": flag},
        "advice.given": {"topic": "t", "summary": "s"},
        "advice.rated": {"helpful": flag},
    }
    data |= extra.get(type_, {})
    with contextlib.suppress(RejectedEvent):
        post(relationship, type_, at, **data)


STEP_TYPES = [
    "promise.made", "promise.kept", "promise.broken", "promise.released",
    "offer.made", "offer.accepted", "offer.honored", "offer.reneged",
    "error.admitted", "error.reported", "error.disputed", "error.confirmed", "error.withdrawn",
    "question.answered", "case.reopened", "advice.given", "advice.rated",
]  # fmt: skip
steps = st.tuples(
    st.sampled_from(STEP_TYPES),
    st.integers(0, 3),  # few references, so that later steps find what earlier ones opened
    st.integers(0, 3 * 365 * 24),  # occurred_at in hours after T0, in any order
    st.booleans(),
    st.sampled_from(["minor", "major", "critical"]),
    st.sampled_from(["brand", "customer", "regulator"]),
    st.integers(-10 * 24, 30 * 24),  # a promise's due_at, hours after it is made
)


def pieces_by_replay(events: Sequence[CanMutateAggregate[UUID]], at: datetime) -> list[Piece]:
    """Every piece of a relationship's history, event by event, then its derived pieces at `at`.

    The pieces come from the same rules as the fold's; what differs is the arithmetic: each piece
    is decayed from its own time to `at` and summed, nothing kept in between.
    """
    replica: Relationship | None = None
    every_piece: list[Piece] = []
    for event in events:
        if isinstance(event, Interaction) and replica is not None:
            every_piece.extend(replica.evidence_of(event))
        replica = cast(Relationship, event.mutate(replica))
    assert replica is not None
    return every_piece + derived_evidence(replica.items, at)


@given(
    history=st.integers(0, 150).flatmap(lambda n: st.lists(steps, min_size=n, max_size=n)),
    at_hours=st.integers(-30 * 24, 4 * 365 * 24),
    half_life=st.sampled_from([HALF_LIFE, timedelta(days=30), timedelta(days=1000), None]),
    base_rates=st.fixed_dictionaries({name: st.floats(0, 1) for name in DIMENSIONS}),
)
def test_the_relationship_scores_equal_the_sum_over_its_whole_history(
    history: list[tuple[str, int, int, bool, str, str, int]],
    at_hours: int,
    half_life: timedelta | None,
    base_rates: dict[str, float],
) -> None:
    relationship = Relationship("brand-t", "cust-t")
    for step in history:
        attempt(relationship, step)
    events = relationship.collect_events()
    if half_life != HALF_LIFE:
        relationship = refold(events, half_life)
    at = T0 + timedelta(hours=at_hours)
    incremental = relationship.trust(at, base_rates, half_life)
    from_scratch = scores_from_pieces(pieces_by_replay(events, at), at, base_rates, half_life)
    assert_same_scores(incremental, from_scratch)


# --- top events -----------------------------------------------------------------------------


def test_the_top_events_are_the_largest_decayed_contributions_however_late_we_look() -> None:
    relationship = Relationship("brand-t", "cust-t")
    old_critical = post(relationship, "error.admitted", T0, **admission("critical", error_id="x1"))
    minors = [
        post(relationship, "error.admitted", T0 + H + i * DAY, **admission(error_id=f"m{i}"))
        for i in range(6)
    ]
    major = admission("major", error_id="x2")
    recent_major = post(relationship, "error.admitted", T0 + 2 * H, **major)
    for at in (T0 + 2 * H, T0 + 20 * H):
        top = relationship.trust(at).dimensions["honesty"].top_events
        # 3 x 2^-2 = 0.75 for the critical one, vs 2^-1 for a minor one a half-life later.
        assert [event.event_id for event in top] == [recent_major, old_critical, *minors[::-1][:3]]
        contributions = [event.positive for event in top]
        assert contributions == sorted(contributions, reverse=True)
        assert len(relationship.evidence["dimensions"]["honesty"]["top"]) == 5


def test_derived_evidence_joins_the_top_events_where_it_weighs_most() -> None:
    relationship = Relationship("brand-t", "cust-t")
    answered = post(relationship, "question.answered", T0, case_id="c1", topic="t", resolved=True)
    made = post(relationship, "promise.made", T0, **promise(DUE))
    honored = []
    for i in range(1, 4):  # before the promise is overdue, so each weighs less than it
        at = T0 + i * timedelta(hours=12)
        post(relationship, "offer.made", at, **{**OFFER, "offer_id": f"o{i}"})
        honored.append(post(relationship, "offer.honored", at, offer_id=f"o{i}"))
    top = relationship.trust(T0 + 30 * DAY).dimensions["consistency"].top_events
    assert [(event.event_id, event.derived) for event in top] == [
        (made, "promise.overdue"),
        *[(event_id, None) for event_id in honored[::-1]],
    ]
    assert answered not in [event.event_id for event in top]


# --- the kept evidence in the aggregate: bounded, JSON, snapshot-proof ---------------------


def json_shaped(value: object) -> bool:
    """Whether the value is made of what the library's JSON transcoder gives back as it was."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_shaped(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_shaped(v) for v in value)
    return value is None or isinstance(value, str | float | int | datetime)


def test_the_kept_evidence_stays_small_whatever_the_length_of_the_history() -> None:
    relationship = Relationship("brand-t", "cust-t")
    for i in range(2000):
        post(
            relationship,
            "question.answered",
            T0 + i * timedelta(hours=6),
            case_id=f"c{i}",
            topic="t",
            resolved=i % 3 > 0,
        )
    kept = relationship.evidence
    assert json_shaped(kept)
    assert set(kept) == {"half_life", "at", "dimensions"}
    assert [len(dimension["top"]) for dimension in kept["dimensions"].values()] == [0, 0, 5]
    assert len(json.dumps(kept, default=str)) < 2000


class SnapshottingApplication(Application[UUID]):
    """The library's application, with the transcoding of a relationship snapshot's items."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ItemsInColumns())


def test_the_kept_evidence_survives_a_snapshot_through_the_json_transcoder() -> None:
    relationship = Relationship("brand-t", "cust-t")
    post(relationship, "promise.made", T0, **promise(DUE))
    post(relationship, "error.admitted", T0 + DAY, **admission("major"))
    post(relationship, "offer.made", T0 + DAY, **OFFER)
    post(relationship, "offer.reneged", T0 + 2 * DAY, offer_id="o1", reason="promo ended")
    app = SnapshottingApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "IS_SNAPSHOTTING_ENABLED": "y"}
    )
    app.save(relationship)
    app.take_snapshot(relationship.id)
    assert app.snapshots is not None
    [snapshot] = app.snapshots.get(relationship.id)
    restored = cast(Relationship, snapshot.mutate(None))  # type: ignore[attr-defined]
    assert restored.evidence == relationship.evidence
    at = T0 + 40 * DAY
    assert restored.trust(at, {"honesty": 0.7}) == relationship.trust(at, {"honesty": 0.7})


# --- a brand's scores from its relationships ------------------------------------------------


def test_a_brand_sums_its_relationships_evidence_with_base_rate_one_half() -> None:
    at = T0 + 10 * DAY
    first, second = Relationship("brand-t", "cust-1"), Relationship("brand-t", "cust-2")
    post(first, "error.admitted", T0, **admission("major"))
    reneged = post(second, "offer.made", T0 + DAY, **OFFER)
    reneged = post(second, "offer.reneged", T0 + DAY, offer_id="o1", reason="r")
    brand = brand_scores([first.trust(at, {"honesty": 0.9}), second.trust(at)], at)
    honesty = brand.dimensions["honesty"].opinion
    decay = 2 ** (-10 * DAY / H), 2 ** (-9 * DAY / H)
    assert math.isclose(honesty.positive, 2 * decay[0], rel_tol=1e-12)
    assert math.isclose(honesty.negative, decay[1], rel_tol=1e-12)
    assert honesty.a == 0.5
    assert honesty == opinion(2 * decay[0], decay[1], 0.5)
    assert brand.dimensions["consistency"].top_events[0].event_id == reneged


def test_a_brand_with_no_relationships_scores_one_half() -> None:
    assert brand_scores([], T0).overall == 0.5


def test_relationships_scored_at_different_times_cannot_be_summed() -> None:
    relationship = Relationship("brand-t", "cust-1")
    with pytest.raises(ValueError, match="cannot join"):
        brand_scores([relationship.trust(T0), relationship.trust(T0 + DAY)], T0)


# --- docs/trust.md's worked example, so its numbers stay true ------------------------------


def test_the_worked_example_of_the_documentation() -> None:
    def noon(day: str) -> datetime:
        return datetime.fromisoformat(f"{day}T12:00:00+00:00")

    relationship = Relationship("acme", "cust-42")
    history: list[tuple[str, str, dict[str, Any]]] = [
        ("promise.made", "2025-01-10", promise(noon("2025-01-15"))),
        ("promise.kept", "2025-01-14", {"promise_id": "p1"}),
        ("error.reported", "2025-02-01", report()),
        ("error.disputed", "2025-02-03", {"error_id": "x1", "reason": "we see one charge"}),
        ("error.confirmed", "2025-02-20", {"error_id": "x1", "by": "ombudsman"}),
        ("question.answered", "2025-03-01", {**ANSWER, "resolved": True}),
        ("error.admitted", "2025-03-05", admission("major", "brand", "x2")),
        ("promise.made", "2025-06-01", {**promise(noon("2025-06-03")), "promise_id": "p2"}),
    ]
    ids = [post(relationship, type_, noon(day), **data) for type_, day, data in history]
    brand = {"consistency": 0.7, "honesty": 0.6, "expertise": 0.8}
    scored = relationship.trust(noon("2025-07-13"), brand)
    table = {
        name: tuple(
            round(getattr(score.opinion, side), 4) for side in ("positive", "negative", "P")
        )
        for name, score in scored.dimensions.items()
    }
    assert table == {
        "consistency": (0.5, 0.8606, 0.5654),
        "honesty": (1.2123, 1.7037, 0.4907),
        "expertise": (0.5969, 0.0, 0.846),
    }
    assert round(scored.overall, 4) == 0.634
    honesty_movers = [event.event_id for event in scored.dimensions["honesty"].top_events]
    assert honesty_movers == [ids[6], ids[4], ids[2]]
    post(relationship, "error.admitted", noon("2025-07-13"), **admission("minor", "customer"))
    post(relationship, "promise.kept", noon("2025-07-13"), promise_id="p2")
    after = relationship.trust(noon("2025-07-13"), brand)
    assert [round(score.opinion.P, 4) for score in after.dimensions.values()] == [
        0.6857,
        0.5986,
        0.846,
    ]
    assert round(after.overall, 4) == 0.7101


def test_projected_gives_the_p_of_scores_without_ranking() -> None:
    import random as _random

    from domain import trust

    rng = _random.Random(7)
    evidence = trust.empty_evidence()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(60):
        dimension = rng.choice(trust.DIMENSIONS)
        piece = trust.Piece(dimension, f"e{n}", at + timedelta(days=n), rng.random(), rng.random())
        evidence = trust.with_pieces(evidence, [piece])
    rates = {"consistency": 0.7, "honesty": 0.2, "expertise": 0.9}
    later = at + timedelta(days=200)
    derived = [trust.Piece("honesty", "d1", at + timedelta(days=10), 0.0, 1.0, "error.unadmitted")]
    full = trust.scores(evidence, later, rates, derived)
    assert trust.projected(evidence, later, rates, derived) == {
        name: score.opinion.P for name, score in full.dimensions.items()
    }
