"""Read models for operators (the dashboard): a market's supply curve and its settled hours."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.money import ZERO
from flexearn.services import accounts
from flexearn.services.figures import FigureCache, Figures
from flexearn.services.markets import settings_from_row
from flexearn.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class SupplyStep:
    """Everything offered at one minimum rate, and all offered at or below it."""

    rate: Decimal
    amount: Decimal
    cumulative: Decimal


@dataclass(frozen=True)
class MarketHour:
    """One settled hour: the match for [hour, hour + 1h) and the interest of the hour before."""

    hour: int
    demand: Decimal
    borrow_rate: Decimal
    lending_rate: Decimal  # what an eligible offer earns on its whole amount (OKX `lendingRate`)
    supply: Decimal
    lent: Decimal
    interest_paid: Decimal

    @property
    def pending(self) -> Decimal:
        return self.supply - self.lent


@dataclass(frozen=True)
class MarketDepth:
    ccy: str
    mode: str
    precision: int
    steps: list[SupplyStep]  # by rate, cheapest first
    last: MarketHour | None  # the current hour's match (its demand and clearing rate)


def market_depth(uow: UnitOfWork, ccy: str, cache: FigureCache | None = None) -> MarketDepth:
    """The current supply curve (minimum rate against cumulative amount) and the hour's match; the
    curve comes from `cache` between changes (see `figures`)."""
    with uow:
        figures = Figures(uow.conn, cache)
        market = settings_from_row(repo.market(uow.conn, ccy))
        precision = repo.currency_precision(uow.conn, ccy)
        book = figures.book(ccy)
        last_hour = repo.last_settled_hour(uow.conn, ccy)
        last = _hours(uow.conn, ccy, last_hour, last_hour) if last_hour is not None else []
    steps, total = [], ZERO
    for rate, amount in book.supply:
        total += amount
        steps.append(SupplyStep(rate, amount, total))
    return MarketDepth(ccy, market.mode.value, precision, steps, last[0] if last else None)


def market_hours(uow: UnitOfWork, ccy: str, since: int) -> list[MarketHour]:
    """The settled hours from `since` on, oldest first."""
    with uow:
        repo.currency_precision(uow.conn, ccy)
        return _hours(uow.conn, ccy, since)


def _hours(conn: sa.Connection, ccy: str, since: int, until: int | None = None) -> list[MarketHour]:
    m = t.market_hour
    query = sa.select(
        m.c.hour, m.c.demand, m.c.borrow_rate, m.c.pool_rate, m.c.supply, m.c.lent, m.c.interest_paid
    ).where(m.c.ccy == ccy, m.c.hour >= since)
    if until is not None:
        query = query.where(m.c.hour <= until)
    rows = conn.execute(query.order_by(m.c.hour)).all()
    return [MarketHour(*row) for row in rows]


def find_user(uow: UnitOfWork, ref: str) -> accounts.User:
    """A user by id (digits) or by name."""
    if ref.isdigit():
        return accounts.get_user(uow, int(ref))
    with uow:
        user_id = repo.user_id_by_name(uow.conn, ref)
    return accounts.get_user(uow, user_id)  # a unit of work opens anew each time it is entered
