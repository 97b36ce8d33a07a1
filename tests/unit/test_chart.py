"""The trust chart's geometry: moments spread over a life, and points inside the plot."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from api.ui import chart

START = datetime(2025, 1, 1, tzinfo=UTC)


def point(days: int, p: float, low: float, high: float) -> chart.Point:
    values = dict.fromkeys(chart.DIMENSIONS, p)
    return chart.Point(
        START + timedelta(days=days),
        values,
        dict.fromkeys(chart.DIMENSIONS, low),
        dict.fromkeys(chart.DIMENSIONS, high),
    )


def test_moments_span_the_life_evenly() -> None:
    found = chart.moments(START, START + timedelta(days=30), 4)
    assert found[0] == START and found[-1] == START + timedelta(days=30)
    assert len({b - a for a, b in itertools.pairwise(found)}) == 1


@pytest.mark.parametrize(
    "end", [START + timedelta(seconds=1), datetime.max.replace(tzinfo=UTC)], ids=["1s", "max"]
)
def test_the_last_moment_is_the_end_exactly(end: datetime) -> None:
    """Not a rounded step past it: past the calendar's last moment, that was an OverflowError."""
    found = chart.moments(START, end, 32)
    assert len(found) == 32 and found[-1] == end


def test_a_life_of_one_moment_is_one_moment() -> None:
    assert chart.moments(START, START, 32) == [START]


def test_nothing_to_draw_without_points() -> None:
    assert chart.draw(chart.Series([], [])) is None


def test_points_and_bands_fall_inside_the_plot() -> None:
    before = (START - timedelta(days=1), dict.fromkeys(chart.DIMENSIONS, 0.5))
    found = chart.Series([point(0, 0.5, 0.0, 1.0), point(10, 0.9, 0.8, 0.95)], [before])
    drawing = chart.draw(found)
    assert drawing is not None
    for name in chart.DIMENSIONS:
        for pair in (drawing.bands[name] + " " + drawing.lines[name]).split():
            x, y = map(float, pair.split(","))
            assert drawing.left <= x <= drawing.right
            assert drawing.top <= y <= drawing.bottom
        assert drawing.brand[name] == ""  # the brand's moment is before the relationship's life


def test_higher_scores_are_drawn_higher() -> None:
    drawing = chart.draw(chart.Series([point(0, 0.2, 0.1, 0.3), point(5, 0.8, 0.7, 0.9)], []))
    assert drawing is not None
    first, last = (float(p.split(",")[1]) for p in drawing.lines["honesty"].split())
    assert last < first
