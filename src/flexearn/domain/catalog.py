"""Catalog savings products (the Bitget Earn model, SPEC §3): tiers, statuses, schedules, interest.

APYs are percentages as the wire writes them (`6.00` is 6% a year). Days are Bitget's days of the
business clock, which turn at 00:00 UTC+8 (16:00 UTC) for every product; times are epoch
milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from flexearn.domain.catalog_errors import (
    AboveMaximum,
    BeginnersOnly,
    BelowMinimum,
    NotEligible,
    ProductNotStarted,
    ProductUnavailable,
    QuotaExceeded,
    TooFrequent,
    TooPrecise,
)
from flexearn.domain.errors import AmountTooLarge, InvalidParameter
from flexearn.domain.money import ZERO, decimal_places, plain, round_down

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365
# Bitget's day turns at 00:00 UTC+8: its own example subscribes at 07:51:59Z with `interestTime`
# 16:00Z the same day and `settleTime` a day later (seeds/bitget-savings-subscribe-info.txt).
DAY_START_MS = 16 * 3_600_000  # after 00:00 UTC
# "The interval of each redeem should be more than 1min, or it would return error" (Bitget's
# Redeem Savings): per user, whatever the product; wall-clock time, as for any request limit.
REDEEM_INTERVAL_MS = 60_000


class PeriodType(StrEnum):
    FLEXIBLE = "flexible"
    FIXED = "fixed"


class ApyType(StrEnum):
    SINGLE = "single"
    LADDER = "ladder"


class SettleMethod(StrEnum):
    DAILY = "daily"
    MATURITY = "maturity"


class Status(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    SOLD_OUT = "sold_out"
    OFF_LINE = "off_line"


# What an operator may set; the others follow from time and quota.
OPERATOR_STATUSES = (Status.IN_PROGRESS, Status.PAUSED, Status.OFF_LINE)


class Level(StrEnum):
    BEGINNER = "beginner"
    NORMAL = "normal"
    VIP = "VIP"


class OrderType(StrEnum):
    """A row of a user's catalog order history."""

    SUBSCRIBE = "subscribe"
    REDEEM = "redeem"
    PAY_INTEREST = "pay_interest"  # a day's interest; of a real-time product, its REALTIME part
    DEDUCTION = "deduction"  # what an early fixed redemption gives up
    PAY_BONUS = "pay_bonus"  # a real-time product's day of BONUS rewards (`domain/realtime.py`)


class AprSource(StrEnum):
    """Where a flexible product's real-time APR comes from (Binance's model, `domain/realtime.py`);
    a product without one pays its tiers' APYs (Bitget's model)."""

    MANUAL = "manual"  # set by the operator
    MARKET = "market"  # the lending market's settled hourly lending rate of the same currency
    SIMULATED = "simulated"  # a seeded random walk within bounds, moved each hour


@dataclass(frozen=True)
class Walk:
    """The simulated APR's bounds and hourly step (percent) and its seed."""

    low: Decimal
    high: Decimal
    step: Decimal
    seed: int


class OrderStatus(StrEnum):
    PROCESSING = "processing"  # a redemption whose funds have not arrived yet
    SUCCESS = "success"
    FAIL = "fail"


def day_start(ms: int) -> int:
    """The start (16:00 UTC) of the Bitget day that `ms` falls in."""
    return ms - (ms - DAY_START_MS) % DAY_MS


def next_day_start(ms: int) -> int:
    """The first start of a Bitget day (16:00 UTC) strictly after `ms`."""
    return day_start(ms) + DAY_MS


def check_redemption_pace(last: int | None, now: int) -> None:
    """Refuse a redemption at wall-clock `now` within a minute of the user's last, at `last`."""
    if last is not None and now - last <= REDEEM_INTERVAL_MS:
        raise TooFrequent(last + REDEEM_INTERVAL_MS - now + 1)


@dataclass(frozen=True)
class Tier:
    level: int
    min_step: Decimal
    max_step: Decimal
    apy: Decimal  # percent


def check_tiers(tiers: Sequence[Tier], apy_type: ApyType) -> tuple[Tier, ...]:
    """Tiers start at 0, follow each other without gap or overlap; a single APY has one tier."""
    if not tiers:
        raise InvalidParameter("apyList", "at least one tier")
    ordered = tuple(sorted(tiers, key=lambda t: t.min_step))
    if apy_type is ApyType.SINGLE and len(ordered) != 1:
        raise InvalidParameter("apyList", "a single APY has exactly one tier")
    if ordered[0].min_step != 0:
        raise InvalidParameter("apyList", "the first tier starts at 0")
    for low, high in itertools.pairwise(ordered):
        if low.max_step != high.min_step:
            raise InvalidParameter("apyList", f"tier {high.level} must start where tier {low.level} ends")
    for tier in ordered:
        if tier.max_step <= tier.min_step or tier.apy < 0:
            raise InvalidParameter(
                "apyList", f"tier {tier.level}: maxStepVal above minStepVal, APY not negative"
            )
    return ordered


def tier_parts(amount: Decimal, tiers: Sequence[Tier]) -> list[tuple[Tier, Decimal]]:
    """The part of `amount` inside each tier; above the last tier, the last tier's APY applies."""
    parts = []
    for i, tier in enumerate(tiers):
        top = amount if i == len(tiers) - 1 else min(amount, tier.max_step)
        part = top - tier.min_step
        if part <= 0:
            break
        parts.append((tier, part))
    return parts


def day_interest(amount: Decimal, tiers: Sequence[Tier], profit_precision: int) -> Decimal:
    """One day's interest: Σ tier part × APY / 365, summed exactly, then rounded down."""
    exact = sum((part * tier.apy for tier, part in tier_parts(amount, tiers)), ZERO)
    return round_down(exact / 100 / DAYS_PER_YEAR, profit_precision)


@dataclass(frozen=True)
class Product:
    id: int
    coin: str
    period_type: PeriodType
    period_days: int | None
    apy_type: ApyType
    tiers: tuple[Tier, ...]
    advance_redeem: bool
    settle_method: SettleMethod
    operator_status: Status
    level: Level
    single_min: Decimal
    single_max: Decimal
    quota: Decimal | None
    subscribe_precision: int
    profit_precision: int
    redeem_delay_days: int
    start_time: int | None
    end_time: int | None
    apr_source: AprSource | None = None  # None: Bitget's model (tiers' APYs)
    walk: Walk | None = None  # the simulated APR's walk

    @property
    def realtime(self) -> bool:
        """Binance's model: a real-time APR plus bonus bands (the tiers), `domain/realtime.py`."""
        return self.apr_source is not None

    @property
    def bonus_bands(self) -> tuple[Tier, ...]:
        """A real-time product's bonus bands: the tiers that pay (Binance lists only those)."""
        return tuple(t for t in self.tiers if t.apy > 0)

    @property
    def redemption_places(self) -> int:
        """How finely a holding may be redeemed: as finely as it was made — by subscriptions, and,
        in a database from before interest was paid out daily, by compounded interest (so the
        whole of it can always be named) — and no finer."""
        return max(self.subscribe_precision, self.profit_precision)

    def status(self, now: int, held: Decimal) -> Status:
        """What the product is now, given how much of its quota is held."""
        if self.operator_status is Status.OFF_LINE:
            return Status.OFF_LINE
        if self.start_time is not None and now < self.start_time:
            return Status.NOT_STARTED
        if self.end_time is not None and now >= self.end_time:
            return Status.COMPLETED
        if self.operator_status is Status.PAUSED:
            return Status.PAUSED
        if self.quota is not None and held >= self.quota:
            return Status.SOLD_OUT
        return Status.IN_PROGRESS

    def remaining(self, held: Decimal) -> Decimal | None:
        return None if self.quota is None else max(ZERO, self.quota - held)

    def check_subscription(
        self, amount: Decimal, now: int, held: Decimal, user_level: Level, currency_places: int
    ) -> None:
        """Refuse a subscription that the product does not take now; each rule its own error."""
        status = self.status(now, held)
        if status is Status.NOT_STARTED:
            raise ProductNotStarted(f"product {self.id} is {status.value}", param="productId")
        if status is not Status.IN_PROGRESS:
            raise ProductUnavailable(f"product {self.id} is {status.value}", param="productId")
        if self.level is Level.BEGINNER and user_level is not Level.BEGINNER:
            raise BeginnersOnly(
                "beginner products are for users who have never subscribed", param="productId"
            )
        if self.level is Level.VIP and user_level is not Level.VIP:
            raise NotEligible("VIP products are for VIP users", param="productId")
        places = min(self.subscribe_precision, currency_places)
        if decimal_places(amount) > places:
            raise TooPrecise("subscription", places)
        if amount <= 0 or amount < self.single_min:
            raise BelowMinimum("subscription", self.single_min)
        if amount > self.single_max:
            raise AboveMaximum(self.single_max)
        remaining = self.remaining(held)
        if remaining is not None and amount > remaining:
            raise QuotaExceeded(remaining)

    def check_period_type(self, period_type: str) -> None:
        """Refuse a request naming the other kind of product (`periodType`)."""
        if period_type != self.period_type.value:
            raise InvalidParameter("periodType", f"product {self.id} is {self.period_type.value}")

    def check_redemption(self, amount: Decimal, held: Decimal, currency_places: int) -> None:
        """Refuse a redemption of `amount` out of a holding of `held`."""
        places = min(self.redemption_places, currency_places)
        if decimal_places(amount) > places:
            raise TooPrecise("redemption", places)
        if amount <= 0:
            raise BelowMinimum("redemption", ZERO)
        if amount > held:
            raise AmountTooLarge("redemption", plain(held))

    def schedule(self, now: int) -> Schedule:
        interest = next_day_start(now)
        expire = (
            interest + self.period_days * DAY_MS
            if self.period_type is PeriodType.FIXED and self.period_days
            else None
        )
        return Schedule(now, interest, interest + DAY_MS, expire, now + self.redeem_delay_days * DAY_MS)


@dataclass(frozen=True)
class Schedule:
    subscribe_time: int
    interest_time: int  # interest accrues from here (T+1)
    settle_time: int  # first payout
    expire_time: int | None  # fixed terms
    redeem_time: int  # when a redemption made now would arrive


@dataclass(frozen=True)
class ProductFields:
    """A product's fields as the operator gives them, typed; None: not given (a new product takes
    the default, a change leaves the field as it is). The words arrive at the admin API and the
    CLI, which read them (`api/admin/product_spec.py`); the catalog service keeps the rules."""

    coin: str | None = None
    period_type: PeriodType | None = None
    period_days: int | None = None
    apy_type: ApyType | None = None
    tiers: tuple[Tier, ...] | None = None
    advance_redeem: bool | None = None
    settle_method: SettleMethod | None = None
    status: Status | None = None
    level: Level | None = None
    single_min: Decimal | None = None
    single_max: Decimal | None = None
    quota: Decimal | None = None
    subscribe_precision: int | None = None
    profit_precision: int | None = None
    redeem_delay_days: int | None = None
    start_time: int | None = None
    end_time: int | None = None
    apr_source: AprSource | None = None
    apr: Decimal | None = None  # the real-time APR now (manual), or where the walk starts
    walk: Walk | None = None
