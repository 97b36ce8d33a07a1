"""The trust chart's lines, folded on as their timelines grow, equal to a fold from their first
row. The brand's: equal to P computed directly from the rows dated by each moment. The
relationship's: equal to its events folded as the ledger does."""

from __future__ import annotations

import dataclasses
import itertools
import random
import tempfile
import threading
from collections.abc import Callable
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
from projections.trust_line import (
    BRANDS,
    MOMENTS,
    RELATIONSHIPS,
    Line,
    Lines,
    TrustLines,
    brand_line,
    grid,
)
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
    runner, lines = Runner(ledger), Lines(BRANDS)
    while events:
        size = rng.randint(1, 20)
        ledger.record_batch(brand, events[:size])
        events = events[size:]
        runner.run_once()
        end = datetime.now(UTC)
        line = brand_line(lines, runner.db, brand, end)
        assert_close(line, brand_line(Lines(BRANDS), runner.db, brand, end))
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
    runner, lines = Runner(ledger), Lines(BRANDS)
    runner.run_once()
    brand_line(lines, runner.db, brand, now)
    first = lines.folds[brand]
    kept = posted("promise.kept", "c", promise_id="p", at=now)
    ledger.record(brand, kept)
    runner.run_once()
    later = now + timedelta(minutes=1)
    assert (
        brand_line(lines, runner.db, brand, later)[-2][1]["consistency"] < 0.5
    )  # overdue till now
    assert lines.folds[brand] is first and [row[3] for _, row in first.pending] == [kept.event_id]
    late = posted("question.answered", "d", case_id="q", topic="t", resolved=True, rating=5,
                  at=now - timedelta(days=29))  # fmt: skip
    ledger.record(brand, late)
    runner.run_once()
    assert_close(
        brand_line(lines, runner.db, brand, later),
        brand_line(Lines(BRANDS), runner.db, brand, later),
    )
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
    whole = brand_line(Lines(BRANDS), runner.db, brand, now)
    monkeypatch.setattr(trust_line, "ROWS_PAGE", 2)
    returned: list[int] = []
    query = runner.db.query

    def counted(statement: str, params: Any = (), binary: bool = False) -> list[Any]:
        rows = query(statement, params, binary)
        if "FROM timeline" in statement:
            returned.append(len(rows))
        return rows

    monkeypatch.setattr(runner.db, "query", counted)
    assert brand_line(Lines(BRANDS), runner.db, brand, now) == whole
    assert sum(returned) >= 7 and max(returned) <= 2, returned
    runner.close()


def test_a_replay_as_of_a_record_time_draws_what_was_recorded_by_then(ledger: Ledger) -> None:
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    made = posted("promise.made", "c", promise_id="p", summary="s", due_at=now - timedelta(days=20),
                  at=now - timedelta(days=30))  # fmt: skip
    ledger.record(brand, made)
    between = datetime.now(UTC)
    ledger.record(brand, posted("promise.kept", "c", promise_id="p", at=now - timedelta(days=25)))
    runner, lines = Runner(ledger), Lines(BRANDS)
    runner.run_once()
    replayed = brand_line(lines, runner.db, brand, between, as_of=between)
    assert replayed[-1][0] == between and replayed[-1][1]["consistency"] < 0.5  # still overdue
    assert replayed[-1][1] == pytest.approx(directly_as_of(runner.db, brand, between))
    assert brand_line(lines, runner.db, brand, between)[-1][1]["consistency"] > 0.5  # kept early
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
    relationship, in log order, once its event time is reached, at `half_life`, at the moments of
    the grid from a second before its first event to `end`: how the chart drew them before it
    read the timeline (at the default half-life, and at 32 moments evenly spaced)."""
    events: list[Any] = [
        event
        for event in cast(Any, ledger.events.get(relationship_id(brand, customer)))
        if as_of is None or event.timestamp <= as_of
    ]
    start = min(e.occurred_at for e in events[1:]) - timedelta(seconds=1)
    relationship: Relationship = events[0].mutate(None)
    relationship.evidence = trust.empty_evidence(half_life)
    pending, points = events[1:], []
    moments = grid(start, max(end, start), RELATIONSHIPS.finest)
    for at in [*(at for at in moments if at < end), end]:
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
    runner, lines = Runner(ledger), TrustLines()
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


def assert_opinions_close(found: list[Any], expected: list[Any]) -> None:
    assert [at for at, _ in found] == [at for at, _ in expected]
    for (_, opinions), (_, wanted) in zip(found, expected, strict=True):
        for name, opinion in opinions.items():
            numbers, wanted_numbers = opinion.numbers(), wanted[name].numbers()
            assert numbers == pytest.approx(wanted_numbers, abs=1e-9)


def relationship_lines_agree(ledger: Ledger, rng: random.Random) -> None:
    """A customer's story recorded in batches, each event dated after the last drawing or, at
    random, before it (a late row), the line drawn after each: the line this process folds on
    equals one folded from the first row, now and as of an earlier batch's record time."""
    brand, customer = f"b-{rng.getrandbits(32):x}", "c"
    rid, half_life = str(relationship_id(brand, customer)), rng.choice([trust.HALF_LIFE, None])
    runner, lines = Runner(ledger), Lines(RELATIONSHIPS)
    events, recorded = story(customer), []
    first = clock = datetime.now(UTC) - timedelta(days=120)
    while events:
        size = rng.randint(1, 6)
        batch, events = events[:size], events[size:]
        for n, event in enumerate(batch):
            clock += timedelta(hours=rng.uniform(0, 72))
            late = first + (clock - first) * rng.random()
            batch[n] = dataclasses.replace(event, occurred_at=late if rng.random() < 0.2 else clock)
        ledger.record_batch(brand, batch)
        runner.run_once()
        recorded.append(datetime.now(UTC))
        clock += timedelta(hours=rng.uniform(0, 48))
        found = lines.line(runner.db, rid, clock, None, half_life)
        assert_opinions_close(
            found, Lines(RELATIONSHIPS).line(runner.db, rid, clock, None, half_life)
        )
        as_of = rng.choice(recorded)
        replayed = lines.line(runner.db, rid, as_of, as_of, half_life)
        from_first = Lines(RELATIONSHIPS).line(runner.db, rid, as_of, as_of, half_life)
        assert_opinions_close(replayed, from_first)
    runner.close()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_relationships_line_folded_on_equals_one_folded_from_the_first_row(seed: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        ledger = open_ledger(new_sqlite_database(Path(directory)))
        relationship_lines_agree(ledger, random.Random(seed))
        ledger.close()


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [13, 14])
def test_a_relationships_line_folded_on_postgres_equals_one_folded_from_the_first_row(
    seed: int,
) -> None:
    ledger = open_ledger(new_postgres_database())
    relationship_lines_agree(ledger, random.Random(seed))
    ledger.close()


def test_a_relationships_drawing_folds_on_what_was_recorded_since_unless_it_is_dated_earlier(
    ledger: Ledger,
) -> None:
    """A row dated after the last moment kept, even before the end last drawn, is folded on; one
    dated at or before a kept moment folds the relationship again from its first row."""
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    rid = str(relationship_id(brand, "c"))
    made = posted("promise.made", "c", promise_id="p", summary="s", due_at=now - timedelta(days=20),
                  at=now - timedelta(days=30))  # fmt: skip
    ledger.record(brand, made)
    runner, lines = Runner(ledger), Lines(RELATIONSHIPS)
    runner.run_once()
    assert lines.line(runner.db, rid, now)[-1][1]["consistency"].d > 0  # overdue
    first = lines.folds[rid]
    kept_moments = list(first.kept)
    assert kept_moments[-1] < now - timedelta(hours=1)
    ledger.record(brand, posted("promise.kept", "c", promise_id="p", at=now - timedelta(hours=1)))
    runner.run_once()
    later = now + timedelta(minutes=1)
    found = lines.line(runner.db, rid, later)
    assert lines.folds[rid] is first and list(first.kept) == kept_moments
    assert_opinions_close(found, Lines(RELATIONSHIPS).line(runner.db, rid, later))
    assert found[-1][1]["consistency"].d < found[-2][1]["consistency"].d  # no longer open
    late = posted("question.answered", "c", case_id="q", topic="t", resolved=True, rating=5,
                  at=now - timedelta(days=29))  # fmt: skip
    ledger.record(brand, late)
    runner.run_once()
    found = lines.line(runner.db, rid, later)
    assert lines.folds[rid] is not first  # dated before a kept moment: folded again
    assert_opinions_close(found, Lines(RELATIONSHIPS).line(runner.db, rid, later))
    runner.close()


def test_a_relationship_a_few_hours_old_draws_its_steps(ledger: Ledger) -> None:
    """Its grid starts at a minute, not at a brand's hour: three answers over two hours are
    three steps of its line, each drawn between moments of its own."""
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    for n, ago in enumerate((120, 80, 40)):
        ledger.record(brand, posted("question.answered", "c", case_id=f"q{n}", topic="t",
                                    resolved=True, rating=5, at=now - timedelta(minutes=ago)))  # fmt: skip
    runner = Runner(ledger)
    runner.run_once()
    found = Lines(RELATIONSHIPS).line(runner.db, str(relationship_id(brand, "c")), now)
    assert len(found) >= MOMENTS // 2
    expertise = [round(opinions["expertise"].b, 3) for _, opinions in found]  # decay aside
    assert len(set(expertise)) == 4  # the prior, then one more after each answer
    runner.close()


def test_a_process_keeps_the_lines_of_its_most_recently_drawn_relationships_only(
    ledger: Ledger,
) -> None:
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    customers = [f"c{n}" for n in range(RELATIONSHIPS.kept + 2)]
    events = [
        posted("question.answered", c, case_id="q", topic="t", resolved=True, at=now)
        for c in customers
    ]
    ledger.record_batch(brand, events)
    runner, lines, recorded = Runner(ledger), Lines(RELATIONSHIPS), datetime.now(UTC)
    runner.run_once()
    rids = [str(relationship_id(brand, c)) for c in customers]
    for rid in rids:
        assert lines.line(runner.db, rid, now)
        assert lines.line(runner.db, rid, recorded, as_of=recorded)
    assert list(lines.folds) == rids[2:] and len(lines.replays) == RELATIONSHIPS.kept
    assert {replay[0] for replay in lines.replays} == set(rids[2:])
    runner.close()


def test_an_erased_customers_chart_is_not_drawn_and_a_replay_before_it_is_unchanged(
    ledger: Ledger,
) -> None:
    brand, customer = f"b-{random.getrandbits(32):x}", "c"
    ledger.record_batch(brand, dated(story(customer), random.Random(3), in_order=True))
    runner, lines = Runner(ledger), TrustLines()
    runner.run_once()
    before = datetime.now(UTC)
    assert chart.series(ledger, runner.db, lines, brand, customer, None).points
    replayed = chart.series(ledger, runner.db, lines, brand, customer, before)
    ledger.erase(brand, customer, requested_by="dpo", reason="art. 17")
    runner.run_once()
    erased = chart.series(ledger, runner.db, lines, brand, customer, None)
    assert erased.erased and erased.points == []
    assert str(relationship_id(brand, customer)) not in lines.relationships.folds
    again = chart.series(ledger, runner.db, TrustLines(), brand, customer, before)
    assert not again.erased and again.points == replayed.points
    runner.close()


class HeldFold(Lines):
    """Lines whose first fold of `held` waits, once it has begun, until `release` is set: a
    first drawing of a long line, made as long as the test needs."""

    def __init__(self, held: str) -> None:
        super().__init__(RELATIONSHIPS)
        self.held, self.begun, self.release = held, threading.Event(), threading.Event()
        self.folded: list[str] = []

    def _folded(
        self, db: Database, key: str, as_of: datetime | None, half_life: timedelta | None
    ) -> trust_line.Fold | None:
        self.folded.append(key)
        if key == self.held:
            self.begun.set()
            assert self.release.wait(60)
        return super()._folded(db, key, as_of, half_life)


def drawing(draw: Callable[[], Any]) -> tuple[threading.Thread, threading.Event, list[Any]]:
    """`draw` run in a thread of its own: the thread, set once it has drawn, and what it drew."""
    done, found = threading.Event(), []

    def run() -> None:
        found.append(draw())
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, found


def test_a_first_fold_in_progress_holds_up_no_other_lines_drawing(ledger: Ledger) -> None:
    """While a first drawing of one relationship's line is folding, another relationship's line
    is drawn, and a second drawing of the first waits for it and folds it no second time."""
    brand, now = f"b-{random.getrandbits(32):x}", datetime.now(UTC)
    for customer in ("slow", "quick"):
        ledger.record(brand, posted("question.answered", customer, case_id="q", topic="t",
                                    resolved=True, at=now - timedelta(days=3)))  # fmt: skip
    slow, quick = (str(relationship_id(brand, c)) for c in ("slow", "quick"))
    runner, lines = Runner(ledger), HeldFold(slow)
    runner.run_once()
    first, _, first_found = drawing(lambda: lines.line(runner.db, slow, now))
    assert lines.begun.wait(60)  # the slow line's fold has begun (not a timing: a bound)
    again, _, again_found = drawing(lambda: lines.line(runner.db, slow, now))
    other, other_done, other_found = drawing(lambda: lines.line(runner.db, quick, now))
    drawn_meanwhile = other_done.wait(30)  # a bound for a broken run, not a timing
    lines.release.set()
    for thread in (first, again, other):
        thread.join(60)
    assert drawn_meanwhile, "the other line waited for the first fold of another"
    assert lines.folded == [slow, quick]  # the slow line folded once, for both its drawings
    assert_opinions_close(other_found[0], Lines(RELATIONSHIPS).line(runner.db, quick, now))
    expected = Lines(RELATIONSHIPS).line(runner.db, slow, now)
    assert_opinions_close(first_found[0], expected)
    assert_opinions_close(again_found[0], expected)
    runner.close()
