"""Currencies, users and their accounts: deposits and withdrawals, balances."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import clock
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import Level
from flexearn.domain.errors import AlreadyExists, InvalidParameter, NotFound
from flexearn.domain.ledger import WALLETS, AccountKind, AccountRef, transfer
from flexearn.domain.money import MAX_PRECISION, check_places
from flexearn.domain.vocabulary import values
from flexearn.services import earn_wallets
from flexearn.services.unit_of_work import UnitOfWork

LEVELS = values(Level)
DEFAULT_PRECISION = 16
MAX_AMOUNT = 10**20  # far above any real holding; keeps every amount inside NUMERIC(38, 18)


def add_currency(uow: UnitOfWork, ccy: str, precision: int = DEFAULT_PRECISION) -> None:
    if not ccy.isalnum() or not ccy.isupper() or len(ccy) > 16:
        raise InvalidParameter("ccy", "use upper-case letters and digits, e.g. USDT")
    if not 0 <= precision <= MAX_PRECISION:
        raise InvalidParameter("precision", f"must be 0 to {MAX_PRECISION}")
    with uow:
        if uow.conn.execute(sa.select(t.currency.c.ccy).where(t.currency.c.ccy == ccy)).first():
            raise AlreadyExists(f"currency {ccy} exists", param="ccy")
        uow.conn.execute(sa.insert(t.currency).values(ccy=ccy, precision=precision, enabled=True))
        uow.commit()


def create_user(uow: UnitOfWork, name: str, level: str = Level.BEGINNER.value) -> int:
    if level not in LEVELS:
        raise InvalidParameter("level", f"one of {', '.join(LEVELS)}")
    if not name or len(name) > 64:
        raise InvalidParameter("name")
    with uow:
        if uow.conn.execute(sa.select(t.user.c.id).where(t.user.c.name == name)).first():
            raise AlreadyExists(f"user {name} exists", param="name")
        user_id = uow.conn.execute(
            sa.insert(t.user).values(name=name, level=level, created_at=wall_ms()).returning(t.user.c.id)
        ).scalar_one()
        uow.commit()
    return int(user_id)


def check_amount(amount: Decimal, precision: int, param: str = "amt") -> Decimal:
    """A positive amount with no more decimals than the currency allows."""
    if amount <= 0:
        raise InvalidParameter(param, "must be positive")
    if amount >= MAX_AMOUNT:
        raise InvalidParameter(param, f"must be below {MAX_AMOUNT:,}")
    return check_places(amount, precision, param)


def deposit(
    uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal, account: AccountKind = AccountKind.FUNDING
) -> int:
    """Money arriving from outside into one of the user's accounts (funding unless told)."""
    return _external_move(uow, user_id, ccy, amount, "deposit", account)


def withdraw(
    uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal, account: AccountKind = AccountKind.FUNDING
) -> int:
    """Money leaving from one of the user's accounts (funding unless told)."""
    return _external_move(uow, user_id, ccy, amount, "withdrawal", account)


def _external_move(
    uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal, kind: str, account: AccountKind
) -> int:
    if account not in WALLETS:
        raise InvalidParameter("account", " or ".join(k.value for k in WALLETS))
    with uow:
        check_amount(amount, repo.currency_precision(uow.conn, ccy), "amount")
        own = AccountRef(account, ccy, user_id)
        external = AccountRef.system(AccountKind.EXTERNAL, ccy)
        source, target = (external, own) if kind == "deposit" else (own, external)
        entry = transfer(kind, ccy, source, target, amount, ref=f"user:{user_id}")
        entry_id = repo.post(uow.conn, entry, uow.now())
        into_spot = target.kind is AccountKind.FUNDING
        sweep = earn_wallets.auto_products(uow.conn, user_id, ccy) if into_spot else []
        uow.commit()
    if sweep:
        earn_wallets.sweep(uow.engine, user_id, sweep)  # auto-subscribe: a deposit into SPOT, after it
    return entry_id


@dataclass(frozen=True)
class Currency:
    ccy: str
    precision: int


def list_currencies(uow: UnitOfWork) -> list[Currency]:
    with uow:
        rows = uow.conn.execute(
            sa.select(t.currency.c.ccy, t.currency.c.precision)
            .where(t.currency.c.enabled.is_(True))
            .order_by(t.currency.c.ccy)
        ).all()
    return [Currency(row.ccy, row.precision) for row in rows]


@dataclass(frozen=True)
class FundingBalance:
    ccy: str
    available: Decimal
    frozen: Decimal


def funding_balances(uow: UnitOfWork, user_id: int) -> list[FundingBalance]:
    """The user's funding accounts: available (`funding`) and `frozen`, by currency."""
    kinds = (AccountKind.FUNDING.value, AccountKind.FROZEN.value)
    by_ccy: dict[str, dict[str, Decimal]] = {}
    for ccy, kind, balance in _balances(uow, user_id, kinds):
        by_ccy.setdefault(ccy, {})[kind] = balance
    return [
        FundingBalance(ccy, found.get(kinds[0], Decimal(0)), found.get(kinds[1], Decimal(0)))
        for ccy, found in by_ccy.items()
    ]


@dataclass(frozen=True)
class FundingWallet:
    balances: list[FundingBalance]  # every enabled currency, by code: 0 where nothing was held
    now: int  # business time, read with them


# Every enabled currency, with the user's funding and frozen balances in it if any, beside the
# clock's row: one statement, one snapshot (`UnitOfWork.read_alone`: on SQLite, on the event loop).
# The clock is joined first so that the answer has a row even without any currency.
_WALLET = (
    f"SELECT c.ccy, a.kind, a.balance, {', '.join(f'k.{name}' for name in clock.COLUMNS)}"
    " FROM (SELECT 1 AS one) AS one"
    " LEFT JOIN clock AS k ON k.id = 1"
    " LEFT JOIN currency AS c ON c.enabled = :enabled"
    " LEFT JOIN ledger_account AS a"
    " ON a.ccy = c.ccy AND a.user_id = :user_id AND a.kind IN (:funding, :frozen)"
    " ORDER BY c.ccy"
)


def funding_wallet(uow: UnitOfWork, user_id: int) -> FundingWallet:
    """The user's funding balances in every enabled currency, and the business time, in one read
    (Binance's `/api/v3/account`)."""
    funding, frozen = AccountKind.FUNDING.value, AccountKind.FROZEN.value
    params = {"user_id": user_id, "enabled": True, "funding": funding, "frozen": frozen}
    rows = uow.read_alone(_WALLET, params)
    found: dict[str, dict[str | None, Decimal]] = {}
    for ccy, kind, balance, *_clock in rows:
        if ccy is not None:
            found.setdefault(ccy, {})[kind] = Decimal(0) if balance is None else t.exact(balance)
    return FundingWallet(
        [
            FundingBalance(ccy, held.get(funding, Decimal(0)), held.get(frozen, Decimal(0)))
            for ccy, held in found.items()
        ],
        clock.state_of(*rows[0][3:]).now(wall_ms()),  # the columns after c.ccy, a.kind, a.balance
    )


@dataclass(frozen=True)
class TradingBalance:
    ccy: str
    balance: Decimal


def trading_balances(uow: UnitOfWork, user_id: int) -> list[TradingBalance]:
    """The user's trading accounts (OKX's trading account, Bitget's USDT-M futures), by currency."""
    return [
        TradingBalance(ccy, balance)
        for ccy, _kind, balance in _balances(uow, user_id, (AccountKind.TRADING.value,))
    ]


def _balances(uow: UnitOfWork, user_id: int, kinds: tuple[str, ...]) -> list[tuple[str, str, Decimal]]:
    """(ccy, kind, balance) of the user's accounts of `kinds`, by currency: one read straight
    through the driver (`UnitOfWork.read_alone`; on SQLite it may run on the event loop)."""
    named = {f"k{i}": kind for i, kind in enumerate(kinds)}
    rows = uow.read_alone(_balances_sql(len(kinds)), {"user_id": user_id, **named})
    return [(ccy, kind, t.exact(balance)) for ccy, kind, balance in rows]


@functools.cache
def _balances_sql(kinds: int) -> str:
    listed = ", ".join(f":k{i}" for i in range(kinds))
    where = f"user_id = :user_id AND kind IN ({listed})"
    return f"SELECT ccy, kind, balance FROM ledger_account WHERE {where} ORDER BY ccy"


@dataclass(frozen=True)
class User:
    id: int
    name: str
    level: str
    created_at: int


def _user(row: sa.Row[object]) -> User:
    return User(row.id, row.name, row.level, row.created_at)


def list_users(uow: UnitOfWork, *, limit: int = 100, after_id: int = 0) -> list[User]:
    """Users by id, `limit` of them after `after_id` (pages through all users)."""
    with uow:
        rows = uow.conn.execute(
            sa.select(t.user).where(t.user.c.id > after_id).order_by(t.user.c.id).limit(limit)
        ).all()
    return [_user(row) for row in rows]


def get_user(uow: UnitOfWork, user_id: int) -> User:
    with uow:
        row = uow.conn.execute(sa.select(t.user).where(t.user.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user {user_id}", param="user_id")
    return _user(row)
