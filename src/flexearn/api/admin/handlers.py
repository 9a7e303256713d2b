"""Admin handlers: each reads its validated input, calls one service (as the CLI does), shapes it.

They run in the thread pool. A `Call` carries the request already checked against its schema,
so a handler only converts text to decimals and picks the service. Handlers take their units of
work from `call.uow()`, never from the app: for a request with an Idempotency-Key those are
savepoints of the one transaction that also stores the key (see `services/idempotency.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flexearn.adapters.secrets import SecretBox
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import Level, Product
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.errors import NotFound
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO, parse_amount
from flexearn.services import (
    accounts,
    audit,
    catalog,
    catalog_views,
    keys,
    ledger_check,
    markets,
    savings,
    scheduler,
)
from flexearn.services import clock as clock_service
from flexearn.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Call:
    app: Flexearn
    box: SecretBox
    path: Mapping[str, Any]
    query: Mapping[str, Any]
    body: Mapping[str, Any]
    actor: str
    uow: Callable[[], UnitOfWork]  # the request's units of work


def _decimal(call: Call, name: str, default: Decimal | None = None) -> Decimal | None:
    value = call.body.get(name)
    return default if value is None else parse_amount(value, param=name)


# --- results that are not a service's own ---------------------------------------------------------


@dataclass(frozen=True)
class UserDetail:
    user: accounts.User
    funding: list[accounts.FundingBalance]
    trading: list[accounts.TradingBalance]
    savings: list[savings.Position]


@dataclass(frozen=True)
class CreatedKey:
    """The key's secret and passphrase: shown in this answer only."""

    api_key: str
    secret_key: str
    passphrase: str
    key: keys.KeyInfo


@dataclass(frozen=True)
class Movement:
    entry_id: int
    user_id: int
    ccy: str
    amount: Decimal
    kind: str  # deposit or withdrawal
    account: str  # funding or trading


@dataclass(frozen=True)
class LedgerReport:
    ok: bool
    violations: list[str]


# --- users, keys, funds ---------------------------------------------------------------------------


def create_user(call: Call) -> accounts.User:
    user_id = accounts.create_user(
        call.uow(), call.body["name"], call.body.get("level", Level.BEGINNER.value)
    )
    return accounts.get_user(call.uow(), user_id)


def list_users(call: Call) -> list[accounts.User]:
    return accounts.list_users(
        call.uow(), limit=call.query.get("limit", 100), after_id=call.query.get("after_id", 0)
    )


def get_user(call: Call) -> UserDetail:
    user = accounts.get_user(call.uow(), call.path["user_id"])
    funding = accounts.funding_balances(call.uow(), user.id)
    trading = accounts.trading_balances(call.uow(), user.id)
    return UserDetail(user, funding, trading, savings.positions(call.uow(), user.id))


def create_key(call: Call) -> CreatedKey:
    user = accounts.get_user(call.uow(), call.path["user_id"])
    new = keys.create_key(
        call.uow(),
        call.box,
        user.id,
        ",".join(call.body["permissions"]),
        ",".join(call.body.get("ips", [])),
        call.body.get("expires_days"),
        call.body.get("passphrase"),
        facades=",".join(call.body.get("facades", keys.FACADES)),
    )
    (info,) = [k for k in keys.list_keys(call.uow(), user.id) if k.api_key == new.api_key]
    return CreatedKey(new.api_key, new.secret_key, new.passphrase, info)


def list_keys(call: Call) -> list[keys.KeyInfo]:
    user = accounts.get_user(call.uow(), call.path["user_id"])
    return keys.list_keys(call.uow(), user.id)


def revoke_key(call: Call) -> keys.KeyInfo:
    return keys.revoke_key(call.uow(), call.path["api_key"])


def _move(call: Call, kind: str) -> Movement:
    user = accounts.get_user(call.uow(), call.path["user_id"])
    ccy, amount = call.body["ccy"], parse_amount(call.body["amount"], param="amount")
    account = AccountKind(call.body.get("account", AccountKind.FUNDING.value))
    service = accounts.deposit if kind == "deposit" else accounts.withdraw
    entry_id = service(call.uow(), user.id, ccy, amount, account)
    return Movement(entry_id, user.id, ccy, amount, kind, account.value)


def deposit(call: Call) -> Movement:
    return _move(call, "deposit")


def withdraw(call: Call) -> Movement:
    return _move(call, "withdrawal")


# --- currencies, markets, demand ------------------------------------------------------------------


def add_currency(call: Call) -> accounts.Currency:
    precision = call.body.get("precision", accounts.DEFAULT_PRECISION)
    accounts.add_currency(call.uow(), call.body["ccy"], precision)
    return accounts.Currency(call.body["ccy"], precision)


def list_currencies(call: Call) -> list[accounts.Currency]:
    return accounts.list_currencies(call.uow())


def list_markets(call: Call) -> list[markets.MarketSettings]:
    return markets.list_markets(call.uow())


def set_market(call: Call) -> markets.MarketSettings:
    raw = call.body.get("simulation")
    simulation = None
    if raw is not None:
        floats = {k: float(v) for k, v in raw.items() if k not in ("mean", "base_rate", "seed")}
        simulation = SimulatedDemand(
            mean=parse_amount(raw["mean"], param="simulation.mean"),
            base_rate=parse_amount(raw.get("base_rate", "0.05"), param="simulation.base_rate"),
            seed=raw.get("seed", 0),
            **floats,
        )
    return markets.set_market(
        call.uow(),
        call.path["ccy"],
        mode=call.body.get("mode"),
        demand=_decimal(call, "demand"),
        borrow_rate=_decimal(call, "borrow_rate"),
        insurance_fee=_decimal(call, "insurance_fee"),
        demand_source=call.body.get("demand_source"),
        simulation=simulation,
    )


def post_demand(call: Call) -> markets.DemandPost:
    return markets.post_demand(
        call.uow(),
        call.path["ccy"],
        call.body["hour"],
        parse_amount(call.body["demand"], param="demand"),
        _decimal(call, "borrow_rate", ZERO) or ZERO,
        posted_by=call.actor,
    )


def demand_posts(call: Call) -> list[markets.DemandPost]:
    return markets.demand_posts(call.uow(), call.path["ccy"], limit=call.query.get("limit", 100))


# --- catalog products and prices ------------------------------------------------------------------


def create_product(call: Call) -> Product:
    return catalog.create_product(call.uow(), product_spec.parse(call.body))


def update_product(call: Call) -> Product:
    return catalog.update_product(call.uow(), call.path["product_id"], product_spec.parse(call.body))


def set_product_status(call: Call) -> Product:
    status = product_spec.operator_status(call.body["status"])
    return catalog.set_status(call.uow(), call.path["product_id"], status)


def list_products(call: Call) -> list[catalog.ProductView]:
    return catalog.list_products(call.uow(), None, call.query.get("coin"), "all")


def set_price(call: Call) -> catalog_views.Price:
    ccy = call.path["ccy"]
    catalog_views.set_price(call.uow(), ccy, parse_amount(call.body["usdt"], param="usdt"))
    found = [p for p in catalog_views.prices(call.uow()) if p.ccy == ccy]
    if not found:  # the currency was disabled in between
        raise NotFound(f"no price of {ccy}", param="ccy")
    return found[0]


def list_prices(call: Call) -> list[catalog_views.Price]:
    return catalog_views.prices(call.uow())


# --- clock, settlement, ledger, audit -------------------------------------------------------------


def show_clock(call: Call) -> clock_service.ClockView:
    return clock_service.show(call.uow())


def set_clock_speed(call: Call) -> clock_service.ClockView:
    return clock_service.set_speed(call.uow(), parse_amount(call.body["speed"], param="speed"))


# Settlement opens transactions of its own, so these routes run in two parts: the handler's change
# in the request's transaction, then (`AdminRoute.after`) the settlement, which is safe to repeat.


def move_clock(call: Call) -> None:
    """What `clock_service.advance` does first, in the request's transaction."""
    clock_service.move(call.uow(), call.body["hours"])


def settle_and_show_clock(call: Call) -> clock_service.Advanced:
    settled = scheduler.settle_all_due(call.app.engine)
    return clock_service.Advanced(clock_service.show(call.uow()), settled)


def nothing(call: Call) -> None:
    """No change of its own before `after` runs."""


def settle(call: Call) -> scheduler.Settled:
    return scheduler.settle_all_due(call.app.engine)


def check_ledger(call: Call) -> LedgerReport:
    violations = ledger_check.check(call.uow())
    return LedgerReport(not violations, violations)


def audit_log(call: Call) -> list[audit.AuditEntry]:
    query = call.query
    return audit.entries(call.uow(), limit=query.get("limit", 100), before_id=query.get("before_id"))
