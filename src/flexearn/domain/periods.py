"""Business time's vocabulary: the clock's modes and the kinds of period the engine settles."""

from __future__ import annotations

from enum import StrEnum


class ClockMode(StrEnum):
    REAL = "real"  # business time is the wall clock
    SIMULATED = "simulated"  # business time runs from an anchor at a speed (paused at 0)


class PeriodKind(StrEnum):
    HOUR = "hour"  # a market's hour (keyed by currency)
    DAY = "day"  # a catalog product's day (keyed by product id)
