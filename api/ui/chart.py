"""Trust over time, for the chart: the relationship's scores at moments of its life, and the
brand's P at moments of its life, drawn server-side as SVG coordinates.

The relationship's points fold its own events progressively (in the order recorded, each folded
once its event time is reached) and evaluate its trust at each moment, on the brand's P then as
base rate. The brand's line folds the brand's timeline rows in event-time order in one pass; it is
cached per brand and log position, since it reads every event of the brand.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from domain import trust
from domain.application import Ledger
from domain.relationship import Relationship, relationship_id
from projections.db import Database, parse_timestamp, timestamp
from projections.relationships import fold, items
from projections.trust import TimelineFact, empty_row

DIMENSIONS = trust.DIMENSIONS
MOMENTS = 32
BRAND_MOMENTS = 40
CACHED_LINES = 32


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


@dataclass
class _BrandCache:
    lines: dict[tuple[str, str | None, int], list[tuple[datetime, dict[str, float]]]] = field(
        default_factory=dict
    )
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _BrandCache()


def moments(start: datetime, end: datetime, count: int) -> list[datetime]:
    if end <= start:
        return [end]
    step = (end - start) / (count - 1)
    return [start + step * i for i in range(count)]


def latest_position(db: Database, brand: str, as_of: datetime | None) -> int:
    """The log position of the brand's latest event recorded by `as_of` (0: none): what the
    brand's line is drawn from changes only with it. One step back along the brand's index
    (counting the rows instead scanned them all: 25-44 ms at 269,000, up to 150 on statistics
    taken before the brand had many)."""
    latest = db.scalar(
        "SELECT position FROM timeline WHERE brand = ? AND recorded_at <= ?"
        " ORDER BY position DESC LIMIT 1",
        [brand, timestamp(as_of) if as_of else "9999"],
    )
    return int(latest or 0)


def brand_line(
    db: Database, brand: str, end: datetime, as_of: datetime | None
) -> list[tuple[datetime, dict[str, float]]]:
    """The brand's P per dimension at BRAND_MOMENTS moments of its life, from what was recorded
    by `as_of` (or now)."""
    key = (brand, timestamp(as_of), latest_position(db, brand, as_of))
    with _cache.lock:
        if key in _cache.lines:
            return _cache.lines[key]
    rows = db.query(
        "SELECT relationship_id, sequence, type, event_id, occurred_at, data FROM timeline"
        " WHERE brand = ? AND recorded_at <= ? ORDER BY occurred_at, position",
        [brand, timestamp(as_of) if as_of else "9999"],
    )
    line: list[tuple[datetime, dict[str, float]]] = []
    if rows:
        start = cast(datetime, parse_timestamp(rows[0][4]))
        states: dict[str, dict[str, Any]] = {}
        evidence = trust.empty_evidence()
        index = 0
        for at in moments(start, max(end, start), BRAND_MOMENTS):
            until, pieces = timestamp(at) or "", []
            while index < len(rows) and rows[index][4] <= until:
                rid, sequence, type_, event_id, occurred_at, data = rows[index]
                state = states.setdefault(rid, empty_row())
                fact = TimelineFact.of_row(type_, event_id, occurred_at, sequence, data)
                pieces.extend(fold(state, fact))
                index += 1
            # One addition per moment: decay composes, so it is the sum of one per event.
            evidence = trust.with_pieces(evidence, pieces)
            derived = [
                piece
                for state in states.values()
                for piece in trust.derived_evidence(items(state), at)
            ]
            scores = trust.scores(evidence, at, None, derived)
            line.append((at, {name: s.opinion.P for name, s in scores.dimensions.items()}))
    with _cache.lock:
        _cache.lines[key] = line
        while len(_cache.lines) > CACHED_LINES:  # the oldest first: a dict keeps insertion order
            del _cache.lines[next(iter(_cache.lines))]
    return line


def _rates_at(line: list[tuple[datetime, dict[str, float]]], at: datetime) -> dict[str, float]:
    """The brand's P at the last of its moments at or before `at` (neutral before its first)."""
    found = dict.fromkeys(DIMENSIONS, trust.NEUTRAL_BASE_RATE)
    for moment, values in line:
        if moment > at:
            break
        found = values
    return found


def series(
    ledger: Ledger, db: Database, brand: str, customer: str, as_of: datetime | None
) -> Series:
    """The relationship's trust at MOMENTS moments from its first event to `as_of` (or now)."""
    end = as_of or datetime.now(UTC)
    events: list[Any] = [
        event
        for event in cast(Any, ledger.events.get(relationship_id(brand, customer)))
        if as_of is None or event.timestamp <= as_of
    ]
    line = brand_line(db, brand, end, as_of)
    if any(isinstance(event, Relationship.Erased) for event in events):
        return Series([], line, erased=True)
    interactions = [e for e in events[1:] if hasattr(e, "occurred_at")]
    if not interactions:
        return Series([], line)
    start = min(e.occurred_at for e in interactions) - timedelta(seconds=1)
    relationship: Relationship = events[0].mutate(None)
    pending = list(events[1:])
    points = []
    for at in moments(start, max(end, start), MOMENTS):
        while pending and getattr(pending[0], "occurred_at", at) <= at:
            relationship = pending.pop(0).mutate(relationship)
        scores = relationship.trust(at, _rates_at(line, at))
        points.append(
            Point(
                at,
                {n: s.opinion.P for n, s in scores.dimensions.items()},
                {n: s.opinion.b for n, s in scores.dimensions.items()},
                {n: s.opinion.b + s.opinion.u for n, s in scores.dimensions.items()},
            )
        )
    return Series(points, line)


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
