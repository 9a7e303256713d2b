"""Every Simple Earn method of Binance's own SDK (binance-sdk-simple-earn) and every Simple Earn
`sapi` method of ccxt's `binance`, each called, unmodified, against a running flexearn: the method
lists are read from the clients themselves, so a method either client adds fails these tests until
it is served (or chosen not to be, in `api/binance/unoffered.py`). The world of
tests/contract/conftest.py: 1000 USDT and 2 BTC in SPOT, a flexible USDT ladder (0-200 at 6%,
200-5000 at 50%, redeemed after a day) and a 30-day BTC product at 3.65% paying daily."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt
import pytest
import sqlalchemy as sa
from binance.client import Client
from binance.exceptions import BinanceAPIException
from binance_common.errors import BadRequestError
from binance_sdk_simple_earn.rest_api.rest_api import SimpleEarnRestAPI

from flexearn.adapters import tables as t
from flexearn.services import clock
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.contract.test_binance_clients import ccxt_binance, days, python_binance
from tests.contract.test_binance_wallets import sdk, wallets
from tests.helpers import assert_ledger_ok

PRODUCT, PROJECT = str(FLEXIBLE_USDT), str(FIXED_BTC)
DAY_MS = 86_400_000
LONG_WINDOW = {"startTime": 0, "endTime": 31 * DAY_MS}  # past the histories' 30 days: -1130
SDK_METHODS = {
    name
    for name, _ in inspect.getmembers(SimpleEarnRestAPI, inspect.isfunction)
    if not name.startswith("_") and name not in ("send_request", "send_signed_request")
}
# BFUSD and RWUSD: products flexearn does not have (refused -6003, api/binance/unoffered.py)
NOT_OFFERED = {name for name in SDK_METHODS if "bfusd" in name or "rwusd" in name}


class Recorded:
    """The SDK, recording which of its methods are called."""

    def __init__(self, earn: SimpleEarnRestAPI) -> None:
        self.earn, self.called = earn, set[str]()

    def __getattr__(self, name: str) -> Any:
        self.called.add(name)
        return getattr(self.earn, name)


def pace_passed(world: World) -> None:
    """As if a minute of the wall clock had passed since the user's last redemption (one a minute,
    -6009, is paced by the wall clock, not the business clock the tests move)."""
    with world.app.uow() as uow:
        uow.conn.execute(sa.update(t.user).where(t.user.c.id == world.user_id).values(last_redeem_at=None))
        uow.commit()


def sdk_code(call: Callable[[], object]) -> int:
    with pytest.raises(BadRequestError) as refused:
        call()
    code = refused.value.status_code  # the SDK keeps Binance's code here
    assert isinstance(code, int)
    return code


def test_every_method_of_binances_simple_earn_sdk(world: World, caplog: pytest.LogCaptureFixture) -> None:
    earn = Recorded(sdk(world))
    client = python_binance(world)
    now = clock.show(world.app.uow()).now

    assert earn.get_simple_earn_flexible_product_list().data().rows[0].product_id == PRODUCT
    assert earn.get_simple_earn_locked_product_list().data().rows[0].project_id == PROJECT
    assert earn.get_flexible_personal_left_quota(product_id=PRODUCT).data().left_personal_quota == "2000"
    assert earn.get_locked_personal_left_quota(project_id=PROJECT).data().left_personal_quota == "10"
    preview = earn.get_flexible_subscription_preview(product_id=PRODUCT, amount=300.0).data()
    # a day on 300: (200 × 6% + 100 × 50%) / 365 = 0.16986301…, rounded down to 6 places
    assert preview.est_daily_real_time_rewards == "0.169863"
    (locked_preview,) = earn.get_locked_subscription_preview(project_id=PROJECT, amount=1.0).data()
    assert locked_preview.est_daily_reward_amt == "0.0001"

    bought = earn.subscribe_flexible_product(product_id=PRODUCT, amount=300.0, auto_subscribe=False).data()
    position = earn.subscribe_locked_product(project_id=PROJECT, amount=1.0, source_account="SPOT").data()
    assert earn.set_flexible_auto_subscribe(product_id=PRODUCT, auto_subscribe=False).data().success is True
    days(world, 2)

    (flexible,) = earn.get_flexible_product_position(product_id=PRODUCT).data().rows
    assert (flexible.total_amount, flexible.cumulative_total_rewards) == ("300", "0.169863")
    (locked,) = earn.get_locked_product_position(project_id=PROJECT).data().rows
    assert (locked.position_id, locked.amount, locked.reward_amt) == (position.purchase_id, "1", "0.0001")
    assert earn.simple_account().data().total_flexible_amount_in_usdt == "300.00000000"
    subscriptions = earn.get_flexible_subscription_record().data().rows
    assert [r.purchase_id for r in subscriptions] == [bought.purchase_id]
    locked_subscriptions = earn.get_locked_subscription_record().data().rows
    assert [r.position_id for r in locked_subscriptions] == [position.purchase_id]
    assert [r.rewards for r in earn.get_flexible_rewards_history(type="ALL").data().rows] == ["0.169863"]
    assert [r.amount for r in earn.get_locked_rewards_history().data().rows] == ["0.0001"]
    assert [r.annual_percentage_rate for r in earn.get_rate_history(product_id=PRODUCT).data().rows] == [
        "0.06000000"
    ]
    # no holding here is a loan's collateral; no giveaways run here
    collateral = earn.get_collateral_record(product_id=PRODUCT).data()
    assert (collateral.rows, collateral.total) == ([], "0")
    assert earn.get_collateral_record(start_time=now, end_time=now + DAY_MS).data().rows == []
    assert sdk_code(lambda: earn.get_collateral_record(start_time=0, end_time=31 * DAY_MS)) == -1130
    assert earn.get_yield_arena_activities(lang="en").data().activities == []

    position_id = str(position.purchase_id)
    renewal = earn.set_locked_auto_subscribe(position_id=position_id, auto_subscribe=False)
    assert renewal.data().success is True
    redeem_to = earn.set_locked_product_redeem_option
    assert redeem_to(position_id=position_id, redeem_to="SPOT").data().success is True
    assert sdk_code(lambda: redeem_to(position_id=position_id, redeem_to="FLEXIBLE")) == -1130

    flexible_out = earn.redeem_flexible_product(product_id=PRODUCT, amount=100.0, dest_account="FUND").data()
    pace_passed(world)
    locked_out = earn.redeem_locked_product(position_id=position_id).data()
    (flexible_record,) = earn.get_flexible_redemption_record(product_id=PRODUCT).data().rows
    assert (flexible_record.redeem_id, flexible_record.dest_account) == (flexible_out.redeem_id, "FUNDING")
    (locked_record,) = earn.get_locked_redemption_record(position_id=position_id).data().rows
    # redeemed early: the interest paid (0.0001) comes back out of the principal
    assert (locked_record.redeem_id, locked_record.original_amount, locked_record.amount) == (
        locked_out.redeem_id,
        "1",
        "0.9999",
    )

    before = (wallets(client), wallets(client, "BTC"))
    not_offered: dict[str, Callable[[], object]] = {}
    for product in ("bfusd", "rwusd"):
        reads = ("account", "quota_details", "rate_history", "redemption_history", "rewards_history")
        for read in (*reads, "subscription_history"):
            not_offered[f"get_{product}_{read}"] = getattr(earn, f"get_{product}_{read}")
        subscribe, redeem = getattr(earn, f"subscribe_{product}"), getattr(earn, f"redeem_{product}")
        not_offered[f"subscribe_{product}"] = lambda subscribe=subscribe: subscribe(asset="USDT", amount=10.0)
        not_offered[f"redeem_{product}"] = lambda redeem=redeem: redeem(amount=10.0, type="STANDARD")
    assert set(not_offered) == NOT_OFFERED
    assert {name: sdk_code(call) for name, call in not_offered.items()} == dict.fromkeys(NOT_OFFERED, -6003)
    assert (wallets(client), wallets(client, "BTC")) == before  # nothing moved

    assert earn.called == SDK_METHODS
    # the SDK parses an answer of the wrong types after a warning: none here
    assert [r.message for r in caplog.records if "did not match the declared types" in r.message] == []
    assert_ledger_ok(world.app)


def ccxt_methods() -> dict[str, str]:
    """ccxt `binance`'s implicit Simple Earn methods (snake case), each with its path."""
    exchange = ccxt.binance()
    return {
        f"sapi_{method}_{path.replace('/', '_').replace('-', '_').lower()}": path
        for method, paths in exchange.api["sapi"].items()
        for path in paths
        if path.startswith("simple-earn/")
    }


def test_every_simple_earn_sapi_method_of_ccxt_binance(world: World) -> None:
    exchange = ccxt_binance(world)
    called: set[str] = set()

    def call(name: str, params: dict[str, Any] | None = None) -> Any:
        called.add(name)
        return getattr(exchange, name)(params or {})

    flexible = {"productId": PRODUCT}
    (product,) = call("sapi_get_simple_earn_flexible_list", {"asset": "USDT"})["rows"]
    assert product["productId"] == PRODUCT
    (project,) = call("sapi_get_simple_earn_locked_list", {"asset": "BTC"})["rows"]
    assert (project["projectId"], project["detail"]["duration"]) == (PROJECT, 30)
    assert call("sapi_get_simple_earn_flexible_personalleftquota", flexible) == {"leftPersonalQuota": "2000"}
    assert call("sapi_get_simple_earn_locked_personalleftquota", {"projectId": PROJECT}) == {
        "leftPersonalQuota": "10"
    }
    preview = call("sapi_get_simple_earn_flexible_subscriptionpreview", {**flexible, "amount": "300"})
    assert preview["estDailyRealTimeRewards"] == "0.169863"
    locked_buy = {"projectId": PROJECT, "amount": "1"}
    (locked_preview,) = call("sapi_get_simple_earn_locked_subscriptionpreview", locked_buy)
    assert locked_preview["estDailyRewardAmt"] == "0.0001"

    off = {**flexible, "autoSubscribe": "false"}
    bought = call("sapi_post_simple_earn_flexible_subscribe", {**off, "amount": "300"})
    position = call("sapi_post_simple_earn_locked_subscribe", locked_buy)
    assert call("sapi_post_simple_earn_flexible_setautosubscribe", off) == {"success": True}
    days(world, 2)

    (held,) = call("sapi_get_simple_earn_flexible_position", flexible)["rows"]
    assert (held["totalAmount"], held["yesterdayRealTimeRewards"]) == ("300", "0.169863")
    (locked,) = call("sapi_get_simple_earn_locked_position", {"asset": "BTC"})["rows"]
    assert (locked["positionId"], locked["rewardAmt"]) == (position["purchaseId"], "0.0001")
    assert call("sapi_get_simple_earn_account")["totalLockedInUSDT"] == "0.00000000"  # no BTC price set
    subscriptions = call("sapi_get_simple_earn_flexible_history_subscriptionrecord")["rows"]
    assert [r["purchaseId"] for r in subscriptions] == [bought["purchaseId"]]
    locked_subscriptions = call("sapi_get_simple_earn_locked_history_subscriptionrecord")["rows"]
    assert [r["positionId"] for r in locked_subscriptions] == [position["purchaseId"]]
    rewards = call("sapi_get_simple_earn_flexible_history_rewardsrecord", {"type": "REALTIME"})["rows"]
    assert [r["rewards"] for r in rewards] == ["0.169863"]
    locked_rewards = call("sapi_get_simple_earn_locked_history_rewardsrecord")["rows"]
    assert [r["amount"] for r in locked_rewards] == ["0.0001"]
    rates = call("sapi_get_simple_earn_flexible_history_ratehistory", flexible)["rows"]
    assert [r["annualPercentageRate"] for r in rates] == ["0.06000000"]
    assert call("sapi_get_simple_earn_flexible_history_collateralrecord") == {"rows": [], "total": "0"}

    position_id = str(position["positionId"])
    held_position = {"positionId": position_id}
    renew = {**held_position, "autoSubscribe": "false"}
    assert call("sapi_post_simple_earn_locked_setautosubscribe", renew) == {"success": True}
    to_spot = {**held_position, "redeemTo": "SPOT"}
    assert call("sapi_post_simple_earn_locked_setredeemoption", to_spot) == {"success": True}
    flexible_out = call("sapi_post_simple_earn_flexible_redeem", {**flexible, "redeemAll": "true"})
    pace_passed(world)
    locked_out = call("sapi_post_simple_earn_locked_redeem", held_position)
    (out,) = call("sapi_get_simple_earn_flexible_history_redemptionrecord")["rows"]
    assert (out["redeemId"], out["amount"]) == (flexible_out["redeemId"], "300")
    (locked_record,) = call("sapi_get_simple_earn_locked_history_redemptionrecord")["rows"]
    assert (locked_record["redeemId"], locked_record["amount"]) == (locked_out["redeemId"], "0.9999")
    with pytest.raises(ccxt.BadRequest, match='"code":-1130,'):  # a window longer than 30 days
        call("sapi_get_simple_earn_flexible_history_collateralrecord", LONG_WINDOW)

    assert called == set(ccxt_methods())
    balance = exchange.fetch_balance()
    assert Decimal(str(balance["BTC"]["free"])) == 2  # 0.0001 paid, 0.9999 back
    assert_ledger_ok(world.app)


def test_the_unoffered_endpoints_authenticate_and_meter_before_refusing(world: World) -> None:
    """A read-only key reads the empty lists and is refused a BFUSD or RWUSD subscription for its
    permissions (-2015) before the product's absence (-6003); the weight is the SDK's."""
    key = world.new_key("read")
    signed = Client(key.api_key, key.secret_key, ping=False)
    signed.API_URL, signed.MARGIN_API_URL = f"{world.base_url}/api", f"{world.base_url}/sapi"

    def sapi(method: str, path: str, **data: str) -> Any:
        return signed._request_margin_api(method, path, True, data=data)

    assert sapi("get", "simple-earn/flexible/history/collateralRecord") == {"rows": [], "total": "0"}
    assert sapi("get", "earn/arena/activities", lang="zh-CN") == {"activities": []}
    assert int(signed.response.headers["x-sapi-used-ip-weight-1m"]) >= 150  # the arena read: 150
    for product in ("bfusd", "rwusd"):
        with pytest.raises(BinanceAPIException) as reading:
            sapi("get", f"{product}/account")
        assert (reading.value.status_code, reading.value.code) == (400, -6003)
        with pytest.raises(BinanceAPIException) as subscribing:
            sapi("post", f"{product}/subscribe", asset="USDT", amount="10")
        assert (subscribing.value.status_code, subscribing.value.code) == (401, -2015)
    assert wallets(python_binance(world)) == (1000, 0)
    assert_ledger_ok(world.app)
