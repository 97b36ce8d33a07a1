"""`trustledger`: the operators' command line. Bad arguments get one clear line and exit 2."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg

from api import demo as demo_data
from api.auth import BRAND_SLUG, ROLES, KeyProblem, KeyStore
from api.context import Resources
from api.demo_brands import BRANDS as DEMO_BRANDS
from api.settings import BadSetting, Settings, read_key_file, write_key_file
from domain.application import Ledger
from domain.errors import LedgerError, MasterKeyError
from domain.shredding import MasterKey
from domain.storage import (
    CONNECT_TIMEOUT,
    DATABASE_ERRORS,
    BadDatabaseUrl,
    check_migrated,
    missing_table,
)


class Context:
    """What every command shares: the settings, and the ledger and key store made on first use,
    as the server makes them (api/context.py: the ledger's base rates are its brands' trust)."""

    def __init__(self, database_url: str | None) -> None:
        self.settings = Settings.load({"database_url": database_url} if database_url else None)
        self.resources = Resources(self.settings)
        self._reached = False

    @property
    def ledger(self) -> Ledger:
        self.reach_database()
        return self.resources.ledger

    @property
    def keys(self) -> KeyStore:
        self.reach_database()
        return self.resources.keys

    def reach_database(self) -> None:
        """Connects once, plainly, before any pool does: a server that is down or refuses the
        user is then one line at once (psycopg's own message), where the pools would retry for
        10-30 s and end in a timeout that does not say why."""
        store = self.settings.store
        if not self._reached and store.kind == "postgres":
            psycopg.connect(store.conninfo(), connect_timeout=CONNECT_TIMEOUT).close()
        self._reached = True

    def close(self) -> None:
        self.resources.close()


pass_context = click.make_pass_decorator(Context)
DEMO_URL = "http://127.0.0.1:8000/ui/"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB [env: TRUSTLEDGER_DATABASE_URL]",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Trust Ledger: an event-sourced customer relationship and trust ledger."""
    ctx.obj = Context(database_url)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_context
def migrate(context: Context) -> None:
    """Create or upgrade every table (running it twice is harmless); rebuild the read models
    when a revision changed their format."""
    from migrations import current, empties_read_models, upgrade

    store = context.settings.store
    context.reach_database()
    before = upgrade(store)
    after = current(store)
    click.echo(f"{store.kind} database at revision {after}")
    if empties_read_models(before, after):
        click.echo(
            "this version stores the read models in a new form (sealed personal values,"
            " consent expiries): rebuilding them from the log (the projection workers would"
            " refill them too)"
        )
        try:
            _rebuild(context, (), verify=False)
        except MasterKeyError as error:
            raise click.ClickException(
                f"{error}; the read models stay empty until `trustledger rebuild` or the"
                " projection workers refill them"
            ) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="More than 1: gunicorn with that many sync worker processes.",
)
@pass_context
def serve(context: Context, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API and the web pages."""
    from api.server import host_and_port, serve_in_process, serve_with_gunicorn

    _can_listen(host, port)
    # Made (SQLite, first run) or checked now, before any worker: a missing key stops us here;
    # but not beside a database that is not there (a mistyped path).
    context.reach_database()
    check_migrated(context.settings.store)
    context.settings.load_master_key(announce=_say)
    # Opened once, here, as the in-process server opens it: a store never migrated or bound to
    # another master key is one line, where gunicorn's workers failed to boot with tracebacks.
    _ = context.ledger
    context.resources.close()  # nothing of it is carried into the workers gunicorn forks
    config = {"database_url": context.settings.database_url}
    how = f"gunicorn, {workers} sync workers" if workers > 1 else "in process"
    where = host_and_port(host, port)
    click.echo(f"Trust Ledger on http://{where}/ ({context.settings.store.kind}, {how})")
    if workers > 1:
        serve_with_gunicorn(config, host, port, workers)
    else:
        serve_in_process(config, host, port)


def _can_listen(host: str, port: int) -> None:
    """Stops here, in one line, if the address cannot be listened on (an unknown host, a port in
    use): the in-process server would print its own lines, gunicorn retry for seconds first."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as both servers do
            probe.bind(address)
    except OSError as error:
        from api.server import host_and_port

        where = host_and_port(host, port)
        raise click.ClickException(f"cannot listen on {where}: {error.strerror}") from None


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys (one brand and one role each)."""


@keys.command("create")
@click.option("--brand", required=True, metavar="SLUG", help="The brand's slug; created if new.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@pass_context
def create_key(context: Context, brand: str, role: str) -> None:
    """Issue a key; it is printed once, alone on the last line."""
    issued = context.keys.create(brand, role)
    if issued.new_brand:
        click.echo(f"new brand {brand}")
    click.echo(f"key {issued.info.key_id} for brand {brand}, role {role}; shown this once:")
    click.echo(issued.key)


@keys.command("list")
@click.option("--brand", metavar="SLUG", help="Only this brand's keys.")
@pass_context
def list_keys(context: Context, brand: str | None) -> None:
    """Every key: id, brand, role, when created, when revoked (never the key itself)."""
    every = context.keys.every(brand)
    click.echo(f"{'KEY_ID':<14}{'BRAND':<28}{'ROLE':<12}{'CREATED':<27}REVOKED")
    for info in every:
        revoked = info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "-"
        created = info.created_at.isoformat(timespec="seconds")
        click.echo(f"{info.key_id:<14}{info.brand:<28}{info.role:<12}{created:<27}{revoked}")


@keys.command("revoke")
@click.argument("key_id")
@pass_context
def revoke_key(context: Context, key_id: str) -> None:
    """Revoke a key, named by its id (or the whole key); it fails from the next request on."""
    asked = datetime.now(UTC)
    info = context.keys.revoke(key_id)
    which = f"key {info.key_id} (brand {info.brand}, role {info.role})"
    if info.revoked_at is not None and info.revoked_at < asked:  # revoking keeps the first time
        click.echo(f"{which} was already revoked at {info.revoked_at}")
    else:
        click.echo(f"revoked {which}")


def _slug(_: click.Context, __: click.Parameter, brand: str | None) -> str | None:
    """A brand named to read it: a slug, as `keys create` makes them. Any other named no brand,
    and read as a customer or decisions not there (`--brand ''` as every brand's)."""
    if brand is not None and not BRAND_SLUG.fullmatch(brand):
        raise click.BadParameter(f"{brand!r} is not a brand's slug: a-z, 0-9 and '-', at most 63")
    return brand


@cli.command()
@click.option("--brand", required=True, callback=_slug, help="The brand's slug.")
@click.option("--customer", required=True, help="The customer's reference.")
@pass_context
def events(context: Context, brand: str, customer: str) -> None:
    """Print a relationship's events as JSON lines, oldest first."""
    for event in context.ledger.interactions(brand, customer):
        click.echo(json.dumps(event.as_dict(), ensure_ascii=False))


@cli.command()
@click.option("--once", is_flag=True, help="Apply what is recorded so far, then exit.")
@pass_context
def project(context: Context, once: bool) -> None:
    """Run the projection worker: keep the read models up to date with the log."""
    import signal
    import threading

    from projections.runner import Runner

    runner = Runner(context.ledger)
    if once:
        click.echo(f"applied {runner.run_once()} notification(s)")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"following the log from position {min(runner.positions().values())}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        runner.run_forever(stop)


@cli.command()
@click.option(
    "--projection",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only this read model (repeatable).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Compare with the live tables row by row, swapping nothing in (the live tables are"
    " first brought up to the log's head, as a projection worker would).",
)
@pass_context
def rebuild(context: Context, names: tuple[str, ...], verify: bool) -> None:
    """Rebuild read models from the log into fresh tables, then swap them in."""
    _rebuild(context, names, verify)


def _rebuild(context: Context, names: tuple[str, ...], verify: bool) -> None:
    from projections.runner import Runner, read_models

    try:
        models = read_models(names)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--projection") from None
    runner = Runner(context.ledger, models)
    head = runner.head()
    started = time.monotonic()
    with click.progressbar(
        length=max(head, 1),
        label="rebuilding",
        file=sys.stderr,
        show_eta=True,
        show_pos=True,
        item_show_func=lambda rate: rate,
    ) as bar:

        def advance(progress: Any) -> None:
            rate = progress.done / max(time.monotonic() - started, 1e-6)
            bar.update(progress.done - bar.pos, f"{rate:,.0f} events/s")

        differences = runner.rebuild(verify=verify, progress=advance)
    if not verify:
        runner.db.forget_old_pages()  # SQLite: no frame of the replaced tables left in the WAL
    elapsed = time.monotonic() - started
    click.echo(
        f"rebuilt {', '.join(m.name for m in models)} from {head} notification(s) in {elapsed:.1f}s"
    )
    if verify:
        for table, found in differences.items():
            for line in found:
                click.echo(f"{table}: {line}")
        if differences:
            raise click.ClickException(
                f"rebuilt and live read models differ in {', '.join(differences)}"
            )
        click.echo("rebuilt and live read models are identical")


@cli.command("audit-decisions")
@click.option("--brand", callback=_slug, help="Only this brand's decisions.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only decisions made since (UTC).",
)
@pass_context
def audit_decisions(context: Context, brand: str | None, since: Any) -> None:
    """Evaluate every recorded push decision again; exit non-zero if any does not reproduce."""
    from datetime import UTC

    ledger = context.ledger
    found = list(ledger.decisions(brand, since.replace(tzinfo=UTC) if since else None))
    failures = []
    with click.progressbar(
        found, label="auditing decisions", file=sys.stderr, show_pos=True
    ) as bar:
        for _, rid, sequence in bar:
            audit = ledger.audit_decision(rid, sequence)
            if not audit["reproduced"]:
                failures.append(audit)
    for audit in failures:
        click.echo(
            f"push {audit['push_id']} ({audit['event_id']}): {'; '.join(audit['differences'])}"
        )
    click.echo(f"{len(found)} decision(s) audited, {len(failures)} not reproduced")
    if failures:
        sys.exit(1)


@cli.command()
@pass_context
def lag(context: Context) -> None:
    """Print each read model's position against the head of the log, and, with
    TRUSTLEDGER_REPLICA_URL set, the standby's."""
    from projections.runner import Runner

    runner = Runner(context.ledger)
    head = runner.head()
    positions = runner.positions()

    def show(found: dict[str, int]) -> None:
        for name in sorted(positions):
            position = int(found.get(name, 0))
            click.echo(f"{name:<14} {position:>10} of {head:<10} lag {head - position}")

    show(positions)
    replica = context.settings.replica
    if replica is None:
        return
    standby = f"the standby {replica.host}:{replica.port}"
    try:
        with psycopg.connect(replica.conninfo(), autocommit=True) as conn:
            found: dict[str, int] = dict(
                conn.execute("SELECT name, position FROM projection_positions")
            )
    except psycopg.Error as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise click.ClickException(f"{standby} cannot be read: {reason}") from None
    click.echo(f"on {standby}:")
    show(found)


@cli.command("rotate-master-key")
@click.option(
    "--new-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the new master key in base64 [env: TRUSTLEDGER_NEW_MASTER_KEY].",
)
@pass_context
def rotate_master_key(context: Context, new_key_file: Path | None) -> None:
    """Rewrap every customer key with a new master key, in one transaction.

    The SQLite store's key file is replaced (a new key is generated when none is given); with
    TRUSTLEDGER_MASTER_KEY, set it to the new key and restart every process.
    """
    settings = context.settings
    ledger = context.ledger
    old = ledger.customer_keys.master_key
    new = _new_master_key(settings, new_key_file)
    if new.key_id == old.key_id:
        raise click.UsageError("the new master key is the current one")
    key_file = settings.key_file
    staged = key_file.with_name(key_file.name + ".new") if key_file else None
    if staged:
        try:  # kept until the database commits, so the key is never lost
            write_key_file(staged, new)
        except OSError as error:
            raise click.ClickException(f"cannot write {staged}: {error.strerror}") from None
    try:
        count = ledger.rotate_master_key(new)
    except BaseException:
        if staged:
            staged.unlink(missing_ok=True)
        raise
    click.echo(f"rewrapped {count} customer key(s): master key {old.key_id} -> {new.key_id}")
    if staged and key_file:
        staged.replace(key_file)
        click.echo(f"{key_file} now holds the new master key; restart every process")
    else:
        click.echo("set TRUSTLEDGER_MASTER_KEY to the new key and restart every process")


def _new_master_key(settings: Settings, new_key_file: Path | None) -> MasterKey:
    if new_key_file is not None:
        return read_key_file(new_key_file, f"the key file {new_key_file}")
    given = settings.load_new_master_key()
    if given is not None:
        return given
    if settings.key_file is None:
        raise click.UsageError("give the new key in TRUSTLEDGER_NEW_MASTER_KEY or --new-key-file")
    return MasterKey.generate()


DATE_TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


@cli.command()
@click.option("--seed", default=demo_data.DEFAULT_SEED, show_default=True, help="Its random seed.")
@click.option(
    "--customers-per-brand",
    default=demo_data.DEFAULT_CUSTOMERS_PER_BRAND,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Customers of each of the three brands.",
)
@click.option("--now", "end", type=DATE_TIME, help="End of the two years (UTC) [default: today]")
@click.option("--url", default=DEMO_URL, show_default=True, help="Where the pages are served.")
@pass_context
def demo(context: Context, seed: int, customers_per_brand: int, end: Any, url: str) -> None:
    """Load the demo data (three brands, two years) through the ledger, once."""
    now = _past_moment(end) if end else demo_data.today()
    if demo_data.holds_demo(context.ledger):
        if not _demo_keys_made(context):
            raise click.ClickException(
                "the ledger holds part of the demo data, from a `trustledger demo` stopped before"
                f" it finished: load the demo into a new database ({_afresh(context)})"
            )
        click.echo("the ledger already holds the demo data: nothing loaded")
        click.echo(f"open {url}")
        return
    plan = demo_data.plan(seed, now, customers_per_brand)
    customers = sum(len(refs) for refs in plan.customers.values())
    click.echo(
        f"loading {len(plan.brands)} brands and {customers:,} customers (seed {seed}),"
        f" two years up to {now:%Y-%m-%d %H:%M} UTC"
    )
    with click.progressbar(
        length=len(plan.steps), label="loading", file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        loaded = demo_data.load(context.ledger, plan, bar.update)
    click.echo(
        f"loaded {loaded.events:,} events and {loaded.decisions:,} push decisions"
        f" for {loaded.customers:,} customers in {loaded.seconds:.1f}s"
    )
    _project_once(context.ledger)
    for conduct in plan.brands:
        click.echo(f"{conduct.slug:<20} {conduct.story}")
    print_keys(context, [conduct.slug for conduct in plan.brands])
    click.echo(f"open {url}")


def _past_moment(value: datetime) -> datetime:
    moment = value.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise click.BadParameter("must not be in the future (nor may events)", param_hint="--now")
    if moment < demo_data.EARLIEST_NOW:  # 0001-01-01 overflowed two years back
        raise click.BadParameter(
            f"must be {demo_data.EARLIEST_NOW:%Y-%m-%d} or later: the two years before it"
            " must start in 1970 or after (no event may be dated before 1970)",
            param_hint="--now",
        )
    return moment


def _project_once(ledger: Ledger) -> None:
    """Brings the read models up to the head of the log, so the pages show the data at once."""
    from projections.runner import Runner

    runner = Runner(ledger)
    try:
        length = max(runner.head(), 1)
        with click.progressbar(length=length, label="projecting", file=sys.stderr) as bar:
            while runner.run_once(max_pages=10):
                bar.update(min(runner.positions().values()) - bar.pos)
    finally:
        runner.close()


def _afresh(context: Context) -> str:
    store = context.settings.store
    where = f"remove {store.path}" if store.is_sqlite else "an empty one"
    return f"{where}, then `trustledger migrate` and `trustledger demo`"


def _demo_keys_made(context: Context) -> bool:
    """Whether a demo run got to its end: its keys are the last thing it makes."""
    return any(context.keys.every(conduct.slug) for conduct in DEMO_BRANDS)


def print_keys(context: Context, brands: Sequence[str]) -> None:
    """Prints a new agent key and compliance key per demo brand, to read its customers with."""
    for brand in brands:
        for role in ("agent", "compliance"):
            click.echo(f"{brand:<20} {role:<10} key {context.keys.create(brand, role).key}")


def main(argv: list[str] | None = None) -> Any:
    """Runs the command line; every error is one line on stderr and a non-zero exit."""
    try:
        return cli.main(args=argv, prog_name="trustledger", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # `trustledger`, `trustledger keys`
        _fail(f"{_missing_command(error.ctx)} (see --help)", 2)
    except click.UsageError as error:  # a Choice's message lists its values a line each
        _fail(f"{' '.join(error.format_message().split())} (see --help)", 2)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except (LedgerError, BadDatabaseUrl, BadSetting, KeyProblem) as error:
        _fail(str(error), 1)
    except Exception as error:
        cause = _database_error(error)
        if cause is None:
            raise
        message = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        hint = " (has `trustledger migrate` run?)" if missing_table(message) else ""
        _fail(f"database: {message}{hint}", 1)


def _missing_command(ctx: click.Context | None) -> str:
    group = ctx.command if ctx else None
    if not isinstance(group, click.Group) or ctx is None:
        return "missing command"
    return f"missing command: {', '.join(group.list_commands(ctx))}"


def _database_error(error: Exception) -> Exception | None:
    """The database's own error, if that is what this is: the drivers', the pool's, the event
    library's, or one SQLAlchemy (under alembic, in `migrate`) wraps as `orig`."""
    cause = (
        getattr(error, "orig", None) if type(error).__module__.startswith("sqlalchemy") else error
    )
    return cause if isinstance(cause, DATABASE_ERRORS) else None


def _say(line: str) -> None:
    click.echo(f"trustledger: {line}", err=True)


def _fail(message: str, code: int) -> None:
    click.echo(f"trustledger: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
