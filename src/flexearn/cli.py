"""The `flexearn` command: thin wrappers that parse arguments, call a service, print the result."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import click
from granian import Granian
from granian.constants import Interfaces

from flexearn.adapters.db import current_revision
from flexearn.adapters.repository import user_id_by_name
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import listener
from flexearn.api.admin.auth import parse_tokens
from flexearn.api.proxy import parse_networks
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.demo import keyfile as demo_keyfile
from flexearn.demo import restart as demo_restart
from flexearn.demo import runner as demo_runner
from flexearn.domain.catalog import OPERATOR_STATUSES, Level
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.errors import FlexearnError
from flexearn.domain.ledger import WALLETS, AccountKind
from flexearn.domain.market import DemandSource, MatchingMode
from flexearn.domain.money import AMOUNT_RULE, D, parse_amount, plain
from flexearn.domain.vocabulary import values
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def choice(members: Iterable[StrEnum]) -> click.Choice[str]:
    """A choice among a domain vocabulary's values (click would offer an enum's member names)."""
    return click.Choice(values(members))


def emit(ctx: click.Context, value: Any, text: str | None = None) -> None:
    if ctx.obj["json"] or text is None:
        click.echo(json.dumps(_jsonable(value), indent=None if ctx.obj["json"] else 2))
    else:
        click.echo(text)


def command(group: click.Group, name: str, *, json_flag: bool = True, **kwargs: Any) -> Callable[[F], F]:
    """A subcommand taking --db and --json, with engine errors reported cleanly.

    Without `json_flag` the command owns `--json` (a JSON argument) and always prints JSON.
    """

    def wrap(func: F) -> F:
        def run(ctx: click.Context, /, db_url: str | None, as_json: bool = True, **params: Any) -> Any:
            settings = Settings.from_env()
            ctx.obj = {"json": as_json, "settings": settings}
            app = Flexearn(db_url or settings.database_url)
            try:
                return func(ctx, app, **params)
            except FlexearnError as error:
                emit(
                    ctx,
                    {"error": error.code, "message": error.message, "param": error.param},
                    f"error: {error.message}",
                )
                sys.exit(2)
            finally:
                app.close()

        run.__doc__ = func.__doc__
        run.__click_params__ = list(getattr(func, "__click_params__", []))  # type: ignore[attr-defined]
        db_option = click.option(
            "--db",
            "db_url",
            default=None,
            help="Database URL (default: FLEXEARN_DATABASE_URL or sqlite:///flexearn.db).",
        )
        json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
        options = click.pass_context(run)
        if json_flag:
            options = json_option(options)
        group.command(name, **kwargs)(db_option(options))
        return func

    return wrap


class DecimalType(click.ParamType[Decimal, Any]):
    name = "decimal"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            return value
        try:
            return parse_amount(str(value))
        except FlexearnError:
            self.fail(f"{value!r} is not {AMOUNT_RULE}", param, ctx)


DECIMAL = DecimalType()


@click.group()
@click.version_option(package_name="flexearn")
def main() -> None:
    """flexearn: a self-hosted Simple Earn (flexible savings) engine."""


@command(main, "migrate")
def migrate_cmd(ctx: click.Context, app: Flexearn) -> None:
    """Create or upgrade the database schema (every command also does this first)."""
    emit(
        ctx, {"revision": current_revision(app.engine)}, f"schema at revision {current_revision(app.engine)}"
    )


@main.group()
def user() -> None:
    """Users."""


@command(user, "create")
@click.argument("name")
@click.option("--level", type=choice(Level), default=Level.BEGINNER.value)
def user_create(ctx: click.Context, app: Flexearn, name: str, level: str) -> None:
    user_id = accounts.create_user(app.uow(), name, level)
    emit(ctx, {"id": user_id, "name": name, "level": level}, f"user {name} created with id {user_id}")


@main.group()
def currency() -> None:
    """Currencies."""


@command(currency, "add")
@click.argument("ccy")
@click.option("--precision", type=int, default=accounts.DEFAULT_PRECISION, show_default=True)
def currency_add(ctx: click.Context, app: Flexearn, ccy: str, precision: int) -> None:
    accounts.add_currency(app.uow(), ccy, precision)
    emit(ctx, {"ccy": ccy, "precision": precision}, f"currency {ccy} added with precision {precision}")


def _user_id(app: Flexearn, name: str) -> int:
    with app.read_uow() as uow:
        return user_id_by_name(uow.conn, name)


ACCOUNT = click.option(
    "--account",
    type=choice(WALLETS),
    default=AccountKind.FUNDING.value,
    show_default=True,
    help="The user's account: funding (where savings are bought from) or trading.",
)


@command(main, "deposit")
@click.argument("user_name")
@click.argument("ccy")
@click.argument("amount", type=DECIMAL)
@ACCOUNT
def deposit_cmd(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, account: str
) -> None:
    """Credit a user's funding (or trading) account from outside."""
    entry = accounts.deposit(app.uow(), _user_id(app, user_name), ccy, amount, AccountKind(account))
    emit(
        ctx,
        {"entry": entry, "user": user_name, "ccy": ccy, "amount": amount, "account": account},
        f"deposited {plain(amount)} {ccy} to {account}",
    )


@command(main, "withdraw")
@click.argument("user_name")
@click.argument("ccy")
@click.argument("amount", type=DECIMAL)
@ACCOUNT
def withdraw_cmd(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, account: str
) -> None:
    """Debit a user's funding (or trading) account to outside."""
    entry = accounts.withdraw(app.uow(), _user_id(app, user_name), ccy, amount, AccountKind(account))
    emit(
        ctx,
        {"entry": entry, "user": user_name, "ccy": ccy, "amount": amount, "account": account},
        f"withdrew {plain(amount)} {ccy} from {account}",
    )


@command(main, "balance")
@click.argument("user_name")
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
    """Market lending settings per currency."""


@command(market, "set")
@click.argument("ccy")
@click.option("--mode", type=choice(MatchingMode))
@click.option("--demand", type=DECIMAL, help="Static borrow demand per hour.")
@click.option("--borrow-rate", type=DECIMAL, help="Static borrow rate r_b (pro rata), e.g. 0.05.")
@click.option("--insurance-fee", type=DECIMAL, help="Share of borrower interest kept by the insurance fund.")
@click.option("--demand-source", type=choice(DemandSource))
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
    emit(ctx, markets.list_markets(app.read_uow()))


@command(market, "post-demand")
@click.argument("ccy")
@click.argument("hour", type=click.DateTime())
@click.argument("demand", type=DECIMAL)
@click.option("--borrow-rate", type=DECIMAL, default=D(0), help="The hour's borrow rate r_b (pro rata).")
def market_post_demand(
    ctx: click.Context, app: Flexearn, ccy: str, hour: datetime, demand: Decimal, borrow_rate: Decimal
) -> None:
    """What borrowers take in the hour starting at HOUR (UTC), for a market with external demand."""
    hour_ms = int(hour.replace(tzinfo=UTC).timestamp() * 1000)
    emit(ctx, markets.post_demand(app.uow(), ccy, hour_ms, demand, borrow_rate, posted_by="cli"))


@main.group("savings")
def savings_group() -> None:
    """Market savings (what the OKX façade serves)."""


@command(savings_group, "purchase")
@click.argument("user_name")
@click.argument("ccy")
@click.argument("amount", type=DECIMAL)
@click.option("--rate", type=DECIMAL, help="Minimum annual lending rate, e.g. 0.02 for 2%.")
def savings_purchase(
    ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal, rate: Decimal | None
) -> None:
    emit(ctx, savings.purchase(app.uow(), _user_id(app, user_name), ccy, amount, rate))


@command(savings_group, "redeem")
@click.argument("user_name")
@click.argument("ccy")
@click.argument("amount", type=DECIMAL)
def savings_redeem(ctx: click.Context, app: Flexearn, user_name: str, ccy: str, amount: Decimal) -> None:
    emit(ctx, savings.redeem(app.uow(), _user_id(app, user_name), ccy, amount))


@command(savings_group, "set-rate")
@click.argument("user_name")
@click.argument("ccy")
@click.argument("rate", type=DECIMAL)
def savings_set_rate(ctx: click.Context, app: Flexearn, user_name: str, ccy: str, rate: Decimal) -> None:
    emit(ctx, savings.set_rate(app.uow(), _user_id(app, user_name), ccy, rate))


@main.group()
def clock() -> None:
    """Business time: real, or simulated (faster, or advanced by hand)."""


def _clock_view(app: Flexearn, view: clock_service.ClockView | None = None) -> dict[str, Any]:
    view = view or clock_service.show(app.read_uow())
    return {"mode": view.mode, "now": view.now, "iso": iso(view.now), "speed": view.speed}


@command(clock, "show")
def clock_show(ctx: click.Context, app: Flexearn) -> None:
    view = _clock_view(app)
    emit(ctx, view, f"{view['mode']} clock: {view['iso']} (speed {plain(view['speed'])})")


@command(clock, "set-sim")
@click.option(
    "--speed",
    type=DECIMAL,
    default=D(1),
    show_default=True,
    help="Business seconds per real second; 0 stands still until advanced.",
)
@click.option("--start", type=click.DateTime(), default=None, help="Business time to start from (UTC).")
def clock_set_sim(ctx: click.Context, app: Flexearn, speed: Decimal, start: datetime | None) -> None:
    start_ms = None if start is None else int(start.replace(tzinfo=UTC).timestamp() * 1000)
    emit(ctx, _clock_view(app, clock_service.set_simulated(app.uow(), speed, start_ms)))


@command(clock, "set-real")
def clock_set_real(ctx: click.Context, app: Flexearn) -> None:
    emit(ctx, _clock_view(app, clock_service.set_real(app.uow())))


@command(clock, "advance")
@click.option("--hours", type=int, required=True)
def clock_advance(ctx: click.Context, app: Flexearn, hours: int) -> None:
    """Move a simulated clock forward and settle every hour that becomes due."""
    advanced = clock_service.advance(app.engine, hours)
    view, done = _clock_view(app, advanced.clock), advanced.settled
    emit(
        ctx,
        {"clock": view, "settled": done.hours, "days": done.days},
        f"clock at {view['iso']}; settled {len(done.hours)} currency-hours",
    )


@command(main, "settle")
def settle_cmd(ctx: click.Context, app: Flexearn) -> None:
    """Settle every due hour, oldest first (in FLEXEARN_SETTLEMENT_RANGES ranges each)."""
    done = scheduler.settle_all_due(app.engine, ranges=ctx.obj["settings"].settlement_ranges)
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
    """Settle every hour as it becomes due, until interrupted (`flexearn worker` with the hours
    printed here rather than logged; it takes the same settler lease)."""
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
@click.option("--db", "db_url", default=None, help="Database URL (default: FLEXEARN_DATABASE_URL).")
@lease_option
@log_level_option
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of /metrics.")
@click.option("--metrics-port", type=int, default=None, help="Serve GET /metrics on this port.")
def worker_cmd(
    db_url: str | None,
    lease_seconds: float,
    log_level: str | None,
    metrics_host: str,
    metrics_port: int | None,
) -> None:
    """The settling worker: settle each market hour and catalog day as it falls due.

    Run one or more (on any hosts) against the same database: the one holding the settler lease
    settles, the others stand by and take over within --lease-seconds when it dies, catching up
    missed periods oldest first. SIGTERM or ^C hands the lease over at once. `serve --scheduler`
    takes the same lease, so servers and workers never settle at the same time. Logs are JSON
    lines on stderr.
    """
    settings = Settings.from_env()
    jobs = maintenance_jobs(settings)  # a bad retention setting stops here, not in the loop
    configure_logging(log_level.upper() if log_level else settings.log_level)
    app = Flexearn(db_url or settings.database_url)
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


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise click.BadParameter("a JSON object of product fields")
    return value


@command(product, "create", json_flag=False)
@click.option("--json", "spec", required=True, help="Bitget product fields plus limits, as a JSON object.")
def product_create(ctx: click.Context, app: Flexearn, spec: str) -> None:
    """Create a product, e.g. --json '{"coin":"USDT","periodType":"flexible","apyType":"single",
    "apyList":[{"minStepVal":"0","maxStepVal":"1000000","currentApy":"5"}]}'."""
    emit(ctx, catalog.create_product(app.uow(), _json_arg(spec)))


@command(product, "update", json_flag=False)
@click.argument("product_id", type=int)
@click.option("--json", "spec", required=True, help="The fields to change (tiers, limits, times, status).")
def product_update(ctx: click.Context, app: Flexearn, product_id: int, spec: str) -> None:
    emit(ctx, catalog.update_product(app.uow(), product_id, _json_arg(spec)))


@command(product, "status")
@click.argument("product_id", type=int)
@click.argument("status", type=choice(OPERATOR_STATUSES))
def product_status(ctx: click.Context, app: Flexearn, product_id: int, status: str) -> None:
    emit(ctx, catalog.set_status(app.uow(), product_id, status))


@command(product, "list")
def product_list(ctx: click.Context, app: Flexearn) -> None:
    emit(ctx, catalog.list_products(app.read_uow(), None, None, "all"))


@main.group()
def price() -> None:
    """Reference prices (for account totals)."""


@command(price, "set")
@click.argument("ccy")
@click.argument("usdt_price", type=DECIMAL)
def price_set(ctx: click.Context, app: Flexearn, ccy: str, usdt_price: Decimal) -> None:
    catalog_views.set_price(app.uow(), ccy, usdt_price)
    emit(ctx, {"ccy": ccy, "usdt": usdt_price}, f"{ccy} = {plain(usdt_price)} USDT")


@main.group()
def key() -> None:
    """API keys (they work on every façade)."""


@command(key, "create")
@click.argument("user_name")
@click.option("--perm", default="read", show_default=True, help="read, or read,trade")
@click.option("--ip", default="", help="Comma-separated IP addresses or networks allowed (default: any).")
@click.option("--expires", type=int, default=None, help="Days until the key expires (default: never).")
def key_create(
    ctx: click.Context, app: Flexearn, user_name: str, perm: str, ip: str, expires: int | None
) -> None:
    """Create a key; the secret and passphrase are shown only now."""
    box = SecretBox(ctx.obj["settings"].master_key)
    new = keys.create_key(app.uow(), box, _user_id(app, user_name), perm, ip, expires)
    emit(
        ctx,
        {"apiKey": new.api_key, "secretKey": new.secret_key, "passphrase": new.passphrase},
        f"apiKey {new.api_key}\nsecretKey {new.secret_key}\npassphrase {new.passphrase}",
    )


@command(key, "list")
@click.argument("user_name")
def key_list(ctx: click.Context, app: Flexearn, user_name: str) -> None:
    emit(ctx, keys.list_keys(app.read_uow(), _user_id(app, user_name)))


@command(key, "revoke")
@click.argument("api_key")
def key_revoke(ctx: click.Context, app: Flexearn, api_key: str) -> None:
    emit(ctx, keys.revoke_key(app.uow(), api_key), f"revoked {api_key}")


@key.command("generate-master")
def key_generate_master() -> None:
    """Print a new master key for FLEXEARN_MASTER_KEY."""
    click.echo(generate_master_key())


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--db", "db_url", default=None, help="Database URL (default: FLEXEARN_DATABASE_URL).")
@click.option("--workers", type=int, default=1, show_default=True, help="API processes.")
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Also settle in this process while it holds the settler lease (one settler among all "
    "servers and workers).",
)
@lease_option
@log_level_option
def serve_cmd(
    host: str,
    port: int,
    db_url: str | None,
    workers: int,
    scheduler: bool,
    lease_seconds: float,
    log_level: str | None,
) -> None:
    """Serve the exchange façades, the admin API, /metrics and /healthz over HTTP (granian, ASGI).

    Needs FLEXEARN_MASTER_KEY, and FLEXEARN_ADMIN_TOKEN unless FLEXEARN_DEMO=1.
    """
    try:  # a malformed or out-of-range setting stops serve here, not in each worker
        settings = Settings.from_env()
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    level = log_level.upper() if log_level else settings.log_level
    settings = replace(settings, database_url=db_url or settings.database_url, log_level=level)
    try:  # refuse to start without a usable master key, or an admin token outside a demo
        SecretBox(settings.master_key)
        parse_tokens(settings.admin_token, demo=settings.demo)
        parse_networks(settings.trusted_proxies)
    except FlexearnError as error:
        raise click.ClickException(error.message) from None
    except ValueError as error:
        raise click.ClickException(f"FLEXEARN_TRUSTED_PROXIES: {error}") from None
    configure_logging(level)
    shared, metrics_dir = prepare_multiprocess(settings.metrics_dir)  # workers and the settler share samples
    settings = replace(settings, metrics_dir=shared)
    # The one hand-over of the settings: granian's workers are fresh interpreters that read them
    # back (`api.app.factory`), and prometheus_client reads its directory at its import, here too.
    os.environ.update(settings.to_env())
    app = Flexearn(settings.database_url)  # migrate once, before the workers start
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


@main.command("demo")
@click.option(
    "--db", "db_url", default=None, help=f"Database URL (default: {DEMO_DATABASE}, built on first use)."
)
@click.option(
    "--reset",
    is_flag=True,
    help="Delete the demo database (a SQLite file) and build the world afresh; the key file's key is kept.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
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
    type=click.DateTime(),
    default=None,
    help="Business time (UTC) the clock starts at (default: the current hour); with --seed, the same world.",
)
@click.option(
    "--history", "history_hours", type=int, default=7 * 24, show_default=True, help="Hours of history."
)
@click.option(
    "--hours", type=int, default=None, help="Stop after this many business hours (default: run until ^C)."
)
def demo_cmd(
    db_url: str | None,
    host: str,
    port: int,
    speed: Decimal,
    seed: int,
    start: datetime | None,
    history_hours: int,
    hours: int | None,
    reset: bool,
) -> None:
    """A sandbox: seeded markets, products and a funded user with a key; HTTP, dashboard and a fast clock.

    The first start builds the world; later starts on the same database resume it (history,
    positions, the key in the key file beside the database, the clock from where it stopped).
    --seed, --start and --history shape a world being built.
    """
    try:
        demo_runner.ensure_port_free(host, port)
    except demo_runner.PortInUse as error:
        raise click.ClickException(str(error)) from None
    db_url = db_url or f"sqlite:///{DEMO_DATABASE}"
    database = demo_keyfile.sqlite_file(db_url)
    if reset:
        if database is None:
            raise click.ClickException("--reset deletes a SQLite file; drop another database yourself")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    options = demo_runner.DemoOptions(
        host=host,
        port=port,
        speed=speed,
        seed=seed,
        hours=hours,
        start=None if start is None else int(start.replace(tzinfo=UTC).timestamp() * 1000),
        history_hours=max(history_hours, 0),
    )
    try:
        demo_runner.run(
            db_url,
            # the terminal is for the banner and the hours, unless FLEXEARN_LOG_LEVEL says otherwise
            Settings.from_env(defaults={"FLEXEARN_LOG_LEVEL": "WARNING"}),
            options,
            run_scheduler,
            click.echo,
            demo_keyfile.path_for(db_url),
        )
    except (demo_restart.CannotResume, demo_keyfile.KeyFileError) as error:
        raise click.ClickException(str(error)) from None


@main.group()
def history() -> None:
    """History retention: lending history (FLEXEARN_LENDING_HISTORY_DAYS, default 30) and rate
    history (FLEXEARN_RATE_HISTORY_DAYS, default 0: forever)."""


@command(history, "prune")
@click.option("--lending-days", type=int, default=None, help="FLEXEARN_LENDING_HISTORY_DAYS (0: forever).")
@click.option("--rate-days", type=int, default=None, help="FLEXEARN_RATE_HISTORY_DAYS (0: forever).")
def history_prune(ctx: click.Context, app: Flexearn, lending_days: int | None, rate_days: int | None) -> None:
    """Drop history past its retention, behind the latest ledger checkpoint (exit 1 if none holds it).

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
