"""How long a statement run for a caller waits for PostgreSQL's answer.

A stopped server refuses connections, and the pools give up on it after CONNECT_TIMEOUT. A frozen
one (its processes stopped, a host that hangs, a network that drops packets without a word) takes
what is sent and never answers: psycopg then waits on the socket for ever, since its sync
connections have no client-side deadline on a statement. `statement_timeout` is the server's own
and never runs on a frozen server; TCP keepalives and `tcp_user_timeout` act only when the peer
stops acknowledging, which a stopped process's kernel still does; a cancel request needs the
postmaster to answer. A call under `serve` hung as long as the freeze lasted, and under gunicorn
until its worker was killed at 30 s.

So the ledger's PostgreSQL connections are `TimedConnection`s: while a thread is answering a
caller (`answering_within`, which the HTTP app sets for each request), every round trip it waits
on is given at most that many seconds, in the thread itself (psycopg's own wait, given a
timeout); past it the connection is closed, so its pool drops it rather than handing it out
again, and the statement raises `Unanswered` (the ledger's `StoreUnanswered`, which the event
library does not retry: each try would wait as long again). It is a limit on each round trip,
not on a request's sum: a read that first catches the read models up with a long log, page by
page, is not cut. Nothing else waits on a deadline: the commands (rebuild, migrate,
audit-decisions, project) and the projection thread of `serve` run as long as their statements
need. Measured: 0.18 us more per round trip than psycopg's own wait, 0.2 us per request to set
the thread's timeout and take it back, where a round trip is 50-60 us.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.errors import _WaitTimeout  # what psycopg's wait raises when given a timeout
from psycopg.rows import Row

STATEMENT_TIMEOUT = 5.0
"""Seconds a statement run for a caller waits for its answer (TRUSTLEDGER_STATEMENT_TIMEOUT_SECONDS):
the same as a call waits on a stopped server (CONNECT_TIMEOUT)."""


class Unanswered(psycopg.OperationalError):
    """PostgreSQL did not answer a round trip within the statement timeout; the connection is
    closed. What the statement sent may still be carried out when the server wakes."""


class _Scope(threading.local):
    seconds: float | None = None
    """This thread's statement timeout; None outside a caller's request (no deadline)."""


_scope = _Scope()


def answering_within(seconds: float | None) -> float | None:
    """Gives this thread's statements `seconds` each for their answer from now on (None: no
    limit); returns what it had before, to set back when the caller is answered."""
    before, _scope.seconds = _scope.seconds, seconds
    return before


class TimedConnection(psycopg.Connection[Row]):
    """A psycopg connection whose round trips wait no longer than the thread's statement timeout."""

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        seconds = _scope.seconds
        if seconds is None or timeout is not None:  # (LISTEN's waits bring their own)
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, seconds)
        except _WaitTimeout:
            # Closed here, in the thread that holds it: no other thread can have it meanwhile,
            # and its pool, seeing it closed, makes another instead of handing it out again.
            self.pgconn.finish()
            raise Unanswered(f"the database did not answer within {seconds:g} s") from None
