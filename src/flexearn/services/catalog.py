"""The operator's catalog of products (SPEC §3): defining them from their fields (the admin API
and the CLI read the operator's spec into `ProductFields`), changing them, and listing them. Users
trade in `catalog_trading`; delayed redemptions arrive by `catalog_delivery`; days are settled by
`settlement.day`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import (
    AprSource,
    PeriodType,
    Product,
    ProductFields,
    SettleMethod,
    Status,
    Tier,
    check_tiers,
    next_day_start,
)
from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.money import MAX_PRECISION, ZERO, D
from flexearn.services import gate, realtime_apr
from flexearn.services.catalog_rows import load_product, quota_held, walk_to_json
from flexearn.services.unit_of_work import UnitOfWork


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
    if product.realtime and product.period_type is not PeriodType.FLEXIBLE:
        raise InvalidParameter("aprSource", "a real-time APR is for flexible products")
    if product.apr_source is AprSource.SIMULATED:
        walk = product.walk
        if walk is None:
            raise MissingParameter("aprLow")
        if walk.low > walk.high:
            raise InvalidParameter("aprLow", "not above aprHigh")


def _set_apr(conn: sa.Connection, product: Product, fields: ProductFields, now: int) -> None:
    """Record the real-time APR the operator gave (from now on), or, following the market, the
    market's latest; a manual or simulated product must have one to start from."""
    if fields.apr is not None:
        if not product.realtime:
            raise InvalidParameter("apr", "only a product with an aprSource has a real-time APR")
        walk = product.walk
        if product.apr_source is AprSource.SIMULATED and walk and not walk.low <= fields.apr <= walk.high:
            raise InvalidParameter("apr", "within aprLow and aprHigh")
        realtime_apr.record(conn, product.id, now, fields.apr)
    elif product.apr_source in (AprSource.MANUAL, AprSource.SIMULATED) and (
        realtime_apr.latest(conn, product.id, now) is None
    ):
        raise MissingParameter("apr")
    if product.apr_source is AprSource.MARKET:
        if conn.execute(sa.select(t.market.c.ccy).where(t.market.c.ccy == product.coin)).first() is None:
            raise InvalidParameter("aprSource", f"no lending market of {product.coin} to follow")
        realtime_apr.catch_up(conn, product, now)


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


def create_product(uow: UnitOfWork, fields: ProductFields) -> Product:
    """A new product of `fields`, which need a coin and tiers; the others take their DEFAULTS."""
    if fields.coin is None:
        raise MissingParameter("coin")
    if fields.tiers is None:
        raise MissingParameter("apyList")
    with uow:
        repo.currency_precision(uow.conn, fields.coin)
        row = {
            **DEFAULTS,
            **_columns(fields),
            "first_day": next_day_start(uow.now()),
            "created_at": wall_ms(),
        }
        product_id = uow.conn.execute(
            sa.insert(t.product).values(**row).returning(t.product.c.id)
        ).scalar_one()
        _write_tiers(uow.conn, product_id, fields.tiers)
        product = load_product(uow.conn, product_id)
        _validate(product)
        _set_apr(uow.conn, product, fields, uow.now())
        uow.commit()
    return product


# What a product keeps once it exists, by the operator's name for it.
_FIXED = {"coin": "coin", "period_type": "periodType", "period_days": "period"}


@gate.waits_for_settlement
def update_product(uow: UnitOfWork, product_id: int, fields: ProductFields) -> Product:
    """Change limits, times, status or tiers (the fields given); the coin and the kind stay."""
    for field, name in _FIXED.items():
        if getattr(fields, field) is not None:
            raise InvalidParameter(name, "cannot change once the product exists")
    values = _columns(fields)
    with uow:
        before = load_product(uow.conn, product_id, lock=True)
        # the moves of its real-time APR up to now are the old source's: recorded before it changes
        realtime_apr.catch_up(uow.conn, before, uow.now())
        if values:
            uow.conn.execute(sa.update(t.product).where(t.product.c.id == product_id).values(**values))
        if fields.tiers is not None:
            uow.conn.execute(sa.delete(t.product_tier).where(t.product_tier.c.product_id == product_id))
            _write_tiers(uow.conn, product_id, fields.tiers)
        product = load_product(uow.conn, product_id)
        _validate(product)
        _set_apr(uow.conn, product, fields, uow.now())
        uow.commit()
    return product


def set_status(uow: UnitOfWork, product_id: int, status: Status) -> Product:
    return update_product(uow, product_id, ProductFields(status=status))


def _columns(fields: ProductFields) -> dict[str, Any]:
    """The `product` columns of the fields given (the fields are named as the columns), enums as
    their words, the walk as JSON; the tiers and the real-time APR have their own tables."""
    columns = {
        name: value.value if isinstance(value, StrEnum) else value
        for name, value in vars(fields).items()
        if name not in ("tiers", "apr", "walk") and value is not None
    }
    if fields.walk is not None:
        columns["apr_walk"] = walk_to_json(fields.walk)
    return columns


def _write_tiers(conn: sa.Connection, product_id: int, tiers: tuple[Tier, ...]) -> None:
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
            amount = quota_held(uow.conn, product)
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


@dataclass(frozen=True)
class SubscribeInfo:
    product: Product
    remaining: Decimal | None
    schedule: Any  # domain Schedule


def subscribe_info(uow: UnitOfWork, product_id: int, period_type: str) -> SubscribeInfo:
    with uow:
        product = load_product(uow.conn, product_id)
        product.check_period_type(period_type)
        return SubscribeInfo(
            product, product.remaining(quota_held(uow.conn, product)), product.schedule(uow.now())
        )
