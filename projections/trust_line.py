"""The trust chart's lines: a relationship's opinions over its life, and its brand's P behind
them. Each is its timeline rows folded in event-time order (a brand's: every relationship's), its
opinions taken at moments of a grid that later moments only thin out, so that what was folded once
is kept.

A process keeps each line's fold (`Lines`): its evidence, the open promises and reports of its
relationships, and the opinions at each moment passed. A later drawing reads only the rows
recorded since and folds them on. Only a row dated at or before the last moment kept (a late
event, such as a backfill) folds the line again from its first row, as every drawing did before:
274-380 ms for a brand of 269,000 rows on PostgreSQL, about 0.7 s for a relationship of 100,000,
once per such write. Each line is read and folded under a lock of its own (`Lines.drawing`), so
a long first fold holds up the drawings of that line only, which then fold on from it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from domain import trust
from projections.db import Database, parse_timestamp, timestamp
from projections.relationships import fold_open_items, items
from projections.trust import TimelineFact, base_rates, brand_scores

MOMENTS = 40
"""At most this many moments to a line, its end included."""
GRID = timedelta(hours=1)
"""A brand's finest step between moments; a longer life doubles it until MOMENTS suffice."""
ROWS_PAGE = 50_000
"""Rows read in one round trip: about 0.2-0.3 s of PostgreSQL's time (274-380 ms for 269,000)."""

Opinions = dict[str, trust.Opinion]
"""Each dimension's opinion at one moment, on base rate 0.5 (b and u do not depend on it)."""
Line = list[tuple[datetime, dict[str, float]]]
OpinionLine = list[tuple[datetime, Opinions]]
Row = tuple[Any, int, str, str, str, str, int]
"""relationship_id, sequence, type, event_id, occurred_at, data, position."""


@dataclass(frozen=True)
class Kind:
    """Whose lines a `Lines` keeps: a brand's, whose rows are read on by log position along the
    brand's index, or a relationship's, by sequence along the timeline's primary key."""

    column: str
    cursor: str
    kept: int
    """The lines a process keeps (the most recently drawn), and as many replays."""
    lead: timedelta
    """How long before its earliest event a line starts: a relationship's first point is its
    prior, before any evidence."""
    finest: timedelta
    """Its grid's finest step: a brand's hour; a relationship's minute, so that one a few hours
    old still draws its steps (its line, so short, costs little to fold again for a late row)."""

    def of(self, row: Row) -> int:
        """The row's cursor."""
        return row[6] if self.cursor == "position" else row[1]


BRANDS = Kind("brand", "position", 32, timedelta(0), GRID)
RELATIONSHIPS = Kind("relationship_id", "sequence", 256, timedelta(seconds=1), timedelta(minutes=1))


def grid(start: datetime, end: datetime, finest: timedelta = GRID) -> list[datetime]:
    """`start` + k x step up to `end`, step the least `finest` x 2^j giving at most MOMENTS - 1
    of them, then `end` if it is not one. A later end keeps each moment or every other one."""
    step = finest
    while (end - start) / step > MOMENTS - 2:
        step *= 2
    found = [start + step * k for k in range(int((end - start) / step) + 1)]
    return found if found[-1] == end else [*found, end]


class Stale(Exception):
    """The fold has passed a moment it never kept (an end before one drawn): fold it again."""


@dataclass
class Fold:
    """A line's rows reached by `until` folded in time (`in_time`), and the opinions at each moment
    of the grid kept up to it; the rows read since, all dated after the last moment kept, wait in
    `pending` until they are reached."""

    start: datetime
    half_life: timedelta | None
    finest: timedelta = GRID
    """The grid's finest step (`Kind.finest`)."""
    read: int = 0
    """The cursor (log position or sequence) of the last row read."""
    until: datetime | None = None
    evidence: dict[str, Any] = field(init=False)
    open: dict[Any, dict[str, Any]] = field(default_factory=dict)
    """The relationships holding open promises or reports: all of a row that trust reads."""
    kept: dict[datetime, Opinions] = field(default_factory=dict)
    pending: list[tuple[str, Row]] = field(default_factory=list)
    """Rows not folded yet, each with the time it is folded at, in the order they are."""

    def __post_init__(self) -> None:
        self.evidence = trust.empty_evidence(self.half_life)

    def takes(self, rows: list[Row], kind: Kind) -> bool:
        """Adds rows read since, in log order, and folds those already reached; False (and
        nothing added) if one is dated at or before a moment already kept, or before the start."""
        first = _text(self.start)
        kept = _text(next(reversed(self.kept))) if self.kept else ""
        if any(row[4] < first or row[4] <= kept for row in rows):
            return False
        if rows:
            self.pending = in_time([*(row for _, row in self.pending), *rows])
            self.read = max(self.read, *(kind.of(row) for row in rows))
            if self.until is not None:
                self.advance(self.until)
        return True

    def line(self, end: datetime) -> OpinionLine:
        """The opinions at each moment of the grid before `end`, each kept once computed: a row
        dated at or before one of them, read later, makes `takes` refuse it."""
        found: OpinionLine = []
        for at in grid(self.start, max(end, self.start), self.finest):
            if at >= end:
                break
            if at not in self.kept:
                self.kept[at] = self.opinions(at)
            found.append((at, self.kept[at]))
        return found

    def opinions(self, at: datetime) -> Opinions:
        """The opinions at `at`, once the pending rows reached by then are folded."""
        self.advance(at)
        return {name: score.opinion for name, score in self.scores(at).dimensions.items()}

    def advance(self, at: datetime) -> None:
        """Folds the pending rows reached by `at`: one addition of evidence (decay composes)."""
        if self.until is not None and at < self.until:
            raise Stale(f"folded until {self.until}, asked at {at}")
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
        self.until = at

    def scores(self, at: datetime, base_rates: dict[str, float] | None = None) -> trust.Scores:
        """The scores at `at` of what was folded, with what is still open then counted."""
        derived = [
            piece
            for state in self.open.values()
            for piece in trust.derived_evidence(items(state), at)
        ]
        return trust.scores(self.evidence, at, base_rates, derived)


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


def _recorded_by(as_of: datetime | None) -> str:
    return cast(str, timestamp(as_of)) if as_of else "9999"


@dataclass
class Lines:
    """One process's folds of one kind's lines, the most recently drawn `kind.kept` of them, and
    as many of compliance's replays, each keyed by the latest row it read."""

    kind: Kind
    folds: OrderedDict[str, Fold] = field(default_factory=OrderedDict)
    replays: OrderedDict[tuple[str, str, str, int, timedelta | None], OpinionLine] = field(
        default_factory=OrderedDict
    )
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the dicts, held only to look up or store: never while a line is read or folded,
    which takes about 1 s for a first drawing of 100,000 rows, and every other chart of the
    process waited behind it."""
    drawing: weakref.WeakValueDictionary[str, threading.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    """One lock per line being drawn, held while it is read and folded: two drawings of the same
    line fold it once (the second folds on from the first's), those of other lines do not wait.
    Each goes once no drawing holds it."""

    def line(
        self,
        db: Database,
        key: str,
        end: datetime,
        as_of: datetime | None = None,
        half_life: timedelta | None = trust.HALF_LIFE,
        *,
        ends: bool = True,
    ) -> OpinionLine:
        """The opinions at the moments of the line's life before `end`, and at `end` (unless
        not `ends`: a brand's, now, comes from its read model), their evidence decayed with
        `half_life`: folded from the rows recorded by `as_of` (compliance's replay, whole, kept
        by the latest row it read) or by now (on from what this process folded before)."""
        with self._drawing(key):
            if as_of is not None:
                return self._replayed(db, key, end, as_of, half_life)
            with self.lock:
                fold = self.folds.pop(key, None)
            if (
                fold is None
                or fold.half_life != half_life
                or not fold.takes(self._rows(db, key, fold.read, None), self.kind)
            ):
                fold = self._folded(db, key, None, half_life)
            if fold is None:
                return []
            try:
                found = _drawn(fold, end, ends)
            except Stale:
                fold = cast(Fold, self._folded(db, key, None, half_life))
                found = _drawn(fold, end, ends)
            with self.lock:
                self.folds[key] = fold
                self._latest(self.folds, key)
        return found

    def _replayed(
        self, db: Database, key: str, end: datetime, as_of: datetime, half_life: timedelta | None
    ) -> OpinionLine:
        """Compliance's replay of the line as of `as_of`, folded whole unless kept."""
        replay = (key, _text(as_of), _text(end), self.latest(db, key, as_of), half_life)
        with self.lock:
            found: OpinionLine | None = self.replays.get(replay)
        if found is None:
            fold = self._folded(db, key, as_of, half_life)
            found = _drawn(fold, end, ends=True) if fold else []
        with self.lock:
            self.replays[replay] = found
            self._latest(self.replays, replay)
        return found

    @contextmanager
    def _drawing(self, key: str) -> Iterator[None]:
        """Holds the line's own lock (`drawing`) for the block."""
        with self.lock:
            alone = self.drawing.get(key)
            if alone is None:
                alone = self.drawing[key] = threading.Lock()
        with alone:
            yield

    def forget(self, key: str) -> None:
        """Drops what this process kept of the line (an erased customer's), once no drawing of
        it is under way (which would keep it again)."""
        with self._drawing(key), self.lock:
            self.folds.pop(key, None)
            for replay in [replay for replay in self.replays if replay[0] == key]:
                del self.replays[replay]

    def latest(self, db: Database, key: str, as_of: datetime | None) -> int:
        """The cursor of the line's latest row recorded by `as_of` (0: none): a replay changes
        only with it. One step back along an index (counting the rows instead scanned them all:
        25-44 ms for a brand of 269,000, up to 150 on statistics taken before it had many)."""
        column, cursor = self.kind.column, self.kind.cursor
        latest = db.scalar(
            f"SELECT {cursor} FROM timeline WHERE {column} = ? AND recorded_at <= ?"
            f" ORDER BY {cursor} DESC LIMIT 1",
            [key, _recorded_by(as_of)],
        )
        return int(latest or 0)

    def _rows(self, db: Database, key: str, after: int, as_of: datetime | None) -> list[Row]:
        """The line's rows after `after`, recorded by `as_of`, in log order: read ROWS_PAGE at a
        time, so that no one round trip outlasts the statement timeout, however long the line's
        history (a first drawing reads all of it)."""
        column, cursor = self.kind.column, self.kind.cursor
        statement = (
            "SELECT relationship_id, sequence, type, event_id, occurred_at, data, position"
            f" FROM timeline WHERE {column} = ? AND {cursor} > ? AND recorded_at <= ?"
            f" ORDER BY {cursor} LIMIT ?"
        )
        found: list[Row] = []
        while True:
            page: list[Row] = db.query(statement, [key, after, _recorded_by(as_of), ROWS_PAGE])
            found.extend(page)
            if len(page) < ROWS_PAGE:
                return found
            after = self.kind.of(page[-1])

    def _folded(
        self, db: Database, key: str, as_of: datetime | None, half_life: timedelta | None
    ) -> Fold | None:
        """The line's rows recorded by `as_of` (or all), to fold from its start."""
        rows = self._rows(db, key, 0, as_of)
        if not rows:
            return None
        start = cast(datetime, parse_timestamp(min(row[4] for row in rows))) - self.kind.lead
        fold = Fold(start, half_life, self.kind.finest, read=max(self.kind.of(row) for row in rows))
        fold.pending = in_time(rows)
        return fold

    def _latest(self, kept: OrderedDict[Any, Any], key: Any) -> Any:
        """The value under `key`, marked the most recently used; the least recently used beyond
        the kind's `kept` are dropped."""
        kept.move_to_end(key)
        while len(kept) > self.kind.kept:
            kept.popitem(last=False)
        return kept[key]


def _drawn(fold: Fold, end: datetime, ends: bool) -> OpinionLine:
    """The fold's kept moments before `end`, and its opinions at `end` (not kept: later rows
    dated by then may still come) if `ends`."""
    found = fold.line(end)
    return [*found, (end, fold.opinions(end))] if ends else found


@dataclass
class TrustLines:
    """One process's lines behind the trust charts: its brands' and its relationships'."""

    brands: Lines = field(default_factory=lambda: Lines(BRANDS))
    relationships: Lines = field(default_factory=lambda: Lines(RELATIONSHIPS))


def brand_line(
    lines: Lines, db: Database, brand: str, end: datetime, as_of: datetime | None = None
) -> Line:
    """The brand's P per dimension at the moments of its life to `end`, folded from the rows
    recorded by `as_of` (compliance's replay, whole) or by now. Now, the last moment's P is the
    brand's from its read model, as every trust answer's base rate is."""
    if as_of is not None:
        return _projected(lines.line(db, brand, end, as_of))
    found = _projected(lines.line(db, brand, end, ends=False))
    return [*found, (end, base_rates(brand_scores(db, brand, at=end)))]


def _projected(found: OpinionLine) -> Line:
    """Each moment's P, on the brand's base rate 0.5."""
    return [(at, {name: opinion.P for name, opinion in opinions.items()}) for at, opinions in found]
