"""The API's two reads of a customer, behind one seam: the timeline and the consents.

They come from the read models of projections/. A read first catches the read models up with
the log (applying whatever is recorded beyond their position, exactly once, as any projection
worker would), so a read right after an acknowledged write always includes it, whether or not
a `trustledger project` worker is running. A customer the brand never had, or did not have yet
at `as_of`, is not found.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import datetime
from typing import Any

from domain.application import Ledger
from domain.errors import RelationshipNotFound
from domain.relationship import relationship_id
from projections import consents as consent_model
from projections import timeline as timeline_model
from projections.db import Database, timestamp
from projections.runner import Runner
from projections.timeline import TimelinePage


class ReadSide:
    """One process's read models: a runner that catches them up, and a connection to read them."""

    def __init__(self, ledger: Ledger) -> None:
        self.runner = Runner(ledger)
        self.db = Database(ledger.store)
        self._catching_up = threading.Lock()

    def caught_up(self) -> Database:
        """The read models, once they hold everything the log held when this was called."""
        with self._catching_up:  # the runner's connection serves one thread at a time
            self.runner.run_once()
        return self.db

    def close(self) -> None:
        self.runner.close()
        self.db.close()


def timeline_page(
    reads: ReadSide,
    brand: str,
    customer: str,
    *,
    limit: int,
    cursor: str | None = None,
    types: Collection[str] | None = None,
    as_of: datetime | None = None,
) -> TimelinePage:
    """One page of the customer's events, newest first, after `cursor` (a `next_cursor`)."""
    db = known(reads, brand, customer, as_of)
    return timeline_model.timeline_page(
        db, brand, customer, limit=limit, cursor=cursor, types=tuple(types or ()), as_of=as_of
    )


def consents(
    reads: ReadSide, brand: str, customer: str, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Every consent per purpose and channel as known at `as_of` (or now); expired ones say so."""
    db = known(reads, brand, customer, as_of)
    return consent_model.consents(db, brand, customer, as_of)


def known(reads: ReadSide, brand: str, customer: str, as_of: datetime | None) -> Database:
    """The caught-up read models, if the brand had this customer (at `as_of`); else not found."""
    db = reads.caught_up()
    found = db.scalar(
        "SELECT 1 FROM timeline"
        " WHERE relationship_id = ? AND brand = ? AND recorded_at <= ? LIMIT 1",
        [str(relationship_id(brand, customer)), brand, timestamp(as_of) if as_of else "9999"],
    )
    if found is None:  # a relationship opens with its first event: none yet, no customer yet
        raise RelationshipNotFound(f"no relationship with customer {customer!r}")
    return db
