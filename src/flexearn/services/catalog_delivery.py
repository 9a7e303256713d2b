"""The scheduled job of delayed catalog redemptions: those whose delay has passed arrive in funding
(or in trading, for a redemption whose user chose it: its `earn_order_wallet` row)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.catalog_redemption import arrival_entry
from flexearn.domain.earn_wallets import Wallet
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO
from flexearn.services.catalog_rows import order_wallets
from flexearn.services.unit_of_work import UnitOfWork


def deliver_redemptions(uow: UnitOfWork) -> int:
    """Redemptions whose delay has passed: `redeeming` → funding, order `success`."""
    with uow:
        conn, now = uow.conn, uow.now()
        o = t.earn_order
        due = conn.execute(
            sa.select(o, t.product.c.coin)
            .join(t.product, t.product.c.id == o.c.product_id)
            .where(t.PROCESSING, o.c.arrive_at <= now)
            .order_by(o.c.id)
            .with_for_update(of=o)
        ).all()
        wallets = order_wallets(conn, [order.id for order in due])
        for order in due:
            deduction = _deduction(conn, order)
            to = AccountKind(wallets[order.id].wallet.value if order.id in wallets else Wallet.FUNDING.value)
            entry = arrival_entry(
                order.coin, order.id, order.user_id, order.holding_id, order.amount, deduction, to
            )
            if entry is not None:
                repo.post(conn, entry, order.arrive_at)
            conn.execute(sa.update(o).where(o.c.id == order.id).values(status="success"))
        uow.commit()
    return len(due)


def _deduction(conn: sa.Connection, order: Any) -> Decimal:
    """Interest taken back by the same redemption, if any: its `deduction` order, written by the
    same transaction as the redemption's, at the same business time, on the same holding."""
    o = t.earn_order
    value: Decimal | None = conn.execute(
        sa.select(o.c.amount).where(
            o.c.holding_id == order.holding_id, o.c.order_type == "deduction", o.c.ts == order.ts
        )
    ).scalar()
    return value or ZERO
