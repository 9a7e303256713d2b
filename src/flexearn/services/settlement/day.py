"""A catalog product's day as a period kind (`DAYS`; key: the product id), at the start of Bitget's
day, 00:00 UTC+8 = 16:00 UTC of the business clock (SPEC §3).

Interest for the day that just ended on every holding that earns (from its `interestTime`), then
the fixed holdings that expire now (`domain.catalog_day`). The interest goes from interest expense
to the users' funding (Bitget's spot) accounts for `daily` products, flexible or fixed, as Bitget
pays them ("interest ... will be issued to the spot account daily", its Flexible Savings launch
notice), in entries of at most a hundred users; to the accrued control account for `maturity`
products, paid with the principal at expiry. The split per holding is its `pay_interest` order.
A day needs no global plan: each range of users applies alone; the close writes the
`product_day` row, whose primary key settles each (product, day) exactly once.

A product with a real-time APR source (Binance's model) is paid instead its day of REALTIME and
BONUS rewards from each holding's minute-aligned balance (`catalog_day.plan_realtime_day`): its
APR is caught up to the day's end when the day is planned, and its holders' subscriptions and
redemptions since the day began are read in one query per range (`_realtime_plan`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import bulk
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog import DAY_MS, Product, next_day_start
from flexearn.domain.catalog_day import DayPlan, HoldingRow, expire, plan_day, plan_realtime_day
from flexearn.domain.money import ZERO
from flexearn.domain.realtime import Change
from flexearn.services import gate, realtime_apr
from flexearn.services.catalog_rows import load_product
from flexearn.services.settlement.period import Applied, Part, Schedule, due
from flexearn.services.unit_of_work import UnitOfWork

# A day's interest entries posted together (`repo.post_many`): 10,000 users' credits at most
# (`USERS_PER_ENTRY` each), so that what posting them builds (their legs, accounts and rows) is
# bounded, whatever the product's size (one product of 100,000 holders: 241 MB of Python
# allocations at the peak when posted at once, 117 MB in groups).
ENTRIES_PER_POST = 100
CHANGE_COLUMNS = {"amount": "amount", "accrued": "amount", "total_profit": "amount", "last_profit": "amount"}
CLOSE_COLUMNS = {"amount": "amount", "accrued": "amount", "open": "bool"}
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


@dataclass(frozen=True)
class PlannedDay:
    """A day's plan: nothing global (stored as `{}`); the span of its holders' ids to cut ranges."""

    user_ids: Sequence[int] = ()

    def to_json(self) -> dict[str, Any]:
        return {}


class Days:
    name = gate.DAY
    schedule = Schedule(
        t.product.c.id,
        t.product.c.first_day,
        t.product_day.c.product_id,
        t.product_day.c.day,
        after=next_day_start,  # a day start of a database from before 16:00 UTC days may be 00:00
        step=DAY_MS,
        started_by=lambda now: now,
        lane=t.product.c.coin,  # one coin's products share their holders' funding accounts
    )

    def lock(self, conn: sa.Connection, key: str) -> None:
        load_product(conn, int(key), lock=True, gated=False)

    def plan(self, conn: sa.Connection, key: str, period: int, *, whole: bool) -> PlannedDay | None:
        """The plan of `period` (a day start), which must be the product's next day to settle
        (`DayOutOfOrder` if it is not yet); None if it is settled."""
        product_id, day = int(key), period
        expected = next_day(conn, product_id)
        if day < expected:
            return None
        if day > expected:
            raise DayOutOfOrder(f"product {product_id}: day {day} is due only after {expected}")
        product = load_product(conn, product_id, gated=False)
        if product.realtime:  # the day's minutes need every move of the APR until the day's end
            realtime_apr.catch_up(conn, product, day)
        if whole:
            return PlannedDay()
        h = t.holding
        low, high = conn.execute(
            sa.select(sa.func.min(h.c.user_id), sa.func.max(h.c.user_id)).where(
                h.c.product_id == product_id, h.c.open.is_(True)
            )
        ).one()
        return PlannedDay(() if low is None else (int(low), int(high)))

    def restore(self, raw: Mapping[str, Any]) -> PlannedDay:
        return PlannedDay()

    def apply(self, conn: sa.Connection, key: str, period: int, plan: PlannedDay, part: Part) -> Applied:
        """The day's interest and expiries for the holdings of `part`'s users; the interest's
        entries are referenced `product:<id>:day:<day>` (plus the range's suffix)."""
        product, day = load_product(conn, int(key)), period
        if product.realtime:
            planned = _realtime_plan(conn, product, day, part)
        else:  # the rows read are let go once planned, not held through the writes
            rows = repo.holdings_for_settlement(conn, product.id, (part.lo, part.hi))
            planned = plan_day(product, rows, day)
            del rows
        entries = planned.interest_entries(f"product:{product.id}:day:{day}{part.ref_suffix}")
        entry_ids: list[int] = []
        # In groups: a user is paid in one entry, so no balance nets across two groups.
        while posted := list(islice(entries, ENTRIES_PER_POST)):
            entry_ids += repo.post_many(conn, posted, day)
        only = ("product_id", product.id)
        bulk.update_many(conn, "earn_holding", "id", CHANGE_COLUMNS, planned.changes, only=only)
        bulk.insert_many(conn, "earn_order", ORDER_COLUMNS, planned.orders)
        expired = _expire(conn, product, day, part)
        return Applied(
            planned.holdings,
            planned.interest_total,
            expired=expired,
            entry_id=entry_ids[0] if entry_ids else None,
        )

    def close(
        self,
        conn: sa.Connection,
        key: str,
        period: int,
        plan: PlannedDay,
        applied: Sequence[Applied],
        *,
        whole: bool,
    ) -> SettledDay:
        """The `product_day` row: its primary key is what settles each day exactly once."""
        product_id, day = int(key), period
        holdings, interest = sum(a.items for a in applied), sum((a.interest for a in applied), ZERO)
        conn.execute(
            sa.insert(t.product_day).values(
                product_id=product_id,
                day=day,
                holdings=holdings,
                interest=interest,
                entry_id=applied[0].entry_id if whole else None,
                created_at=wall_ms(),
            )
        )
        return SettledDay(product_id, day, holdings, interest, sum(a.expired for a in applied))


DAYS = Days()


def next_day(conn: sa.Connection, product_id: int) -> int:
    """The product's first unsettled day start: the one after the last settled (which, in a database
    from before days turned at 16:00 UTC, may be a 00:00 UTC: then the next is 16 hours later)."""
    last = conn.execute(
        sa.select(sa.func.max(t.product_day.c.day)).where(t.product_day.c.product_id == product_id)
    ).scalar()
    first = conn.execute(sa.select(t.product.c.first_day).where(t.product.c.id == product_id)).scalar_one()
    return int(first if last is None else next_day_start(last))


def _realtime_plan(conn: sa.Connection, product: Product, day: int, part: Part) -> DayPlan:
    """A real-time product's day for `part`'s users: their holdings' balance changes since the day
    began in one query (by the partial index of subscriptions and redemptions), the holdings that
    held anything (open now, or closed by a redemption since), and the APR's points."""
    o, h = t.earn_order, t.holding
    begin = day - DAY_MS
    users = [o.c.user_id >= part.lo] if part.lo is not None else []
    users += [o.c.user_id < part.hi] if part.hi is not None else []
    found = conn.execute(
        sa.select(o.c.holding_id, o.c.order_type, o.c.amount, o.c.ts)
        .where(o.c.product_id == product.id, t.BALANCE_CHANGES, o.c.ts >= begin, *users)
        .order_by(o.c.id)
    ).all()
    changes: dict[int, list[Change]] = {}
    for holding_id, order_type, amount, ts in found:
        delta = amount if order_type == "subscribe" else -amount
        changes.setdefault(holding_id, []).append(Change(ts, delta))
    rows = repo.holdings_for_settlement(conn, product.id, (part.lo, part.hi))
    closed = sorted(set(changes) - {r.id for r in rows})
    columns = [h.c[name] for name in HoldingRow._fields]
    for at in range(0, len(closed), repo.KEY_CHUNK):  # within the databases' bound parameters
        chunk = closed[at : at + repo.KEY_CHUNK]
        rows += [HoldingRow(*r) for r in conn.execute(sa.select(*columns).where(h.c.id.in_(chunk)))]
    points = realtime_apr.points(conn, product.id, begin, day)
    return plan_realtime_day(product, rows, changes, points, day)


def _expire(conn: sa.Connection, product: Product, day: int, part: Part) -> int:
    """Fixed holdings (of `part`'s users) reaching `expireTime`: principal and unpaid interest back
    to funding."""
    due = repo.holdings_for_settlement(conn, product.id, (part.lo, part.hi), expiring_by=day)
    expiries = expire(product, due, day)
    for expiry in expiries:
        repo.post(conn, expiry.entry, day)
    closed = [(r.id, ZERO, ZERO, False) for r in due]
    bulk.update_many(conn, "earn_holding", "id", CLOSE_COLUMNS, closed, only=("product_id", product.id))
    bulk.insert_many(conn, "earn_order", ORDER_COLUMNS, [o for x in expiries for o in x.orders])
    return len(due)


def due_days(uow: UnitOfWork) -> dict[int, list[int]]:
    """Per product, the day starts that have passed on the business clock and are unsettled."""
    return due(uow, DAYS)
