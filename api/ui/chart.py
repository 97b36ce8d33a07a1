"""Trust over time, for the chart: the relationship's scores at moments of its life, and the
brand's P at moments of its life, drawn server-side as SVG coordinates.

The relationship's points fold its timeline rows progressively (in the order recorded, each folded
once its event time is reached) and evaluate its trust at each moment, on the brand's P then as
base rate, under the half-life of the brand's policy (as every trust answer). The brand's line
folds the brand's rows the same way. Both are kept by the process (projections/trust_line.py),
which folds on only what was recorded since it last drew them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain import trust
from domain.application import Ledger
from domain.relationship import relationship_id
from projections.db import Database
from projections.trust_line import TrustLines, brand_line

DIMENSIONS = trust.DIMENSIONS


@dataclass(frozen=True)
class Point:
    at: datetime
    P: dict[str, float]
    low: dict[str, float]
    """b: the belief, the least the score can be once the uncertainty is resolved."""
    high: dict[str, float]
    """b + u: the most it can be."""


@dataclass(frozen=True)
class Series:
    points: list[Point]
    brand: list[tuple[datetime, dict[str, float]]]
    erased: bool = False


def moments(start: datetime, end: datetime, count: int) -> list[datetime]:
    if end <= start:
        return [end]
    step = (end - start) / (count - 1)
    # The last is `end` itself: a step rounded to microseconds, times count - 1, can pass it.
    return [*(start + step * i for i in range(count - 1)), end]


def _rates_at(line: list[tuple[datetime, dict[str, float]]], at: datetime) -> dict[str, float]:
    """The brand's P at the last of its moments at or before `at` (neutral before its first)."""
    found = dict.fromkeys(DIMENSIONS, trust.NEUTRAL_BASE_RATE)
    for moment, values in line:
        if moment > at:
            break
        found = values
    return found


def series(
    ledger: Ledger,
    db: Database,
    lines: TrustLines,
    brand: str,
    customer: str,
    as_of: datetime | None,
) -> Series:
    """The relationship's trust at the moments of its life (a grid, projections/trust_line.py),
    from just before its first event to `as_of` (or now)."""
    end = as_of or datetime.now(UTC)
    line = brand_line(lines.brands, db, brand, end, as_of)
    rid = str(relationship_id(brand, customer))
    erased = ledger.relationship(brand, customer).erased
    if erased is not None and (as_of is None or erased["at"] <= as_of):
        lines.relationships.forget(rid)
        return Series([], line, erased=True)
    half_life = timedelta(days=ledger.policy(brand, as_of=as_of).trust_half_life_days)
    found = lines.relationships.line(db, rid, end, as_of, half_life)
    return Series([_point(at, opinions, _rates_at(line, at)) for at, opinions in found], line)


def _point(at: datetime, opinions: dict[str, trust.Opinion], rates: dict[str, float]) -> Point:
    """The relationship's opinions at `at`, projected on the brand's P then (P = b + a u)."""
    return Point(
        at,
        {n: o.b + rates[n] * o.u for n, o in opinions.items()},
        {n: o.b for n, o in opinions.items()},
        {n: o.b + o.u for n, o in opinions.items()},
    )


# --- drawing ---------------------------------------------------------------------------------

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 12, 34


@dataclass(frozen=True)
class Drawing:
    """What the template draws: per dimension a band polygon, a P line and the brand's line."""

    bands: dict[str, str]
    lines: dict[str, str]
    brand: dict[str, str]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def draw(found: Series) -> Drawing | None:
    if not found.points:
        return None
    start, end = found.points[0].at, found.points[-1].at
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        fraction = min(max((at - start).total_seconds() / span, 0.0), 1.0)
        return round(LEFT + fraction * (WIDTH - LEFT - RIGHT), 1)

    def y(value: float) -> float:
        return round(HEIGHT - BOTTOM - value * (HEIGHT - TOP - BOTTOM), 1)

    def path(pairs: list[tuple[float, float]]) -> str:
        return " ".join(f"{px},{py}" for px, py in pairs)

    bands, lines, brand = {}, {}, {}
    for name in DIMENSIONS:
        upper = [(x(p.at), y(p.high[name])) for p in found.points]
        lower = [(x(p.at), y(p.low[name])) for p in reversed(found.points)]
        bands[name] = path(upper + lower)
        lines[name] = path([(x(p.at), y(p.P[name])) for p in found.points])
        brand[name] = path([(x(at), y(v[name])) for at, v in found.brand if start <= at <= end])
    x_ticks = [(x(at), at.strftime("%Y-%m-%d")) for at in moments(start, end, 5)]
    x_ticks = [(min(px, WIDTH - RIGHT - 34.0), label) for px, label in x_ticks]  # the last fits
    y_ticks = [(y(v / 4), f"{v / 4:.2f}") for v in range(5)]
    return Drawing(bands, lines, brand, x_ticks, y_ticks)
