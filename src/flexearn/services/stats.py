"""A snapshot of the engine per currency, for monitoring: what is lent, pending, paid, at what rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.domain.money import ZERO
from flexearn.services.figures import FigureCache, Figures
from flexearn.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class CurrencyStats:
    ccy: str
    savings: Decimal  # market positions: everything held
    lent: Decimal  # market positions: lent this hour
    pending: Decimal  # market positions: not lent this hour
    interest_paid: Decimal  # market interest paid to lenders, ever
    catalog_held: Decimal  # open catalog holdings
    catalog_interest_paid: Decimal  # catalog interest paid, ever
    borrow_rate: Decimal | None  # of the last settled hour; None before the first
    lending_rate: Decimal | None  # what an eligible offer earns (the wire's lendingRate)
    demand: Decimal | None
    last_hour: int | None  # business time of the last settled hour, ms


@dataclass(frozen=True)
class Snapshot:
    business_now: int
    currencies: list[CurrencyStats]
    last_green_check: int | None = None  # real time (ms) of the latest ledger checkpoint
    open_since: int | None = None  # real time (ms) the oldest period settled in ranges was opened


def reader(engine: sa.Engine, cache: FigureCache | None = None) -> Callable[[], Snapshot]:
    """A snapshot at each call, in a read-only transaction of its own (for /metrics' gauges)."""
    return lambda: snapshot(UnitOfWork(engine, read_only=True), cache)


def snapshot(uow: UnitOfWork, cache: FigureCache | None = None) -> Snapshot:
    """The sums over positions and history come from `cache` between changes (see `figures`)."""
    m = t.market_hour
    with uow:
        conn = uow.conn
        figures = Figures(conn, cache)
        ccys = list(conn.execute(sa.select(t.currency.c.ccy).order_by(t.currency.c.ccy)).scalars())
        books = {ccy: figures.book(ccy) for ccy in ccys}
        totals = figures.totals()
        last = (
            sa.select(m.c.ccy, sa.func.max(m.c.hour).label("hour")).group_by(m.c.ccy).subquery()
        )
        latest = {
            row.ccy: row
            for row in conn.execute(
                sa.select(m.c.ccy, m.c.hour, m.c.borrow_rate, m.c.pool_rate, m.c.demand).join(
                    last, sa.and_(last.c.ccy == m.c.ccy, last.c.hour == m.c.hour)
                )
            )
        }
        now = uow.now()
        checked = conn.execute(sa.select(sa.func.max(t.ledger_checkpoint.c.created_at))).scalar()
        opened = conn.execute(sa.select(sa.func.min(t.settlement_open.c.opened_at))).scalar()
    stats = []
    for ccy in ccys:
        row, book = latest.get(ccy), books[ccy]
        stats.append(
            CurrencyStats(
                ccy=ccy,
                savings=book.amount,
                lent=book.lent,
                pending=book.amount - book.lent,
                interest_paid=totals.interest_paid.get(ccy, ZERO),
                catalog_held=totals.catalog_held.get(ccy, ZERO),
                catalog_interest_paid=totals.catalog_interest_paid.get(ccy, ZERO),
                borrow_rate=None if row is None else row.borrow_rate,
                lending_rate=None if row is None else row.pool_rate,
                demand=None if row is None else row.demand,
                last_hour=None if row is None else int(row.hour),
            )
        )
    return Snapshot(
        now, stats, None if checked is None else int(checked), None if opened is None else int(opened)
    )
