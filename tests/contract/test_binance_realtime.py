"""A real-time product (Binance's flexible model) through unmodified clients against a running
flexearn (SQLite and PostgreSQL): python-binance and Binance's own Simple Earn SDK read the APR
that moves, the bonus bands, the rewards by type and the rate history of two settled days.

The product: BTC, a manual real-time APR of 2% from its creation, bonus bands 0–5 BTC at 3% and
5–10 BTC at 1%, rewards to 8 places. A minute earns balance × APR / 525 600 (365 × 1440) on the
least balance held through it; each day's sum is rounded down (docs/facades.md).
"""

from __future__ import annotations

import pytest
from binance.client import Client
from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import BadRequestError
from binance_sdk_simple_earn.simple_earn import SimpleEarn

from flexearn.api.admin import product_spec
from flexearn.domain.catalog import ProductFields
from flexearn.domain.money import D
from flexearn.services import catalog, clock
from tests.contract.conftest import World
from tests.contract.test_binance_clients import days, python_binance
from tests.helpers import T0, assert_ledger_ok

HOUR = 3_600_000
DAY1 = T0 + 16 * HOUR  # the world's first day start (its clock starts at T0 + 1 ms)


def realtime_btc(world: World) -> str:
    spec = {
        "coin": "BTC",
        "apyType": "ladder",
        "apyList": [
            {"minStepVal": "0", "maxStepVal": "5", "currentApy": "3"},
            {"minStepVal": "5", "maxStepVal": "10", "currentApy": "1"},
        ],
        "aprSource": "manual",
        "apr": "2",
    }
    return str(catalog.create_product(world.app.uow(), product_spec.parse(spec)).id)


def sdk(world: World) -> SimpleEarn:
    k = world.key
    return SimpleEarn(
        config_rest_api=ConfigurationRestAPI(
            api_key=k.api_key, api_secret=k.secret_key, base_path=world.base_url
        )
    )


def test_two_days_of_real_time_and_bonus_rewards_through_both_clients(world: World) -> None:
    product = realtime_btc(world)
    client: Client = python_binance(world)
    earn = sdk(world).rest_api

    (listed,) = client.get_simple_earn_flexible_product_list(asset="BTC")["rows"]
    assert listed["productId"] == product
    assert listed["latestAnnualPercentageRate"] == "0.02000000"
    assert listed["tierAnnualPercentageRate"] == {"0-5BTC": 0.03, "5-10BTC": 0.01}
    # A day on 1 BTC: 1 × 2% / 365 = 0.0000547945… and 1 × 3% / 365 = 0.0000821917…
    preview = earn.get_flexible_subscription_preview(product_id=product, amount=1.0).data()
    assert preview.est_daily_real_time_rewards == "0.00005479"
    assert preview.est_daily_bonus_rewards == "0.00008219"

    # autoSubscribe off: Binance's default (true) would sweep the rest of SPOT and each day's rewards in
    subscribed = client.subscribe_simple_earn_flexible_product(
        productId=product, amount="1", autoSubscribe="false"
    )
    assert subscribed["success"] is True
    # Subscribed at T0 + 1 ms: earns from T0 + 1 min, 959 minutes of day 1 (until T0 + 16 h).
    days(world, 1)  # the clock: T0 + 24 h + 1 ms = DAY1 + 8 h + 1 ms; day 1 paid
    catalog.update_product(world.app.uow(), int(product), ProductFields(apr=D(4)))  # from minute 481
    days(world, 1)  # the clock: DAY1 + 32 h + 1 ms; day 2 paid
    # Day 1: REALTIME 1 × 2 × 959 = 1918 / 52 560 000 = 0.0000364916… → 0.00003649;
    #        BONUS    1 × 3 × 959 = 2877 / 52 560 000 = 0.0000547374… → 0.00005473.
    # Day 2: REALTIME 1 × (2 × 481 + 4 × 959) = 4798 → 0.0000912861… → 0.00009128;
    #        BONUS    1 × 3 × 1440 = 4320 → 0.0000821917… → 0.00008219.
    (position,) = earn.get_flexible_product_position(asset="BTC").data().rows
    assert position.latest_annual_percentage_rate == "0.04000000"
    # the SDK's model names Binance's example bands, 0-5BTC and 5-10BTC, as fields of their own
    assert position.tier_annual_percentage_rate.to_dict() == {"0-5BTC": 0.03, "5-10BTC": 0.01}
    assert (
        position.total_amount,
        position.yesterday_real_time_rewards,
        position.cumulative_real_time_rewards,
        position.cumulative_bonus_rewards,
        position.cumulative_total_rewards,
    ) == ("1", "0.00009128", "0.00012777", "0.00013692", "0.00026469")

    def rewards(kind: str) -> list[tuple[str, str, int]]:
        rows = earn.get_flexible_rewards_history(type=kind, asset="BTC").data().rows
        return [(r.type, r.rewards, r.time) for r in rows]

    day2 = DAY1 + 24 * HOUR
    assert rewards("REALTIME") == [("REALTIME", "0.00009128", day2), ("REALTIME", "0.00003649", DAY1)]
    assert rewards("BONUS") == [("BONUS", "0.00008219", day2), ("BONUS", "0.00005473", DAY1)]
    assert sorted(rewards("ALL")) == sorted(rewards("REALTIME") + rewards("BONUS"))
    assert sorted(rewards("REWARDS")) == sorted(rewards("ALL"))  # "historical rewards": both kinds
    # Binance's paging: page `current` (from 1) of `size` rows, the total of all pages
    second = earn.get_flexible_rewards_history(type="REALTIME", asset="BTC", current=2, size=1).data()
    assert (second.total, [r.rewards for r in second.rows]) == (2, ["0.00003649"])
    past = client.margin_v1_get_simple_earn_flexible_history_subscription_record(current=2, size=100)
    assert (past["total"], past["rows"]) == (1, [])  # past the last page: no rows, the total
    for paging in ({"size": 101}, {"size": 0}, {"current": 0}):
        with pytest.raises(BadRequestError, match="-1100"):
            earn.get_flexible_rewards_history(**paging)
    catalog_rewards = earn.get_flexible_rewards_history(type="BONUS", product_id="1").data()
    assert catalog_rewards.rows == []  # the USDT ladder (Bitget's model) pays no bonus

    history = earn.get_rate_history(product_id=product).data()  # the last 30 days, newest first
    assert [(r.annual_percentage_rate, r.time) for r in history.rows] == [
        ("0.04000000", DAY1 + 8 * HOUR + 1),
        ("0.02000000", T0 + 1),
    ]
    since = earn.get_rate_history(product_id=product, start_time=DAY1, apr_period="YEAR").data()
    assert [(r.annual_percentage_rate, r.time) for r in since.rows] == [
        ("0.04000000", DAY1 + 8 * HOUR + 1),
        ("0.02000000", DAY1),  # the APR in effect at the window's start
    ]
    now = clock.show(world.app.uow()).now
    assert client.get_simple_earn_account()["totalFlexibleAmountInUSDT"] == "0.00000000"  # no BTC price set
    assert now == DAY1 + 32 * HOUR + 1
    assert_ledger_ok(world.app)


def test_hostile_rate_history_windows_are_refused_with_binances_code(world: World) -> None:
    product = realtime_btc(world)
    earn = sdk(world).rest_api
    for start, end in ((T0, T0 + 366 * 86_400_000), (T0, T0 - 1)):
        with pytest.raises(BadRequestError, match="-1130"):
            earn.get_rate_history(product_id=product, start_time=start, end_time=end)
    with pytest.raises(BadRequestError, match="-1100"):
        earn.get_flexible_rewards_history(type="INTEREST")
    assert_ledger_ok(world.app)
