"""Auto-subscribe (Binance's `flexible/setAutoSubscribe`): a user's funding balance (Binance's
SPOT wallet) of a flexible product's coin, swept into the product.

Binance: "The Auto-Subscribe function helps you automatically subscribe to Simple Earn products
using assets from your Spot Wallet. This is a great way to compound your daily rewards" (its
Simple Earn Flexible FAQ; docs/fidelity.md). So the sweep runs where money arrives in funding: in
the same transaction as a deposit or a transfer into funding (`services/accounts.py`,
`services/transfers.py`), and after the catalog days are distributed (`services/scheduler.py`),
which pays their interest into funding. It subscribes what the product takes now
(`domain/earn_wallets.sweepable`) and skips silently what it cannot, as an exchange does.

A sweep is never part of the money's arrival: it runs right after the deposit or transfer has
committed, one transaction per product, so a deposit or transfer never waits for, or fails on, a
sweep. Each takes its locks in the order a subscription does (the product, then the user, then
the funding balance), and skips a product that another transaction holds (a day being settled:
PostgreSQL's SKIP LOCKED) or whose day is being settled in ranges; the next sweep takes it. A
sweep that fails all the same (the funding balance spent meanwhile, the database away) is logged
and left.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.catalog import Level, PeriodType
from flexearn.domain.earn_wallets import Wallet, sweepable
from flexearn.domain.errors import FlexearnError
from flexearn.domain.ledger import AccountRef
from flexearn.services import gate
from flexearn.services.catalog_rows import Order, load_product, quota_held
from flexearn.services.catalog_trading import subscribe_in
from flexearn.services.unit_of_work import UnitOfWork

FLEXIBLE = PeriodType.FLEXIBLE.value
log = logging.getLogger("flexearn.earn")


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


def auto_products(conn: sa.Connection, user_id: int, ccy: str | None = None) -> list[int]:
    """The user's products with auto-subscribe on (of `ccy`, or of every coin), lowest id first:
    read in the caller's transaction, so that money arriving for a user without any costs no
    connection or transaction of its own (and none is asked for while the caller's is open)."""
    a, p = t.auto_subscribe, t.product
    query = (
        sa.select(a.c.product_id)
        .join(p, p.c.id == a.c.product_id)
        .where(a.c.user_id == user_id)
        .order_by(a.c.product_id)
    )
    if ccy is not None:
        query = query.where(p.c.coin == ccy)
    return list(conn.execute(query).scalars())


def sweep(engine: sa.Engine, user_id: int, products: list[int]) -> int:
    """Sweep the user's funding balance into `products` (`auto_products`), each in a transaction
    of its own; the orders made."""
    made = 0
    for product_id in products:
        try:
            with UnitOfWork(engine) as uow:
                made += _sweep_one(uow.conn, uow.now(), user_id, product_id)
                uow.commit()
        except (FlexearnError, sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            log.warning("auto-subscribe of user %s into product %s skipped: %s", user_id, product_id, error)
    return made


def _sweep_one(conn: sa.Connection, now: int, user_id: int, product_id: int) -> int:
    """One product's sweep, in the caller's transaction: 1 if it subscribed, else 0."""
    taken = conn.execute(
        sa.select(t.product.c.id).where(t.product.c.id == product_id).with_for_update(skip_locked=True)
    ).first()
    if taken is None or gate.open_period(conn, gate.DAY, product_id) is not None:
        return 0  # a day being settled: the next sweep takes it
    product = load_product(conn, product_id, gated=False)
    level = conn.execute(
        sa.select(t.user.c.level).where(t.user.c.id == user_id).with_for_update()
    ).scalar_one()
    available = repo.balance(conn, AccountRef.funding(user_id, product.coin), lock=True)
    places = repo.currency_precision(conn, product.coin)
    amount = sweepable(product, available, now, quota_held(conn, product), Level(level), places)
    if not amount:
        return 0
    subscribe_in(conn, now, user_id, product_id, FLEXIBLE, amount, auto=True)
    return 1


def sweep_all(engine: sa.Engine) -> int:
    """Sweep every user with auto-subscribe on; the orders made."""
    with UnitOfWork(engine, read_only=True) as uow:
        users = uow.conn.execute(sa.select(t.auto_subscribe.c.user_id).distinct()).scalars().all()
        products = {user_id: auto_products(uow.conn, user_id) for user_id in sorted(users)}
    return sum(sweep(engine, user_id, on) for user_id, on in products.items())
