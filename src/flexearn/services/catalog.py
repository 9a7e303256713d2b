"""The operator's catalog of products (SPEC §3): defining them from a spec in Bitget's field names,
changing them, and listing them. Users trade in `catalog_trading`; delayed redemptions arrive by
`catalog_delivery`; days are settled by `settlement.day`.
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
    OPERATOR_STATUSES,
    ApyType,
    Level,
    PeriodType,
    Product,
    SettleMethod,
    Status,
    Tier,
    check_tiers,
    next_day_start,
)
from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.money import MAX_PRECISION, ZERO, D, ascii_digits, parse_amount
from flexearn.services import gate
from flexearn.services.catalog_rows import held, load_product
from flexearn.services.unit_of_work import UnitOfWork

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
            product, product.remaining(held(uow.conn, product_id)), product.schedule(uow.now())
        )
