"""Catalog rows as domain values: products (with their tiers), what a product holds, orders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.repository import KEY_CHUNK
from flexearn.domain.catalog import (
    AprSource,
    ApyType,
    Level,
    PeriodType,
    Product,
    SettleMethod,
    Status,
    Tier,
    Walk,
)
from flexearn.domain.catalog_errors import NoSuchProduct
from flexearn.domain.earn_wallets import Split, Wallet
from flexearn.domain.money import ZERO
from flexearn.services import gate


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
        apr_source=None if row.apr_source is None else AprSource(row.apr_source),
        walk=walk_from_json(row.apr_walk),
    )


def walk_to_json(walk: Walk) -> str:
    return json.dumps(
        {"low": str(walk.low), "high": str(walk.high), "step": str(walk.step), "seed": walk.seed}
    )


def walk_from_json(text: str | None) -> Walk | None:
    if not text:
        return None
    raw = json.loads(text)
    return Walk(Decimal(raw["low"]), Decimal(raw["high"]), Decimal(raw["step"]), int(raw["seed"]))


def quota_held(conn: sa.Connection, product: Product) -> Decimal:
    """What the product's quota counts: the amount of its open holdings. A product without a quota
    counts nothing (`Product.status` and `remaining` do not read it then): ZERO, its holdings
    unread — every holder's row, on every subscription and product listing. PostgreSQL sums them
    (NUMERIC: exact) and sends one number; SQLite's amounts are text, summed here as exactly."""
    if product.quota is None:
        return ZERO
    h = t.holding
    where = (h.c.product_id == product.id, h.c.open.is_(True))
    if conn.dialect.name == "postgresql":
        total: Decimal | None = conn.execute(sa.select(sa.func.sum(h.c.amount)).where(*where)).scalar()
        return ZERO if total is None else total
    return sum(conn.execute(sa.select(h.c.amount).where(*where)).scalars(), ZERO)


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


def insert_order(conn: sa.Connection, **values: Any) -> Order:
    order_id = conn.execute(
        sa.insert(t.earn_order).values(**values).returning(t.earn_order.c.id)
    ).scalar_one()
    return Order(id=order_id, **values)


def order_from_row(row: Any) -> Order:
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


@dataclass(frozen=True)
class OrderWallet:
    """Where an order's money came from or went to (`earn_order_wallet`)."""

    wallet: Wallet
    parts: Split
    auto: bool


def record_wallet(
    conn: sa.Connection, order_id: int, wallet: Wallet, parts: Split, *, auto: bool = False
) -> None:
    conn.execute(
        sa.insert(t.order_wallet).values(
            order_id=order_id, wallet=wallet.value, funding=parts.funding, trading=parts.trading, auto=auto
        )
    )


def order_wallets(conn: sa.Connection, order_ids: list[int]) -> dict[int, OrderWallet]:
    """The wallet rows of those of `order_ids` that have one (others were funding's alone)."""
    w = t.order_wallet
    found: dict[int, OrderWallet] = {}
    for start in range(0, len(order_ids), KEY_CHUNK):
        rows = conn.execute(sa.select(w).where(w.c.order_id.in_(order_ids[start : start + KEY_CHUNK])))
        for r in rows:
            found[r.order_id] = OrderWallet(Wallet(r.wallet), Split(r.funding, r.trading), r.auto)
    return found
