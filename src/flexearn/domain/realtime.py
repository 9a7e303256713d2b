"""Binance's flexible product model: a real-time APR that moves, accrued by the minute, plus bonus
APRs on bands of the holding, both paid once a day (issue 16).

Nothing is written by the minute. At the day's distribution the holding's balance over the day is
rebuilt from its balance at the start and its subscriptions and redemptions inside the day, and the
day's rewards are computed from it in one pass:

- **Which balance a minute earns on.** The day is cut into whole minutes (day starts are whole
  minutes). A minute earns on the *least* balance held during the whole of it: a subscription
  inside a minute starts earning at the next minute, a redemption inside a minute stops the
  redeemed part earning for that minute. A change at the very first instant of a minute (its
  timestamp a whole minute) counts for that minute; changes at one instant count together. So a
  partial minute never earns, and a holding never earns on money it did not hold for the whole
  minute (Binance: rewards "accrue every minute"; a partial minute is the engine's choice, the
  conservative one).
- **Which APR a minute earns at.** The real-time APR in effect at the minute's first instant: the
  latest recorded change at or before it (a change inside a minute applies from the next). Before
  the first recorded APR, the real-time APR is 0.
- **REALTIME** = Σ over minutes of balance × APR / (365 × 1440), summed exactly, then rounded down
  once to the product's profit precision (Binance shows 8 places).
- **BONUS** = Σ over minutes of Σ over bonus bands of (the part of the minute's balance inside the
  band) × the band's APR / (365 × 1440), summed exactly, rounded down once. A band applies to the
  part of the balance inside it (`0-5BTC`: the first 5 BTC), and there is no bonus above the last
  band: unlike the catalog's APY ladder (`catalog.tier_parts`), whose last tier has no ceiling.
  Bands apply to each minute's balance, not to the day's average: tiers are not linear.

APRs are in percent (6 is 6% a year), as the catalog keeps every rate; the wire shows fractions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from decimal import Context, Decimal
from typing import NamedTuple

from flexearn.domain.catalog import DAYS_PER_YEAR, Tier
from flexearn.domain.money import ZERO, mul_div_down

MINUTE_MS = 60_000
MINUTES_PER_DAY = 1_440
# Percent per year → per minute: divide by 100 × 365 × 1440.
PER_MINUTE_DIVISOR = Decimal(100 * DAYS_PER_YEAR * MINUTES_PER_DAY)
ONE = Decimal(1)
# Balances (38 digits) × APRs × minute counts, summed over a day: exact in 120 digits.
_EXACT = Context(prec=120)


class Change(NamedTuple):
    """A subscription (+) or redemption (−) of a holding at `ts` (epoch ms)."""

    ts: int
    delta: Decimal


class AprPoint(NamedTuple):
    """The real-time APR (percent) from `ts` on, until the next point."""

    ts: int
    apr: Decimal


class Segment(NamedTuple):
    """Whole minutes [start, end) over which a holding earns on `balance`."""

    start: int
    end: int
    balance: Decimal


class Rewards(NamedTuple):
    realtime: Decimal
    bonus: Decimal


def minute_floor(ts: int) -> int:
    return ts - ts % MINUTE_MS


def segments(start: Decimal, changes: Iterable[Change], begin: int, end: int) -> list[Segment]:
    """The balance each minute of [begin, end) earns on (whole minutes; see the module's rule),
    from the balance at `begin` and the changes inside [begin, end) in the order they happened."""
    out: list[Segment] = []
    balance, cursor = start, begin
    pending = sorted((c for c in changes if begin <= c.ts < end), key=lambda c: c.ts)
    i = 0
    while i < len(pending):
        minute = minute_floor(pending[i].ts)
        _append(out, cursor, minute, balance)
        while i < len(pending) and pending[i].ts == minute:  # at the minute's first instant
            balance += pending[i].delta
            i += 1
        low = balance
        while i < len(pending) and minute_floor(pending[i].ts) == minute:
            instant = pending[i].ts
            while i < len(pending) and pending[i].ts == instant:  # changes of one instant at once
                balance += pending[i].delta
                i += 1
            low = min(low, balance)
        _append(out, minute, minute + MINUTE_MS, low)
        cursor = minute + MINUTE_MS
    _append(out, cursor, end, balance)
    return out


def _append(out: list[Segment], start: int, end: int, balance: Decimal) -> None:
    """Add [start, end) at `balance`, joined to the previous segment if it earns the same."""
    if end <= start:
        return
    if out and out[-1].end == start and out[-1].balance == balance:
        out[-1] = Segment(out[-1].start, end, balance)
    else:
        out.append(Segment(start, end, balance))


def apr_pieces(points: Sequence[AprPoint], begin: int, end: int) -> list[tuple[int, int, Decimal]]:
    """The APR over whole minutes of [begin, end): (start, end, apr) pieces; `points` sorted by
    time, the one in effect at `begin` among them (0 before the first)."""
    pieces: list[tuple[int, int, Decimal]] = []
    apr, cursor = ZERO, begin
    for ts, value in points:
        effective = ts if ts % MINUTE_MS == 0 else minute_floor(ts) + MINUTE_MS
        if effective >= end:
            break
        if effective > cursor:
            pieces.append((cursor, effective, apr))
            cursor = effective
        apr = value
    pieces.append((cursor, end, apr))
    return pieces


def band_part(balance: Decimal, band: Tier) -> Decimal:
    """The part of `balance` inside `band` (none above its top: bonus bands end where they say)."""
    return max(ZERO, min(balance, band.max_step) - band.min_step)


def bonus_per_minute(balance: Decimal, bands: Sequence[Tier]) -> Decimal:
    """What a minute on `balance` earns in bonus, exactly, in percent: Σ band part × band APR."""
    return sum((_EXACT.multiply(band_part(balance, b), b.apy) for b in bands), ZERO)


def weighted(
    balances: Sequence[Segment], points: Sequence[AprPoint], bands: Sequence[Tier]
) -> Rewards:
    """The day's REALTIME and BONUS rewards over `balances`' minutes, exactly, as sums of balance ×
    APR (percent) × minutes: each is `PER_MINUTE_DIVISOR` times the reward (whose decimal
    expansion need not end, so it is divided only when rounded)."""
    begin, end = balances[0].start, balances[-1].end
    pieces = apr_pieces(points, begin, end)
    realtime = bonus = ZERO
    i = 0
    for start, stop, balance in balances:
        if balance == 0:
            continue
        minutes = Decimal((stop - start) // MINUTE_MS)
        bonus = _EXACT.add(bonus, _EXACT.multiply(bonus_per_minute(balance, bands), minutes))
        while pieces[i][1] <= start:
            i += 1
        j = i
        while j < len(pieces) and pieces[j][0] < stop:
            low, high, apr = pieces[j]
            overlap = Decimal((min(high, stop) - max(low, start)) // MINUTE_MS)
            realtime = _EXACT.add(realtime, _EXACT.multiply(_EXACT.multiply(balance, apr), overlap))
            j += 1
    return Rewards(realtime, bonus)


def day_rewards(
    start: Decimal,
    changes: Iterable[Change],
    points: Sequence[AprPoint],
    bands: Sequence[Tier],
    begin: int,
    end: int,
    places: int,
) -> Rewards:
    """A holding's REALTIME and BONUS rewards for [begin, end), each rounded down to `places`."""
    sums = weighted(segments(start, changes, begin, end), points, bands)
    return Rewards(*(mul_div_down(x, ONE, PER_MINUTE_DIVISOR, places) for x in sums))


def apr_minutes(points: Sequence[AprPoint], begin: int, end: int) -> Decimal:
    """Σ APR × minutes over [begin, end): what one unit held throughout earns, in percent-minutes.
    Computed once per product-day, it makes a holding that did not change in the day one
    multiplication (`steady_rewards`) instead of a walk over its minutes."""
    total = ZERO
    for start, stop, apr in apr_pieces(points, begin, end):
        total = _EXACT.add(total, _EXACT.multiply(apr, Decimal((stop - start) // MINUTE_MS)))
    return total


def steady_rewards(
    balance: Decimal, per_unit: Decimal, bands: Sequence[Tier], minutes: int, places: int
) -> Rewards:
    """`day_rewards` of a holding whose balance did not change over the `minutes` of the window,
    given the window's `apr_minutes` (`per_unit`): the same sums, rounded the same way."""
    realtime = _EXACT.multiply(balance, per_unit)
    bonus = _EXACT.multiply(bonus_per_minute(balance, bands), Decimal(minutes))
    return Rewards(*(mul_div_down(x, ONE, PER_MINUTE_DIVISOR, places) for x in (realtime, bonus)))


def day_estimate(balance: Decimal, apr: Decimal, bands: Sequence[Tier], places: int) -> Rewards:
    """A whole day's rewards on a steady `balance` at a steady `apr` (a subscription preview)."""
    return day_rewards(balance, (), [AprPoint(0, apr)], bands, 0, MINUTES_PER_DAY * MINUTE_MS, places)


# --- where a product's real-time APR comes from -------------------------------------------------


def walk_step(
    seed: int, product_id: int, hour: int, apr: Decimal, low: Decimal, high: Decimal, step: Decimal
) -> Decimal:
    """The simulated APR after `hour` (an hour start): `apr` moved by up to ±`step` (percent), kept
    within [low, high]. Deterministic: the move is a hash of (seed, product, hour), so a replay,
    another worker or a catch-up after downtime walks the same path. Moves are whole ten-thousandths
    of `step` so the APR keeps a bounded number of places."""
    digest = hashlib.sha256(f"{seed}:{product_id}:{hour}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") % 20_001 - 10_000  # −10000 … 10000
    moved = apr + step * Decimal(draw) / 10_000
    return min(high, max(low, moved))
