"""Catalog products (SPEC §3): the operator's catalog, subscriptions, redemptions, read models.

Daily settlement lives in `catalog_settlement`; these are the use cases of users and operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import (
    DAY_MS,
    OPERATOR_STATUSES,
    ApyType,
    Level,
    PeriodType,
    Product,
    SettleMethod,
    Status,
    Tier,
    check_redemption_pace,
    check_tiers,
    next_day_start,
)
from flexearn.domain.catalog_errors import (
    NoSuchProduct,
    OrderIdRequired,
    RedemptionRefused,
    SubscriptionUnfunded,
)
from flexearn.domain.errors import InsufficientBalance, InvalidParameter, MissingParameter, NotFound
from flexearn.domain.ledger import AccountKind, AccountRef, Entry, leg, transfer
from flexearn.domain.money import (
    MAX_PRECISION,
    ZERO,
    D,
    ascii_digits,
    exact_add,
    parse_amount,
)
from flexearn.services import gate
from flexearn.services.unit_of_work import UnitOfWork


def _system(kind: AccountKind, ccy: str) -> AccountRef:
    return AccountRef.system(kind, ccy)


# --- the catalog --------------------------------------------------------------------------------


def load_product(conn: sa.Connection, product_id: int, *, lock: bool = False, gated: bool = True) -> Product:
    """The product; `lock`: locked to change it or its holdings, which waits while one of its days
    is settled in ranges (`gate`) unless not `gated` (settlement itself)."""
    query = sa.select(t.product).where(t.product.c.id == product_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NoSuchProduct(product_id)
    if lock and gated:
        gate.check(conn, gate.DAY, product_id)
    tiers = conn.execute(
        sa.select(t.product_tier)
        .where(t.product_tier.c.product_id == product_id)
        .order_by(t.product_tier.c.min_step)
    ).all()
    return Product(
        id=row.id,
        coin=row.coin,
        period_type=PeriodType(row.period_type),
        period_days=row.period_days,
        apy_type=ApyType(row.apy_type),
        tiers=tuple(Tier(r.rate_level, r.min_step, r.max_step, r.apy) for r in tiers),
        advance_redeem=row.advance_redeem,
        settle_method=SettleMethod(row.settle_method),
        operator_status=Status(row.status),
        level=Level(row.level),
        single_min=row.single_min,
        single_max=row.single_max,
        quota=row.quota,
        subscribe_precision=row.subscribe_precision,
        profit_precision=row.profit_precision,
        redeem_delay_days=row.redeem_delay_days,
        start_time=row.start_time,
        end_time=row.end_time,
    )


def held(conn: sa.Connection, product_id: int) -> Decimal:
    """What open holdings of the product amount to (what its quota counts)."""
    h = t.holding
    amounts = conn.execute(
        sa.select(h.c.amount).where(h.c.product_id == product_id, h.c.open.is_(True))
    ).scalars()
    return sum(amounts, ZERO)


_ENUMS: dict[str, Any] = {
    "periodType": PeriodType,
    "apyType": ApyType,
    "settleMethod": SettleMethod,
    "productLevel": Level,
}
_AMOUNTS = {"singleMinAmount": "single_min", "singleMaxAmount": "single_max", "quota": "quota"}
_INTS = {
    "period": "period_days",
    "subscribePrecision": "subscribe_precision",
    "profitPrecision": "profit_precision",
    "redeemDelay": "redeem_delay_days",
    "startTime": "start_time",
    "endTime": "end_time",
}
_COLUMNS = {
    "periodType": "period_type",
    "apyType": "apy_type",
    "settleMethod": "settle_method",
    "productLevel": "level",
}


def _parse_spec(spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[Tier] | None]:
    """Bitget field names (plus the limits) → column values and tiers; every error names its field."""
    values: dict[str, Any] = {}
    given = {name: value for name, value in spec.items() if value not in (None, "")}
    for name, kind in _ENUMS.items():
        if name in given:
            values[_COLUMNS[name]] = _enum_value(kind, given[name], name)
    for name, column in _AMOUNTS.items():
        if name in given:
            values[column] = parse_amount(str(given[name]), param=name)
            if values[column] < 0:
                raise InvalidParameter(name, "must not be negative")
    for name, column in _INTS.items():
        if name in given:
            if not ascii_digits(str(given[name])):
                raise InvalidParameter(name, "a whole number")
            values[column] = int(str(given[name]))
    if "advanceRedeem" in given:
        if given["advanceRedeem"] not in ("Yes", "No"):
            raise InvalidParameter("advanceRedeem", "Yes or No")
        values["advance_redeem"] = given["advanceRedeem"] == "Yes"
    if "coin" in given:
        values["coin"] = str(given["coin"]).upper()
    if "status" in given:
        values["status"] = _operator_status(str(given["status"])).value
    return values, _parse_tiers(spec["apyList"]) if "apyList" in spec else None


def _enum_value(kind: Any, value: Any, name: str) -> str:
    try:
        return str(kind(str(value)).value)
    except ValueError:
        raise InvalidParameter(name, f"one of {', '.join(k.value for k in kind)}") from None


def _parse_tiers(raw: Any) -> list[Tier]:
    if not isinstance(raw, list):
        raise InvalidParameter("apyList", "a list of tiers")
    try:
        return [
            Tier(
                int(r.get("rateLevel", i)),
                parse_amount(str(r["minStepVal"]), param="minStepVal"),
                parse_amount(str(r["maxStepVal"]), param="maxStepVal"),
                parse_amount(str(r["currentApy"]), param="currentApy"),
            )
            for i, r in enumerate(raw)
        ]
    except InvalidParameter:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidParameter("apyList", "tiers need minStepVal, maxStepVal and currentApy") from None


def _operator_status(text: str) -> Status:
    try:
        status = Status(text)
    except ValueError:
        status = None
    if status not in OPERATOR_STATUSES:
        raise InvalidParameter("status", f"one of {', '.join(s.value for s in OPERATOR_STATUSES)}")
    assert status is not None
    return status


def _validate(product: Product) -> None:
    check_tiers(product.tiers, product.apy_type)
    if product.period_type is PeriodType.FIXED and not product.period_days:
        raise InvalidParameter("period", "fixed products need a period in days")
    if product.period_type is PeriodType.FLEXIBLE and product.settle_method is SettleMethod.MATURITY:
        raise InvalidParameter("settleMethod", "flexible products settle daily")
    for name, value in (
        ("subscribePrecision", product.subscribe_precision),
        ("profitPrecision", product.profit_precision),
    ):
        if not 0 <= value <= MAX_PRECISION:
            raise InvalidParameter(name, f"0 to {MAX_PRECISION}")
    if product.single_min > product.single_max:
        raise InvalidParameter("singleMinAmount", "not above singleMaxAmount")
    if product.start_time and product.end_time and product.end_time <= product.start_time:
        raise InvalidParameter("endTime", "after startTime")


DEFAULTS: dict[str, Any] = {
    "period_type": "flexible",
    "apy_type": "single",
    "advance_redeem": False,
    "settle_method": "daily",
    "status": "in_progress",
    "level": "normal",
    "single_min": ZERO,
    "single_max": D(10) ** 12,
    "quota": None,
    "subscribe_precision": 8,
    "profit_precision": 8,
    "redeem_delay_days": 0,
    "start_time": None,
    "end_time": None,
    "period_days": None,
}


def create_product(uow: UnitOfWork, spec: Mapping[str, Any]) -> Product:
    values, tiers = _parse_spec(spec)
    if "coin" not in values:
        raise MissingParameter("coin")
    if tiers is None:
        raise MissingParameter("apyList")
    with uow:
        repo.currency_precision(uow.conn, values["coin"])
        row = {**DEFAULTS, **values, "first_day": next_day_start(uow.now()), "created_at": wall_ms()}
        product_id = uow.conn.execute(
            sa.insert(t.product).values(**row).returning(t.product.c.id)
        ).scalar_one()
        _write_tiers(uow.conn, product_id, tiers)
        product = load_product(uow.conn, product_id)
        _validate(product)
        uow.commit()
    return product


@gate.waits_for_settlement
def update_product(uow: UnitOfWork, product_id: int, spec: Mapping[str, Any]) -> Product:
    """Change limits, times, status or tiers; the coin and the kind of product stay."""
    values, tiers = _parse_spec(spec)
    for fixed in ("coin", "period_type", "period_days"):
        if fixed in values:
            raise InvalidParameter(
                {"period_type": "periodType", "period_days": "period"}.get(fixed, fixed),
                "cannot change once the product exists",
            )
    with uow:
        load_product(uow.conn, product_id, lock=True)
        if values:
            uow.conn.execute(sa.update(t.product).where(t.product.c.id == product_id).values(**values))
        if tiers is not None:
            uow.conn.execute(sa.delete(t.product_tier).where(t.product_tier.c.product_id == product_id))
            _write_tiers(uow.conn, product_id, tiers)
        product = load_product(uow.conn, product_id)
        _validate(product)
        uow.commit()
    return product


def set_status(uow: UnitOfWork, product_id: int, status: str) -> Product:
    return update_product(uow, product_id, {"status": status})


def _write_tiers(conn: sa.Connection, product_id: int, tiers: list[Tier]) -> None:
    conn.execute(
        sa.insert(t.product_tier),
        [
            {
                "product_id": product_id,
                "rate_level": i,
                "min_step": tier.min_step,
                "max_step": tier.max_step,
                "apy": tier.apy,
            }
            for i, tier in enumerate(sorted(tiers, key=lambda x: x.min_step))
        ],
    )


@dataclass(frozen=True)
class ProductView:
    product: Product
    status: Status
    remaining: Decimal | None
    held_by_user: bool


FILTERS = ("available", "held", "available_and_held", "all")


def list_products(
    uow: UnitOfWork, user_id: int | None, coin: str | None, filter_: str = "available"
) -> list[ProductView]:
    if filter_ not in FILTERS:
        raise InvalidParameter("filter", f"one of {', '.join(FILTERS)}")
    with uow:
        now = uow.now()
        query = sa.select(t.product.c.id).order_by(t.product.c.id)
        if coin:
            query = query.where(t.product.c.coin == coin.upper())
        mine: set[int] = set()
        if user_id is not None:
            mine = set(
                uow.conn.execute(
                    sa.select(t.holding.c.product_id).where(
                        t.holding.c.user_id == user_id, t.holding.c.open.is_(True)
                    )
                ).scalars()
            )
        views = []
        for product_id in uow.conn.execute(query).scalars():
            product = load_product(uow.conn, product_id)
            amount = held(uow.conn, product_id)
            status = product.status(now, amount)
            views.append(ProductView(product, status, product.remaining(amount), product_id in mine))
    available = {Status.IN_PROGRESS, Status.NOT_STARTED, Status.SOLD_OUT, Status.PAUSED}

    def keep(view: ProductView) -> bool:
        open_ = view.status in available
        return {
            "available": open_,
            "held": view.held_by_user,
            "available_and_held": open_ or view.held_by_user,
            "all": True,
        }[filter_]

    return [v for v in views if keep(v)]


def _period(product: Product, period_type: str) -> None:
    if period_type != product.period_type.value:
        raise InvalidParameter("periodType", f"product {product.id} is {product.period_type.value}")


@dataclass(frozen=True)
class SubscribeInfo:
    product: Product
    remaining: Decimal | None
    schedule: Any  # domain Schedule


def subscribe_info(uow: UnitOfWork, product_id: int, period_type: str) -> SubscribeInfo:
    with uow:
        product = load_product(uow.conn, product_id)
        _period(product, period_type)
        return SubscribeInfo(
            product, product.remaining(held(uow.conn, product_id)), product.schedule(uow.now())
        )


# --- subscriptions and redemptions ---------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    id: int
    user_id: int
    product_id: int
    holding_id: int
    order_type: str
    amount: Decimal
    status: str
    ts: int
    arrive_at: int | None


def _order(conn: sa.Connection, **values: Any) -> Order:
    order_id = conn.execute(
        sa.insert(t.earn_order).values(**values).returning(t.earn_order.c.id)
    ).scalar_one()
    return Order(id=order_id, **values)


@gate.waits_for_settlement
def subscribe(uow: UnitOfWork, user_id: int, product_id: int, period_type: str, amount: Decimal) -> Order:
    """Funding → holding. Flexible subscriptions add to the user's one holding; fixed ones open their own."""
    with uow:
        conn, now = uow.conn, uow.now()
        product = load_product(conn, product_id, lock=True)  # serialises the quota
        _period(product, period_type)
        level_row = conn.execute(
            sa.select(t.user.c.level).where(t.user.c.id == user_id).with_for_update()
        ).scalar()
        if level_row is None:
            raise NotFound(f"no user {user_id}", param="user")
        product.check_subscription(
            amount, now, held(conn, product_id), Level(level_row), repo.currency_precision(conn, product.coin)
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
        earn = _system(AccountKind.EARN, product.coin)
        try:
            repo.post(
                conn,
                transfer(
                    "subscribe",
                    product.coin,
                    AccountRef.funding(user_id, product.coin),
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
        order = _order(
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
        uow.commit()
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
) -> Order:
    """Holding → funding, after the product's redemption delay (processing until then).

    A user's redemptions are more than a minute apart on the wall clock (`at`, now by default),
    whatever the product. A fixed holding (named by its subscription `orderId`) is redeemed whole,
    only where early redemption is allowed; interest already paid comes back out of the principal
    as a deduction.
    """
    with uow:
        conn, now = uow.conn, uow.now()
        product = load_product(conn, product_id, lock=True)
        _period(product, period_type)
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
        deduction = accrued = ZERO
        if product.period_type is PeriodType.FIXED:
            if not product.advance_redeem:
                raise RedemptionRefused(
                    "this fixed product cannot be redeemed before it expires", param="productId"
                )
            if amount != row.amount:
                raise InvalidParameter("amount", f"a fixed holding is redeemed whole: {row.amount}")
            deduction = min(row.total_profit - row.accrued, amount)  # paid out already
            accrued = row.accrued  # earned, never paid: forfeited
        order = _release(conn, product, row, amount, deduction, accrued, now, user_id)
        conn.execute(sa.update(t.user).where(t.user.c.id == user_id).values(last_redeem_at=wall))
        uow.commit()
    return order


def _release(
    conn: sa.Connection,
    product: Product,
    row: Any,
    amount: Decimal,
    deduction: Decimal,
    accrued: Decimal,
    now: int,
    user_id: int,
) -> Order:
    """Take `amount` out of a holding: to funding now, or to `redeeming` until the delay passes."""
    coin, hid = product.coin, row.id
    earn, expense = _system(AccountKind.EARN, coin), _system(AccountKind.INTEREST_EXPENSE, coin)
    delayed = product.redeem_delay_days > 0
    target = _system(AccountKind.REDEEMING, coin) if delayed else AccountRef.funding(user_id, coin)
    paid_out = amount - deduction
    legs = [
        leg(earn, -amount, holding_id=hid),
        leg(target, paid_out, holding_id=hid),
        leg(expense, deduction),
    ]
    if accrued:
        legs += [leg(_system(AccountKind.ACCRUED, coin), -accrued, holding_id=hid), leg(expense, accrued)]
    repo.post(conn, Entry("redeem", coin, tuple(x for x in legs if x.amount != 0), f"holding:{hid}"), now)
    remaining = row.amount - amount
    conn.execute(
        sa.update(t.holding)
        .where(t.holding.c.id == hid)
        .values(amount=remaining, accrued=row.accrued - accrued, open=remaining > 0)
    )
    arrive = now + product.redeem_delay_days * DAY_MS
    base = {"user_id": user_id, "product_id": product.id, "holding_id": hid, "ts": now}
    order = _order(
        conn,
        **base,
        order_type="redeem",
        amount=amount,
        status="processing" if delayed else "success",
        arrive_at=arrive,
    )
    if deduction > 0:
        _order(conn, **base, order_type="deduction", amount=deduction, status="success", arrive_at=None)
    return order


def deliver_redemptions(uow: UnitOfWork) -> int:
    """Redemptions whose delay has passed: `redeeming` → funding, order `success`."""
    with uow:
        conn, now = uow.conn, uow.now()
        o = t.earn_order
        due = conn.execute(
            sa.select(o, t.product.c.coin)
            .join(t.product, t.product.c.id == o.c.product_id)
            .where(o.c.status == "processing", o.c.arrive_at <= now)
            .order_by(o.c.id)
            .with_for_update(of=o)
        ).all()
        for order in due:
            amount = order.amount - _deduction(conn, order)
            if amount > 0:
                repo.post(
                    conn,
                    transfer(
                        "redeem_arrival",
                        order.coin,
                        _system(AccountKind.REDEEMING, order.coin),
                        AccountRef.funding(order.user_id, order.coin),
                        amount,
                        ref=f"order:{order.id}",
                        holding_id=order.holding_id,
                    ),
                    order.arrive_at,
                )
            conn.execute(sa.update(o).where(o.c.id == order.id).values(status="success"))
        uow.commit()
    return len(due)


def _deduction(conn: sa.Connection, order: Any) -> Decimal:
    """Interest taken back by the same redemption (recorded beside it), if any."""
    o = t.earn_order
    value: Decimal | None = conn.execute(
        sa.select(o.c.amount).where(
            o.c.holding_id == order.holding_id, o.c.order_type == "deduction", o.c.ts == order.ts
        )
    ).scalar()
    return value or ZERO


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
    return Order(
        row.id,
        row.user_id,
        row.product_id,
        row.holding_id,
        row.order_type,
        row.amount,
        row.status,
        row.ts,
        row.arrive_at,
    )
