"""Auto-subscribe (Binance's `flexible/setAutoSubscribe`): a user's funding balance (Binance's
SPOT wallet) of a flexible product's coin, swept into the product.

Binance: "The Auto-Subscribe function helps you automatically subscribe to Simple Earn products
using assets from your Spot Wallet. This is a great way to compound your daily rewards" (its
Simple Earn Flexible FAQ; docs/fidelity.md). So the sweep runs where money arrives in funding: in
the same transaction as a deposit or a transfer into funding (`services/accounts.py`,
`services/transfers.py`), and after the catalog days are distributed (`services/scheduler.py`),
which pays their interest into funding. It subscribes what the product takes now
(`domain/earn_wallets.sweepable`) and skips silently what it cannot, as an exchange does; a
product whose day is being settled in ranges is skipped too (the next sweep takes it), so a
deposit or transfer never waits for, or fails on, a sweep.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.catalog import Level, PeriodType
from flexearn.domain.earn_wallets import Wallet, sweepable
from flexearn.domain.ledger import AccountRef
from flexearn.services import gate
from flexearn.services.catalog_rows import Order, held, load_product
from flexearn.services.catalog_trading import subscribe_in
from flexearn.services.unit_of_work import UnitOfWork

FLEXIBLE = PeriodType.FLEXIBLE.value


def set_auto_subscribe(uow: UnitOfWork, user_id: int, product_id: int, on: bool) -> None:
    """Turn auto-subscribe of a flexible product on or off for the user (nothing is swept now:
    the next money to arrive in funding, or the next day's distribution, is)."""
    with uow:
        load_product(uow.conn, product_id).check_period_type(FLEXIBLE)
        set_in(uow.conn, uow.now(), user_id, product_id, on)
        uow.commit()


def set_in(conn: sa.Connection, now: int, user_id: int, product_id: int, on: bool) -> None:
    """`set_auto_subscribe` in the caller's transaction, for a product it has checked."""
    a = t.auto_subscribe
    if on:
        repo.insert_ignore(conn, a, {"user_id": user_id, "product_id": product_id, "since": now})
    else:
        conn.execute(sa.delete(a).where(a.c.user_id == user_id, a.c.product_id == product_id))


@gate.waits_for_settlement
def subscribe(
    uow: UnitOfWork,
    user_id: int,
    product_id: int,
    amount: Decimal,
    source: Wallet,
    auto_subscribe: bool,
) -> Order:
    """A flexible subscription that also sets the product's auto-subscribe, as Binance's
    `flexible/subscribe` does (`autoSubscribe`, "default true"), in one transaction."""
    with uow:
        conn, now = uow.conn, uow.now()
        order = subscribe_in(conn, now, user_id, product_id, FLEXIBLE, amount, source)
        set_in(conn, now, user_id, product_id, auto_subscribe)
        uow.commit()
    return order


def products_on(uow: UnitOfWork, user_id: int) -> set[int]:
    """The user's products with auto-subscribe on."""
    a = t.auto_subscribe
    with uow:
        return set(uow.conn.execute(sa.select(a.c.product_id).where(a.c.user_id == user_id)).scalars())


def sweep(conn: sa.Connection, now: int, user_id: int, ccy: str | None = None) -> list[Order]:
    """Sweep the user's funding balance (of `ccy`, or of every coin) into its auto-subscribed
    products, lowest product id first, in the caller's transaction; the orders made."""
    a, p = t.auto_subscribe, t.product
    query = (
        sa.select(a.c.product_id)
        .join(p, p.c.id == a.c.product_id)
        .where(a.c.user_id == user_id)
        .order_by(a.c.product_id)
    )
    if ccy is not None:
        query = query.where(p.c.coin == ccy)
    made = []
    for product_id in conn.execute(query).scalars().all():
        product = load_product(conn, product_id, lock=True, gated=False)
        if gate.open_period(conn, gate.DAY, product_id) is not None:
            continue  # being settled in ranges: the next sweep takes it
        level = conn.execute(sa.select(t.user.c.level).where(t.user.c.id == user_id)).scalar_one()
        available = repo.balance(conn, AccountRef.funding(user_id, product.coin), lock=True)
        places = repo.currency_precision(conn, product.coin)
        amount = sweepable(product, available, now, held(conn, product_id), Level(level), places)
        if amount:
            made.append(subscribe_in(conn, now, user_id, product_id, FLEXIBLE, amount, auto=True))
    return made


def sweep_all(engine: sa.Engine) -> int:
    """Sweep every user with auto-subscribe on, one transaction each; the orders made."""
    with UnitOfWork(engine, read_only=True) as uow:
        users = uow.conn.execute(sa.select(t.auto_subscribe.c.user_id).distinct()).scalars().all()
    made = 0
    for user_id in sorted(users):
        with UnitOfWork(engine) as uow:
            made += len(sweep(uow.conn, uow.now(), user_id))
            uow.commit()
    return made
