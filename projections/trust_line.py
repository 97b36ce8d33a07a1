"""A brand's P over its life, the line the trust chart draws behind a relationship's: the brand's
timeline rows folded in event-time order, its P taken at moments of a grid that later moments only
thin out, so that what was folded once is kept.

A process keeps each brand's fold (`BrandLines`): its evidence, the open promises and reports of
its relationships, and P at each moment passed. A later drawing reads only the rows recorded since
and folds them on. Only a row dated at or before the last moment kept (a late event, such as a
backfill) folds the brand again from its first row, as every drawing did before: 274-380 ms for
269,000 rows on PostgreSQL, once per write to the brand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from domain import trust
from projections.db import Database, parse_timestamp, timestamp
from projections.relationships import fold_open_items, items
from projections.trust import TimelineFact, base_rates, brand_scores

MOMENTS = 40
"""At most this many moments to a line, its end included."""
GRID = timedelta(hours=1)
"""The finest step between moments; a longer life doubles it until MOMENTS suffice."""
KEPT_BRANDS = 32
ROWS_PAGE = 50_000
"""Rows read in one round trip: about 0.2-0.3 s of PostgreSQL's time (274-380 ms for 269,000)."""
"""Brands whose fold a process keeps (the most recently drawn), and compliance's replays too."""

Line = list[tuple[datetime, dict[str, float]]]
Row = tuple[Any, int, str, str, str, str, int]
"""relationship_id, sequence, type, event_id, occurred_at, data, position."""
_ROWS = (
    "SELECT relationship_id, sequence, type, event_id, occurred_at, data, position FROM timeline"
    " WHERE brand = ? AND position > ? AND recorded_at <= ? ORDER BY position"
)


def grid(start: datetime, end: datetime) -> list[datetime]:
    """`start` + k x step up to `end`, step the least GRID x 2^j giving at most MOMENTS - 1 of
    them, then `end` if it is not one. A later end keeps each moment or every other one."""
    step = GRID
    while (end - start) / step > MOMENTS - 2:
        step *= 2
    found = [start + step * k for k in range(int((end - start) / step) + 1)]
    return found if found[-1] == end else [*found, end]


@dataclass
class Fold:
    """A brand's rows up to `until` folded in time (`in_time`), and P at each moment of the grid
    up to it; the rows read since, all dated after it, wait in `pending`."""

    start: datetime
    position: int = 0
    until: datetime | None = None
    evidence: dict[str, Any] = field(default_factory=trust.empty_evidence)
    open: dict[Any, dict[str, Any]] = field(default_factory=dict)
    """The relationships holding open promises or reports: all of a row that trust reads."""
    kept: dict[datetime, dict[str, float]] = field(default_factory=dict)
    pending: list[tuple[str, Row]] = field(default_factory=list)
    """Rows not folded yet, each with the time it is folded at, in the order they are."""

    def takes(self, rows: list[Row]) -> bool:
        """Adds rows read since, in log order; False (and nothing added) if one is dated at or
        before a moment already kept, or before the first row."""
        first, kept = _text(self.start), _text(self.until) if self.until else ""
        if any(row[4] < first or row[4] <= kept for row in rows):
            return False
        if rows:
            self.pending = in_time([*(row for _, row in self.pending), *rows])
            self.position = max(self.position, *(row[6] for row in rows))
        return True

    def line(self, end: datetime) -> Line:
        """P at each moment of the grid before `end`, each kept once computed: a row dated at or
        before one of them, read later, makes `takes` refuse it."""
        found: Line = []
        for at in grid(self.start, max(end, self.start)):
            if at >= end:
                break
            if self.until is None or at > self.until:
                self.fold_until(at)
            found.append((at, self.kept[at]))
        return found

    def fold_until(self, at: datetime) -> dict[str, float]:
        """Folds the pending rows reached by `at` and keeps P at `at`."""
        self.advance(at)
        scores = self.scores(at)
        self.kept[at], self.until = projected_p(scores), at
        return self.kept[at]

    def advance(self, at: datetime) -> None:
        """Folds the pending rows reached by `at`: one addition of evidence (decay composes)."""
        until, pieces, taken = _text(at), [], 0
        for reached, (rid, sequence, type_, event_id, occurred_at, data, _) in self.pending:
            if reached > until:
                break
            state = self.open.get(rid) or {"open_promises": {}, "open_reports": {}}
            fact = TimelineFact.of_row(type_, event_id, occurred_at, sequence, data)
            pieces.extend(fold_open_items(state, fact))
            if state["open_promises"] or state["open_reports"]:
                self.open[rid] = state
            else:
                self.open.pop(rid, None)
            taken += 1
        del self.pending[:taken]
        self.evidence = trust.with_pieces(self.evidence, pieces)

    def scores(self, at: datetime, base_rates: dict[str, float] | None = None) -> trust.Scores:
        """The scores at `at` of what was folded, with what is still open then counted."""
        derived = [
            piece
            for state in self.open.values()
            for piece in trust.derived_evidence(items(state), at)
        ]
        return trust.scores(self.evidence, at, base_rates, derived)


def projected_p(scores: trust.Scores) -> dict[str, float]:
    """Each dimension's projected probability P."""
    return {name: score.opinion.P for name, score in scores.dimensions.items()}


def in_time(rows: list[Row]) -> list[tuple[str, Row]]:
    """The rows in the order they are folded, each with the time it is folded at: its event time,
    or the latest of its relationship's earlier rows if that is later, as the relationship's own
    line folds its events. So a relationship's rows keep their log order, in which the ledger
    checked them (a promise kept, dated before it was made, is folded after it)."""
    reached: dict[Any, str] = {}
    timed = []
    for row in sorted(rows, key=lambda row: row[6]):
        reached[row[0]] = at = max(row[4], reached.get(row[0], ""))
        timed.append((at, row))
    return sorted(timed, key=lambda timed_row: (timed_row[0], timed_row[1][6]))


def _text(at: datetime) -> str:
    """A moment as the timeline's occurred_at text, to compare with it."""
    return cast(str, timestamp(at))


def _rows(db: Database, brand: str, after: int, as_of: datetime | None) -> list[Row]:
    """The brand's rows after log position `after`, recorded by `as_of`, in log order: read
    ROWS_PAGE at a time, so that no one round trip outlasts the statement timeout, however long
    the brand's history (a first drawing reads all of it)."""
    found: list[Row] = []
    until = timestamp(as_of) if as_of else "9999"
    while True:
        page: list[Row] = db.query(f"{_ROWS} LIMIT ?", [brand, after, until, ROWS_PAGE])
        found.extend(page)
        if len(page) < ROWS_PAGE:
            return found
        after = page[-1][6]


def relationship_fold(
    db: Database, rid: UUID, as_of: datetime | None, half_life: timedelta | None = trust.HALF_LIFE
) -> Fold | None:
    """A relationship's rows recorded by `as_of` (or all), to fold as its brand's are (each in
    log order, once its event time is reached), its evidence decayed with `half_life` (its brand
    policy's). Its start is the earliest event time among them."""
    rows: list[Row] = db.query(
        "SELECT relationship_id, sequence, type, event_id, occurred_at, data, position"
        " FROM timeline WHERE relationship_id = ? AND recorded_at <= ?",
        [str(rid), timestamp(as_of) if as_of else "9999"],
    )
    fold = _folded(rows)
    if fold is not None:
        fold.start = cast(datetime, parse_timestamp(min(row[4] for row in rows)))
        fold.evidence = trust.empty_evidence(half_life)
    return fold


def latest_position(db: Database, brand: str, as_of: datetime | None) -> int:
    """The log position of the brand's latest event recorded by `as_of` (0: none): a replay's
    line changes only with it. One step back along the brand's index (counting the rows instead
    scanned them all: 25-44 ms at 269,000, up to 150 on statistics taken before the brand had
    many)."""
    latest = db.scalar(
        "SELECT position FROM timeline WHERE brand = ? AND recorded_at <= ?"
        " ORDER BY position DESC LIMIT 1",
        [brand, timestamp(as_of) if as_of else "9999"],
    )
    return int(latest or 0)


def _folded(rows: list[Row]) -> Fold | None:
    if not rows:
        return None
    timed = in_time(rows)
    start = cast(datetime, parse_timestamp(timed[0][0]))
    return Fold(start=start, position=max(row[6] for row in rows), pending=timed)


@dataclass
class BrandLines:
    """One process's folds of its brands' lines, the most recently drawn KEPT_BRANDS of them, and
    as many of compliance's replays, each keyed by the latest position it read."""

    folds: OrderedDict[str, Fold] = field(default_factory=OrderedDict)
    replays: OrderedDict[tuple[str, str, int], Line] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, db: Database, brand: str, end: datetime, as_of: datetime | None = None) -> Line:
        """The brand's P per dimension at the moments of its life to `end`, folded from the rows
        recorded by `as_of` (compliance's replay, whole) or by now. Now, the last moment's P is
        the brand's from its read model, as every trust answer's base rate is: later rows dated
        by `end` may still come, so none is kept for it."""
        with self.lock:
            if as_of is not None:
                key = (brand, _text(as_of), latest_position(db, brand, as_of))
                if key not in self.replays:
                    replayed = _folded(_rows(db, brand, 0, as_of))
                    self.replays[key] = (
                        [*replayed.line(end), (end, replayed.fold_until(end))] if replayed else []
                    )
                line: Line = _latest(self.replays, key)
                return line
            fold = self.folds.pop(brand, None)
            if fold is None or not fold.takes(_rows(db, brand, fold.position, None)):
                fold = _folded(_rows(db, brand, 0, None))
            if fold is None:
                return []
            try:
                line = fold.line(end)
            except KeyError:  # an end before the last one drawn: its finer grid was never kept
                fold = cast(Fold, _folded(_rows(db, brand, 0, None)))
                line = fold.line(end)
            self.folds[brand] = fold
            _latest(self.folds, brand)
        return [*line, (end, base_rates(brand_scores(db, brand, at=end)))]


def _latest(kept: OrderedDict[Any, Any], key: Any) -> Any:
    """The value under `key`, marked the most recently used; the least recently used beyond
    KEPT_BRANDS are dropped."""
    kept.move_to_end(key)
    while len(kept) > KEPT_BRANDS:
        kept.popitem(last=False)
    return kept[key]
