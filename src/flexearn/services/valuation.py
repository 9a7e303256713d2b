"""What a user holds in each of its accounts, valued at the operator's reference prices.

The prices are those the operator sets for Bitget's Earn `account` totals (`catalog_views.set_price`,
USDT per unit; USDT itself is 1). A currency without a price counts as worth nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO, round_down
from flexearn.services.unit_of_work import UnitOfWork

PLACES = 8  # valuations are rounded down to this many places
Amounts = dict[str, Decimal]  # by currency


@dataclass(frozen=True)
class Holdings:
    funding: Amounts  # available and frozen
    trading: Amounts
    earn: Amounts  # market savings positions and open catalog holdings (with unpaid interest)
    prices: Amounts  # USDT per unit, of the currencies that have a price
    now: int  # business time they were read at


def holdings(uow: UnitOfWork, user_id: int) -> Holdings:
    a, p, h, product = t.account, t.position, t.holding, t.product
    funding: Amounts = defaultdict(Decimal)
    trading: Amounts = defaultdict(Decimal)
    earn: Amounts = defaultdict(Decimal)
    with uow:
        balances = sa.select(a.c.ccy, a.c.kind, a.c.balance).where(a.c.user_id == user_id)
        for ccy, kind, balance in uow.conn.execute(balances).tuples():
            (trading if kind == AccountKind.TRADING.value else funding)[ccy] += balance
        for ccy, amt in uow.conn.execute(sa.select(p.c.ccy, p.c.amt).where(p.c.user_id == user_id)).tuples():
            earn[ccy] += amt
        held = (
            sa.select(product.c.coin, h.c.amount, h.c.accrued)
            .join(product, product.c.id == h.c.product_id)
            .where(h.c.user_id == user_id, h.c.open.is_(True))
        )
        for coin, amount, accrued in uow.conn.execute(held).tuples():
            earn[coin] += amount + accrued
        priced = uow.conn.execute(sa.select(t.reference_price.c.ccy, t.reference_price.c.usdt)).tuples()
        prices = dict(iter(priced))  # iter: a Result has keys(), which dict() would take for a mapping
        now = uow.now()
    prices.setdefault("USDT", Decimal(1))
    return Holdings(dict(funding), dict(trading), dict(earn), prices, now)


def in_usdt(amounts: Amounts, prices: Amounts) -> Decimal:
    """The USDT value of `amounts`, unrounded."""
    return sum((amount * prices.get(ccy, ZERO) for ccy, amount in amounts.items()), ZERO)


def valued(usdt: Decimal, unit_price: Decimal) -> Decimal:
    """A USDT value in a unit worth `unit_price` USDT, rounded down to PLACES."""
    return round_down(usdt / unit_price, PLACES)
