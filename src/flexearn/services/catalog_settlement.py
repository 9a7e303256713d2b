"""Daily settlement of catalog products at the start of Bitget's day, 00:00 UTC+8 = 16:00 UTC of the
business clock (SPEC §3).

Each (product, day) settles once, in one transaction: interest for the day that just ended on
every holding that earns (from its `interestTime`), then the fixed holdings that expire now.
The day's interest is one journal entry: interest expense → the users' funding (Bitget's spot)
accounts for `daily` products, flexible or fixed, as Bitget pays them ("interest ... will be
issued to the spot account daily", its Flexible Savings launch notice); → the accrued control
account for `maturity` products, paid with the principal at expiry. The split per holding is its
`pay_interest` order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import bulk
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import DAY_MS, Product, SettleMethod, day_interest, next_day_start
from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, compound, leg
from flexearn.domain.money import ZERO
from flexearn.services import gate
from flexearn.services.catalog import load_product
from flexearn.services.unit_of_work import UnitOfWork

ORDER_COLUMNS = {
    "user_id": "int",
    "product_id": "int",
    "holding_id": "int",
    "order_type": "text",
    "amount": "amount",
    "status": "text",
    "ts": "int",
}


class DayOutOfOrder(RuntimeError):
    pass


@dataclass(frozen=True)
class SettledDay:
    product_id: int
    day: int
    holdings: int
    interest: Decimal
    expired: int


def settle_day(uow: UnitOfWork, product_id: int, day: int) -> SettledDay | None:
    """Settle the day ending at `day` (a day start, 16:00 UTC) for one product; None if already
    settled, or being settled in ranges (services/range_settlement.py)."""
    with uow:
        conn = uow.conn
        product = load_product(conn, product_id, lock=True, gated=False)
        if gate.open_period(conn, gate.DAY, product_id) is not None:
            return None
        expected = next_day(conn, product_id)
        if day < expected:
            return None
        if day > expected:
            raise DayOutOfOrder(f"product {product_id}: day {day} is due only after {expected}")
        paid, expired, entry_id = settle_users(conn, product, day, sa.true())
        total = sum(paid.values(), ZERO)
        record_day(conn, product_id, day, len(paid), total, entry_id)
        uow.commit()
    return SettledDay(product_id, day, len(paid), total, expired)


def next_day(conn: sa.Connection, product_id: int) -> int:
    """The product's first unsettled day start: the one after the last settled (which, in a database
    from before days turned at 16:00 UTC, may be a 00:00 UTC: then the next is 16 hours later)."""
    last = conn.execute(
        sa.select(sa.func.max(t.product_day.c.day)).where(t.product_day.c.product_id == product_id)
    ).scalar()
    first = conn.execute(sa.select(t.product.c.first_day).where(t.product.c.id == product_id)).scalar_one()
    return int(first if last is None else next_day_start(last))


def settle_users(
    conn: sa.Connection, product: Product, day: int, users: sa.ColumnElement[bool], ref_suffix: str = ""
) -> tuple[dict[int, Decimal], int, int | None]:
    """The day's interest and expiries for the holdings of `users` (a condition on the holding
    table): each holding's interest, how many fixed holdings expired, and the one journal entry of
    the interest (referenced `product:<id>:day:<day><ref_suffix>`; None when nothing was paid)."""
    h = t.holding
    rows = conn.execute(
        sa.select(
            h.c.id,
            h.c.user_id,
            h.c.amount,
            h.c.accrued,
            h.c.total_profit,
            h.c.interest_time,
            h.c.expire_time,
        ).where(h.c.product_id == product.id, h.c.open.is_(True), users)
    ).all()
    paid, updates, orders = _interest(product, rows, day)
    ref = f"product:{product.id}:day:{day}{ref_suffix}"
    entry_id = _book_interest(conn, product, paid, sum(paid.values(), ZERO), rows, ref, day)
    bulk.update_many(
        conn,
        "earn_holding",
        "id",
        {"amount": "amount", "accrued": "amount", "total_profit": "amount", "last_profit": "amount"},
        updates,
        only=("product_id", product.id),
    )
    bulk.insert_many(conn, "earn_order", ORDER_COLUMNS, orders)
    return paid, _expire(conn, product, day, users), entry_id


def record_day(
    conn: sa.Connection, product_id: int, day: int, holdings: int, interest: Decimal, entry_id: int | None
) -> None:
    """The (product, day) row: its primary key is what settles each day exactly once."""
    conn.execute(
        sa.insert(t.product_day).values(
            product_id=product_id,
            day=day,
            holdings=holdings,
            interest=interest,
            entry_id=entry_id,
            created_at=wall_ms(),
        )
    )


def _interest(
    product: Product, rows: Sequence[Any], day: int
) -> tuple[dict[int, Decimal], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Per holding that earned over [day − 1, day): its interest, its new row, its order.

    `rows` are (id, user_id, amount, accrued, total_profit, interest_time, expire_time), as
    `settle_day` selects them; the loop runs once per holding, so it unpacks plain values.
    """
    accruing = product.settle_method is SettleMethod.MATURITY
    tiers, places, product_id = product.tiers, product.profit_precision, product.id
    day_start = day - DAY_MS
    paid: dict[int, Decimal] = {}
    updates: list[tuple[Any, ...]] = []
    orders: list[tuple[Any, ...]] = []
    for holding_id, user_id, amount, accrued, total_profit, interest_time, expire_time in rows:
        if interest_time > day_start or (expire_time is not None and expire_time < day):
            continue
        interest = day_interest(amount, tiers, places)
        if interest == 0:
            continue
        paid[holding_id] = interest
        updates.append(
            (
                holding_id,
                amount,
                accrued + interest if accruing else accrued,
                total_profit + interest,
                interest,
            )
        )
        if not accruing:  # maturity interest is recorded when it is paid, at expiry
            orders.append((user_id, product_id, holding_id, "pay_interest", interest, "success", day))
    return paid, updates, orders


# Users paid per journal entry of a day's interest to funding accounts. PostgreSQL checks at commit
# that each entry balances, once per leg over all the entry's legs: one entry of a million legs
# would cost a million times a million; entries of a hundred users keep it linear.
USERS_PER_ENTRY = 100


def _book_interest(
    conn: sa.Connection,
    product: Product,
    paid: dict[int, Decimal],
    total: Decimal,
    rows: Sequence[Any],
    ref: str,
    day: int,
) -> int | None:
    """Post the day's interest; the id of its (first) journal entry."""
    if total == 0:
        return None
    coin = product.coin
    expense = AccountRef.system(AccountKind.INTEREST_EXPENSE, coin)
    if product.settle_method is SettleMethod.MATURITY:
        legs = [leg(expense, -total), leg(AccountRef.system(AccountKind.ACCRUED, coin), total)]
        return repo.post(conn, compound("catalog_interest", coin, legs, ref), day)
    # daily, flexible or fixed: straight to each user's funding account
    per_user: dict[int, Decimal] = defaultdict(Decimal)
    owner = {r.id: r.user_id for r in rows}
    for holding_id, interest in paid.items():
        per_user[owner[holding_id]] += interest
    users = sorted(per_user.items())
    first: int | None = None
    for part, start in enumerate(range(0, len(users), USERS_PER_ENTRY)):
        chunk = users[start : start + USERS_PER_ENTRY]
        credits: list[Leg] = [leg(AccountRef.funding(user, coin), amount) for user, amount in chunk]
        legs = [leg(expense, -sum((amount for _, amount in chunk), ZERO)), *credits]
        named = ref if part == 0 else f"{ref}:part:{part + 1}"
        entry_id = repo.post(conn, compound("catalog_interest", coin, legs, named), day)
        first = entry_id if first is None else first
    return first


def _expire(conn: sa.Connection, product: Product, day: int, users: sa.ColumnElement[bool]) -> int:
    """Fixed holdings (of `users`) reaching `expireTime`: principal and unpaid interest back to funding."""
    h = t.holding
    due = conn.execute(
        sa.select(h).where(
            h.c.product_id == product.id,
            h.c.open.is_(True),
            h.c.expire_time.is_not(None),
            h.c.expire_time <= day,
            users,
        )
    ).all()
    coin = product.coin
    for r in due:
        legs = (
            leg(AccountRef.system(AccountKind.EARN, coin), -r.amount, holding_id=r.id),
            leg(AccountRef.system(AccountKind.ACCRUED, coin), -r.accrued, holding_id=r.id),
            leg(AccountRef.funding(r.user_id, coin), r.amount + r.accrued),
        )
        repo.post(
            conn, Entry("expiry", coin, tuple(x for x in legs if x.amount != 0), f"holding:{r.id}"), day
        )
        conn.execute(sa.update(h).where(h.c.id == r.id).values(amount=ZERO, accrued=ZERO, open=False))
        base = (r.user_id, product.id, r.id)
        rows = [(*base, "redeem", r.amount, "success", day)]
        if r.accrued:
            rows.append((*base, "pay_interest", r.accrued, "success", day))
        bulk.insert_many(conn, "earn_order", ORDER_COLUMNS, rows)
    return len(due)


def due_days(uow: UnitOfWork) -> dict[int, list[int]]:
    """Per product, the day starts that have passed on the business clock and are unsettled."""
    with uow:
        now = uow.now()
        rows = uow.conn.execute(
            sa.select(t.product.c.id, t.product.c.first_day, sa.func.max(t.product_day.c.day))
            .select_from(t.product.outerjoin(t.product_day, t.product_day.c.product_id == t.product.c.id))
            .group_by(t.product.c.id, t.product.c.first_day)
            .order_by(t.product.c.id)
        ).all()
    return {
        pid: list(range(first if last is None else next_day_start(last), now + 1, DAY_MS))
        for pid, first, last in rows
    }
