"""Read models for operators (the dashboard): a market's supply curve and its settled hours, and
what a user's savings earned hour by hour."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.money import HOURS_PER_YEAR, ZERO, exact_add, mul_div_down
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
    """One hour of a user's savings in one currency: what they held, lent and earned."""

    hour: int
    held: Decimal
    lent: Decimal
    earned: Decimal


@dataclass(frozen=True)
class Earnings:
    """A user's market interest in one currency over the retained lending history."""

    ccy: str
    hours: list[EarnedHour]  # oldest first: every settled hour something was held
    total: Decimal
    realised_apy: Decimal  # interest ÷ amount held, per hour, annualised (RATE_PLACES, cut down)


RATE_PLACES = 8


def user_earnings(uow: UnitOfWork, user_id: int, since: int) -> list[Earnings]:
    """Per savings position, each settled hour from `since` on: the amount held, lent and earned.

    The amount held is not stored per hour: it is today's, less what came in after the hour (the
    position's purchases and redemptions in the ledger, the interest of that hour and later ones
    from the lending history, which compounds at the next settlement). Bounded by the lending
    history's retention (at most a month of hours) and the user's own movements in that time.
    """
    h, p, leg, entry = t.lending_history, t.position, t.journal_leg, t.journal_entry
    with uow:
        conn = uow.conn
        positions = conn.execute(sa.select(p.c.id, p.c.ccy, p.c.amt).where(p.c.user_id == user_id)).all()
        ids = [row.id for row in positions]
        records = conn.execute(
            sa.select(h.c.position_id, h.c.ts, h.c.amt, h.c.earnings).where(
                # the positions' currencies: SQLite's index of a user's records is led by them
                h.c.ccy.in_(sorted({row.ccy for row in positions})), h.c.user_id == user_id, h.c.ts >= since
            )
        ).all()
        moves = conn.execute(
            sa.select(leg.c.position_id, entry.c.ts, leg.c.amount)
            .join(entry, entry.c.id == leg.c.entry_id)
            .where(leg.c.position_id.in_(ids), entry.c.ts > since)
        ).all()
        last = {row.ccy: repo.last_settled_hour(conn, row.ccy) for row in positions}
        # history pruned by retention (FLEXEARN_LENDING_HISTORY_DAYS) is unknown, not interest-free
        oldest = conn.execute(sa.select(sa.func.min(h.c.ts))).scalar()
    since = max(since, int(oldest)) if oldest is not None else since
    out = []
    for pid, ccy, amt in sorted(positions, key=lambda row: row.ccy):
        settled = last[ccy]
        if settled is None:
            continue
        lent = {r.ts: (r.amt, r.earnings) for r in records if r.position_id == pid}
        came_in = sorted(((int(m.ts), m.amount) for m in moves if m.position_id == pid), reverse=True)
        hours, held, i = [], amt, 0
        # the last hour whose interest is known: the one the last settlement closed
        for hour in range(settled - HOUR_MS, since - 1, -HOUR_MS):
            while i < len(came_in) and came_in[i][0] > hour:
                held = exact_add(held, -came_in[i][1])
                i += 1
            loan, earned = lent.get(hour, (ZERO, ZERO))
            held = exact_add(held, -earned)  # compounded at the next settlement, after this hour
            if held > 0 or loan > 0:
                hours.append(EarnedHour(hour, held, loan, earned))
        if not hours:
            continue
        hours.reverse()
        total = sum((e.earned for e in hours), ZERO)
        held_hours = sum((e.held for e in hours), ZERO)
        apy = mul_div_down(total, Decimal(HOURS_PER_YEAR), held_hours, RATE_PLACES) if held_hours else ZERO
        out.append(Earnings(ccy, hours, total, apy))
    return out


def find_user(uow: UnitOfWork, ref: str) -> accounts.User:
    """A user by id (digits) or by name."""
    if ref.isdigit():
        return accounts.get_user(uow, int(ref))
    with uow:
        user_id = repo.user_id_by_name(uow.conn, ref)
    return accounts.get_user(uow, user_id)  # a unit of work opens anew each time it is entered
