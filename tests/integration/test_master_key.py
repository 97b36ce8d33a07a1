"""The master key on both stores: refused when missing or wrong, rotated losing no customer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from api.app import close_app, create_app
from api.settings import Settings, write_key_file
from domain.application import Ledger
from domain.errors import MasterKeyError
from domain.relationship import ERASED
from domain.shredding import MasterKey
from domain.storage import Store
from migrations import upgrade
from tests.conftest import TEST_MASTER_KEY, open_ledger
from tests.factories import story
from tests.integration.test_serve import free_port
from tests.random_refs import random_brand, random_customer

ROOT = Path(__file__).parents[2]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_wrong_master_key_is_refused_at_start(store: Store) -> None:
    open_ledger(store).close()  # the store's keys are now bound to the tests' master key
    with pytest.raises(MasterKeyError, match="set TRUSTLEDGER_MASTER_KEY to the key"):
        Ledger(store, master_key=MasterKey.generate())


def test_a_missing_master_key_is_refused_at_start(store: Store) -> None:
    with pytest.raises(MasterKeyError, match="never stored in plaintext"):
        Ledger(store)


def test_rotation_keeps_every_customer_readable(empty_store: Store) -> None:
    brand, customers = random_brand(), [random_customer() for _ in range(3)]
    ledger = open_ledger(empty_store)
    for customer in customers:
        ledger.record_batch(brand, story(customer))
    ledger.erase(brand, customers[2], requested_by="dpo", reason="art. 17")
    new = MasterKey.generate()
    assert ledger.rotate_master_key(new) == 2
    assert ledger.interactions(brand, customers[0])[0].summary == "refund by Friday"  # type: ignore[attr-defined]
    ledger.close()
    with pytest.raises(MasterKeyError):
        open_ledger(empty_store)
    rotated = Ledger(empty_store, master_key=new)
    try:
        for customer in customers[:2]:
            assert rotated.interactions(brand, customer)[0].summary == "refund by Friday"  # type: ignore[attr-defined]
        assert rotated.interactions(brand, customers[2])[0].summary == ERASED  # type: ignore[attr-defined]
        rotated.record(brand, story(random_customer())[0])  # new keys are wrapped by the new key
    finally:
        rotated.close()


def test_a_process_left_on_the_old_key_cannot_add_keys_after_a_rotation(empty_store: Store) -> None:
    stale, rotating = open_ledger(empty_store), open_ledger(empty_store)
    try:
        rotating.rotate_master_key(MasterKey.generate())
        with pytest.raises(MasterKeyError, match="restart with the current"):
            stale.record(random_brand(), story(random_customer())[0])
    finally:
        stale.close()
        rotating.close()


def test_a_server_left_on_the_old_key_is_not_ready_after_a_rotation(empty_store: Store) -> None:
    """Every keyed call of such a server answers 503 not-configured until it is restarted with
    the new key; /readyz said it was ready, so a load balancer kept sending it calls."""
    app = create_app({"database_url": empty_store.url})
    http = app.test_client()
    assert http.get("/readyz").status_code == 200
    rotating = open_ledger(empty_store)
    rotating.rotate_master_key(MasterKey.generate())
    rotating.close()
    answer = http.get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["type"].endswith("not-configured")
    close_app(app)


def test_another_process_forgets_an_erased_key_within_its_cache_time(store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    writer = open_ledger(store)
    reader = open_ledger(store, key_cache_seconds=0.3)
    try:
        writer.record_batch(brand, story(customer)[:2])
        assert reader.interactions(brand, customer)[0].summary == "refund by Friday"  # type: ignore[attr-defined]
        writer.erase(brand, customer, requested_by="dpo", reason="art. 17")
        time.sleep(0.4)
        assert reader.interactions(brand, customer)[0].summary == ERASED  # type: ignore[attr-defined]
    finally:
        writer.close()
        reader.close()


def test_the_embedded_store_makes_its_key_file_once_and_says_so(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    said: list[str] = []
    key = settings.load_master_key(announce=said.append)
    assert settings.key_file == tmp_path / "master.key" and settings.key_file.exists()
    assert oct(settings.key_file.stat().st_mode & 0o777) == "0o600"
    assert len(said) == 1 and "generated a master key" in said[0]
    assert settings.load_master_key(announce=said.append).key_id == key.key_id
    assert len(said) == 1


def test_commands_started_together_on_a_new_store_share_one_key_file(tmp_path: Path) -> None:
    """Each found no key file, made a key and wrote it over the other's: the store was bound to
    the first key while the file kept the last, and no command could use the store again."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert cli("--database-url", url, "migrate").returncode == 0
    (tmp_path / "master.key").unlink(missing_ok=True)  # no command has made its key yet
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "api", "--database-url", url, *command],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRUSTLEDGER_")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in (["lag"], ["keys", "list"], ["project", "--once"]) * 2
    ]
    said = [racer.communicate(timeout=60)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * len(racers), said
    assert sum("generated a master key" in text for text in said) == 1, said
    assert cli("--database-url", url, "lag").returncode == 0


def test_a_key_file_is_made_only_where_there_is_none(tmp_path: Path) -> None:
    path, first, second = tmp_path / "master.key", MasterKey.generate(), MasterKey.generate()
    assert write_key_file(path, first, replace=False)
    assert not write_key_file(path, second, replace=False)
    assert MasterKey.parse(path.read_text(), "the file").key_id == first.key_id
    assert write_key_file(path, second)  # a rotation replaces it
    assert MasterKey.parse(path.read_text(), "the file").key_id == second.key_id
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no partial file left


@pytest.mark.postgres
def test_postgres_without_a_master_key_stops_the_command_line(migrated_postgres: Store) -> None:
    result = cli(
        "--database-url", migrated_postgres.url, "events", "--brand", "b", "--customer", "c"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "trustledger: TRUSTLEDGER_MASTER_KEY is not set, and the postgres store needs it:"
        " 32 random bytes in base64, e.g. `openssl rand -base64 32`"
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_stops_at_start_with_a_wrong_master_key(store: Store, workers: str) -> None:
    """With gunicorn too, before any worker: each failed to boot with a traceback, exit 3."""
    open_ledger(store).close()
    result = cli(
        "--database-url",
        store.url,
        "serve",
        "--port",
        str(free_port()),
        "--workers",
        workers,
        TRUSTLEDGER_MASTER_KEY=MasterKey.generate().encoded(),
    )
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert "wrapped by master key" in result.stderr and len(result.stderr.splitlines()) == 1


def test_rotate_master_key_with_the_key_in_the_environment(empty_store: Store) -> None:
    brand, customer = random_brand(), random_customer()
    ledger = open_ledger(empty_store)
    ledger.record_batch(brand, story(customer))
    ledger.close()
    new = MasterKey.generate()
    old_env = {"TRUSTLEDGER_MASTER_KEY": TEST_MASTER_KEY.encoded()}
    result = cli(
        "--database-url",
        empty_store.url,
        "rotate-master-key",
        **old_env,
        TRUSTLEDGER_NEW_MASTER_KEY=new.encoded(),
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"rewrapped 1 customer key(s): master key {TEST_MASTER_KEY.key_id} -> {new.key_id}"
        in result.stdout
    )
    assert "set TRUSTLEDGER_MASTER_KEY to the new key" in result.stdout
    events = cli(
        "--database-url",
        empty_store.url,
        "events",
        "--brand",
        brand,
        "--customer",
        customer,
        TRUSTLEDGER_MASTER_KEY=new.encoded(),
    )
    assert events.returncode == 0 and "refund by Friday" in events.stdout


def test_rotate_master_key_replaces_the_embedded_key_file(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'trustledger.sqlite3'}")
    upgrade(store)
    key_file = tmp_path / "master.key"
    brand, customer = random_brand(), random_customer()
    ledger = Ledger(
        store, master_key=Settings(database_url=store.url).load_master_key(announce=print)
    )
    ledger.record_batch(brand, story(customer))
    ledger.close()
    old = key_file.read_text()
    result = cli("--database-url", store.url, "rotate-master-key")
    assert result.returncode == 0, result.stderr
    assert key_file.read_text() != old and not (tmp_path / "master.key.new").exists()
    events = cli("--database-url", store.url, "events", "--brand", brand, "--customer", customer)
    assert events.returncode == 0 and "refund by Friday" in events.stdout, events.stderr


def one_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("trustledger: ")
    assert all(text in result.stderr for text in expected), result.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.mkdir(), "Is a directory"),
        (lambda path: path.write_bytes(b"\xff\xfe"), "is not UTF-8 text"),
        (lambda path: None, "does not exist"),  # a mistyped path: no new key is made there
    ],
)
def test_a_master_key_file_that_cannot_be_read_stops_the_command_line(
    tmp_path: Path, make: Callable[[Path], object], expected: str
) -> None:
    path = tmp_path / "elsewhere.key"
    make(path)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(Store.from_url(url))
    result = cli("--database-url", url, "lag", TRUSTLEDGER_MASTER_KEY_FILE=str(path))
    one_line(result, f"the master key file {path}", expected)
    made = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("db.sqlite3"))
    assert made in (["elsewhere.key"], [])


def test_a_master_key_file_that_cannot_be_made_is_a_master_key_error(tmp_path: Path) -> None:
    """Its directory is a file here; a read-only one (to anyone but root) failed alike."""
    (tmp_path / "file").write_text("")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'file' / 'db.sqlite3'}")
    with pytest.raises(MasterKeyError, match=r"cannot make the master key file .*: File exists"):
        settings.load_master_key(announce=print)


def test_a_new_key_file_that_is_not_text_stops_the_rotation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert cli("--database-url", url, "migrate").returncode == 0
    assert cli("--database-url", url, "lag").returncode == 0  # the store's key file is made
    (tmp_path / "new.key").write_bytes(b"\xff\xfe")
    result = cli(
        "--database-url", url, "rotate-master-key", "--new-key-file", str(tmp_path / "new.key")
    )
    one_line(result, f"the key file {tmp_path / 'new.key'} is not UTF-8 text")


def test_a_rotation_that_cannot_stage_the_new_key_file_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert cli("--database-url", url, "migrate").returncode == 0
    assert cli("--database-url", url, "lag").returncode == 0
    old = (tmp_path / "master.key").read_text()
    (tmp_path / "master.key.new").mkdir()  # where the new key is staged
    result = cli("--database-url", url, "rotate-master-key")
    one_line(result, f"cannot write {tmp_path / 'master.key.new'}")
    assert (tmp_path / "master.key").read_text() == old
    assert cli("--database-url", url, "lag").returncode == 0
