"""Read models of catalog holdings: records, order results, assets, account totals, reference prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import DAY_MS, OrderType, PeriodType, Product
from flexearn.domain.errors import InvalidParameter, MissingParameter, NotFound
from flexearn.domain.money import ZERO, round_down
from flexearn.domain.vocabulary import values
from flexearn.services import catalog_rows
from flexearn.services.catalog_rows import Order, OrderWallet, load_product
from flexearn.services.unit_of_work import UnitOfWork

ORDER_TYPES = values(OrderType)
MAX_SPAN_MS = 90 * DAY_MS


@dataclass(frozen=True)
class Record:
    order_id: int
    product: Product
    order_type: str
    amount: Decimal
    status: str
    ts: int
    holding_id: int | None = None


def _products_of(user_id: int) -> sa.Select[tuple[int]]:
    """The products the user has held: every order is a holding's, with its user and product.
    Naming them lets SQLite's index of orders, led by the product (`tables.earn_order`), find a
    user's."""
    h = t.holding
    return sa.select(h.c.product_id).where(h.c.user_id == user_id)


def records(
    uow: UnitOfWork,
    user_id: int,
    period_type: str,
    order_type: str | None = None,
    coin: str | None = None,
    start: int | None = None,
    end: int | None = None,
    limit: int = 20,
    id_less_than: int | None = None,
) -> tuple[list[Record], int | None]:
    """The user's orders, newest first, within at most three months; and the id to page on."""
    if period_type not in (PeriodType.FLEXIBLE, PeriodType.FIXED):
        raise InvalidParameter("periodType", "flexible or fixed")
    if order_type is not None and order_type not in ORDER_TYPES:
        raise InvalidParameter("orderType", f"one of {', '.join(ORDER_TYPES)}")
    o, p = t.earn_order, t.product
    with uow:
        now = uow.now()
        end = end if end is not None else (start + MAX_SPAN_MS if start is not None else now)
        start = start if start is not None else end - MAX_SPAN_MS
        if end < start or end - start > MAX_SPAN_MS:
            raise InvalidParameter("endTime", "at most three months after startTime")
        query = (
            sa.select(o.c.id, o.c.product_id, o.c.order_type, o.c.amount, o.c.status, o.c.ts, o.c.holding_id)
            .join(p, p.c.id == o.c.product_id)
            .where(
                o.c.product_id.in_(_products_of(user_id)),
                o.c.user_id == user_id,
                p.c.period_type == period_type,
                o.c.ts >= start,
                o.c.ts <= end,
            )
            .order_by(o.c.id.desc())
            .limit(limit)
        )
        if order_type:
            query = query.where(o.c.order_type == order_type)
        if coin:
            query = query.where(p.c.coin == coin.upper())
        if id_less_than is not None:
            query = query.where(o.c.id < id_less_than)
        rows = uow.conn.execute(query).all()
        products = {pid: load_product(uow.conn, pid) for pid in {r.product_id for r in rows}}
    result = [
        Record(r.id, products[r.product_id], r.order_type, r.amount, r.status, r.ts, r.holding_id)
        for r in rows
    ]
    return result, (result[-1].order_id if result else None)


def order_wallets(uow: UnitOfWork, order_ids: list[int]) -> dict[int, OrderWallet]:
    """Where these orders took their money from or paid it to, for those not funding's alone."""
    with uow:
        return catalog_rows.order_wallets(uow.conn, order_ids)


def first_subscriptions(uow: UnitOfWork, holding_ids: list[int]) -> dict[int, int]:
    """Each holding's first subscription order id: a fixed holding's name (Binance's `positionId`)."""
    o, ids = t.earn_order, sorted(set(holding_ids))
    found: dict[int, int] = {}
    with uow:
        for start in range(0, len(ids), repo.KEY_CHUNK):  # within the databases' bound parameters
            rows = uow.conn.execute(
                sa.select(o.c.holding_id, sa.func.min(o.c.id))
                .where(o.c.holding_id.in_(ids[start : start + repo.KEY_CHUNK]), o.c.order_type == "subscribe")
                .group_by(o.c.holding_id)
            )
            found.update({holding: order for holding, order in rows})  # noqa: C416 (Row, not tuple)
    return found


def subscription(
    uow: UnitOfWork, user_id: int, period_type: str, order_id: int | None, product_id: int | None
) -> Order:
    """What `subscribe-result` reports on. Bitget documents `productId` and `periodType` as its
    parameters (and its own example sends `orderId`): the subscription `order_id` (of `product_id`
    when both are given), else the user's latest subscription to `product_id`."""
    if order_id is None and product_id is None:
        raise MissingParameter("productId")
    o = t.earn_order
    where = [o.c.user_id == user_id, o.c.order_type == "subscribe"]
    where += [] if order_id is None else [o.c.id == order_id]
    where += [] if product_id is None else [o.c.product_id == product_id]
    with uow:
        row = uow.conn.execute(sa.select(o).where(*where).order_by(o.c.id.desc()).limit(1)).first()
        if row is None:
            named = f"order {order_id}" if order_id is not None else f"to product {product_id}"
            raise NotFound(f"no subscription {named}", param="orderId" if order_id else "productId")
        return _of_period(uow.conn, Order(**row._mapping), period_type)


def redemption(uow: UnitOfWork, user_id: int, period_type: str, order_id: int) -> Order:
    """What `redeem-result` reports on: the redemption `order_id`; or, since Bitget describes the
    parameter as the "subscription order ID", the latest redemption of the holding that the
    subscription `order_id` opened."""
    o = t.earn_order
    with uow:
        named = uow.conn.execute(sa.select(o).where(o.c.id == order_id, o.c.user_id == user_id)).first()
        row = named if named is not None and named.order_type == "redeem" else None
        if named is not None and named.order_type == "subscribe":
            row = uow.conn.execute(
                sa.select(o)
                .where(o.c.holding_id == named.holding_id, o.c.order_type == "redeem")
                .order_by(o.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            raise NotFound(f"no redemption of order {order_id}", param="orderId")
        return _of_period(uow.conn, Order(**row._mapping), period_type)


def _of_period(conn: sa.Connection, order: Order, period_type: str) -> Order:
    product = load_product(conn, order.product_id)
    if product.period_type.value != period_type:
        raise InvalidParameter("periodType", f"order {order.id} is {product.period_type.value}")
    return order


@dataclass(frozen=True)
class Asset:
    holding_id: int
    order_id: int | None  # fixed holdings: their subscription
    product: Product
    amount: Decimal
    last_profit: Decimal
    total_profit: Decimal
    hold_days: int
    status: str  # holding / redeeming
    allow_redemption: bool


def assets(uow: UnitOfWork, user_id: int, period_type: str, coin: str | None = None) -> list[Asset]:
    if period_type not in (PeriodType.FLEXIBLE, PeriodType.FIXED):
        raise InvalidParameter("periodType", "flexible or fixed")
    h, o, p = t.holding, t.earn_order, t.product
    with uow:
        now = uow.now()
        query = (
            sa.select(h, sa.func.min(o.c.id).label("order_id"))
            .join(p, p.c.id == h.c.product_id)
            .join(o, sa.and_(o.c.holding_id == h.c.id, o.c.order_type == "subscribe"))
            .where(h.c.user_id == user_id, h.c.open.is_(True), p.c.period_type == period_type)
            .group_by(*h.c)
            .order_by(h.c.id)
        )
        if coin:
            query = query.where(p.c.coin == coin.upper())
        rows = uow.conn.execute(query).all()
        products = {pid: load_product(uow.conn, pid) for pid in {r.product_id for r in rows}}
    out = []
    for r in rows:
        product = products[r.product_id]
        fixed = product.period_type is PeriodType.FIXED
        out.append(
            Asset(
                r.id,
                r.order_id if fixed else None,
                product,
                r.amount,
                r.last_profit,
                r.total_profit,
                max(0, (now - r.interest_time) // DAY_MS + 1) if now >= r.interest_time else 0,
                "holding",
                (not fixed) or product.advance_redeem,
            )
        )
    return out


@dataclass(frozen=True)
class RewardTotals:
    """A holding's rewards by kind (Binance's flexible model): REALTIME (`pay_interest`) and BONUS
    (`pay_bonus`), in all and within the last day."""

    realtime: Decimal = ZERO
    bonus: Decimal = ZERO
    last_day_realtime: Decimal = ZERO


REWARD_ORDERS = (OrderType.PAY_INTEREST.value, OrderType.PAY_BONUS.value)


def reward_totals(uow: UnitOfWork, holding_ids: list[int]) -> dict[int, RewardTotals]:
    """The rewards of each of `holding_ids`, from their orders (one query; summed here, as amounts
    are text on SQLite)."""
    o = t.earn_order
    totals: dict[int, RewardTotals] = {}
    if not holding_ids:
        return totals
    with uow:
        since = uow.now() - DAY_MS
        rows = uow.conn.execute(
            sa.select(o.c.holding_id, o.c.order_type, o.c.amount, o.c.ts).where(
                o.c.holding_id.in_(holding_ids), o.c.order_type.in_(REWARD_ORDERS)
            )
        ).all()
    for holding_id, order_type, amount, ts in rows:
        was = totals.get(holding_id, RewardTotals())
        realtime = order_type == OrderType.PAY_INTEREST
        totals[holding_id] = RewardTotals(
            was.realtime + (amount if realtime else ZERO),
            was.bonus + (ZERO if realtime else amount),
            was.last_day_realtime + (amount if realtime and ts > since else ZERO),
        )
    return totals


def set_price(uow: UnitOfWork, ccy: str, usdt: Decimal) -> None:
    """The operator's reference price of `ccy` in USDT, for account totals."""
    if usdt <= 0:
        raise InvalidParameter("price", "must be positive")
    with uow:
        repo.currency_precision(uow.conn, ccy)
        repo.insert_ignore(uow.conn, t.reference_price, {"ccy": ccy, "usdt": usdt, "updated_at": wall_ms()})
        uow.conn.execute(
            sa.update(t.reference_price)
            .where(t.reference_price.c.ccy == ccy)
            .values(usdt=usdt, updated_at=wall_ms())
        )
        uow.commit()


@dataclass(frozen=True)
class AccountTotals:
    btc_amount: Decimal
    usdt_amount: Decimal
    btc_24h_earning: Decimal
    usdt_24h_earning: Decimal
    btc_total_earning: Decimal
    usdt_total_earning: Decimal


def account(uow: UnitOfWork, user_id: int) -> AccountTotals:
    """The user's catalog holdings and earnings, valued in USDT and BTC at reference prices."""
    h, p, o = t.holding, t.product, t.earn_order
    with uow:
        now = uow.now()
        price_rows = uow.conn.execute(sa.select(t.reference_price.c.ccy, t.reference_price.c.usdt))
        prices = {row.ccy: row.usdt for row in price_rows}
        prices.setdefault("USDT", Decimal(1))
        held = uow.conn.execute(
            sa.select(p.c.coin, h.c.amount, h.c.total_profit)
            .join(p, p.c.id == h.c.product_id)
            .where(h.c.user_id == user_id, h.c.open.is_(True))
        ).all()
        earned = uow.conn.execute(
            sa.select(p.c.coin, o.c.amount)
            .join(p, p.c.id == o.c.product_id)
            .where(
                o.c.product_id.in_(_products_of(user_id)),
                o.c.user_id == user_id,
                o.c.order_type.in_(REWARD_ORDERS),
                o.c.ts > now - DAY_MS,
            )
        ).all()
        totals = uow.conn.execute(
            sa.select(p.c.coin, o.c.amount)
            .join(p, p.c.id == o.c.product_id)
            .where(
                o.c.product_id.in_(_products_of(user_id)),
                o.c.user_id == user_id,
                o.c.order_type.in_(REWARD_ORDERS),
            )
        ).all()

    def usdt(rows: list[tuple[str, Decimal]]) -> Decimal:
        return sum((amount * prices.get(coin, ZERO) for coin, amount in rows), ZERO)

    btc = prices.get("BTC")

    def in_btc(value: Decimal) -> Decimal:
        return round_down(value / btc, 8) if btc else ZERO

    amount = round_down(usdt([(r.coin, r.amount) for r in held]), 8)
    day = round_down(usdt([(r.coin, r.amount) for r in earned]), 8)
    total = round_down(usdt([(r.coin, r.amount) for r in totals]), 8)
    return AccountTotals(in_btc(amount), amount, in_btc(day), day, in_btc(total), total)


@dataclass(frozen=True)
class Price:
    ccy: str
    usdt: Decimal
    updated_at: int


def prices(uow: UnitOfWork) -> list[Price]:
    """The operator's reference prices, by currency."""
    r = t.reference_price
    with uow:
        rows = uow.conn.execute(sa.select(r.c.ccy, r.c.usdt, r.c.updated_at).order_by(r.c.ccy)).all()
    return [Price(row.ccy, row.usdt, row.updated_at) for row in rows]
