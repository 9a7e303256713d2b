"""Borrow demand for an hour: operator-set (static) or a seeded stochastic process (simulated).

The simulated process is a mean-reverting level (discrete Ornstein-Uhlenbeck) times a daily cycle,
with occasional spikes. Each hour's randomness is drawn from a generator seeded by
(seed, currency, hour), so a history is reproducible whatever order or process computes it; the
level carries from hour to hour through the stored state.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from flexearn.domain.market import MAX_RATE, MIN_RATE
from flexearn.domain.money import D, round_down


@dataclass(frozen=True)
class SimulatedDemand:
    mean: Decimal  # long-run hourly demand, in currency units
    base_rate: Decimal = D("0.05")  # pro-rata borrow rate when demand is at its mean
    reversion: float = 0.15  # share of the gap to the mean closed each hour
    volatility: float = 0.08  # hourly noise, relative to the mean
    daily_amplitude: float = 0.25  # ± share of the level over the day (peak 14:00 UTC)
    spike_probability: float = 0.02
    spike_multiplier: float = 2.5
    seed: int = 0


@dataclass(frozen=True)
class HourDemand:
    demand: Decimal
    borrow_rate: Decimal  # r_b for pro-rata markets
    state: str  # carried to the next hour ("" for static demand)


def _decimal(x: float, places: int) -> Decimal:
    # The one place a float becomes a Decimal: a random draw, fixed to `places` digits first.
    return Decimal(f"{x:.{places}f}")


def simulate_hour(
    params: SimulatedDemand, ccy: str, hour_ms: int, previous_state: str, places: int
) -> HourDemand:
    mean = float(params.mean)
    level = float(previous_state) if previous_state else mean
    rng = random.Random(f"{params.seed}:{ccy}:{hour_ms}")
    level += params.reversion * (mean - level) + params.volatility * mean * rng.gauss(0.0, 1.0)
    level = max(level, 0.0)
    hour_of_day = (hour_ms // 3_600_000) % 24
    cycle = 1.0 + params.daily_amplitude * math.sin(2 * math.pi * (hour_of_day - 8) / 24)
    spike = params.spike_multiplier if rng.random() < params.spike_probability else 1.0
    demand = max(level * cycle * spike, 0.0)
    ratio = demand / mean if mean > 0 else 0.0
    rate = _decimal(float(params.base_rate) * ratio, 6)
    rate = min(max(rate, MIN_RATE), MAX_RATE)
    return HourDemand(round_down(_decimal(demand, 8), places), rate, _decimal(level, 8).to_eng_string())
