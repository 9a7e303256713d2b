"""The `flexearn` command: thin wrappers that parse arguments, call a service, print the result."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click
import sqlalchemy as sa
from granian import Granian
from granian.constants import Interfaces

from flexearn.adapters.db import current_revision, migrate
from flexearn.adapters.repository import currency_precision, user_id_by_name
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import listener
from flexearn.api.admin import product_spec
from flexearn.api.admin.auth import parse_tokens
from flexearn.api.proxy import parse_networks
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.console import errors as cli_errors
from flexearn.console.errors import CommandError
from flexearn.console.output import Progress, as_json, iso, render, table
from flexearn.console.params import CURRENCY, DECIMAL, TIME, Group, choice
from flexearn.demo import keyfile as demo_keyfile
from flexearn.demo import restart as demo_restart
from flexearn.demo import runner as demo_runner
from flexearn.demo import world as demo_world
from flexearn.domain.catalog import OPERATOR_STATUSES, Level, ProductFields
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.errors import AmountTooLarge, FlexearnError, NotFound, UnsupportedCurrency
from flexearn.domain.ledger import WALLETS, AccountKind
from flexearn.domain.market import DemandSource, MatchingMode
from flexearn.domain.money import D, plain
from flexearn.observability.logs import configure_logging
from flexearn.observability.logs import dict_config as logs_dict_config
from flexearn.observability.metrics import (
    prepare_multiprocess,
    remove_multiprocess_dir,
    serve_metrics,
    set_settler,
)
from flexearn.services import (
    accounts,
    catalog,
    catalog_views,
    idempotency,
    keys,
    ledger_check,
    markets,
    retention,
    savings,
    scheduler,
    settlement,
    stats,
)
from flexearn.services import clock as clock_service
from flexearn.services.figures import FigureCache
from flexearn.services.leader import SETTLER, Lease

F = TypeVar("F", bound=Callable[..., Any])


def emit(ctx: click.Context, value: Any, text: str | None = None) -> None:
    """Print `value`: as JSON with --json, else `text`, or `value` as a table or key-value lines."""
    if ctx.obj["json"]:
        click.echo(as_json(value))
    else:
        click.echo(render(value) if text is None else text)


def settings_from_env(defaults: Mapping[str, str] | None = None) -> Settings:
    """The settings (`defaults` filling in the variables the environment does not set), or a
    one-line error naming the variable that is wrong."""
    try:
        return Settings.from_env(defaults=defaults)
    except ValueError as error:
        raise CommandError(f"bad setting {error}") from None


def open_app(db_url: str | None, settings: Settings, *, migrate_schema: bool = False) -> Flexearn:
    """The engine on `--db` (or FLEXEARN_DATABASE_URL): migrated if asked, else refused unless its
    schema is the one this flexearn writes. A malformed URL, a missing SQLite file or a database
    out of reach is a one-line error."""
    url = db_url or settings.database_url
    cli_errors.check_database_url(url, "--db" if db_url else "FLEXEARN_DATABASE_URL")
    database = demo_keyfile.sqlite_file(url)
    if not migrate_schema and database is not None and not database.exists():
        raise CommandError(f"no database at {database}: create it with `flexearn migrate --db {url}`")
    app = Flexearn(url, migrate_schema=False)
    try:
        if migrate_schema:
            migrate(app.engine)
        else:
            cli_errors.require_schema(app.engine)
    except sa.exc.DBAPIError as error:
        app.close()
        raise cli_errors.unreachable(app.engine, error) from None
    except CommandError:
        app.close()
        raise
    return app


def _known_currency(app: Flexearn, ccy: str) -> bool:
    try:
        with app.read_uow() as uow:
            currency_precision(uow.conn, ccy)
    except UnsupportedCurrency:
        return False
    return True


def refuse(ctx: click.Context, error: FlexearnError) -> NoReturn:
    """Exit 2 with the engine's refusal: a JSON object on stdout with --json, else one line."""
    if ctx.obj["json"]:
        click.echo(as_json({"error": error.code, "message": error.message, "param": error.param}))
        ctx.exit(cli_errors.USAGE)
    raise CommandError(error.message)


def command(
    group: click.Group, name: str, *, migrates: bool = False, **kwargs: Any
) -> Callable[[F], F]:
    """A subcommand taking --db and --json, on a database whose schema is current (`migrates`:
    the command brings it there), with engine refusals told in one line, exit status 2."""

    def wrap(func: F) -> F:
        def run(ctx: click.Context, /, db_url: str | None, as_json: bool, **params: Any) -> Any:
            settings = settings_from_env()
            ctx.obj = {"json": as_json, "settings": settings}
            app = open_app(db_url, settings, migrate_schema=migrates)
            try:
                return func(ctx, app, **params)
            except UnsupportedCurrency as error:
                refuse(ctx, cli_errors.in_context(error, _known_currency(app, error.ccy)))
            except FlexearnError as error:
                refuse(ctx, error)
            except sa.exc.OperationalError as error:
                raise cli_errors.unreachable(app.engine, error) from None
            finally:
                app.close()

        run.__doc__ = func.__doc__
        run.__click_params__ = list(getattr(func, "__click_params__", []))  # type: ignore[attr-defined]
        db_option = click.option(
            "--db",
            "db_url",
            default=None,
            metavar="URL",
            help="Database URL, sqlite:///FILE or postgresql://USER@HOST/DB "
            "(default: FLEXEARN_DATABASE_URL or sqlite:///flexearn.db).",
        )
        json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
        group.command(name, **kwargs)(db_option(json_option(click.pass_context(run))))
        return func

    return wrap


@click.group(cls=Group)
@click.version_option(package_name="flexearn")
def main() -> None:
    """flexearn: a self-hosted Simple Earn (flexible savings) engine.

    Every command takes --db URL (default: FLEXEARN_DATABASE_URL or sqlite:///flexearn.db) and
    --json (JSON output instead of text). Mistakes exit with status 2 and a one-line message.
    """


@command(main, "migrate", migrates=True)
def migrate_cmd(ctx: click.Context, app: Flexearn) -> None:
    """Create or upgrade the database schema.

    The only command that changes a schema (besides `demo` and `serve --migrate`): every other
    one refuses a database whose schema is not this version's. Back a database up first.
    """
    revision = current_revision(app.engine)
    emit(ctx, {"revision": revision}, f"schema at revision {revision}")


@main.group()
def user() -> None:
    """Users: the lenders whose money flexearn holds."""


@command(user, "create")
@click.argument("name")
@click.option(
    "--level",
    type=choice(Level),
    default=Level.BEGINNER.value,
    show_default=True,
    help="Which catalog products the user may buy (Bitget's beginner or normal products).",
)
def user_create(ctx: click.Context, app: Flexearn, name: str, level: str) -> None:
    """Create a user NAME.

    Then `deposit` money for it and `key create` an API key."""
    user_id = accounts.create_user(app.uow(), name, level)
    emit(ctx, {"id": user_id, "name": name, "level": level}, f"user {name} created with id {user_id}")


@main.group()
def currency() -> None:
    """Currencies users may hold and save."""


@command(currency, "add")
@click.argument("ccy", type=CURRENCY)
@click.option(
    "--precision",
    type=click.IntRange(0),
    default=accounts.DEFAULT_PRECISION,
    show_default=True,
    help="Decimal places of its amounts.",
)
def currency_add(ctx: click.Context, app: Flexearn, ccy: str, precision: int) -> None:
    """Add currency CCY (e.g. USDT); `market set CCY` then opens its lending market."""
    accounts.add_currency(app.uow(), ccy, precision)
    emit(ctx, {"ccy": ccy, "precision": precision}, f"currency {ccy} added with precision {precision}")


def _user_id(app: Flexearn, name: str) -> int:
    try:
        with app.read_uow() as uow:
            return user_id_by_name(uow.conn, name)
    except NotFound as error:
        raise cli_errors.retold(
            error, f"no user named {name!r}: create it with `flexearn user create {name}`"
        ) from None


ACCOUNT = click.option(
    "--account",
    type=choice(WALLETS),
    default=AccountKind.FUNDING.value,
    show_default=True,
    help="The user's account: funding (where savings are bought from) or trading.",
)


@command(main, "deposit")
@click.argument("user_name", metavar="USER")
@click.argument("ccy", type=CURRENCY)
@click.argument("amount", type=DECIMAL)
@ACCOUNT
def deposit_cmd(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, account: str
) -> None:
    """Credit a user's account from outside.

    AMOUNT of CCY goes to the funding account (where savings are bought from), or --account trading.
    """
    entry = accounts.deposit(app.uow(), _user_id(app, user_name), ccy, amount, AccountKind(account))
    emit(
        ctx,
        {"entry": entry, "user": user_name, "ccy": ccy, "amount": amount, "account": account},
        f"deposited {plain(amount)} {ccy} to {user_name}'s {account} account",
    )


@command(main, "withdraw")
@click.argument("user_name", metavar="USER")
@click.argument("ccy", type=CURRENCY)
@click.argument("amount", type=DECIMAL)
@ACCOUNT
def withdraw_cmd(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, account: str
) -> None:
    """Debit a user's account to outside.

    AMOUNT of CCY leaves the funding account, or --account trading.
    """
    entry = accounts.withdraw(app.uow(), _user_id(app, user_name), ccy, amount, AccountKind(account))
    emit(
        ctx,
        {"entry": entry, "user": user_name, "ccy": ccy, "amount": amount, "account": account},
        f"withdrew {plain(amount)} {ccy} from {user_name}'s {account} account",
    )


@command(main, "balance")
@click.argument("user_name", metavar="USER")
def balance_cmd(ctx: click.Context, app: Flexearn, user_name: str) -> None:
    """A user's funding and trading balances and savings positions."""
    user_id = _user_id(app, user_name)
    emit(
        ctx,
        {
            "funding": accounts.funding_balances(app.read_uow(), user_id),
            "trading": accounts.trading_balances(app.read_uow(), user_id),
            "savings": savings.positions(app.read_uow(), user_id),
        },
    )


@main.group()
def market() -> None:
    """Lending markets: how each currency's savings are lent each hour."""


@command(market, "set")
@click.argument("ccy", type=CURRENCY)
@click.option(
    "--mode",
    type=choice(MatchingMode),
    help="auction: lenders' minimum rates clear against demand; pro_rata: all share one borrow rate.",
)
@click.option("--demand", type=DECIMAL, help="Static borrow demand per hour.")
@click.option("--borrow-rate", type=DECIMAL, help="Static borrow rate r_b (pro rata), e.g. 0.05.")
@click.option("--insurance-fee", type=DECIMAL, help="Share of borrower interest kept by the insurance fund.")
@click.option(
    "--demand-source",
    type=choice(DemandSource),
    help="Where each hour's demand comes from: these settings, a seeded simulation, or post-demand.",
)
@click.option("--seed", type=int, help="Seed of the simulated demand.")
def market_set(
    ctx: click.Context,
    app: Flexearn,
    ccy: str,
    mode: str | None,
    demand: Decimal | None,
    borrow_rate: Decimal | None,
    insurance_fee: Decimal | None,
    demand_source: str | None,
    seed: int | None,
) -> None:
    """Open or change the lending market of CCY.

    Options left out keep their value."""
    simulation = None
    if seed is not None or demand_source == "simulated":
        simulation = SimulatedDemand(
            mean=demand or D(1000), base_rate=borrow_rate or D("0.05"), seed=seed or 0
        )
    result = markets.set_market(
        app.uow(),
        ccy,
        mode=mode,
        demand=demand,
        borrow_rate=borrow_rate,
        insurance_fee=insurance_fee,
        demand_source=demand_source,
        simulation=simulation,
    )
    emit(ctx, result)


@command(market, "list")
def market_list(ctx: click.Context, app: Flexearn) -> None:
    """Every lending market and its settings."""
    emit(ctx, markets.list_markets(app.read_uow()))


@command(market, "post-demand")
@click.argument("ccy", type=CURRENCY)
@click.argument("hour", type=TIME, metavar="HOUR")
@click.argument("demand", type=DECIMAL)
@click.option("--borrow-rate", type=DECIMAL, default=D(0), help="The hour's borrow rate r_b (pro rata).")
def market_post_demand(
    ctx: click.Context, app: Flexearn, ccy: str, hour: int, demand: Decimal, borrow_rate: Decimal
) -> None:
    """Post an hour's borrow demand (external demand).

    DEMAND is what borrowers take in the hour starting at HOUR.

    HOUR is an ISO time, UTC unless it names its offset: 2026-12-01T20:00.
    """
    emit(ctx, markets.post_demand(app.uow(), ccy, hour, demand, borrow_rate, posted_by="cli"))


@main.group("savings")
def savings_group() -> None:
    """Market savings (what the OKX façade serves).

    Buy, redeem, and set the minimum rate a user lends at."""


@command(savings_group, "purchase")
@click.argument("user_name", metavar="USER")
@click.argument("ccy", type=CURRENCY)
@click.argument("amount", type=DECIMAL)
@click.option("--rate", type=DECIMAL, help="Minimum annual lending rate, e.g. 0.02 for 2%.")
def savings_purchase(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, rate: Decimal | None
) -> None:
    """Buy savings from the funding account.

    AMOUNT of CCY is pending until the next hour's match and earns from the hour after it."""
    emit(ctx, savings.purchase(app.uow(), _user_id(app, user_name), ccy, amount, rate))


@command(savings_group, "redeem")
@click.argument("user_name", metavar="USER")
@click.argument("ccy", type=CURRENCY)
@click.argument("amount", type=DECIMAL)
def savings_redeem(ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal) -> None:
    """Move savings back to the funding account.

    AMOUNT of CCY, from what the user lends (or waits to lend)."""
    user_id = _user_id(app, user_name)
    try:
        redeemed = savings.redeem(app.uow(), user_id, ccy, amount)
    except AmountTooLarge as error:
        raise cli_errors.nothing_to_redeem(error, user_name, ccy) from None
    emit(ctx, redeemed)


@command(savings_group, "set-rate")
@click.argument("user_name", metavar="USER")
@click.argument("ccy", type=CURRENCY)
@click.argument("rate", type=DECIMAL)
def savings_set_rate(ctx: click.Context, app: Flexearn, user_name: str, ccy: str, rate: Decimal) -> None:
    """Set the minimum annual RATE a user lends CCY at, e.g. 0.02 for 2%."""
    emit(ctx, savings.set_rate(app.uow(), _user_id(app, user_name), ccy, rate))


@main.group()
def clock() -> None:
    """Business time: real, or simulated (faster, or advanced by hand)."""


def _clock_view(app: Flexearn, view: clock_service.ClockView | None = None) -> dict[str, Any]:
    view = view or clock_service.show(app.read_uow())
    return {"mode": view.mode, "now": view.now, "iso": iso(view.now), "speed": view.speed}


def _clock_line(view: dict[str, Any]) -> str:
    return f"{view['mode']} clock: {view['iso']} (speed {plain(view['speed'])})"


@command(clock, "show")
def clock_show(ctx: click.Context, app: Flexearn) -> None:
    """The business clock: its mode, time and speed."""
    view = _clock_view(app)
    emit(ctx, view, _clock_line(view))


@command(clock, "set-sim")
@click.option(
    "--speed",
    type=DECIMAL,
    default=D(1),
    show_default=True,
    help="Business seconds per real second; 0 stands still until advanced.",
)
@click.option("--start", type=TIME, default=None, help="Business time to start from (UTC).")
def clock_set_sim(ctx: click.Context, app: Flexearn, speed: Decimal, start: int | None) -> None:
    """Run a simulated clock (faster, or still).

    Faster than real time (--speed), or standing still until advanced (--speed 0)."""
    view = _clock_view(app, clock_service.set_simulated(app.uow(), speed, start))
    emit(ctx, view, _clock_line(view))


@command(clock, "set-real")
def clock_set_real(ctx: click.Context, app: Flexearn) -> None:
    """Go back to the wall clock."""
    view = _clock_view(app, clock_service.set_real(app.uow()))
    emit(ctx, view, _clock_line(view))


@command(clock, "advance")
@click.option("--hours", type=click.IntRange(1), required=True, help="Business hours to move forward.")
def clock_advance(ctx: click.Context, app: Flexearn, hours: int) -> None:
    """Move a simulated clock forward, settling.

    Every hour and day that becomes due is settled, with a progress bar on a terminal."""
    with Progress("settling") as progress:
        advanced = clock_service.advance(app.engine, hours, progress=progress)
    view, done = _clock_view(app, advanced.clock), advanced.settled
    emit(
        ctx,
        {"clock": view, "settled": done.hours, "days": done.days},
        f"clock at {view['iso']}; settled {len(done.hours)} currency-hours",
    )


@command(main, "settle")
def settle_cmd(ctx: click.Context, app: Flexearn) -> None:
    """Settle every due hour and day, oldest first.

    Catches up after downtime (in FLEXEARN_SETTLEMENT_RANGES ranges each), with a progress bar on
    a terminal."""
    with Progress("settling") as progress:
        settings = ctx.obj["settings"]
        done = scheduler.settle_all_due(
            app.engine,
            ranges=settings.settlement_ranges,
            threads=settings.settlement_threads,
            progress=progress,
        )
    settled = done.hours
    emit(
        ctx,
        {"settled": settled, "days": done.days},
        "\n".join(_hour_line(s) for s in settled) or "nothing due",
    )


def _hour_line(s: settlement.SettledHour) -> str:
    return (
        f"{iso(s.hour)} {s.ccy}: demand {plain(s.demand)}, lent {plain(s.lent)}, "
        f"borrow rate {plain(s.borrow_rate)}, lending rate {plain(s.lending_rate)}, "
        f"interest paid {plain(s.interest_paid)}"
    )


@main.group()
def ledger() -> None:
    """The double-entry ledger."""


@command(ledger, "check")
@click.option("--full", is_flag=True, help="Re-verify the whole journal, not what followed the checkpoint.")
@click.option("--checkpoint", "write_checkpoint", is_flag=True, help="If green, save where the next begins.")
def ledger_check_cmd(ctx: click.Context, app: Flexearn, full: bool, write_checkpoint: bool) -> None:
    """Re-verify every ledger invariant; exit 1 and list violations if any.

    By default only what came after the latest checkpoint is re-verified on top of its figures
    (everything, when there is none); the balances, positions and control accounts as they stand
    are checked whole either way.
    """
    report = ledger_check.run(app.engine, full=full, checkpoint=write_checkpoint)
    violations = report.violations
    base = "the whole journal" if report.journal_base is None else f"checkpoint {report.journal_base}"
    written = "" if report.checkpoint is None else f"; checkpoint {report.checkpoint} written"
    emit(
        ctx,
        {
            "ok": not violations,
            "violations": violations,
            "full": full,
            "base": report.journal_base,
            "history_base": report.history_base,
            "checkpoint": report.checkpoint,
        },
        f"ledger ok (from {base}){written}" if not violations else "\n".join(violations),
    )
    if violations:
        sys.exit(1)


@command(main, "run")
def run_cmd(ctx: click.Context, app: Flexearn) -> None:
    """Settle each hour as it falls due, printing it.

    Runs until interrupted: `flexearn worker` with the hours printed here rather than logged (it
    takes the same settler lease)."""
    settings = ctx.obj["settings"]
    jobs = maintenance_jobs(settings)
    run_scheduler(app, settings.poll_seconds, lambda s: emit(ctx, s, _hour_line(s)), maintenance=jobs)


DEFAULT_LEASE_SECONDS = 10.0


def maintenance_jobs(settings: Settings) -> list[scheduler.Maintenance]:
    """What the settler runs after each pass that settled something (and when it takes over):
    the incremental ledger check, writing a checkpoint when green, then history retention behind
    it; and the pruning of expired admin idempotency keys. Each job runs its own transactions and
    may fail without stopping settlement.
    """
    try:
        policy = retention.Retention.from_settings(settings)
    except ValueError as error:
        raise click.ClickException(f"history retention: {error}") from None
    return [retention.after_settlement(policy), idempotency.prune]


def run_scheduler(
    app: Flexearn,
    poll_seconds: float,
    report: Callable[[settlement.SettledHour], None],
    until: int | None = None,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    stop: threading.Event | None = None,
    maintenance: Sequence[scheduler.Maintenance] | None = None,
) -> None:
    """Settle due periods as they come while this process holds the settler lease (or stand by
    while another does), until `stop` is set, ^C, or business time `until`; then hand over.

    `maintenance`: the jobs after each pass (default: `maintenance_jobs` of the environment's
    settings); build them before starting a thread, so that a bad setting stops the command.
    Each period is settled in FLEXEARN_SETTLEMENT_RANGES ranges."""
    settings = Settings.from_env()
    if maintenance is None:
        maintenance = maintenance_jobs(settings)
    set_settler(False)  # the gauge reads 0 while standing by, not absent
    lease = Lease(app.engine, SETTLER, lease_seconds, on_change=set_settler).start()
    try:
        scheduler.run_settler(
            app.engine,
            lease,
            report,
            poll_seconds=poll_seconds,
            until=until,
            maintenance=maintenance,
            stop=stop,
            ranges=settings.settlement_ranges,
            threads=settings.settlement_threads,
        )
    except KeyboardInterrupt:
        pass
    finally:
        lease.close()


def _log_hour(settled: settlement.SettledHour) -> None:
    logging.getLogger("flexearn.worker").info(
        "settled %s %s",
        settled.ccy,
        iso(settled.hour),
        extra={"ccy": settled.ccy, "hour": settled.hour, "positions": settled.positions_changed},
    )


HOST = click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
PORT = click.option(
    "--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="HTTP port."
)
DB = click.option(
    "--db", "db_url", default=None, metavar="URL", help="Database URL (default: FLEXEARN_DATABASE_URL)."
)


lease_option = click.option(
    "--lease-seconds",
    type=click.FloatRange(min=0.5),
    default=DEFAULT_LEASE_SECONDS,
    show_default=True,
    help="How long the settler lease lasts without renewal: a standby takes over this long after "
    "the settler dies (renewed every fifth of it).",
)


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Level of the JSON logs (default: FLEXEARN_LOG_LEVEL or INFO).",
)


@main.command("worker")
@DB
@lease_option
@log_level_option
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of /metrics.")
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535), default=None, help="Serve GET /metrics on this port."
)
def worker_cmd(
    db_url: str | None,
    lease_seconds: float,
    log_level: str | None,
    metrics_host: str,
    metrics_port: int | None,
) -> None:
    """The settling worker: one settles, the others stand by.

    Settles each market hour and catalog day as it falls due.

    Run one or more (on any hosts) against the same database: the one holding the settler lease
    settles, the others stand by and take over within --lease-seconds when it dies, catching up
    missed periods oldest first. SIGTERM or ^C hands the lease over at once. `serve --scheduler`
    takes the same lease, so servers and workers never settle at the same time. Logs are JSON
    lines on stderr.
    """
    settings = settings_from_env()
    jobs = maintenance_jobs(settings)  # a bad retention setting stops here, not in the loop
    app = open_app(db_url, settings)
    configure_logging(log_level.upper() if log_level else settings.log_level)
    if metrics_port is not None:  # settlement metrics and flexearn_settler, and the database gauges
        serve_metrics(stats.reader(app.engine, FigureCache()), metrics_host, metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    logging.getLogger("flexearn.worker").info(
        "flexearn worker started, database %s",
        app.engine.url.render_as_string(hide_password=True),
        extra={"pid": os.getpid(), "lease_seconds": lease_seconds},
    )
    try:
        run_scheduler(
            app, settings.poll_seconds, _log_hour, lease_seconds=lease_seconds, stop=stop, maintenance=jobs
        )
    finally:
        app.close()


@main.group()
def product() -> None:
    """Catalog savings products (what the Bitget façade serves)."""


MAX_SPEC_BYTES = 65536  # a product spec is a few hundred bytes; a file this large is a mistake


def _product_spec(spec: str | None, spec_file: IO[str] | None) -> ProductFields:
    """The product fields of --spec or --spec-file (exactly one): a JSON object of them."""
    if (spec is None) == (spec_file is None):
        raise click.UsageError("give the product fields as --spec JSON or --spec-file FILE (one of them)")
    text = spec if spec is not None else spec_file.read(MAX_SPEC_BYTES + 1)  # type: ignore[union-attr]
    name = "--spec" if spec is not None else "--spec-file"
    if len(text) > MAX_SPEC_BYTES:
        raise click.BadParameter(f"larger than {MAX_SPEC_BYTES} bytes", param_hint=name)
    try:
        value = json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("a JSON object of product fields", param_hint=name)
    return product_spec.parse(value)


def spec_options(help_text: str) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        func = click.option("--spec", metavar="JSON", help=help_text)(func)
        return click.option(
            "--spec-file",
            type=click.File("r"),
            metavar="FILE",
            help="The same as a JSON file ('-': standard input).",
        )(func)

    return wrap


def _product_rows(views: Sequence[catalog.ProductView]) -> str:
    rows = [
        {
            "id": v.product.id,
            "coin": v.product.coin,
            "term": v.product.period_type
            + ("" if v.product.period_days is None else f" {v.product.period_days}d"),
            "apy %": ", ".join(
                f"{plain(t.min_step)}-{plain(t.max_step)}: {plain(t.apy)}" for t in v.product.tiers
            ),
            "level": v.product.level,
            "status": v.status,
            "remaining": v.remaining,
            "quota": v.product.quota,
        }
        for v in views
    ]
    return table(rows) if rows else "(no products)"


@command(product, "create")
@spec_options("Bitget product fields plus limits, as a JSON object.")
def product_create(ctx: click.Context, app: Flexearn, spec: str | None, spec_file: IO[str] | None) -> None:
    """Create a product from its Bitget fields.

    Give them as --spec JSON or --spec-file FILE, for example:

    \b
    flexearn product create --spec '{"coin":"USDT","periodType":"flexible","apyType":"single",
      "apyList":[{"minStepVal":"0","maxStepVal":"1000000","currentApy":"5"}]}'
    """
    emit(ctx, catalog.create_product(app.uow(), _product_spec(spec, spec_file)))


@command(product, "update")
@click.argument("product_id", type=int)
@spec_options("The fields to change (tiers, limits, times, status), as a JSON object.")
def product_update(
    ctx: click.Context, app: Flexearn, product_id: int, spec: str | None, spec_file: IO[str] | None
) -> None:
    """Change a product's tiers, limits, times or status.

    Give the fields to change as --spec JSON or --spec-file FILE."""
    emit(ctx, catalog.update_product(app.uow(), product_id, _product_spec(spec, spec_file)))


@command(product, "status")
@click.argument("product_id", type=int)
@click.argument("status", type=choice(OPERATOR_STATUSES))
def product_status(ctx: click.Context, app: Flexearn, product_id: int, status: str) -> None:
    """Open (in_progress), pause or take a product off line."""
    emit(ctx, catalog.set_status(app.uow(), product_id, product_spec.operator_status(status)))


@command(product, "list")
def product_list(ctx: click.Context, app: Flexearn) -> None:
    """Every product, with its tiers, status and remaining quota."""
    views = catalog.list_products(app.read_uow(), None, None, "all")
    emit(ctx, views, _product_rows(views))


@main.group()
def price() -> None:
    """Reference prices (for account totals)."""


@command(price, "set")
@click.argument("ccy", type=CURRENCY)
@click.argument("usdt_price", type=DECIMAL, metavar="PRICE")
def price_set(ctx: click.Context, app: Flexearn, ccy: str, usdt_price: Decimal) -> None:
    """Set the price of CCY in USDT, e.g. `price set BTC 95000`."""
    catalog_views.set_price(app.uow(), ccy, usdt_price)
    emit(ctx, {"ccy": ccy, "usdt": usdt_price}, f"{ccy} = {plain(usdt_price)} USDT")


@main.group()
def key() -> None:
    """API keys (each works on the façades it names; all by default)."""


@command(key, "create")
@click.argument("user_name", metavar="USER")
@click.option("--perm", default="read", show_default=True, help="read, or read,trade")
@click.option("--ip", default="", help="Comma-separated IP addresses or networks allowed (default: any).")
@click.option(
    "--expires", type=click.IntRange(1), default=None, help="Days until the key expires (default: never)."
)
@click.option(
    "--facades",
    default=keys.ALL_FACADES,
    show_default=True,
    help="Where the key works, comma-separated. Binance signs with the secret alone: leave it out to"
    " keep the passphrase a second factor.",
)
def key_create(
    ctx: click.Context, app: Flexearn, user_name: str, perm: str, ip: str, expires: int | None, facades: str
) -> None:
    """Create a key for a user.

    The secret and passphrase are shown only now."""
    box = SecretBox(ctx.obj["settings"].master_key)
    new = keys.create_key(app.uow(), box, _user_id(app, user_name), perm, ip, expires, facades=facades)
    emit(
        ctx,
        {"apiKey": new.api_key, "secretKey": new.secret_key, "passphrase": new.passphrase},
        f"apiKey {new.api_key}\nsecretKey {new.secret_key}\npassphrase {new.passphrase}",
    )


@command(key, "list")
@click.argument("user_name", metavar="USER")
def key_list(ctx: click.Context, app: Flexearn, user_name: str) -> None:
    """A user's keys (never their secrets).

    Permissions, IP allowlist, expiry, creation and revocation times."""
    emit(ctx, keys.list_keys(app.read_uow(), _user_id(app, user_name)))


@command(key, "revoke")
@click.argument("api_key")
def key_revoke(ctx: click.Context, app: Flexearn, api_key: str) -> None:
    """Revoke a key: it stops working at once, on every façade."""
    emit(ctx, keys.revoke_key(app.uow(), api_key), f"revoked {api_key}")


@key.command("generate-master")
def key_generate_master() -> None:
    """Print a new master key for FLEXEARN_MASTER_KEY."""
    click.echo(generate_master_key())


@main.command("serve")
@HOST
@PORT
@DB
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="API processes.")
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Also settle in this process while it holds the settler lease (one settler among all "
    "servers and workers).",
)
@click.option(
    "--migrate",
    "migrate_schema",
    is_flag=True,
    help="Create or upgrade the database schema first (else a schema not this version's is refused).",
)
@lease_option
@log_level_option
def serve_cmd(
    host: str,
    port: int,
    db_url: str | None,
    workers: int,
    scheduler: bool,
    migrate_schema: bool,
    lease_seconds: float,
    log_level: str | None,
) -> None:
    """Serve the façades, admin API and dashboard over HTTP.

    The OKX and Bitget façades, the admin API and its reference (/admin/v1/docs), the dashboard,
    /metrics and /healthz (granian, ASGI). Refuses a database whose schema is not this version's
    unless --migrate.

    Needs FLEXEARN_MASTER_KEY, and FLEXEARN_ADMIN_TOKEN unless FLEXEARN_DEMO=1.
    """
    settings = settings_from_env()  # a malformed or out-of-range setting stops serve here
    level = log_level.upper() if log_level else settings.log_level
    settings = replace(settings, database_url=db_url or settings.database_url, log_level=level)
    try:  # refuse to start without a usable master key, or an admin token outside a demo
        SecretBox(settings.master_key)
        parse_tokens(settings.admin_token, demo=settings.demo)
        parse_networks(settings.trusted_proxies)
    except FlexearnError as error:
        raise CommandError(error.message) from None
    except ValueError as error:
        raise CommandError(f"bad setting FLEXEARN_TRUSTED_PROXIES: {error}") from None
    app = open_app(db_url, settings, migrate_schema=migrate_schema)  # once, before the workers start
    configure_logging(level)
    shared, metrics_dir = prepare_multiprocess(settings.metrics_dir)  # workers and the settler share samples
    settings = replace(settings, metrics_dir=shared)
    # The one hand-over of the settings: granian's workers are fresh interpreters that read them
    # back (`api.app.factory`), and prometheus_client reads its directory at its import, here too.
    os.environ.update(settings.to_env())
    stop_settling = threading.Event()
    jobs = maintenance_jobs(settings)  # a bad retention setting stops serve, not its settler thread
    settler = threading.Thread(
        target=run_scheduler,
        args=(app, settings.poll_seconds, _log_hour),
        kwargs={"stop": stop_settling, "lease_seconds": lease_seconds, "maintenance": jobs},
        daemon=True,
    )
    if scheduler:  # settles only while it holds the settler lease (see `flexearn worker`)
        settler.start()
    # Workers start as fresh interpreters: a forked worker would inherit the scheduler thread's
    # open database connections (a fork while it holds SQLite's lock leaves the worker waiting
    # forever; a forked psycopg socket is shared with the parent), whenever granian (re)spawns it.
    multiprocessing.set_start_method("spawn", force=True)
    server = Granian(
        "flexearn.api.app:factory",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=False,
        log_dictconfig=logs_dict_config(level),
        **listener.server_options(settings),  # idle or slow connections cannot lock clients out
    )
    logging.getLogger("flexearn.serve").info(
        "flexearn serving on http://%s:%d (%d worker(s), %d connections each), database %s",
        host,
        port,
        workers,
        server.backpressure,
        app.engine.url.render_as_string(hide_password=True),
    )
    try:
        server.serve()
    finally:
        if settler.is_alive():  # hand the lease over now rather than when it expires
            stop_settling.set()
            settler.join(timeout=30)
        remove_multiprocess_dir(metrics_dir)


DEMO_DATABASE = "flexearn-demo.db"
MAX_HISTORY_HOURS = 10 * 365 * 24  # ten years of hours (some 40 s per thousand to build)


def _house_token(value: str | None) -> str | None:
    """`--token`: a currency name (upper-case letters and digits, at most 16, as `currency add`
    takes) that is not one of the demo's markets."""
    if value is None:
        return None
    if not (value.isascii() and value.isalnum() and value.isupper() and len(value) <= 16):
        raise click.BadParameter("upper-case letters and digits, at most 16, e.g. BNB", param_hint="--token")
    if value in demo_world.MARKETS:
        raise click.BadParameter(f"{value} is one of the demo's markets", param_hint="--token")
    return value


@main.command("demo")
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help=f"Database URL (default: sqlite:///{DEMO_DATABASE}, built on first use).",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Delete the demo database (a SQLite file) and build the world afresh; the key file's key is kept.",
)
@HOST
@PORT
@click.option(
    "--speed",
    type=DECIMAL,
    default=D(360),
    show_default=True,
    help="Business seconds per real second (360: an hour every 10 s).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Makes the whole world reproducible.")
@click.option(
    "--start",
    type=TIME,
    default=None,
    help="Business time (UTC) the clock starts at (default: the current hour); with --seed, the same world.",
)
@click.option(
    "--history",
    "history_hours",
    type=click.IntRange(0, MAX_HISTORY_HOURS),
    default=7 * 24,
    show_default=True,
    help="Hours of settled history a new world starts with.",
)
@click.option(
    "--hours",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many business hours (default: run until ^C).",
)
@click.option(
    "--token",
    callback=lambda ctx, param, value: _house_token(value),
    default=None,
    help="The name of the operator's own token (as BNB is Binance's) in a world being built: "
    "upper-case letters and digits, not a market's currency (default: FLX).",
)
def demo_cmd(
    db_url: str | None,
    host: str,
    port: int,
    speed: Decimal,
    seed: int,
    start: int | None,
    history_hours: int,
    hours: int | None,
    token: str | None,
    reset: bool,
) -> None:
    """A sandbox with a fast clock, served over HTTP.

    Seeded markets and products and a funded user with a key; HTTP and the dashboard. The first
    start builds the world; later starts on the same database resume it (history, positions, the
    key in the key file beside the database, the clock from where it stopped). --seed, --start
    and --history shape a world being built.
    """
    # the terminal is for the banner and the hours, unless FLEXEARN_LOG_LEVEL says otherwise
    settings = settings_from_env(defaults={"FLEXEARN_LOG_LEVEL": "WARNING"})
    db_url = db_url or f"sqlite:///{DEMO_DATABASE}"
    cli_errors.check_database_url(db_url, "--db")
    try:
        demo_runner.ensure_port_free(host, port)
    except demo_runner.PortInUse as error:
        raise CommandError(str(error)) from None
    database = demo_keyfile.sqlite_file(db_url)
    if reset:
        if database is None:
            raise CommandError("--reset deletes a SQLite file; drop another database yourself")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    options = demo_runner.DemoOptions(
        host=host,
        port=port,
        speed=speed,
        seed=seed,
        hours=hours,
        start=start,
        history_hours=history_hours,
        token=token,
    )
    try:
        with Progress(f"building {history_hours} hours of history") as progress:
            demo_runner.run(
                db_url,
                settings,
                options,
                run_scheduler,
                click.echo,
                demo_keyfile.path_for(db_url),
                progress=progress,
            )
    except (demo_restart.CannotResume, demo_keyfile.KeyFileError) as error:
        raise CommandError(str(error)) from None
    except sa.exc.OperationalError as error:
        raise CommandError(f"cannot use the database {db_url}: {error.orig}") from None


@main.group()
def history() -> None:
    """History retention: what is kept, and pruning the rest.

    Lending history is kept FLEXEARN_LENDING_HISTORY_DAYS (default 30), rate history
    FLEXEARN_RATE_HISTORY_DAYS (default 0: forever)."""


@command(history, "prune")
@click.option("--lending-days", type=int, default=None, help="FLEXEARN_LENDING_HISTORY_DAYS (0: forever).")
@click.option("--rate-days", type=int, default=None, help="FLEXEARN_RATE_HISTORY_DAYS (0: forever).")
def history_prune(ctx: click.Context, app: Flexearn, lending_days: int | None, rate_days: int | None) -> None:
    """Drop history past its retention.

    Only behind the latest ledger checkpoint (exit 1 if none holds it).

    On PostgreSQL also creates the lending-history partitions of the days ahead: run it daily
    (the worker does).
    """
    try:
        policy = retention.Retention.from_settings(ctx.obj["settings"])
        policy = retention.Retention(
            policy.lending_history_days if lending_days is None else lending_days,
            policy.rate_history_days if rate_days is None else rate_days,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    with app.read_uow() as uow:
        now = uow.now()
    try:
        pruned = retention.prune(app.engine, policy, now)
    except retention.PruneRefused as error:
        emit(ctx, {"error": "refused", "message": str(error)}, f"refused: {error}")
        sys.exit(1)
    lending = "kept" if pruned.lending_before is None else f"before {iso(pruned.lending_before)} dropped"
    rates = "kept" if pruned.rate_before is None else f"before {iso(pruned.rate_before)} dropped"
    emit(
        ctx,
        pruned,
        f"lending history {lending} ({len(pruned.partitions_dropped)} partitions, "
        f"{pruned.lending_rows} rows); rate history {rates} ({pruned.rate_rows} rows); "
        f"{len(pruned.partitions_created)} partitions created",
    )


if __name__ == "__main__":
    main()
