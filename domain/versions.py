"""What the processes of one server know of each relationship's latest version.

A command reads the relationship's events after the version its process holds, then saves at the
next version: the save fails if anything was written meanwhile (the store's unique
(originator_id, originator_version)), and the command is run again on what was written. The read
is there so that the command need not fail first: under gunicorn a customer's requests go to any
worker, and half the time the other worker wrote last.

`KnownVersions` lets a worker tell when the read would find nothing: the workers note in one
shared table the version of every relationship they read or save, and a worker that holds the
version noted for a relationship skips the read. Whatever the table says, the save is what
guarantees a command ran on the latest state; the table only saves a query. It can be wrong,
and each way costs only time:

- a stale copy is taken for the latest when something wrote without noting it (another server,
  a command-line tool), or when a racing note was lost (two processes noting one slot at once).
  Then the save fails, and the command is run again after a read (the ledger reads on every
  attempt after the first);
- it is a hash table without keys: two relationships may share a slot, which then holds the
  higher of their versions, so the one behind is read when it need not be. A version is noted
  only once committed or read, so no slot is ever ahead of every relationship it serves.
"""

from __future__ import annotations

import mmap
from uuid import UUID

SLOTS = 1 << 18
"""Slots of 8 bytes: 2 MiB, shared by all the workers of a server."""


class KnownVersions:
    """The latest version of each relationship that a group of processes has read or saved:
    those forked, after it was made, from the process that made it (gunicorn's workers)."""

    def __init__(self) -> None:
        # An anonymous mapping is shared with the children forked after it (MAP_SHARED).
        self._versions = memoryview(mmap.mmap(-1, SLOTS * 8)).cast("q")

    def is_latest(self, relationship_id: UUID, version: int) -> bool:
        """Whether `version` is the latest any of the processes read or saved."""
        return bool(self._versions[relationship_id.int % SLOTS] == version)

    def note(self, relationship_id: UUID, version: int) -> None:
        """The relationship was read or saved at `version`."""
        slot = relationship_id.int % SLOTS
        if self._versions[slot] < version:
            self._versions[slot] = version
