"""What every read model is: a name, its tables, and how it applies a page of the log."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol
from uuid import UUID

from domain.relationship import Interaction, Relationship
from domain.shredding import CustomerKey
from projections.db import Database


@dataclass
class Page:
    """Consecutive events of the log, applied to the read models in one transaction; each
    read model goes through its lists of events (made once, as it is read by several)."""

    events: Sequence[Any]
    """Relationship events (Relationship.Opened and Interaction), in log order."""
    positions: Sequence[int]
    """Each event's notification id."""
    last_position: int
    """The last notification id the page covers (events of other aggregates included)."""
    brand_of: Callable[[UUID], str]
    """The brand of a relationship not opened in this page (read from the event store)."""
    keys: Callable[[UUID], CustomerKey | None]
    """A relationship's customer key (None once erased), which seals its personal values in the
    read models (projections/personal.py): cached, the page's read with one query (runner)."""
    brands: dict[UUID, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.brands.update({e.originator_id: e.brand for e in self.opened})

    @cached_property
    def interactions(self) -> list[tuple[int, Interaction]]:
        return [
            (p, e)
            for p, e in zip(self.positions, self.events, strict=True)
            if isinstance(e, Interaction)
        ]

    @cached_property
    def opened(self) -> list[Relationship.Opened]:
        return [e for e in self.events if isinstance(e, Relationship.Opened)]

    @cached_property
    def erased(self) -> list[Relationship.Erased]:
        """Erasures: each read model masks what it holds of that customer, in this transaction."""
        return [e for e in self.events if isinstance(e, Relationship.Erased)]

    def brand(self, relationship_id: UUID) -> str:
        if relationship_id not in self.brands:
            self.brands[relationship_id] = self.brand_of(relationship_id)
        return self.brands[relationship_id]


class ReadModel(Protocol):
    name: str
    tables: tuple[str, ...]
    personal_topics: frozenset[str] | None
    """The topics of the events whose personal fields the model reads (None: every topic's).
    The others' read UNOPENED (domain.shredding) when no model of the runner reads them."""

    def apply(self, db: Database, page: Page, tables: Mapping[str, str]) -> None:
        """Writes the page's effect into `tables` (a name → actual table map, for rebuilds)."""
