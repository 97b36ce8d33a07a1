"""The command line against a database it cannot use: one line on stderr, exit 1, at once."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

from api.settings import Settings
from domain.storage import REVISIONS, Store
from migrations import upgrade
from tests.conftest import TEST_MASTER_KEY, new_sqlite_database, postgres_url
from tests.integration.test_master_key import cli

COMMANDS = [
    ["keys", "list"],
    ["lag"],
    ["audit-decisions"],
    ["events", "--brand", "b", "--customer", "c"],
]
SERVE = [["serve"], ["serve", "--workers", "2"]]
"""gunicorn's workers each failed to boot with a traceback, and it exited 3."""


def on_a_free_port(command: list[str]) -> list[str]:
    """`serve` checks it can listen before it opens the store."""
    if command[0] != "serve":
        return command
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return [*command, "--port", str(probe.getsockname()[1])]


def assert_one_line(done: object, *expected: str) -> None:
    returncode, stdout, stderr = (
        getattr(done, name) for name in ("returncode", "stdout", "stderr")
    )
    assert returncode == 1 and stdout == "", (stdout, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("trustledger: database: "), stderr
    assert all(text in stderr for text in expected), stderr


@pytest.mark.parametrize(
    "command", [*COMMANDS, *SERVE, ["keys", "create", "--brand", "b", "--role", "brand"]]
)
@pytest.mark.parametrize("key", ["set", "file"])
def test_an_sqlite_file_not_there_asks_for_migrate_and_makes_nothing(
    tmp_path: Path, command: list[str], key: str
) -> None:
    """A mistyped path made its directories, an empty database and a new master key file beside
    it (with no TRUSTLEDGER_MASTER_KEY), and only then said no table was there."""
    path = tmp_path / "typo" / "new.sqlite3"
    command = on_a_free_port(command)
    env = {"TRUSTLEDGER_MASTER_KEY": TEST_MASTER_KEY.encoded()} if key == "set" else {}
    done = cli("--database-url", f"sqlite:///{path}", *command, **env)
    assert_one_line(done, f"{path} does not exist", "`trustledger migrate` makes it")
    assert list(tmp_path.iterdir()) == []


def test_an_sqlite_file_never_migrated_asks_for_migrate(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    done = cli(
        "--database-url",
        f"sqlite:///{path}",
        "lag",
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
    )
    assert_one_line(done, "no such table", "(has `trustledger migrate` run?)")


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS + SERVE)
def test_a_postgres_database_never_migrated_asks_for_migrate(command: list[str]) -> None:
    server, name = Store.from_url(postgres_url()), f"bare_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.with_dbname(name).url
    command = on_a_free_port(command)
    done = cli("--database-url", url, *command, TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded())
    assert_one_line(done, "does not exist", "(has `trustledger migrate` run?)")


@pytest.mark.parametrize("command", COMMANDS[1:] + SERVE)
def test_a_store_at_an_older_revision_asks_for_migrate(
    unmigrated_store: Store, command: list[str]
) -> None:
    """The software upgraded, `trustledger migrate` forgotten: serve started, took writes, and
    answered every read that met the newer tables 503 `store-unavailable` (as if the database
    were down), and `lag` said all was well. Now every command that opens the ledger says so."""
    upgrade(unmigrated_store, REVISIONS[-2])
    command = on_a_free_port(command)
    done = cli(
        "--database-url",
        unmigrated_store.url,
        *command,
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
    )
    assert_one_line(done, f"at revision {REVISIONS[-2]}", "run `trustledger migrate`")


@pytest.mark.parametrize("command", [["migrate"], ["serve"], *COMMANDS])
def test_a_postgres_server_that_is_not_there_is_said_plainly(command: list[str]) -> None:
    """At once (one plain connection first), not after the pools' 10-30 s of retries."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://ledger@127.0.0.1:{port}/ledger"
    done = cli("--database-url", url, *command, TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded())
    assert_one_line(done, "Connection refused")
    assert "migrate` run?" not in done.stderr


def assert_one_error(done: object, code: int, *expected: str) -> None:
    """One line on stderr, `trustledger: ...`, holding `expected`; nothing on stdout."""
    returncode, stdout, stderr = (
        getattr(done, name) for name in ("returncode", "stdout", "stderr")
    )
    assert returncode == code and stdout == "", (returncode, stdout, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("trustledger: "), stderr
    assert all(text in stderr for text in expected), stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@[::1/db", "Invalid IPv6 URL"),
        ("sqlite:///{tmp}/tl.db ", "leading or trailing whitespace"),
        (" sqlite:///{tmp}/tl.db", "leading or trailing whitespace"),
        # migrate "migrated" a database gone with its connection, said "at revision None", and
        # left an empty file named `:memory:` in the working directory
        ("sqlite:///:memory:", "an in-memory database keeps nothing"),
    ],
)
def test_a_database_url_that_cannot_be_parsed_is_one_line(
    tmp_path: Path, url: str, expected: str
) -> None:
    """A trailing space made a new SQLite file named `tl.db `, and an empty store in it."""
    url = url.format(tmp=tmp_path)
    done = cli("--database-url", url, "lag", TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded())
    assert_one_error(done, 1, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql://ledger:S3CRET-pw@db.example/ledger",
        "postgresql://ledger:S3CRET-pw@db.example:99999/ledger",
        "postgresql://ledger:S3CRET-pw@[::1/ledger",
        "postgresql://ledger:S3CRET-pw@/ledger",
        "postgresql:///ledger?user=ledger&password=S3CRET-pw",
    ],
)
@pytest.mark.parametrize("variable", ["TRUSTLEDGER_DATABASE_URL", "TRUSTLEDGER_REPLICA_URL"])
def test_a_url_refused_at_start_does_not_say_its_password(
    tmp_path: Path, url: str, variable: str
) -> None:
    """The refusal quoted the URL whole, password included, to the terminal and the logs."""
    primary = {"TRUSTLEDGER_DATABASE_URL": "postgresql://u@127.0.0.1:1/db"}
    done = cli(
        "lag", TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(), **{**primary, variable: url}
    )
    assert_one_error(done, 1, "ledger:***@" if "@" in url.split("?")[0] else "password=***")
    assert "S3CRET" not in done.stderr


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("sslmode=require&target_session_attrs=any-old", 'target_session_attrs value: "any-old"'),
        ("connect_timeout=soon", "connect_timeout: 'soon'"),
        ("sslmode=require&bogus=1", 'invalid URI query parameter: "bogus"'),
    ],
)
@pytest.mark.parametrize("variable", ["TRUSTLEDGER_DATABASE_URL", "TRUSTLEDGER_REPLICA_URL"])
def test_a_connection_parameter_libpq_refuses_is_one_line_at_start(
    query: str, expected: str, variable: str
) -> None:
    """Refused when the URL is read, not at the first connection: a replica's was found at the
    first read (which then went to the primary, and the log said the replica failed), the
    database's as `database: connection is bad`, after a connection was tried."""
    url = f"postgresql://ledger:S3CRET-pw@db.example:5432/ledger?{query}"
    primary = {"TRUSTLEDGER_DATABASE_URL": "postgresql://u@127.0.0.1:1/db"}
    done = cli(
        "lag", TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(), **{**primary, variable: url}
    )
    assert_one_error(done, 1, "'postgresql://ledger:***@db.example:5432/ledger?", expected)
    assert "S3CRET" not in done.stderr and "database:" not in done.stderr


@pytest.mark.parametrize(
    "query",
    [
        *(f"sslmode={mode}" for mode in ["disable", "allow", "prefer", "require", "verify-full"]),
        "sslmode=verify-ca&sslrootcert=/nowhere/ca.pem&application_name=tl",
        "target_session_attrs=read-write&connect_timeout=20&options=-c%20x%3Dy",
        "hostaddr=192.0.2.1&keepalives_idle=30",
    ],
)
def test_connection_parameters_libpq_takes_are_taken(query: str) -> None:
    """The check connects to nothing, and refuses only what libpq would."""
    url = f"postgresql://u:pw@db.example:5432/ledger?{query}"
    assert Settings.load({"database_url": url, "replica_url": url}).replica is not None


def test_an_sqlite_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """The directory's parent is a file: refused even to root, as a read-only one is to others.
    (Other commands make nothing: test_an_sqlite_file_not_there_asks_for_migrate_and_makes_nothing.)"""
    (tmp_path / "file").write_text("")
    url = f"sqlite:///{tmp_path / 'file' / 'sub' / 'tl.db'}"
    done = cli("--database-url", url, "migrate")
    assert_one_error(done, 1, "cannot make", str(tmp_path / "file" / "sub"), "Not a directory")


@pytest.mark.parametrize(
    ("variable", "value", "bounds"),
    [
        *(("KEY_CACHE_SECONDS", v, "from 0 to 3600") for v in ["abc", "-1", "inf", "nan", "3601"]),
        *(
            ("STATEMENT_TIMEOUT_SECONDS", v, "from 0.1 to 3600")
            for v in ["abc", "0", "-1", "inf", "nan", "3601"]
        ),
        *(("REPLICA_WAIT_SECONDS", v, "from 0 to 5") for v in ["abc", "-1", "inf", "6"]),
    ],
)
def test_a_time_setting_out_of_bounds_is_one_line(
    tmp_path: Path, variable: str, value: str, bounds: str
) -> None:
    """The key cache is how long a revoked API key may still be accepted: `inf` would be for
    ever. A statement timeout of 0 would answer every call 503, `inf` hang them on a frozen
    database (domain/timeouts.py)."""
    done = cli(
        "--database-url",
        f"sqlite:///{tmp_path / 'tl.db'}",
        "keys",
        "list",
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
        **{f"TRUSTLEDGER_{variable}": value},
    )
    assert_one_error(done, 1, f"TRUSTLEDGER_{variable}", bounds, repr(value))


@pytest.mark.parametrize(
    ("database", "replica", "expected"),
    [
        ("sqlite:///{tmp}/tl.db", "postgresql://u@127.0.0.1:1/db", "a PostgreSQL primary"),
        ("postgresql://u@127.0.0.1:1/db", "sqlite:///{tmp}/r.db", "must be a postgresql://"),
        ("postgresql://u@127.0.0.1:1/db", "postgresql://u@[::1/db", "Invalid IPv6 URL"),
        ("postgresql://u@127.0.0.1:1/db", "postgresql://127.0.0.1:1", "expected postgresql://"),
    ],
)
def test_a_replica_the_ledger_cannot_use_is_one_line_at_start(
    tmp_path: Path, database: str, replica: str, expected: str
) -> None:
    """Refused before anything is opened, rather than at the first read."""
    done = cli(
        "--database-url",
        database.format(tmp=tmp_path),
        "lag",
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
        TRUSTLEDGER_REPLICA_URL=replica.format(tmp=tmp_path),
    )
    assert_one_error(done, 1, "TRUSTLEDGER_REPLICA_URL", expected)
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_now_whose_two_years_start_before_1970(tmp_path: Path) -> None:
    done = cli(
        "--database-url",
        f"sqlite:///{tmp_path / 'tl.db'}",
        "demo",
        "--now",
        "0001-01-01",
        TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded(),
    )
    assert_one_error(done, 2, "--now", "1970")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["keys", "create", "--brand", "b"], "Missing option '--role'. Choose from: brand, agent"),
        (["keys"], "missing command: create, list, revoke"),
        ([], "missing command: audit-decisions, demo"),
    ],
)
def test_a_usage_error_is_one_line(args: list[str], expected: str) -> None:
    assert_one_error(cli(*args), 2, expected, "(see --help)")


@pytest.mark.parametrize(
    "args",
    [
        ["events", "--brand", "Acme", "--customer", "c"],
        ["events", "--brand", "", "--customer", "c"],
        ["audit-decisions", "--brand", ""],
        ["audit-decisions", "--brand", "acme "],
        ["audit-decisions", "--brand", "acme\n"],
    ],
)
def test_a_brand_that_is_no_slug_is_one_line(tmp_path: Path, args: list[str]) -> None:
    """`events --brand ACME` said "no relationship with customer 'c'" of a customer its brand
    has, and `audit-decisions --brand ''` audited none: `keys` makes no such brand."""
    url = new_sqlite_database(tmp_path).url
    done = cli("--database-url", url, *args, TRUSTLEDGER_MASTER_KEY=TEST_MASTER_KEY.encoded())
    assert_one_error(done, 2, "Invalid value for '--brand'", "not a brand's slug")
