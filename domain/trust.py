"""The trust model: evidence from a relationship's events, decayed in event time, read as opinions.

Pure: the standard library only, no I/O and no clock; the evaluation time is always a parameter.
Every constant and every choice the design left open is explained in docs/trust.md.

Three dimensions (consistency, honesty, expertise) each gather positive evidence r and negative
evidence s. A piece of evidence dated t_i counts ``2^(-(t - t_i)/H)`` at evaluation time t. The
opinion is Jøsang's subjective-logic opinion with prior weight W: b = r/(r+s+W), d = s/(r+s+W),
u = W/(r+s+W), P = b + a·u.

The sums are kept in two forms that agree to rounding:

- incremental (:func:`empty_evidence`, :func:`with_pieces`, :func:`scores`): r and s decayed to a
  reference time (the newest piece's time), O(1) per event, stored as plain JSON values inside the
  relationship's snapshot;
- from scratch (:func:`scores_from_pieces`): the sum over every piece.

Derived evidence (an overdue promise, an unadmitted error report) is not kept: it exists only while
its promise or report stays open, so it is computed at evaluation time from the open items
(:func:`derived_evidence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CONSISTENCY = "consistency"
HONESTY = "honesty"
EXPERTISE = "expertise"
DIMENSIONS = (CONSISTENCY, HONESTY, EXPERTISE)

PRIOR_WEIGHT = 2.0
"""W: how much evidence the base rate is worth; 2 makes P the Beta expectation when a = 0.5."""
HALF_LIFE = timedelta(days=180)
"""H: a piece counts half after this much event time; a brand's policy may choose another."""
NEUTRAL_BASE_RATE = 0.5
"""The base rate of a brand's own scores, and of a relationship told no other."""
SEVERITY_WEIGHTS = {"minor": 1.0, "major": 2.0, "critical": 3.0}
"""Multiply the honesty evidence of an error."""
UNKNOWN_SEVERITY = SEVERITY_WEIGHTS["minor"]
"""An error's severity is known only once the brand admits it; until then it counts as minor."""
PROMISE_GRACE = timedelta(hours=24)
"""An open promise becomes negative evidence this long after its due_at."""
ADMISSION_GRACE = timedelta(days=7)
"""An error report becomes negative evidence this long after it was reported, unless admitted."""
LAST_MOMENT = datetime.max.replace(tzinfo=UTC)
"""The latest instant Python can count: where a grace that would end past it ends instead."""
TOP_EVENTS = 5
"""How many events per dimension are kept as the ones that moved it most."""
UNADMITTED_STATUSES = ("open", "disputed", "confirmed")
"""Statuses of a reported error that the brand has neither admitted nor seen withdrawn."""
RANK_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Origin of the time term of a piece's rank; any fixed instant would do."""
OVERDUE = "promise.overdue"
UNADMITTED = "error.unadmitted"
MAX_HALF_LIVES = 1000.0
"""How far before its evidence a score may be evaluated, in half-lives, before floats overflow."""


@dataclass(frozen=True)
class Piece:
    """One piece of evidence in one dimension: its event, its time, its face value."""

    dimension: str
    event_id: str
    at: datetime
    positive: float = 0.0
    negative: float = 0.0
    derived: str | None = None
    """None for an event's own evidence; else what it is derived from (``promise.overdue``, ...)."""

    @property
    def mass(self) -> float:
        return self.positive + self.negative


@dataclass(frozen=True)
class Opinion:
    """A subjective-logic opinion: belief, disbelief, uncertainty, base rate, projected score."""

    b: float
    d: float
    u: float
    a: float
    P: float
    positive: float
    """r: the decayed positive evidence."""
    negative: float
    """s: the decayed negative evidence."""

    def numbers(self) -> dict[str, float]:
        """b, d, u, a and P, as the gate records them and the trust endpoints answer them."""
        return {"b": self.b, "d": self.d, "u": self.u, "a": self.a, "P": self.P}


@dataclass(frozen=True)
class TopEvent:
    """An event that moved a dimension, with what it contributes at the evaluation time."""

    event_id: str
    at: datetime
    positive: float
    negative: float
    weight: float
    """The decay factor at the evaluation time: face value x weight = the contribution."""
    derived: str | None = None


@dataclass(frozen=True)
class Score:
    """One dimension's opinion and the events that moved it most, largest first."""

    opinion: Opinion
    top_events: tuple[TopEvent, ...]


@dataclass(frozen=True)
class Scores:
    """Every dimension's score at one evaluation time, and the overall score (the mean P)."""

    at: datetime
    dimensions: dict[str, Score]
    overall: float


# --- evidence from events -------------------------------------------------------------------

Items = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""A relationship's promises, errors, ... by kind and id, as its fold keeps them."""
Entry = dict[str, Any]
"""One kept top event: event_id, at, positive, negative (face values)."""
Effect = tuple[str, float, float]
"""(dimension, positive, negative) before decay."""
Rule = Callable[[Mapping[str, Any], Mapping[str, Any] | None, datetime], list[Effect]]


def _kept(data: Mapping[str, Any], promise: Mapping[str, Any] | None, at: datetime) -> list[Effect]:
    if promise is None:
        raise ValueError(f"promise {data['promise_id']!r} is kept but was never made")
    if at <= promise["due_at"]:
        return [(CONSISTENCY, 1.0, 0.0)]
    return [(CONSISTENCY, 0.5, 0.5)]


def _admitted(data: Mapping[str, Any], _: Mapping[str, Any] | None, __: datetime) -> list[Effect]:
    found = 1.0 if data["discovered_by"] == "brand" else 0.5
    return [(HONESTY, found * SEVERITY_WEIGHTS[data["severity"]], 0.0)]


def _confirmed(_: Mapping[str, Any], error: Mapping[str, Any] | None, __: datetime) -> list[Effect]:
    disputed = error is not None and error["status"] == "disputed"
    return [(HONESTY, 0.0, 2.0 * UNKNOWN_SEVERITY)] if disputed else []


def _plus_minus(dimension: str, field: str) -> Rule:
    return lambda data, _, __: [(dimension, 1.0, 0.0) if data[field] else (dimension, 0.0, 1.0)]


def _fixed(*effects: Effect) -> Rule:
    return lambda _, __, ___: list(effects)


RULES: dict[str, Rule] = {
    "promise.kept": _kept,
    "promise.broken": _fixed((CONSISTENCY, 0.0, 1.0)),
    "offer.honored": _fixed((CONSISTENCY, 1.0, 0.0)),
    "offer.reneged": _fixed((CONSISTENCY, 0.0, 1.0), (HONESTY, 0.0, 1.0)),
    "error.admitted": _admitted,
    "error.confirmed": _confirmed,
    "question.answered": _plus_minus(EXPERTISE, "resolved"),
    "case.reopened": _fixed((EXPERTISE, 0.0, 1.0)),
    "advice.rated": _plus_minus(EXPERTISE, "helpful"),
}
"""DESIGN.md's "trust evidence" column; the types not named here carry none."""


def carries_evidence(type_: str) -> bool:
    """Whether events of this type can carry evidence of their own (derived evidence aside)."""
    return type_ in RULES


def evidence_of(
    type_: str,
    event_id: str,
    at: datetime,
    data: Mapping[str, Any],
    item: Mapping[str, Any] | None = None,
) -> list[Piece]:
    """The evidence one event carries; `item` is the promise or error it refers to, before it."""
    rule = RULES.get(type_)
    if rule is None:
        return []
    return [
        Piece(dimension, event_id, at, positive, negative)
        for dimension, positive, negative in rule(data, item, at)
    ]


def derived_evidence(items: Items, at: datetime) -> list[Piece]:
    """Evidence that arises from what stays undone, once it has arisen before `at`.

    An open promise past due_at + PROMISE_GRACE, and an error report neither admitted nor
    withdrawn more than ADMISSION_GRACE after it was reported, each count -1 once that moment
    is past (the gate's open-breaches rule blocks from the same instants), dated at it, and
    only while they stay so: closing them removes the piece (their closing event's own
    evidence applies instead). `items` is the relationship's ``items`` (promises and errors by id).
    """
    pending = [*_overdue_promises(items), *_unadmitted_reports(items)]
    return [piece for piece in pending if piece.at < at]


def overdue_at(due_at: datetime) -> datetime:
    """When a promise still open counts as overdue: PROMISE_GRACE after its due_at, or never
    (LAST_MOMENT) for one due within the grace of the calendar's end, which the sum overflowed."""
    return due_at + PROMISE_GRACE if due_at < LAST_MOMENT - PROMISE_GRACE else LAST_MOMENT


def _overdue_promises(items: Items) -> Iterator[Piece]:
    for promise in items.get("promise", {}).values():
        if promise["status"] == "open":
            arises = overdue_at(promise["due_at"])
            yield Piece(CONSISTENCY, promise["event_id"], arises, negative=1.0, derived=OVERDUE)


def _unadmitted_reports(items: Items) -> Iterator[Piece]:
    for error in items.get("error", {}).values():
        if error["status"] in UNADMITTED_STATUSES:
            arises = error["opened_at"] + ADMISSION_GRACE
            yield Piece(
                HONESTY, error["event_id"], arises, negative=UNKNOWN_SEVERITY, derived=UNADMITTED
            )


# --- the incremental form: plain JSON values, kept in the relationship ----------------------


def empty_evidence(half_life: timedelta | None = HALF_LIFE) -> dict[str, Any]:
    """No evidence yet, to be decayed with `half_life` (None: never decays).

    The shape, all plain JSON values: ``{"half_life": seconds | None, "at": reference time | None,
    "dimensions": {dimension: {"positive": r, "negative": s, "top": [entry, ...]}}}``, where r and s
    are decayed to the reference time and each top entry is ``{"event_id", "at", "positive",
    "negative"}`` at face value, largest rank first.
    """
    return {
        "half_life": None if half_life is None else half_life.total_seconds(),
        "at": None,
        "dimensions": {name: {"positive": 0.0, "negative": 0.0, "top": []} for name in DIMENSIONS},
    }


def half_life_of(evidence: Mapping[str, Any]) -> timedelta | None:
    seconds = evidence["half_life"]
    return None if seconds is None else timedelta(seconds=seconds)


def with_pieces(evidence: Mapping[str, Any], pieces: Sequence[Piece]) -> dict[str, Any]:
    """The evidence with these pieces added: O(1) per piece, the input left unchanged.

    The reference time moves up to the newest piece, so stored sums never grow past their face
    value; an older piece (an event posted late) is decayed to the reference time as it is added.
    """
    if not pieces:
        return dict(evidence)
    half_life: float | None = evidence["half_life"]
    reference: datetime | None = evidence["at"]
    newest = max(piece.at for piece in pieces)
    if reference is not None and reference > newest:
        newest = reference
    shift = 1.0 if reference is None else _decay(newest - reference, half_life)
    dimensions = {
        name: {
            "positive": kept["positive"] * shift,
            "negative": kept["negative"] * shift,
            "top": kept["top"],
        }
        for name, kept in evidence["dimensions"].items()
    }
    for piece in pieces:
        kept = dimensions[piece.dimension]
        weight = _decay(newest - piece.at, half_life)
        kept["positive"] += piece.positive * weight
        kept["negative"] += piece.negative * weight
        kept["top"] = _with_top(kept["top"], piece, half_life)
    return {"half_life": half_life, "at": newest, "dimensions": dimensions}


def _with_top(top: list[Entry], piece: Piece, half_life: float | None) -> list[Entry]:
    """The bounded top list with the piece in its place, if it ranks among the TOP_EVENTS."""
    rank = _rank(piece.mass, piece.at, half_life)
    # After the equal ranks already kept: ties go to the earlier recorded, as a stable sort does.
    place = next(
        (i for i, kept in enumerate(top) if _rank(_mass(kept), kept["at"], half_life) < rank),
        len(top),
    )
    if place >= TOP_EVENTS:
        return top
    entry = {
        "event_id": piece.event_id,
        "at": piece.at,
        "positive": piece.positive,
        "negative": piece.negative,
    }
    return [*top[:place], entry, *top[place:]][:TOP_EVENTS]


def _mass(entry: Mapping[str, Any]) -> float:
    return float(entry["positive"] + entry["negative"])


def _unkept(entry: Mapping[str, Any], dimension: str) -> Piece:
    return Piece(dimension, entry["event_id"], entry["at"], entry["positive"], entry["negative"])


def scores(
    evidence: Mapping[str, Any],
    at: datetime,
    base_rates: Mapping[str, float] | None = None,
    derived: Iterable[Piece] = (),
) -> Scores:
    """The incremental form at time `at`: the kept sums rescaled once, plus the derived pieces."""
    half_life: float | None = evidence["half_life"]
    dimensions = {}
    for name, (positive, negative, extra) in _decayed(evidence, at, derived).items():
        movers = [_unkept(entry, name) for entry in evidence["dimensions"][name]["top"]] + extra
        dimensions[name] = Score(
            opinion(positive, negative, _base_rate(base_rates, name)),
            _top_events(movers, at, half_life),
        )
    return _scores(at, dimensions)


def projected(
    evidence: Mapping[str, Any],
    at: datetime,
    base_rates: Mapping[str, float] | None = None,
    derived: Iterable[Piece] = (),
) -> dict[str, float]:
    """Each dimension's P at `at`, exactly as `scores` gives it, without ranking top events: for
    read models that keep P only (ranking is most of the cost of `scores`)."""
    return {
        name: opinion(positive, negative, _base_rate(base_rates, name)).P
        for name, (positive, negative, _) in _decayed(evidence, at, derived).items()
    }


def _decayed(
    evidence: Mapping[str, Any], at: datetime, derived: Iterable[Piece]
) -> dict[str, tuple[float, float, list[Piece]]]:
    """Per dimension: r and s at `at` (the kept sums rescaled once, plus the derived pieces),
    and the derived pieces of that dimension."""
    half_life: float | None = evidence["half_life"]
    reference: datetime | None = evidence["at"]
    shift = 1.0 if reference is None else _decay(at - reference, half_life)
    derived = list(derived)
    found = {}
    for name in DIMENSIONS:
        kept = evidence["dimensions"][name]
        extra = [piece for piece in derived if piece.dimension == name]
        positive = kept["positive"] * shift + _sum(extra, "positive", at, half_life)
        negative = kept["negative"] * shift + _sum(extra, "negative", at, half_life)
        found[name] = (positive, negative, extra)
    return found


# --- the from-scratch form ------------------------------------------------------------------


def scores_from_pieces(
    pieces: Iterable[Piece],
    at: datetime,
    base_rates: Mapping[str, float] | None = None,
    half_life: timedelta | None = HALF_LIFE,
) -> Scores:
    """Every piece decayed to time `at` and summed: the reference the incremental form must match.

    `pieces` in the order their events were recorded, derived ones after, so that ties in the
    top events fall the same way as in the incremental form.
    """
    seconds = None if half_life is None else half_life.total_seconds()
    pieces = list(pieces)
    dimensions = {}
    for name in DIMENSIONS:
        mine = [piece for piece in pieces if piece.dimension == name]
        dimensions[name] = Score(
            opinion(
                _sum(mine, "positive", at, seconds),
                _sum(mine, "negative", at, seconds),
                _base_rate(base_rates, name),
            ),
            _top_events(mine, at, seconds),
        )
    return _scores(at, dimensions)


# --- opinions, and a brand's scores from its relationships ----------------------------------


def opinion(positive: float, negative: float, base_rate: float = NEUTRAL_BASE_RATE) -> Opinion:
    """The subjective-logic opinion from decayed evidence r, s and base rate a."""
    total = positive + negative + PRIOR_WEIGHT
    b, d, u = positive / total, negative / total, PRIOR_WEIGHT / total
    return Opinion(b, d, u, base_rate, b + base_rate * u, positive, negative)


def brand_scores(relationships: Iterable[Scores], at: datetime) -> Scores:
    """A brand's own scores: its relationships' decayed evidence at one time, summed, base rate 0.5.

    Every relationship must be scored at `at`, so that their evidence is decayed alike. A
    relationship's own base rate does not enter: only its r and s do.
    """
    positive = dict.fromkeys(DIMENSIONS, 0.0)
    negative = dict.fromkeys(DIMENSIONS, 0.0)
    movers: dict[str, list[TopEvent]] = {name: [] for name in DIMENSIONS}
    for relationship in relationships:
        if relationship.at != at:
            raise ValueError(f"a relationship scored at {relationship.at} cannot join at {at}")
        for name, score in relationship.dimensions.items():
            positive[name] += score.opinion.positive
            negative[name] += score.opinion.negative
            movers[name].extend(score.top_events)
    dimensions = {
        name: Score(
            opinion(positive[name], negative[name], NEUTRAL_BASE_RATE),
            tuple(sorted(movers[name], key=lambda e: -(e.positive + e.negative))[:TOP_EVENTS]),
        )
        for name in DIMENSIONS
    }
    return _scores(at, dimensions)


# --- arithmetic -----------------------------------------------------------------------------


def _decay(age: timedelta, half_life: float | None) -> float:
    """2^(-age/H). A negative age (evidence dated after the evaluation time) counts over 1."""
    if half_life is None:
        return 1.0
    half_lives = age.total_seconds() / half_life
    if half_lives < -MAX_HALF_LIVES:
        raise ValueError(f"cannot evaluate {-half_lives:.0f} half-lives before the evidence")
    return math.exp2(-half_lives)


def _rank(mass: float, at: datetime, half_life: float | None) -> float:
    """log2(face value x 2^(t/H)): orders pieces as their decayed size does, at any later time."""
    if half_life is None:
        return math.log2(mass)
    return math.log2(mass) + (at - RANK_EPOCH).total_seconds() / half_life


def _sum(pieces: Iterable[Piece], side: str, at: datetime, half_life: float | None) -> float:
    return math.fsum(getattr(piece, side) * _decay(at - piece.at, half_life) for piece in pieces)


def _top_events(
    pieces: Sequence[Piece], at: datetime, half_life: float | None
) -> tuple[TopEvent, ...]:
    ranked = sorted(pieces, key=lambda piece: -_rank(piece.mass, piece.at, half_life))[:TOP_EVENTS]
    return tuple(_top_event(piece, at, half_life) for piece in ranked)


def _top_event(piece: Piece, at: datetime, half_life: float | None) -> TopEvent:
    weight = _decay(at - piece.at, half_life)
    return TopEvent(
        event_id=piece.event_id,
        at=piece.at,
        positive=piece.positive * weight,
        negative=piece.negative * weight,
        weight=weight,
        derived=piece.derived,
    )


def _base_rate(base_rates: Mapping[str, float] | None, dimension: str) -> float:
    rate = NEUTRAL_BASE_RATE if base_rates is None else base_rates.get(dimension, NEUTRAL_BASE_RATE)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"the base rate of {dimension} must be from 0 to 1, not {rate}")
    return rate


def _scores(at: datetime, dimensions: dict[str, Score]) -> Scores:
    overall = math.fsum(score.opinion.P for score in dimensions.values()) / len(dimensions)
    return Scores(at=at, dimensions=dimensions, overall=overall)
