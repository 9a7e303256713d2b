"""Simulated demand is reproducible, stays positive, and moves with the day."""

from __future__ import annotations

from flexearn.domain.demand import SimulatedDemand, simulate_hour
from flexearn.domain.market import MAX_RATE, MIN_RATE
from flexearn.domain.money import D

HOUR = 3_600_000
PARAMS = SimulatedDemand(mean=D(1000), seed=42)


def series(params: SimulatedDemand, hours: int) -> list[tuple[object, object]]:
    state, out = "", []
    for h in range(hours):
        result = simulate_hour(params, "USDT", h * HOUR, state, 6)
        out.append((result.demand, result.borrow_rate))
        state = result.state
    return out


def test_same_seed_same_history_other_seed_other_history() -> None:
    assert series(PARAMS, 48) == series(PARAMS, 48)
    assert series(PARAMS, 48) != series(SimulatedDemand(mean=D(1000), seed=43), 48)


def test_demand_is_never_negative_and_reverts_to_its_mean() -> None:
    demands = [d for d, _ in series(PARAMS, 24 * 30)]
    assert min(demands) >= 0
    average = sum(demands) / len(demands)
    assert D(700) < average < D(1300)


def test_rates_stay_within_the_market_bounds() -> None:
    assert all(MIN_RATE <= rate <= MAX_RATE for _, rate in series(PARAMS, 200))


def test_the_daily_cycle_peaks_in_the_afternoon() -> None:
    quiet = SimulatedDemand(mean=D(1000), volatility=0.0, spike_probability=0.0, daily_amplitude=0.3)
    by_hour = dict(enumerate(d for d, _ in series(quiet, 24)))
    assert by_hour[14] > by_hour[2]
