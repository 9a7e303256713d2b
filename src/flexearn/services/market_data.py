"""Read models of the market: a user's lending history, the public rate history and summary."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.domain.market import MatchingMode, auction_rate, pro_rata_rate
from flexearn.domain.money import ZERO, round_down
from flexearn.services.figures import FigureCache, Figures
from flexearn.services.markets import hour_demand, settings_from_row
from flexearn.services.unit_of_work import UnitOfWork

MONTH_MS = 30 * 24 * HOUR_MS


@dataclass(frozen=True)
class Page:
    """OKX-style paging: `after` = older than, `before` = newer than (timestamps, ms)."""

    after: int | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class LendingRecord:
    ccy: str
    amt: Decimal
    earnings: Decimal
    rate: Decimal
    ts: int


@dataclass(frozen=True)
class RateRecord:
    ccy: str
    lent: Decimal
    borrow_rate: Decimal
    lending_rate: Decimal
    ts: int


@dataclass(frozen=True)
class RateSummary:
    ccy: str
    avg_lent: Decimal
    avg_rate: Decimal
    pre_rate: Decimal
    est_rate: Decimal


def _paged(
    query: sa.Select[Any], ts: sa.ColumnElement[int], tiebreak: sa.ColumnElement[Any], page: Page
) -> sa.Select[Any]:
    if page.after is not None:
        query = query.where(ts < page.after)
    if page.before is not None:
        query = query.where(ts > page.before)
    # `before` alone, as OKX pages: the newest records newer than it (a poller asking "what is new
    # since my last record" gets the latest page), newest first like every page.
    return query.order_by(ts.desc(), tiebreak.desc()).limit(page.limit)


def lending_history(uow: UnitOfWork, user_id: int, ccy: str | None, page: Page) -> list[LendingRecord]:
    """The user's hourly lending records of the past month, newest first."""
    h = t.lending_history
    with uow:
        since = uow.now() - MONTH_MS
        query = sa.select(h.c.ccy, h.c.amt, h.c.earnings, h.c.rate, h.c.ts, h.c.id).where(
            h.c.user_id == user_id, h.c.ts >= since
        )
        # a user's records are his positions' hours: naming their currencies lets SQLite's index,
        # led by the currency (`tables.lending_history`), find them
        p = t.position
        mine = sa.select(p.c.ccy).where(p.c.user_id == user_id)
        query = query.where(h.c.ccy == ccy if ccy is not None else h.c.ccy.in_(mine))
        rows = uow.conn.execute(_paged(query, h.c.ts, h.c.id, page)).all()
    return [LendingRecord(r.ccy, r.amt, r.earnings, r.rate, r.ts) for r in rows]


def rate_history(uow: UnitOfWork, ccy: str | None, page: Page) -> list[RateRecord]:
    """Hourly public rates, newest first; without `ccy`, every row of the page's last hour too."""
    m = t.market_hour
    columns = (m.c.ccy, m.c.lent, m.c.borrow_rate, m.c.pool_rate, m.c.hour)
    with uow:
        query = sa.select(*columns)
        if ccy is not None:
            query = query.where(m.c.ccy == ccy)
        rows = list(uow.conn.execute(_paged(query, m.c.hour, m.c.ccy, page)).all())
        if ccy is None and rows:
            last = rows[-1].hour
            have = {r.ccy for r in rows if r.hour == last}
            rest = uow.conn.execute(
                sa.select(*columns).where(m.c.hour == last, m.c.ccy.not_in(have)).order_by(m.c.ccy.desc())
            ).all()
            rows.extend(rest)
    return [RateRecord(r.ccy, r.lent, r.borrow_rate, r.pool_rate, r.hour) for r in rows]


def rate_summary(uow: UnitOfWork, ccy: str | None, cache: FigureCache | None = None) -> list[RateSummary]:
    """Per market: the 24-hour average and last borrow rate, and the rate the next match would set
    (an auction's from the supply curve, kept in `cache` between changes: see `figures`)."""
    summaries = []
    with uow:
        figures = Figures(uow.conn, cache)
        query = sa.select(t.market).order_by(t.market.c.ccy)
        if ccy is not None:
            query = query.where(t.market.c.ccy == ccy)
        for row in uow.conn.execute(query).all():
            market = settings_from_row(row)
            last_hour = floor_hour(uow.now())
            m = t.market_hour
            recent = uow.conn.execute(
                sa.select(m.c.borrow_rate, m.c.lent, m.c.demand_state, m.c.hour)
                .where(m.c.ccy == market.ccy, m.c.hour > last_hour - 24 * HOUR_MS)
                .order_by(m.c.hour.desc())
            ).all()
            count = Decimal(len(recent)) or Decimal(1)
            avg_rate = sum((r.borrow_rate for r in recent), ZERO) / count
            avg_lent = sum((r.lent for r in recent), ZERO) / count
            places = repo.currency_precision(uow.conn, market.ccy)
            next_hour = (recent[0].hour if recent else market.first_hour - HOUR_MS) + HOUR_MS
            demand = hour_demand(
                market, next_hour, recent[0].demand_state if recent else "", places, uow.conn
            )
            if market.mode is MatchingMode.AUCTION:
                estimate = auction_rate(figures.book(market.ccy).supply, demand.demand, places)
            else:  # r_b, whatever is offered: nothing to read
                estimate = pro_rata_rate(demand.demand, demand.borrow_rate, places)
            summaries.append(
                RateSummary(
                    market.ccy,
                    round_down(avg_lent, places),
                    round_down(avg_rate, 8),
                    recent[0].borrow_rate if recent else ZERO,
                    estimate,
                )
            )
    return summaries
