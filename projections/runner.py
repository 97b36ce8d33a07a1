"""The runner: follows the ledger's log and applies each event to each read model exactly once.

A page of the log (up to `page_size` notifications) is applied to every read model in ONE
transaction that also moves each read model's position, so a crash loses or repeats nothing.
The transaction starts by locking the positions (SELECT ... FOR UPDATE on PostgreSQL, BEGIN
IMMEDIATE on SQLite): a second worker started by mistake waits, then finds the page applied.
The same query reads the store's revision: once a migration has moved it on from the one this
code knows, the runner writes nothing more and stops (StoreMigratedAway, domain/storage.py).

Why not the library's ProjectionRunner: it applies one event per transaction (too slow to rebuild
millions of events), holds about 12 PostgreSQL connections per projection, and has no subscription
on SQLite. This runner reads the same notification log through the library's recorder and mapper,
and wakes on the same LISTEN/NOTIFY channel the library's inserts notify.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from domain.application import Ledger
from domain.errors import StoreMigratedAway
from domain.relationship import CATALOGUE, Relationship
from domain.shredding import PersonalDataMapper
from domain.storage import REVISION_QUERY, unavailable
from projections.consents import Consents
from projections.db import Database, Row
from projections.decisions import Decisions
from projections.readmodel import Page, ReadModel
from projections.relationships import Relationships
from projections.timeline import Timeline

log = logging.getLogger("trustledger.projections")

READ_MODELS: tuple[ReadModel, ...] = (Relationships(), Decisions(), Timeline(), Consents())
"""In the order they apply a page: consents read the decisions of pushes a customer unsubscribes from."""
RELATIONSHIP_TOPICS = frozenset(
    [
        Relationship.Opened.TOPIC,
        Relationship.Erased.TOPIC,
        *(c.TOPIC for c in CATALOGUE.values()),  # type: ignore[attr-defined]
    ]
)
RELATIONSHIP_TOPIC_LIST = sorted(RELATIONSHIP_TOPICS)
REBUILD_SUFFIX = "_rebuild"
POSITIONS = f"SELECT name, position, ({REVISION_QUERY}) FROM projection_positions"
"""Every read model's position, and the store's revision with each: no round trip of its own."""
OUTAGE_WAIT = 5.0
"""The longest a follower waits between tries while the database cannot answer."""
REBUILD_PAGE_SIZE = 5000
"""A rebuild's page: ten times the live runner's, since fewer, larger transactions and per-page
reads of the relationships' rows cost a rebuild a quarter less; memory stays a few MiB."""
REBUILD_GROUPS = (("relationships", "decisions", "consents"), ("timeline",))
"""How a rebuild shares its replay between two processes, each reading and decoding the whole
log and applying it to its own read models. The first reads few personal fields, so decodes at
half the cost; the timeline reads them all. About even shares, measured. (The relationships
cannot be split by relationship: the brands' trust folds the evidence of all of a brand's
relationships in log order.)"""
REBUILD_SPLIT_FROM = 20_000
"""The smallest log a rebuild replays in two processes by default: a smaller one replays in well
under a second in one. (The fork and the second process's connections cost about 20 ms.)"""
REBUILD_GC_THRESHOLD = 50_000
"""The cycle collector's first threshold during a replay (Python's default is 700): about the
containers one page of events makes, all freed by reference counting when the page is done."""


class ProjectionFailed(RuntimeError):
    """An event could not be applied; the read models stop before it and retry it at restart."""


class WaitTimeout(TimeoutError):
    """The read models did not reach a position in time."""


class Logged(NamedTuple):
    """An event of the log and its position: what the library's Notification holds."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def _page_query(table: str, sqlite: bool) -> tuple[str, list[Any]]:
    """The query of a page of relationship events after a position, up to another, and the
    topics to pass it: as the library's recorder selects notifications, on its tables, but into
    tuples, where its dict and dataclass per row were two fifths of reading a page."""
    if sqlite:
        topics: list[Any] = list(RELATIONSHIP_TOPIC_LIST)
        position, match = "rowid", f"topic IN ({', '.join('?' for _ in topics)})"
    else:
        topics = [RELATIONSHIP_TOPIC_LIST]
        position, match = "notification_id", "topic = ANY(?)"
    return (
        f"SELECT {position}, originator_id, originator_version, topic, state FROM {table}"
        f" WHERE {position} > ? AND {position} <= ? AND {match} ORDER BY {position} LIMIT ?",
        topics,
    )


def read_models(names: Sequence[str] = ()) -> tuple[ReadModel, ...]:
    if not names:
        return READ_MODELS
    known = {m.name: m for m in READ_MODELS}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"no read model named {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(m for m in READ_MODELS if m.name in names)


@dataclass
class Progress:
    """What a long run reports as it goes: positions done out of the head of the log."""

    done: int = 0
    head: int = 0


class Runner:
    """Applies the log to the read models; one per process, on its own connection."""

    def __init__(
        self,
        ledger: Ledger,
        models: Sequence[ReadModel] = READ_MODELS,
        page_size: int = 500,
        db: Database | None = None,
    ):
        self.ledger = ledger
        self.models = tuple(models)
        self.page_size = page_size
        self.db = db or Database(ledger.store, ledger.customer_keys)
        self._page_query, self._topics = _page_query(
            ledger.recorder.events_table_name,  # type: ignore[attr-defined]
            self.db.is_sqlite,
        )
        read = [m.personal_topics for m in self.models]
        self._personal_topics = None if None in read else frozenset().union(*read)  # type: ignore[arg-type]
        self._brands: dict[UUID, str] = {}
        self.applied = threading.Condition()

    def close(self) -> None:
        self.db.close()

    # --- positions --------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """Each read model's position; refused once the store is at another revision than this
        code's (every read catches the read models up first, so reads notice it too)."""
        return self._checked(self.db.query(POSITIONS))

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    # --- following the log ------------------------------------------------------------------

    def run_once(self, max_pages: int | None = None, head: int | None = None) -> int:
        """Applies what is recorded so far, or up to `head` (or `max_pages` pages of it); returns
        how many notifications it went through."""
        total = 0
        head = self.head() if head is None else head
        for _ in iter(int, 1) if max_pages is None else range(max_pages):
            start = min(self.positions()[m.name] for m in self.models)
            if start >= head:
                return total
            notifications, last = self._page(start, head)
            self._apply_live(notifications, last)
            total += len(notifications)
            with self.applied:
                self.applied.notify_all()
        return total

    def run_forever(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Follows the log until `stop` is set: woken by NOTIFY on PostgreSQL, by polling on
        SQLite. While the database cannot answer (a restart, a network cut), it waits, longer
        each time up to OUTAGE_WAIT, and then goes on from the positions the read models hold."""
        listener: psycopg.Connection[Any] | None = None
        outage = 0.0
        try:
            while not stop.is_set():
                try:
                    if listener is None and not self.db.is_sqlite:
                        listener = self._listen()
                    applied, outage = self.run_once(), 0.0
                    if applied:
                        continue
                    if listener is None:
                        stop.wait(0.05)
                    else:
                        for _ in listener.notifies(timeout=poll, stop_after=1):
                            pass
                except Exception as error:
                    if not unavailable(error):
                        raise
                    if not outage:
                        log.warning("the database cannot answer (%s); retrying", error)
                    outage = min(max(outage * 2, 0.1), OUTAGE_WAIT)
                    if listener is not None:
                        listener.close()
                        listener = None
                    stop.wait(outage)
        finally:
            if listener is not None:
                listener.close()

    def start(self) -> Callable[[], None]:
        """Follows the log in a background thread (the embedded default); returns how to stop it."""
        stop = threading.Event()

        def follow() -> None:
            # A failure is logged already; the read models wait at the failed event until a restart.
            with contextlib.suppress(ProjectionFailed):
                try:
                    self.run_forever(stop)
                except StoreMigratedAway as error:  # one line, no trace: the process is too old
                    log.error("read models stopped: %s", error)

        thread = threading.Thread(target=follow, name="trustledger-projections", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.ledger.store.conninfo(), autocommit=True)
        conn.execute(f'LISTEN "{self.ledger.recorder.channel_name}"')  # type: ignore[attr-defined]
        return conn

    def wait(self, position: int | None, timeout: float = 5.0) -> None:
        """Blocks until every read model has applied `position` (read-your-writes)."""
        wait_for_position(self.db, position, timeout, [m.name for m in self.models])

    def _page(self, after: int, head: int, size: int | None = None) -> tuple[Sequence[Any], int]:
        """The relationship events after `after` (a page of them), and the position the page
        covers: up to `head` when it holds them all, since other aggregates' events (push-id
        claims, policies) come in between and are not read at all."""
        size = size or self.page_size
        rows = self.db.query(self._page_query, [after, head, *self._topics, size], binary=True)
        if self.db.is_sqlite:  # where the library keeps UUIDs as text
            notifications = [Logged(n, UUID(rid), v, t, state) for n, rid, v, t, state in rows]
        else:
            notifications = [Logged(*row) for row in rows]
        last = notifications[-1].id if len(notifications) == size else head
        return notifications, last

    def _apply_live(self, notifications: Sequence[Any], last: int) -> None:
        tables = {t: t for m in READ_MODELS for t in m.tables}
        try:
            self._apply(notifications, last, self.models, tables, track=True)
        except Exception as error:
            # The database's trouble, or a migration's, not an event's: nothing to find.
            if unavailable(error) or isinstance(error, StoreMigratedAway):
                raise
            if len(notifications) <= 1:
                self._fail(notifications[0] if notifications else None)
            for notification in notifications:  # find the event at fault; apply those before it
                try:
                    self._apply([notification], notification.id, self.models, tables, track=True)
                except Exception:
                    self._fail(notification)
            self._apply([], last, self.models, tables, track=True)

    def _fail(self, notification: Any) -> None:
        if notification is None:
            log.exception("read models could not record their position")
            raise ProjectionFailed("read models could not record their position")
        event = self.ledger.mapper.to_domain_event(notification)
        message = (
            f"read models stopped at position {notification.id}: event "
            f"{getattr(event, 'event_id', '?')} ({notification.topic}) of relationship "
            f"{notification.originator_id} could not be applied; it is retried at restart"
        )
        log.exception(message)
        raise ProjectionFailed(message)

    def _apply(
        self,
        notifications: Sequence[Any],
        last: int,
        models: Sequence[ReadModel],
        tables: Mapping[str, str],
        track: bool,
    ) -> None:
        """One transaction: the page's effect on each model that has not applied it, and positions.

        But a rebuild's page on SQLite (not `track`) is not one transaction: its tables are fresh,
        read by nobody until the swap, and SQLite's one write lock, which two rebuilding processes
        share, is then held only while a read model writes, not while it computes."""
        events, positions = self._decode(notifications)
        brands = self._brands_before(events)
        pages: dict[int, Page] = {}  # by where a model starts in it: usually one for all
        one_transaction = track or not self.db.is_sqlite
        with self.db.transaction() if one_transaction else contextlib.nullcontext(self.db):
            current = self._lock_positions() if track else {}
            for model in models:
                since = current.get(model.name, 0)
                if track and since >= last:
                    continue
                start = bisect.bisect_right(positions, since)
                if start not in pages:
                    page = Page(
                        events[start:],
                        positions[start:],
                        last,
                        self._brand_of,
                        self.ledger.customer_keys.get,
                    )
                    pages[start] = page
                    page.brands.update(brands)
                model.apply(self.db, pages[start], tables)
                if track:
                    self.db.execute(
                        "UPDATE projection_positions SET position = ? WHERE name = ?",
                        [last, model.name],
                    )
        if any(isinstance(e, Relationship.Erased) for e in events):
            self.db.forget_old_pages()

    def _lock_positions(self) -> dict[str, int]:
        """The positions, locked to the transaction's end, which writes nothing if the store is
        at another revision than this code's: on SQLite under the write lock BEGIN IMMEDIATE
        took; on PostgreSQL, a migration holds alembic_version locked to its commit
        (migrations/env.py), and this reads it, so it waits for that revision."""
        return self._checked(
            self.db.query(POSITIONS + ("" if self.db.is_sqlite else " FOR UPDATE"))
        )

    def _checked(self, rows: Sequence[Row]) -> dict[str, int]:
        self.ledger.store.guard.verify(rows[0][2] if rows else self.db.scalar(REVISION_QUERY))
        return {name: position for name, position, _ in rows}

    def _decode(self, notifications: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """The page's relationship events, their personal fields opened with their customers'
        keys where a read model reads them."""
        mapper = self.ledger.mapper
        assert isinstance(mapper, PersonalDataMapper)
        relevant = [n for n in notifications if n.topic in RELATIONSHIP_TOPICS]
        opened = self._personal_topics
        # The page's customers' keys in one query, not one per customer as the mapper reads them.
        self.ledger.customer_keys.preload(
            {n.originator_id for n in relevant if opened is None or n.topic in opened},
            self.db.customer_keys,
        )
        events = [
            mapper.to_domain_event(n, open_personal=opened is None or n.topic in opened)
            for n in relevant
        ]
        return events, [n.id for n in relevant]

    def _brands_before(self, events: Sequence[Any]) -> dict[UUID, str]:
        """The brands of the page's relationships not opened in it, read before its write
        transaction: from the event store, whose SQLite pool keeps readers waiting while its
        writer is out, and that writer may be waiting for this transaction's lock (a save
        holding it waited out the pool's 5 s, and its request answered 503)."""
        opened = {e.originator_id for e in events if isinstance(e, Relationship.Opened)}
        return {rid: self._brand_of(rid) for rid in {e.originator_id for e in events} - opened}

    def _brand_of(self, relationship_id: UUID) -> str:
        if relationship_id not in self._brands:
            if len(self._brands) > 100_000:
                self._brands.clear()
            opened: Any = next(iter(self.ledger.events.get(relationship_id, lte=1)))
            self._brands[relationship_id] = opened.brand
        return self._brands[relationship_id]

    # --- rebuilding ------------------------------------------------------------------------

    def rebuild(
        self,
        verify: bool = False,
        progress: Callable[[Progress], None] | None = None,
        processes: int | None = None,
    ) -> dict[str, list[str]]:
        """Rebuilds the models from the whole log into fresh tables.

        Without `verify`, swaps them in for the live tables; with it, compares them with the live
        tables at the same position and leaves the live tables as they were. Returns the
        differences per table (empty when rebuilt and live agree). `processes` (1 or 2; by
        default 2 for a log of REBUILD_SPLIT_FROM events or more on a machine of more than one
        core) is how many processes replay the log: see REBUILD_GROUPS.
        """
        self.positions()  # refused at once, rather than after the replay, on a store migrated on
        rebuilt = {t: t + REBUILD_SUFFIX for m in self.models for t in m.tables}
        tables = {t: rebuilt.get(t, t) for m in READ_MODELS for t in m.tables}
        with self.db.transaction():
            for table, copy in rebuilt.items():
                self.db.copy_table(table, copy)
        state = Progress(head=self.head())
        done = self._replay_split(state.head, tables, state, progress, processes, not verify)
        with self.db.transaction():
            live = self._lock_positions()
            head = max(self.head(), done)
            self._catch_up(done, head, tables)
            differences: dict[str, list[str]] = {}
            for model in self.models:
                if verify:  # bring the live tables to the same position, to compare like with like
                    self._catch_up(live[model.name], head, {t: t for t in tables}, [model])
                    differences.update({t: self._compare(t, rebuilt[t]) for t in model.tables})
                else:
                    for table in model.tables:
                        self.db.swap_in(table, rebuilt[table])
                self.db.execute(
                    "UPDATE projection_positions SET position = ? WHERE name = ?",
                    [head, model.name],
                )
            if verify:
                for copy in rebuilt.values():
                    self.db.drop_copy(copy)
        return {t: d for t, d in differences.items() if d}

    def _replay(
        self,
        after: int,
        until: int,
        tables: Mapping[str, str],
        state: Progress,
        progress: Callable[[Progress], None] | None,
        index: bool,
    ) -> int:
        """Replays (after, until] into `tables`; with `index`, then builds their other indexes
        (in this process, so two replaying processes build theirs side by side)."""
        done = after
        with _fewer_collections(), self.db.unflushed():
            for notifications, last in self._pages(after, until, REBUILD_PAGE_SIZE):
                self._apply(notifications, last, self.models, tables, track=False)
                done = last
                state.done = done
                if progress:
                    progress(state)
        if index:
            for table in (t for m in self.models for t in m.tables):
                self.db.index_copy(table, tables[table])
        return done

    def _replay_split(
        self,
        until: int,
        tables: Mapping[str, str],
        state: Progress,
        progress: Callable[[Progress], None] | None,
        processes: int | None,
        index: bool,
    ) -> int:
        """Replays (0, until]: in this process, or with the first of REBUILD_GROUPS in a forked
        process while this one replays the rest."""
        groups = [
            g
            for g in ([m for m in self.models if m.name in names] for names in REBUILD_GROUPS)
            if g
        ]
        if processes is None:
            processes = 2 if until >= REBUILD_SPLIT_FROM and (os.cpu_count() or 1) > 1 else 1
        if processes < 2 or len(groups) < 2 or "fork" not in mp.get_all_start_methods():
            return self._replay(0, until, tables, state, progress, index)
        theirs, mine = groups
        context = mp.get_context("fork")
        reached = context.Value("q", 0, lock=False)
        other = context.Process(
            target=self._replay_forked,
            args=(theirs, until, tables, reached, index),
            name=f"trustledger-rebuild-{'-'.join(m.name for m in theirs)}",
        )
        other.start()
        own = Progress(head=until)

        def report(_: Progress) -> None:
            state.done = min(own.done, reached.value)
            if progress:
                progress(state)

        here = Runner(self.ledger, mine, self.page_size, self.db)
        try:
            here._replay(0, until, tables, own, report, index)
            while other.is_alive():
                other.join(0.2)
                report(own)
        except BaseException:
            other.terminate()
            raise
        finally:
            other.join()
        if other.exitcode != 0:
            raise ProjectionFailed(
                f"the replay of {', '.join(m.name for m in theirs)} in process {other.pid} failed"
                f" (exit code {other.exitcode}; its log says why); the live tables are unchanged"
            )
        return until

    def _replay_forked(
        self,
        models: Sequence[ReadModel],
        until: int,
        tables: Mapping[str, str],
        reached: Any,
        index: bool,
    ) -> None:
        """In the forked process: replays with connections of its own, never the parent's."""
        ledger = Ledger(self.ledger.store, master_key=self.ledger.customer_keys.master_key)
        runner = Runner(ledger, models, self.page_size, self.db.reopened())
        try:
            runner._replay(
                0,
                until,
                tables,
                Progress(head=until),
                lambda s: setattr(reached, "value", s.done),
                index,
            )
        except Exception:
            log.exception("the replay of %s failed", ", ".join(m.name for m in models))
            raise SystemExit(1) from None
        finally:
            runner.close()
            ledger.close()

    def _catch_up(
        self,
        after: int,
        until: int,
        tables: Mapping[str, str],
        models: Sequence[ReadModel] | None = None,
    ) -> None:
        """Applies (after, until] inside the caller's transaction."""
        for notifications, last in self._pages(after, until):
            events, positions = self._decode(notifications)
            page = Page(events, positions, last, self._brand_of, self.ledger.customer_keys.get)
            for model in models or self.models:
                model.apply(self.db, page, tables)

    def _pages(
        self, after: int, until: int, size: int | None = None
    ) -> Iterator[tuple[Sequence[Any], int]]:
        while after < until:
            notifications, last = self._page(after, until, size)
            yield notifications, last
            after = last

    def _compare(self, table: str, copy: str) -> list[str]:
        """Rows in one table and not the other, both ways (a few of each, and the counts)."""
        found = []
        for left, right, label in (
            (copy, table, "only in the rebuild"),
            (table, copy, "only live"),
        ):
            count = self.db.scalar(
                f"SELECT count(*) FROM (SELECT * FROM {left} EXCEPT SELECT * FROM {right}) d"
            )
            if count:
                sample = self.db.query(f"SELECT * FROM {left} EXCEPT SELECT * FROM {right} LIMIT 3")
                found.append(f"{count} row(s) {label}, e.g. {[tuple(r[:3]) for r in sample]}")
        return found


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Runs the cycle collector less often, for the process, until the block ends. A replay
    makes millions of short-lived dicts; with the default threshold the collector ran hundreds
    of times per 80,000 events and walked the whole heap a few of them: a tenth of a rebuild.
    It still runs when that many containers outlive their page, so memory stays bounded."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], REBUILD_GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def wait_for_position(
    db: Database, position: int | None, timeout: float, names: Sequence[str]
) -> None:
    """Polls the positions until every named read model has reached `position`."""
    if not position:
        return
    deadline = time.monotonic() + timeout
    delay = 0.002
    placeholders = ", ".join("?" for _ in names)
    while True:
        reached = db.scalar(
            f"SELECT min(position) FROM projection_positions WHERE name IN ({placeholders})",
            list(names),
        )
        if reached is not None and reached >= position:
            return
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"read models are at {reached}, not yet at {position}, after {timeout}s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
