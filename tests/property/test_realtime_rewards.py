"""The real-time and bonus rewards of a day (`domain/realtime.py`) against a minute-by-minute oracle.

The oracle walks every minute of the window on its own: the balance a minute earns on is the least
balance at any instant of it (found by replaying every change up to that instant), its APR the
latest point at or before its first instant; each minute's reward is added exactly. It shares no
code with the domain's segments, so a wrong cut, a misplaced change or a lost minute shows.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from flexearn.domain.catalog import Tier
from flexearn.domain.money import ZERO
from flexearn.domain.realtime import (
    MINUTE_MS,
    AprPoint,
    Change,
    Segment,
    apr_minutes,
    day_estimate,
    day_rewards,
    segments,
    steady_rewards,
    walk_step,
    weighted,
)

BEGIN = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS
MINUTES = 90  # the window: short, so the oracle's minute-by-minute walk stays quick
END = BEGIN + MINUTES * MINUTE_MS
DIVISOR = Decimal(100 * 365 * 1440)
BANDS = (Tier(0, Decimal(0), Decimal(5), Decimal(3)), Tier(1, Decimal(5), Decimal(10), Decimal("1.5")))

amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(20), places=8)
instants = st.integers(min_value=BEGIN, max_value=END - 1)


@st.composite
def timelines(draw: st.DrawFn) -> tuple[Decimal, list[Change]]:
    """A start balance and changes that never take the balance below zero."""
    start = draw(st.one_of(st.just(ZERO), amounts))
    balance, changes = start, []
    for ts in sorted(draw(st.lists(instants, max_size=8))):
        if draw(st.booleans()) and balance > 0:
            out = draw(st.decimals(min_value=Decimal("0.00000001"), max_value=balance, places=8))
            changes.append(Change(ts, -out))
            balance -= out
        else:
            size = draw(amounts)
            changes.append(Change(ts, size))
            balance += size
    return start, changes


aprs = st.lists(
    st.tuples(
        st.integers(min_value=BEGIN - 10 * MINUTE_MS, max_value=END + MINUTE_MS),
        st.decimals(min_value=0, max_value=40, places=4),
    ),
    max_size=5,
).map(lambda xs: [AprPoint(ts, apr) for ts, apr in sorted(xs, key=lambda x: x[0])])


def oracle(start: Decimal, changes: list[Change], points: list[AprPoint]) -> tuple[Decimal, Decimal]:
    def balance_at(instant: int) -> Decimal:
        return start + sum((c.delta for c in changes if c.ts <= instant), ZERO)

    realtime = bonus = ZERO
    for m in range(BEGIN, END, MINUTE_MS):
        instants_in = [m] + [c.ts for c in changes if m < c.ts < m + MINUTE_MS]
        low = min(balance_at(i) for i in instants_in)
        apr = ZERO
        for p in points:
            if p.ts <= m:
                apr = p.apr
        realtime += low * apr
        bonus += sum((max(ZERO, min(low, b.max_step) - b.min_step) * b.apy for b in BANDS), ZERO)
    return realtime, bonus


@settings(max_examples=150, deadline=None)
@given(timelines(), aprs)
def test_rewards_equal_the_minute_by_minute_oracle(
    timeline: tuple[Decimal, list[Change]], points: list[AprPoint]
) -> None:
    start, changes = timeline
    cut = segments(start, changes, BEGIN, END)
    assert cut[0].start == BEGIN
    assert cut[-1].end == END
    assert all(s.start % MINUTE_MS == 0 and s.end % MINUTE_MS == 0 and s.balance >= 0 for s in cut)
    assert weighted(cut, points, BANDS) == oracle(start, changes, points)


@settings(max_examples=150, deadline=None)
@given(timelines(), aprs, st.integers(min_value=0, max_value=10))
def test_paid_is_rounded_down_within_one_unit(
    timeline: tuple[Decimal, list[Change]], points: list[AprPoint], places: int
) -> None:
    start, changes = timeline
    exact = weighted(segments(start, changes, BEGIN, END), points, BANDS)
    paid = day_rewards(start, changes, points, BANDS, BEGIN, END, places)
    unit = Decimal(1).scaleb(-places)
    for p, e in zip(paid, exact, strict=True):  # p ≤ e / DIVISOR < p + unit, without dividing
        assert p * DIVISOR <= e < (p + unit) * DIVISOR
        assert p == p.quantize(unit)


@settings(max_examples=150, deadline=None)
@given(timelines(), aprs, st.integers(min_value=1, max_value=MINUTES - 1))
def test_weighted_add_up_over_a_split_window(
    timeline: tuple[Decimal, list[Change]], points: list[AprPoint], split: int
) -> None:
    start, changes = timeline
    middle = BEGIN + split * MINUTE_MS
    whole = weighted(segments(start, changes, BEGIN, END), points, BANDS)
    at_middle = start + sum((c.delta for c in changes if c.ts < middle), ZERO)
    first = weighted(segments(start, changes, BEGIN, middle), points, BANDS)
    second = weighted(segments(at_middle, changes, middle, END), points, BANDS)
    assert whole == (first[0] + second[0], first[1] + second[1])


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.just(ZERO), amounts), aprs, st.integers(min_value=0, max_value=10))
def test_a_steady_holding_earns_what_the_minute_walk_gives(
    balance: Decimal, points: list[AprPoint], places: int
) -> None:
    """The settlement's shortcut for a holding that did not change in the day: the same figures."""
    steady = steady_rewards(balance, apr_minutes(points, BEGIN, END), BANDS, MINUTES, places)
    assert steady == day_rewards(balance, [], points, BANDS, BEGIN, END, places)


@given(aprs)
def test_nothing_held_earns_nothing(points: list[AprPoint]) -> None:
    assert day_rewards(ZERO, [], points, BANDS, BEGIN, END, 8) == (ZERO, ZERO)


def test_in_and_out_within_one_minute_earns_nothing() -> None:
    """The hostile case: a million subscribed and redeemed inside one minute, never held a whole one."""
    ts = BEGIN + 10 * MINUTE_MS + 1
    changes = [Change(ts, Decimal(10**6)), Change(ts + 58_000, Decimal(-(10**6)))]
    assert day_rewards(ZERO, changes, [AprPoint(BEGIN, Decimal(50))], BANDS, BEGIN, END, 18) == (ZERO, ZERO)


def test_partial_minutes_do_not_earn() -> None:
    """Subscribed 1 ms after 00:10 earns from 00:11; redeemed at 00:20:00.000 earns until 00:20."""
    changes = [Change(BEGIN + 10 * MINUTE_MS + 1, Decimal(1)), Change(BEGIN + 20 * MINUTE_MS, Decimal(-1))]
    assert segments(ZERO, changes, BEGIN, END) == [
        Segment(BEGIN, BEGIN + 11 * MINUTE_MS, ZERO),
        Segment(BEGIN + 11 * MINUTE_MS, BEGIN + 20 * MINUTE_MS, Decimal(1)),
        Segment(BEGIN + 20 * MINUTE_MS, END, ZERO),
    ]


def test_a_whole_day_estimate_by_hand() -> None:
    """12 BTC for a day at 3.65%: 12 × 3.65% / 365 = 0.0012 real-time; bonus 5 × 3% / 365 +
    5 × 1.5% / 365 = 0.00061643835616… → 0.00061643 (nothing above the last band at 10)."""
    assert day_estimate(Decimal(12), Decimal("3.65"), BANDS, 8) == (Decimal("0.0012"), Decimal("0.00061643"))


@given(st.integers(min_value=0, max_value=10**6), st.decimals(min_value=1, max_value=9, places=2))
def test_the_simulated_walk_stays_in_bounds_and_is_a_function_of_its_inputs(hour: int, apr: Decimal) -> None:
    low, high, step = Decimal(1), Decimal(9), Decimal("0.5")
    moved = walk_step(7, 3, hour, apr, low, high, step)
    assert low <= moved <= high
    assert abs(moved - apr) <= step
    assert moved == walk_step(7, 3, hour, apr, low, high, step)
