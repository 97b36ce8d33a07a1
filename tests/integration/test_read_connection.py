"""The read models' connection, shared by a server's threads: each read sees every write
committed before it began, whatever another thread is reading at the time."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from domain.storage import Store
from projections.db import Database


def test_a_read_sees_what_was_committed_while_another_thread_reads(tmp_path: Path) -> None:
    """On SQLite a read begun while another thread's statement was still being read joined its
    snapshot: the in-process server then answered 404 for customers written just before."""
    path = tmp_path / "read.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50_000)])
    shared = Database(Store.from_url(f"sqlite:///{path}"))
    reading = threading.Event()

    def long_reads() -> None:
        while not reading.is_set():
            shared.query("SELECT x, x * 2, x || 'row' FROM t")

    other = threading.Thread(target=long_reads)
    other.start()
    try:
        missed = []
        for i in range(1, 11):
            writer.execute("INSERT INTO t VALUES (?)", [-i])
            if shared.scalar("SELECT count(*) FROM t WHERE x = ?", [-i]) != 1:
                missed.append(-i)
        assert missed == []
    finally:
        reading.set()
        other.join()
        shared.close()
        writer.close()
