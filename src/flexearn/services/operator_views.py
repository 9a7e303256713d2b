"""Read models for operators (the dashboard): a market's supply curve and its settled hours, and
what a user's savings earned hour by hour."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.money import HOURS_PER_YEAR, ZERO, mul_div_down
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


@dataclass(frozen=True)
class EarnedHour:
    """What a user's savings in one currency lent during one hour, and the interest it earned."""

    hour: int
    lent: Decimal
    earned: Decimal


@dataclass(frozen=True)
class Earnings:
    """A user's market interest in one currency over the retained lending history."""

    ccy: str
    hours: list[EarnedHour]  # oldest first; only the hours something was lent
    total: Decimal
    realised_apy: Decimal  # interest ÷ amount lent per hour, annualised (RATE_PLACES, cut down)


RATE_PLACES = 8


def user_earnings(uow: UnitOfWork, user_id: int, since: int) -> list[Earnings]:
    """Per currency, the hours from `since` on the user lent something: summed over its positions
    (amounts are summed here, exactly: SQLite keeps them as text). Bounded by the history's
    retention: at most a month of hours per position."""
    h = t.lending_history
    with uow:
        rows = uow.conn.execute(
            sa.select(h.c.ccy, h.c.ts, h.c.amt, h.c.earnings)
            .where(h.c.user_id == user_id, h.c.ts >= since)
            .order_by(h.c.ccy, h.c.ts)
        ).all()
    by_ccy: dict[str, dict[int, tuple[Decimal, Decimal]]] = {}
    for ccy, ts, amt, earned in rows:
        hours = by_ccy.setdefault(ccy, {})
        lent, paid = hours.get(ts, (ZERO, ZERO))
        hours[ts] = (lent + amt, paid + earned)
    out = []
    for ccy, hours in by_ccy.items():
        series = [EarnedHour(ts, lent, earned) for ts, (lent, earned) in hours.items()]
        total = sum((e.earned for e in series), ZERO)
        lent_hours = sum((e.lent for e in series), ZERO)
        apy = mul_div_down(total, Decimal(HOURS_PER_YEAR), lent_hours, RATE_PLACES) if lent_hours else ZERO
        out.append(Earnings(ccy, series, total, apy))
    return out


def find_user(uow: UnitOfWork, ref: str) -> accounts.User:
    """A user by id (digits) or by name."""
    if ref.isdigit():
        return accounts.get_user(uow, int(ref))
    with uow:
        user_id = repo.user_id_by_name(uow.conn, ref)
    return accounts.get_user(uow, user_id)  # a unit of work opens anew each time it is entered
