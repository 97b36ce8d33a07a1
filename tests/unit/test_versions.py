"""KnownVersions: what the processes of one server know of each relationship's latest version."""

from __future__ import annotations

import os
from uuid import uuid4

from domain.versions import SLOTS, KnownVersions


def test_a_version_noted_is_the_latest_until_a_later_one_is() -> None:
    table, rid = KnownVersions(), uuid4()
    assert not table.is_latest(rid, 3)
    table.note(rid, 3)
    assert table.is_latest(rid, 3)
    table.note(rid, 5)
    table.note(rid, 4)  # a read that finished after a later save: it does not move the version back
    assert table.is_latest(rid, 5) and not table.is_latest(rid, 4)


def test_a_relationship_in_another_slot_is_not_affected() -> None:
    table = KnownVersions()
    one = uuid4()
    other = next(r for r in iter(uuid4, None) if r.int % SLOTS != one.int % SLOTS)
    table.note(one, 7)
    assert not table.is_latest(other, 7)


def test_processes_forked_after_it_was_made_share_it() -> None:
    table, ours, theirs = KnownVersions(), uuid4(), uuid4()
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker: notes what it saved, sees what the parent did
        table.note(theirs, 9)
        os.read(ready, 1)  # once the parent noted its own
        os._exit(0 if table.is_latest(ours, 2) else 1)
    table.note(ours, 2)
    os.write(go, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (
        "the child sees what the parent noted after the fork"
    )
    assert table.is_latest(theirs, 9), "the parent sees what the child noted"
