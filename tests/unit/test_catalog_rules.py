"""Bitget's catalog rules, without a database: its day and the pace of redemptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexearn.domain.catalog import (
    DAY_MS,
    REDEEM_INTERVAL_MS,
    ApyType,
    Level,
    PeriodType,
    Product,
    SettleMethod,
    Status,
    Tier,
    check_redemption_pace,
    day_start,
    next_day_start,
)
from flexearn.domain.catalog_errors import TooFrequent
from flexearn.domain.money import D

GOLDEN = Path(__file__).parents[1] / "contract" / "golden" / "bitget" / "subscribe-info.json"
HOUR = 3_600_000
# 2023-10-08T16:00:00Z = 2023-10-09T00:00:00+08:00
BITGET_MIDNIGHT = 1_696_780_800_000


def flexible(**changes: object) -> Product:
    fields: dict[str, object] = {
        "id": 1,
        "coin": "BGB",
        "period_type": PeriodType.FLEXIBLE,
        "period_days": None,
        "apy_type": ApyType.SINGLE,
        "tiers": (Tier(0, D(0), D(5000), D(6)),),
        "advance_redeem": False,
        "settle_method": SettleMethod.DAILY,
        "operator_status": Status.IN_PROGRESS,
        "level": Level.NORMAL,
        "single_min": D(10),
        "single_max": D(2000),
        "quota": None,
        "subscribe_precision": 6,
        "profit_precision": 6,
        "redeem_delay_days": 0,
        "start_time": None,
        "end_time": None,
    }
    return Product(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_schedule_of_bitgets_own_subscribe_info_example() -> None:
    """The seed's (and golden file's) example: subscribeTime 1696751519451 (07:51:59Z), interestTime
    1696780800000 (16:00Z the same day), settleTime 1696867200000 (a day later)."""
    seed = json.loads(GOLDEN.read_text())["data"]
    schedule = flexible().schedule(int(seed["subscribeTime"]))
    times = (str(schedule.interest_time), str(schedule.settle_time))
    assert times == (seed["interestTime"], seed["settleTime"])
    assert schedule.interest_time == 1_696_780_800_000


@pytest.mark.parametrize(
    ("now", "start", "next_start"),
    [
        (BITGET_MIDNIGHT - 1, BITGET_MIDNIGHT - DAY_MS, BITGET_MIDNIGHT),
        (BITGET_MIDNIGHT, BITGET_MIDNIGHT, BITGET_MIDNIGHT + DAY_MS),  # on the turn: the next one
        (BITGET_MIDNIGHT + 8 * HOUR, BITGET_MIDNIGHT, BITGET_MIDNIGHT + DAY_MS),  # 00:00 UTC
        (BITGET_MIDNIGHT + DAY_MS - 1, BITGET_MIDNIGHT, BITGET_MIDNIGHT + DAY_MS),
    ],
)
def test_bitgets_day_turns_at_16_00_utc(now: int, start: int, next_start: int) -> None:
    assert (day_start(now), next_day_start(now)) == (start, next_start)
    assert start % DAY_MS == 16 * HOUR


def test_a_fixed_term_runs_from_the_interest_time() -> None:
    fixed = flexible(period_type=PeriodType.FIXED, period_days=30)
    schedule = fixed.schedule(BITGET_MIDNIGHT - HOUR)
    assert schedule.expire_time == BITGET_MIDNIGHT + 30 * DAY_MS


def test_redemptions_are_more_than_a_minute_apart() -> None:
    check_redemption_pace(None, 0)
    check_redemption_pace(1_000, 1_000 + REDEEM_INTERVAL_MS + 1)
    for later in (0, 400, REDEEM_INTERVAL_MS):
        with pytest.raises(TooFrequent) as refused:
            check_redemption_pace(1_000, 1_000 + later)
        assert refused.value.wait_ms == REDEEM_INTERVAL_MS - later + 1
