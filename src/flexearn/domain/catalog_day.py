"""The plan for settling one day of one catalog product, computed before anything is written.

At the start of day D (16:00 UTC): every open holding that earned over [D − 1 day, D) — it earns
from its `interestTime` and not after its `expireTime` — gets the day's interest of its tiers.
`daily` products pay it to the holder's funding account (Bitget's spot: "interest ... will be
issued to the spot account daily"), each paid holding an order `pay_interest`; `maturity` products
accrue it, paid with the principal at expiry. Then fixed holdings whose `expireTime` has come
return their principal and accrued interest to funding.

The plan holds every ledger leg: the interest entries (to funding in entries of at most
`USERS_PER_ENTRY` users; into `accrued` in one) and one `expiry` entry per expiring holding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from flexearn.domain.catalog import DAY_MS, Product, SettleMethod, day_interest
from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, compound, leg
from flexearn.domain.money import ZERO, exact_add
from flexearn.domain.realtime import (
    MINUTE_MS,
    AprPoint,
    Change,
    apr_minutes,
    day_rewards,
    steady_rewards,
)

# Users paid per journal entry of a day's interest to funding accounts. PostgreSQL checks at commit
# that each entry balances, once per leg over all the entry's legs: one entry of a million legs
# would cost a million times a million; entries of a hundred users keep it linear.
USERS_PER_ENTRY = 100


class HoldingRow(NamedTuple):
    """An open holding as settlement reads it."""

    id: int
    user_id: int
    amount: Decimal
    accrued: Decimal
    total_profit: Decimal
    interest_time: int
    expire_time: int | None


class HoldingChange(NamedTuple):
    """A paid holding's new amounts (id, amount, accrued, total_profit, last_profit)."""

    id: int
    amount: Decimal
    accrued: Decimal
    total_profit: Decimal
    last_profit: Decimal


class DayOrder(NamedTuple):
    """An `earn_order` row the day writes (user_id, product_id, holding_id, type, amount, status, ts)."""

    user_id: int
    product_id: int
    holding_id: int
    order_type: str
    amount: Decimal
    status: str
    ts: int


@dataclass(frozen=True)
class DayPlan:
    """One product's day over some of its holdings (all of them, or a range of users)."""

    product_id: int
    coin: str
    day: int
    accrues: bool  # maturity: interest goes to `accrued`, not to funding
    changes: tuple[HoldingChange, ...]
    orders: tuple[DayOrder, ...]
    payouts: tuple[tuple[int, Decimal], ...]  # (user_id, interest) by user id, for daily products
    interest_total: Decimal

    @classmethod
    def of(
        cls,
        product: Product,
        day: int,
        changes: Sequence[HoldingChange],
        orders: Sequence[DayOrder],
        per_user: Mapping[int, Decimal],
        *,
        accrues: bool = False,
    ) -> DayPlan:
        """The day's plan: a change per paid holding, the orders, what each user is paid."""
        paid = tuple(sorted(per_user.items()))
        total = sum((c.last_profit for c in changes), ZERO)
        return cls(product.id, product.coin, day, accrues, tuple(changes), tuple(orders), paid, total)

    @property
    def holdings(self) -> int:
        return len(self.changes)

    def interest_entries(self, ref: str) -> Iterator[Entry]:
        """The day's interest: interest expense → `accrued` (maturity) or → the users' funding, in
        entries of `USERS_PER_ENTRY` users named `ref`, `ref:part:2`, …; none if nothing was paid.
        Made as they are taken: a product of a million holders need not hold all its legs at once."""
        if self.interest_total == 0:
            return
        expense = AccountRef.system(AccountKind.INTEREST_EXPENSE, self.coin)
        if self.accrues:
            accrued = AccountRef.system(AccountKind.ACCRUED, self.coin)
            legs = [leg(expense, -self.interest_total), leg(accrued, self.interest_total)]
            yield compound("catalog_interest", self.coin, legs, ref)
            return
        for part, start in enumerate(range(0, len(self.payouts), USERS_PER_ENTRY)):
            chunk = self.payouts[start : start + USERS_PER_ENTRY]
            credits: list[Leg] = [leg(AccountRef.funding(user, self.coin), amount) for user, amount in chunk]
            total = sum((amount for _, amount in chunk), ZERO)
            named = ref if part == 0 else f"{ref}:part:{part + 1}"
            yield compound("catalog_interest", self.coin, [leg(expense, -total), *credits], named)


def plan_day(product: Product, rows: Iterable[HoldingRow], day: int) -> DayPlan:
    """Interest for the day that ends at `day` on `rows` (open holdings of `product`)."""
    accrues = product.settle_method is SettleMethod.MATURITY
    tiers, places, product_id = product.tiers, product.profit_precision, product.id
    day_start = day - DAY_MS
    changes: list[HoldingChange] = []
    orders: list[DayOrder] = []
    per_user: dict[int, Decimal] = {}
    for holding_id, user_id, amount, accrued, total_profit, interest_time, expire_time in rows:
        if interest_time > day_start or (expire_time is not None and expire_time < day):
            continue
        interest = day_interest(amount, tiers, places)
        if interest == 0:
            continue
        changes.append(
            HoldingChange(
                holding_id,
                amount,
                accrued + interest if accrues else accrued,
                total_profit + interest,
                interest,
            )
        )
        if not accrues:  # maturity interest is recorded when it is paid, at expiry
            orders.append(DayOrder(user_id, product_id, holding_id, "pay_interest", interest, "success", day))
            per_user[user_id] = exact_add(per_user.get(user_id, ZERO), interest)
    return DayPlan.of(product, day, changes, orders, per_user, accrues=accrues)


def plan_realtime_day(
    product: Product,
    rows: Iterable[HoldingRow],
    changes: Mapping[int, Sequence[Change]],
    points: Sequence[AprPoint],
    day: int,
) -> DayPlan:
    """Binance's model (`domain/realtime.py`): the day that ends at `day`, on `rows` (the holdings,
    open or closed, that held anything during it; each `amount` what it holds now) given each
    holding's subscriptions (+) and redemptions (−) since the day began (`changes`, by holding id;
    those after the day too, to go back from now to the day's start) and the real-time APR's
    `points`. Each holding earns from the minute after it subscribes, whatever its
    `interestTime`; its REALTIME part is a `pay_interest` order, its BONUS part a `pay_bonus`."""
    begin, places, product_id = day - DAY_MS, product.profit_precision, product.id
    bands = product.bonus_bands
    per_unit, minutes = apr_minutes(points, begin, day), (day - begin) // MINUTE_MS
    changes_: list[HoldingChange] = []
    orders: list[DayOrder] = []
    per_user: dict[int, Decimal] = {}
    for row in rows:
        held = changes.get(row.id, ())
        start = row.amount - sum((c.delta for c in held), ZERO)
        if any(begin <= c.ts < day for c in held):
            rewards = day_rewards(start, held, points, bands, begin, day, places)
        else:  # most holdings: the same balance all day
            rewards = steady_rewards(start, per_unit, bands, minutes, places)
        paid = rewards.realtime + rewards.bonus
        if paid == 0:
            continue
        changes_.append(HoldingChange(row.id, row.amount, row.accrued, row.total_profit + paid, paid))
        for kind, value in (("pay_interest", rewards.realtime), ("pay_bonus", rewards.bonus)):
            if value:
                orders.append(DayOrder(row.user_id, product_id, row.id, kind, value, "success", day))
        per_user[row.user_id] = exact_add(per_user.get(row.user_id, ZERO), paid)
    return DayPlan.of(product, day, changes_, orders, per_user)


@dataclass(frozen=True)
class Expiry:
    """A fixed holding reaching its `expireTime`: principal and unpaid interest back to funding."""

    entry: Entry
    orders: tuple[DayOrder, ...]


def expire(product: Product, holdings: Sequence[HoldingRow], day: int) -> list[Expiry]:
    """The expiries of `holdings` (those due at `day`), each with its entry and orders."""
    coin, found = product.coin, []
    for h in holdings:
        legs = (
            leg(AccountRef.system(AccountKind.EARN, coin), -h.amount, holding_id=h.id),
            leg(AccountRef.system(AccountKind.ACCRUED, coin), -h.accrued, holding_id=h.id),
            leg(AccountRef.funding(h.user_id, coin), h.amount + h.accrued),
        )
        entry = Entry("expiry", coin, tuple(x for x in legs if x.amount != 0), f"holding:{h.id}")
        orders = [DayOrder(h.user_id, product.id, h.id, "redeem", h.amount, "success", day)]
        if h.accrued:
            orders.append(DayOrder(h.user_id, product.id, h.id, "pay_interest", h.accrued, "success", day))
        found.append(Expiry(entry, tuple(orders)))
    return found
