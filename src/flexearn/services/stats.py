"""A snapshot of the engine per currency, for monitoring: what is lent, pending, paid, at what rate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.domain.money import ZERO
from flexearn.services.ledger_check import _sums as exact_sums
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


def snapshot(uow: UnitOfWork) -> Snapshot:
    p, m, h = t.position, t.market_hour, t.holding
    with uow:
        conn = uow.conn
        ccys = list(conn.execute(sa.select(t.currency.c.ccy).order_by(t.currency.c.ccy)).scalars())
        amt = exact_sums(conn, p.c.amt, [p.c.ccy], p)
        loan = exact_sums(conn, p.c.loan, [p.c.ccy], p)
        paid = exact_sums(conn, m.c.interest_paid, [m.c.ccy], m)
        joined = h.join(t.product, t.product.c.id == h.c.product_id)
        held = exact_sums(conn, h.c.amount, [t.product.c.coin], joined, h.c.open.is_(True))
        days = t.product_day.join(t.product, t.product.c.id == t.product_day.c.product_id)
        catalog_paid = exact_sums(conn, t.product_day.c.interest, [t.product.c.coin], days)
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
        row = latest.get(ccy)
        total, lent = amt.get(ccy, ZERO), loan.get(ccy, ZERO)
        stats.append(
            CurrencyStats(
                ccy=ccy,
                savings=total,
                lent=lent,
                pending=total - lent,
                interest_paid=paid.get(ccy, ZERO),
                catalog_held=held.get(ccy, ZERO),
                catalog_interest_paid=catalog_paid.get(ccy, ZERO),
                borrow_rate=None if row is None else row.borrow_rate,
                lending_rate=None if row is None else row.pool_rate,
                demand=None if row is None else row.demand,
                last_hour=None if row is None else int(row.hour),
            )
        )
    return Snapshot(
        now, stats, None if checked is None else int(checked), None if opened is None else int(opened)
    )
