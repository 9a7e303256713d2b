"""Users' catalog trading (SPEC §3): subscriptions (funding → holding) and redemptions (holding →
funding, after the product's delay), and looking up an order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import DAY_MS, Level, PeriodType, Product, check_redemption_pace
from flexearn.domain.catalog_errors import OrderIdRequired, SubscriptionUnfunded
from flexearn.domain.catalog_redemption import Redemption, redemption, redemption_entry
from flexearn.domain.earn_wallets import Split, Wallet, split
from flexearn.domain.errors import InsufficientBalance, NotFound
from flexearn.domain.ledger import AccountKind, AccountRef, transfer, wallet_move
from flexearn.domain.money import ZERO, exact_add
from flexearn.services import gate
from flexearn.services.catalog_rows import (
    Order,
    insert_order,
    load_product,
    order_from_row,
    quota_held,
    record_wallet,
)
from flexearn.services.unit_of_work import UnitOfWork

FUNDING, TRADING = AccountKind.FUNDING, AccountKind.TRADING


@gate.waits_for_settlement
def subscribe(
    uow: UnitOfWork,
    user_id: int,
    product_id: int,
    period_type: str,
    amount: Decimal,
    source: Wallet = Wallet.FUNDING,
) -> Order:
    """Funding → holding. Flexible subscriptions add to the user's one holding; fixed ones open their own."""
    with uow:
        order = subscribe_in(uow.conn, uow.now(), user_id, product_id, period_type, amount, source)
        uow.commit()
    return order


def subscribe_in(
    conn: sa.Connection,
    now: int,
    user_id: int,
    product_id: int,
    period_type: str,
    amount: Decimal,
    source: Wallet = Wallet.FUNDING,
    *,
    auto: bool = False,
) -> Order:
    """`subscribe` in the caller's transaction. The part of `amount` that `source` takes from the
    trading account moves to funding first, booked as a transfer, so that the subscription itself
    is always funding → holding; anything refused raises before the caller commits, so nothing
    moves. An order from other than funding alone, or made by auto-subscribe, records its wallets."""
    product = load_product(conn, product_id, lock=True)  # serialises the quota
    product.check_period_type(period_type)
    level_row = conn.execute(
        sa.select(t.user.c.level).where(t.user.c.id == user_id).with_for_update()
    ).scalar()
    if level_row is None:
        raise NotFound(f"no user {user_id}", param="user")
    product.check_subscription(
        amount, now, quota_held(conn, product), Level(level_row), repo.currency_precision(conn, product.coin)
    )
    schedule = product.schedule(now)
    holding_id = None
    if product.period_type is PeriodType.FLEXIBLE:
        holding_id = conn.execute(
            sa.select(t.holding.c.id)
            .where(
                t.holding.c.user_id == user_id,
                t.holding.c.product_id == product_id,
                t.holding.c.open.is_(True),
            )
            .with_for_update()
        ).scalar()
    if holding_id is None:
        holding_id = conn.execute(
            sa.insert(t.holding)
            .values(
                user_id=user_id,
                product_id=product_id,
                amount=ZERO,
                accrued=ZERO,
                total_profit=ZERO,
                last_profit=ZERO,
                subscribed_at=now,
                interest_time=schedule.interest_time,
                expire_time=schedule.expire_time,
                open=True,
            )
            .returning(t.holding.c.id)
        ).scalar_one()
    earn = AccountRef.system(AccountKind.EARN, product.coin)
    funding = AccountRef.funding(user_id, product.coin)
    available = repo.balance(conn, funding, lock=True) if source is Wallet.ALL else ZERO
    parts = split(source, amount, available)
    try:
        if parts.trading:
            repo.post(conn, wallet_move(user_id, product.coin, parts.trading, TRADING, FUNDING), now)
        repo.post(
            conn,
            transfer(
                "subscribe",
                product.coin,
                funding,
                earn,
                amount,
                ref=f"product:{product_id}",
                holding_id=holding_id,
            ),
            now,
        )
    except InsufficientBalance as short:
        raise SubscriptionUnfunded(short.message.partition(": ")[2]) from None
    conn.execute(
        sa.update(t.holding)
        .where(t.holding.c.id == holding_id)
        .values(amount=exact_add(_amount(conn, holding_id), amount))
    )
    if level_row == Level.BEGINNER.value:
        conn.execute(sa.update(t.user).where(t.user.c.id == user_id).values(level=Level.NORMAL.value))
    order = insert_order(
        conn,
        user_id=user_id,
        product_id=product_id,
        holding_id=holding_id,
        order_type="subscribe",
        amount=amount,
        status="success",
        ts=now,
        arrive_at=None,
    )
    if source is not Wallet.FUNDING or auto:
        record_wallet(conn, order.id, source, parts, auto=auto)
    return order


def _amount(conn: sa.Connection, holding_id: int) -> Decimal:
    value: Decimal = conn.execute(
        sa.select(t.holding.c.amount).where(t.holding.c.id == holding_id)
    ).scalar_one()
    return value


@gate.waits_for_settlement
def redeem(
    uow: UnitOfWork,
    user_id: int,
    product_id: int,
    period_type: str,
    amount: Decimal,
    order_id: int | None = None,
    *,
    at: int | None = None,
    to: Wallet = Wallet.FUNDING,
) -> Order:
    """Holding → funding, after the product's redemption delay (processing until then).

    A user's redemptions are more than a minute apart on the wall clock (`at`, now by default),
    whatever the product. A fixed holding (named by its subscription `orderId`) is redeemed whole,
    only where early redemption is allowed; interest already paid comes back out of the principal
    as a deduction. `to`: the account it pays into, funding unless the user chose trading.
    """
    with uow:
        conn, now = uow.conn, uow.now()
        product = load_product(conn, product_id, lock=True)
        product.check_period_type(period_type)
        wall = wall_ms() if at is None else at
        last = conn.execute(
            sa.select(t.user.c.last_redeem_at).where(t.user.c.id == user_id).with_for_update()
        ).scalar()
        check_redemption_pace(last, wall)
        h = t.holding
        query = sa.select(h).where(h.c.user_id == user_id, h.c.product_id == product_id, h.c.open.is_(True))
        if product.period_type is PeriodType.FIXED:
            if order_id is None:
                raise OrderIdRequired()
            holding_of = sa.select(t.earn_order.c.holding_id).where(
                t.earn_order.c.id == order_id,
                t.earn_order.c.user_id == user_id,
                t.earn_order.c.order_type == "subscribe",
            )
            query = query.where(h.c.id.in_(holding_of.scalar_subquery()))
        row = conn.execute(query.with_for_update()).first()
        currency_places = repo.currency_precision(conn, product.coin)
        if row is None:
            product.check_redemption(amount, amount, currency_places)  # a malformed amount first
            raise NotFound("no holding to redeem", param="orderId" if order_id else "productId")
        product.check_redemption(amount, row.amount, currency_places)
        taken = redemption(product, amount, row.amount, row.total_profit, row.accrued)
        order = _release(conn, product, row, taken, now, user_id, to)
        conn.execute(sa.update(t.user).where(t.user.c.id == user_id).values(last_redeem_at=wall))
        uow.commit()
    return order


def _release(
    conn: sa.Connection, product: Product, row: Any, taken: Redemption, now: int, user_id: int, to: Wallet
) -> Order:
    """Take the redemption out of a holding: to the user's `to` account now, or to `redeeming`
    until the delay passes (the order's wallet row says where it then arrives)."""
    if to is Wallet.ALL:
        raise ValueError("a redemption pays into one account")
    hid = row.id
    repo.post(conn, redemption_entry(product, hid, user_id, taken, AccountKind(to.value)), now)
    remaining = row.amount - taken.amount
    conn.execute(
        sa.update(t.holding)
        .where(t.holding.c.id == hid)
        .values(amount=remaining, accrued=row.accrued - taken.forfeited, open=remaining > 0)
    )
    delayed = product.redeem_delay_days > 0
    arrive = now + product.redeem_delay_days * DAY_MS
    base = {"user_id": user_id, "product_id": product.id, "holding_id": hid, "ts": now}
    order = insert_order(
        conn,
        **base,
        order_type="redeem",
        amount=taken.amount,
        status="processing" if delayed else "success",
        arrive_at=arrive,
    )
    if to is Wallet.TRADING:
        record_wallet(conn, order.id, to, Split(ZERO, taken.paid_out))
    if taken.deduction > 0:
        insert_order(
            conn, **base, order_type="deduction", amount=taken.deduction, status="success", arrive_at=None
        )
    return order


def order_of(uow: UnitOfWork, user_id: int, order_id: int, order_type: str) -> Order:
    with uow:
        row = uow.conn.execute(
            sa.select(t.earn_order).where(
                t.earn_order.c.id == order_id,
                t.earn_order.c.user_id == user_id,
                t.earn_order.c.order_type == order_type,
            )
        ).first()
    if row is None:
        raise NotFound(f"no {order_type} order {order_id}", param="orderId")
    return order_from_row(row)
