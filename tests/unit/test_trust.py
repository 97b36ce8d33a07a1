"""The trust model: opinion arithmetic, decay, every evidence rule, and its two forms agreeing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.trust import (
    DIMENSIONS,
    HALF_LIFE,
    PRIOR_WEIGHT,
    Piece,
    Scores,
    empty_evidence,
    opinion,
    scores,
    scores_from_pieces,
    with_pieces,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = HALF_LIFE
evidence_amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


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
    piece = Piece("expertise", "e1", T0, positive=1.0)
    kept = with_pieces(empty_evidence(), [piece])
    for at, expected in [(T0, 1.0), (T0 + H, 0.5), (T0 + 2 * H, 0.25)]:
        assert scores(kept, at).dimensions["expertise"].opinion.positive == expected
        assert scores_from_pieces([piece], at).dimensions["expertise"].opinion.positive == expected


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
    batches=st.lists(st.lists(pieces, min_size=1, max_size=3), max_size=40),
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
