"""The trust chart's lines. The brand's: folded on as the brand's timeline grows, equal to a fold
from its first row, and to P computed directly from the rows dated by each moment. The
relationship's: folded from its timeline rows, equal to its events folded as the ledger does."""

from __future__ import annotations

import dataclasses
import itertools
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.ui import chart
from domain import trust
from domain.application import Ledger
from domain.relationship import PostedEvent, Relationship, relationship_id
from projections import trust_line
from projections.db import Database, timestamp
from projections.relationships import fold, items
from projections.runner import Runner
from projections.trust import TimelineFact, base_rates, brand_scores, empty_row
from projections.trust_line import MOMENTS, BrandLines, Line, grid
from tests.conftest import new_postgres_database, new_sqlite_database, open_ledger
from tests.factories import interleaved, posted, story

START = datetime(2025, 1, 1, tzinfo=UTC)


@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    first=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4000)),
    more=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4000)),
)
def test_a_later_end_keeps_every_moment_of_the_grid_or_every_other(
    start: datetime, first: timedelta, more: timedelta
) -> None:
    start = start.replace(tzinfo=UTC)
    earlier, later = grid(start, start + first), grid(start, start + first + more)
    assert earlier[0] == start and earlier[-1] == start + first
    assert len(earlier) <= MOMENTS and len(later) <= MOMENTS
    assert all(a < b for a, b in itertools.pairwise(later))
    assert {at for at in later if at < start + first} <= set(earlier)


def directly(db: Database, brand: str, at: datetime) -> dict[str, float]:
    """The brand's P at `at` from its rows reached by then, each folded and added on its own: a
    row is reached at its event time or a later one of its relationship's earlier rows."""
    rows = db.query(
        "SELECT relationship_id, sequence, type, event_id, occurred_at, data FROM timeline"
        " WHERE brand = ? ORDER BY position",
        [brand],
    )
    reached: dict[object, str] = {}
    timed = []
    for n, row in enumerate(rows):
        reached[row[0]] = max(reached.get(row[0], ""), row[4])
        timed.append((reached[row[0]], n, row))
    states: dict[object, dict[str, Any]] = {}
    evidence = trust.empty_evidence()
    for when, _, (rid, sequence, type_, event_id, occurred_at, data) in sorted(timed):
        if when > timestamp(at):  # type: ignore[operator]
            break
        state = states.setdefault(rid, empty_row())
        fact = TimelineFact.of_row(type_, event_id, occurred_at, sequence, data)
        evidence = trust.with_pieces(evidence, fold(state, fact))
    derived = [p for s in states.values() for p in trust.derived_evidence(items(s), at)]
    scores = trust.scores(evidence, at, None, derived)
    return {name: score.opinion.P for name, score in scores.dimensions.items()}


def assert_close(found: Line, expected: Line) -> None:
    assert [at for at, _ in found] == [at for at, _ in expected]
    for (_, rates), (_, wanted) in zip(found, expected, strict=True):
        assert rates == pytest.approx(wanted, abs=1e-9)


def dated(events: list[PostedEvent], rng: random.Random, in_order: bool) -> list[PostedEvent]:
    """The events dated over 90 days before now: in the order given, or at random (late ones)."""
    days = [rng.uniform(0, 90) for _ in events]
    days = sorted(days, reverse=True) if in_order else days
    now = datetime.now(UTC)
    return [
        dataclasses.replace(event, occurred_at=now - timedelta(days=d))
        for event, d in zip(events, days, strict=True)
    ]


def lines_agree(ledger: Ledger, rng: random.Random, in_order: bool) -> None:
    """A brand's events recorded in batches of random sizes, its line drawn after each: the
    process's line, folded on, equals one folded from the first row and P computed directly at
    each moment; its end is the brand's P from its read model."""
    brand = f"b-{rng.getrandbits(32):x}"
    promise = posted("promise.made", "keeper", promise_id="p", summary="s", due_at=START)
    events = dated([promise, *interleaved(rng, 3)], rng, in_order)
    runner, lines = Runner(ledger), BrandLines()
    while events:
        size = rng.randint(1, 20)
        ledger.record_batch(brand, events[:size])
        events = events[size:]
        runner.run_once()
        end = datetime.now(UTC)
        line = lines.line(runner.db, brand, end)
        assert_close(line, BrandLines().line(runner.db, brand, end))
        for at, rates in line[:-1]:
            assert rates == pytest.approx(directly(runner.db, brand, at), abs=1e-9)
        assert line[-1] == (end, base_rates(brand_scores(runner.db, brand, at=end)))
    runner.close()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), in_order=st.booleans())
def test_a_line_folded_on_equals_one_folded_from_the_first_row(seed: int, in_order: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        ledger = open_ledger(new_sqlite_database(Path(directory)))
        lines_agree(ledger, random.Random(seed), in_order)
        ledger.close()


@pytest.mark.postgres
@pytest.mark.parametrize("in_order", [True, False])
def test_a_line_folded_on_postgres_equals_one_folded_from_the_first_row(in_order: bool) -> None:
    ledger = open_ledger(new_postgres_database())
    lines_agree(ledger, random.Random(11), in_order)
    ledger.close()


def test_a_drawing_folds_only_what_was_recorded_since_unless_it_is_dated_before_a_kept_moment(
    ledger: Ledger,
) -> None:
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    due, made = now - timedelta(days=20), now - timedelta(days=30)
    ledger.record(
        brand, posted("promise.made", "c", promise_id="p", summary="s", due_at=due, at=made)
    )
    runner, lines = Runner(ledger), BrandLines()
    runner.run_once()
    lines.line(runner.db, brand, now)
    first = lines.folds[brand]
    kept = posted("promise.kept", "c", promise_id="p", at=now)
    ledger.record(brand, kept)
    runner.run_once()
    later = now + timedelta(minutes=1)
    assert lines.line(runner.db, brand, later)[-2][1]["consistency"] < 0.5  # overdue until now
    assert lines.folds[brand] is first and [row[3] for _, row in first.pending] == [kept.event_id]
    late = posted("question.answered", "d", case_id="q", topic="t", resolved=True, rating=5,
                  at=now - timedelta(days=29))  # fmt: skip
    ledger.record(brand, late)
    runner.run_once()
    assert_close(lines.line(runner.db, brand, later), BrandLines().line(runner.db, brand, later))
    assert lines.folds[brand] is not first  # a row dated before a kept moment: folded again
    runner.close()


def test_a_brands_rows_are_read_a_page_at_a_time_and_the_line_is_the_same(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first drawing read every row of the brand in one query: for a brand of millions of
    events, one round trip past the statement timeout (a 503 on every first drawing)."""
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    events = [
        posted("question.answered", f"c{i % 3}", case_id=f"q{i}", topic="t", resolved=i % 2 == 0,
               rating=None, at=now - timedelta(days=30 - i))
        for i in range(7)
    ]  # fmt: skip
    ledger.record_batch(brand, events)
    runner = Runner(ledger)
    runner.run_once()
    whole = BrandLines().line(runner.db, brand, now)
    monkeypatch.setattr(trust_line, "ROWS_PAGE", 2)
    returned: list[int] = []
    query = runner.db.query

    def counted(statement: str, params: Any = (), binary: bool = False) -> list[Any]:
        rows = query(statement, params, binary)
        if "FROM timeline" in statement:
            returned.append(len(rows))
        return rows

    monkeypatch.setattr(runner.db, "query", counted)
    assert BrandLines().line(runner.db, brand, now) == whole
    assert sum(returned) >= 7 and max(returned) <= 2, returned
    runner.close()


def test_a_replay_as_of_a_record_time_draws_what_was_recorded_by_then(ledger: Ledger) -> None:
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    made = posted("promise.made", "c", promise_id="p", summary="s", due_at=now - timedelta(days=20),
                  at=now - timedelta(days=30))  # fmt: skip
    ledger.record(brand, made)
    between = datetime.now(UTC)
    ledger.record(brand, posted("promise.kept", "c", promise_id="p", at=now - timedelta(days=25)))
    runner, lines = Runner(ledger), BrandLines()
    runner.run_once()
    replayed = lines.line(runner.db, brand, between, as_of=between)
    assert replayed[-1][0] == between and replayed[-1][1]["consistency"] < 0.5  # still overdue
    assert replayed[-1][1] == pytest.approx(directly_as_of(runner.db, brand, between))
    assert lines.line(runner.db, brand, between)[-1][1]["consistency"] > 0.5  # kept early
    runner.close()


def directly_as_of(db: Database, brand: str, as_of: datetime) -> dict[str, float]:
    return base_rates(brand_scores(db, brand, at=as_of, as_of=as_of))


def from_events(
    ledger: Ledger,
    brand: str,
    customer: str,
    line: Line,
    as_of: datetime | None,
    end: datetime,
    half_life: timedelta,
) -> list[chart.Point]:
    """The relationship's points from its events recorded by `as_of`, each folded into the
    relationship, in log order, once its event time is reached, at `half_life`: how the chart
    drew them before it read the timeline (at the default half-life)."""
    events: list[Any] = [
        event
        for event in cast(Any, ledger.events.get(relationship_id(brand, customer)))
        if as_of is None or event.timestamp <= as_of
    ]
    start = min(e.occurred_at for e in events[1:]) - timedelta(seconds=1)
    relationship: Relationship = events[0].mutate(None)
    relationship.evidence = trust.empty_evidence(half_life)
    pending, points = events[1:], []
    for at in chart.moments(start, max(end, start), chart.MOMENTS):
        while pending and pending[0].occurred_at <= at:
            relationship = pending.pop(0).mutate(relationship)
        scores = relationship.trust(at, chart._rates_at(line, at), half_life)
        points.append(
            chart.Point(
                at,
                {n: s.opinion.P for n, s in scores.dimensions.items()},
                {n: s.opinion.b for n, s in scores.dimensions.items()},
                {n: s.opinion.b + s.opinion.u for n, s in scores.dimensions.items()},
            )
        )
    return points


def points_agree(ledger: Ledger, rng: random.Random, in_order: bool) -> None:
    """A customer's whole story, dated in order or at random, recorded in batches, under the
    default half-life or the brand policy's own: the chart's points from the timeline equal those
    from the events, now and as of each batch's record."""
    brand, customer = f"b-{rng.getrandbits(32):x}", "c"
    half_life = rng.choice([trust.HALF_LIFE, timedelta(days=7)])
    ledger.set_policy(brand, {"trust_half_life_days": half_life.days})
    events, recorded = dated(story(customer), rng, in_order), []
    while events:
        size = rng.randint(1, 8)
        ledger.record_batch(brand, events[:size])
        events = events[size:]
        recorded.append(datetime.now(UTC))
    runner, lines = Runner(ledger), BrandLines()
    runner.run_once()
    for as_of in [None, *recorded]:
        found = chart.series(ledger, runner.db, lines, brand, customer, as_of)
        end = found.points[-1].at  # as_of, or the moment the chart took for now
        expected = from_events(ledger, brand, customer, found.brand, as_of, end, half_life)
        assert [p.at for p in found.points] == [p.at for p in expected]
        for point, wanted in zip(found.points, expected, strict=True):
            for name in ("P", "low", "high"):
                assert getattr(point, name) == pytest.approx(getattr(wanted, name), abs=1e-9)
    runner.close()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), in_order=st.booleans())
def test_a_relationships_points_from_its_rows_equal_those_from_its_events(
    seed: int, in_order: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        ledger = open_ledger(new_sqlite_database(Path(directory)))
        points_agree(ledger, random.Random(seed), in_order)
        ledger.close()


@pytest.mark.postgres
@pytest.mark.parametrize("in_order", [True, False])
def test_a_relationships_points_on_postgres_equal_those_from_its_events(in_order: bool) -> None:
    ledger = open_ledger(new_postgres_database())
    points_agree(ledger, random.Random(12), in_order)
    ledger.close()
