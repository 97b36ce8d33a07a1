"""Trust answers: a brand's scores from its projection (or replayed as of a record time), and the
shape the API and the pages show: b, d, u, a, P, the evidence, and the events that moved it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from domain import trust
from projections.db import Database, parse_timestamp, timestamp
from projections.relationships import (
    brand_evidence,
    brand_open_items,
    fold_open_items,
    items,
    load_evidence,
)


@dataclass(frozen=True)
class TimelineFact:
    """A timeline row standing in for its event, to fold it again (projections/relationships.py)."""

    TYPE: str
    event_id: str
    occurred_at: datetime
    originator_version: int
    data: dict[str, Any]

    @classmethod
    def of_row(
        cls, type_: str, event_id: str, occurred_at: str, sequence: int, data: str
    ) -> TimelineFact:
        """From a timeline row's type, event_id, occurred_at, sequence and data columns."""
        occurred = cast(datetime, parse_timestamp(occurred_at))
        return cls(type_, event_id, occurred, sequence, json.loads(data))


def brand_scores(
    db: Database, brand: str, at: datetime | None = None, as_of: datetime | None = None
) -> trust.Scores:
    """The brand's own scores (base rate 0.5) at `at`; with `as_of`, from what was recorded by then."""
    at = at or as_of or datetime.now(UTC)
    if as_of is None:
        evidence, open_items = brand_evidence(db, brand), brand_open_items(db, brand)
    else:
        evidence, open_items = _replayed(db, brand, as_of)
    derived = [piece for found in open_items for piece in trust.derived_evidence(found, at)]
    return trust.scores(evidence, at, None, derived)


def _replayed(
    db: Database, brand: str, as_of: datetime, checkpoints: bool = True
) -> tuple[dict[str, Any], list[Any]]:
    """The brand's evidence and open items folded again from its timeline rows recorded by
    `as_of`: from the latest checkpoint of rows all recorded by then (projections/relationships.py),
    or from the first row. The same rows fold in the same order either way, so the answer is
    the same to the last bit (a property test compares the two)."""
    rows: dict[str, dict[str, Any]] = {}
    evidence, after = trust.empty_evidence(), 0
    start = (
        db.query(
            "SELECT position, evidence, open_items FROM brand_trust_checkpoints"
            " WHERE brand = ? AND recorded_until <= ? ORDER BY position DESC LIMIT 1",
            [brand, timestamp(as_of)],
        )
        if checkpoints
        else []
    )
    if start:
        after, stored_evidence, open_items = start[0]
        evidence = load_evidence(json.loads(stored_evidence))
        rows = {rid: {**empty_row(), **held} for rid, held in json.loads(open_items).items()}
    found = db.query(
        "SELECT relationship_id, sequence, type, event_id, occurred_at, data FROM timeline"
        " WHERE brand = ? AND position > ? AND recorded_at <= ? ORDER BY position",
        [brand, after, timestamp(as_of)],
    )
    for rid, sequence, type_, event_id, occurred_at, data in found:
        row = rows.setdefault(rid, empty_row())
        fact = TimelineFact.of_row(type_, event_id, occurred_at, sequence, data)
        pieces = fold_open_items(row, fact)
        if pieces:
            evidence = trust.with_pieces(evidence, pieces)
    held = [
        rows[rid] for rid in sorted(rows) if rows[rid]["open_promises"] or rows[rid]["open_reports"]
    ]
    return evidence, [items(row) for row in held]


def empty_row() -> dict[str, Any]:
    """A relationships row before its first event, for folding timeline rows into."""
    return {
        "sequence": 0, "events": 0, "counts": {}, "first_at": None, "last_at": None,
        "open_promises": {}, "open_reports": {}, "evidence": trust.empty_evidence(),
    }  # fmt: skip


def base_rates(scores: trust.Scores) -> dict[str, float]:
    """A brand's P per dimension: its relationships' base rates."""
    return {name: score.opinion.P for name, score in scores.dimensions.items()}


EVENT_TYPES_POSTGRES = (
    "SELECT found.* FROM unnest(?::text[]) AS wanted(event_id) CROSS JOIN LATERAL"
    " (SELECT event_id, type FROM timeline WHERE brand = ? AND event_id = wanted.event_id"
    " LIMIT 1) AS found"
)
"""One search of the index per id, whatever the statistics say (as domain/recorders.py's
look-up of event ids: an IN list can be planned as a scan of the brand's whole timeline)."""


def event_types(db: Database, brand: str, event_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(event_ids))
    if not ids:
        return {}
    if not db.is_sqlite:
        return dict(db.query(EVENT_TYPES_POSTGRES, [ids, brand]))
    rows = db.query(
        f"SELECT event_id, type FROM timeline WHERE brand = ? AND event_id IN ({', '.join('?' for _ in ids)})",
        [brand, *ids],
    )
    return dict(rows)


def scores_as_dict(scores: trust.Scores, types: Mapping[str, str]) -> dict[str, Any]:
    """The answer of the trust endpoints: per dimension b, d, u, a, P, evidence and top events."""
    answer: dict[str, Any] = {
        name: {
            **score.opinion.numbers(),
            "evidence": {"positive": score.opinion.positive, "negative": score.opinion.negative},
            "top_events": [
                {
                    "event_id": top.event_id,
                    "type": top.derived or types.get(top.event_id, "unknown"),
                    "contribution": top.positive - top.negative,
                }
                for top in score.top_events
            ],
        }
        for name, score in scores.dimensions.items()
    }
    answer["overall"] = scores.overall
    answer["evaluated_at"] = scores.at
    return answer


def top_event_ids(scores: trust.Scores) -> list[str]:
    return [top.event_id for score in scores.dimensions.values() for top in score.top_events]
