"""Binance's wallets around Simple Earn, with unmodified clients against a running flexearn:
`sourceAccount` SPOT / FUND / ALL, `destAccount` SPOT / FUND, auto-subscribe, and the locked
extras (left quota, preview, histories, setAutoSubscribe, setRedeemOption). The world of
tests/contract/conftest.py: a user with 1000 USDT and 2 BTC in SPOT (flexearn's funding account),
a flexible USDT ladder (min 10, max 2000, quota 4900, redeemed after a day) and a 30-day BTC
product at 3.65% paying daily."""

from __future__ import annotations

from decimal import Decimal

import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException
from binance_common.configuration import ConfigurationRestAPI
from binance_sdk_simple_earn.rest_api.rest_api import SimpleEarnRestAPI
from binance_sdk_simple_earn.simple_earn import SimpleEarn

from flexearn.services import clock
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.contract.test_binance_clients import ccxt_binance, days, python_binance
from tests.helpers import assert_ledger_ok

PRODUCT, PROJECT = str(FLEXIBLE_USDT), str(FIXED_BTC)


def sdk(world: World) -> SimpleEarnRestAPI:
    k = world.key
    config = ConfigurationRestAPI(api_key=k.api_key, api_secret=k.secret_key, base_path=world.base_url)
    return SimpleEarn(config_rest_api=config).rest_api


def wallets(client: Client, asset: str = "USDT") -> tuple[Decimal, Decimal]:
    """(SPOT free, FUNDING free) of `asset`."""
    spot = Decimal(client.get_asset_balance(asset)["free"])
    funding = [Decimal(r["free"]) for r in client.funding_wallet(asset=asset)]
    return spot, sum(funding, Decimal(0))


def refused(call: object, code: int) -> BinanceAPIException:
    assert callable(call)
    with pytest.raises(BinanceAPIException) as caught:
        call()
    assert caught.value.code == code, caught.value.message
    return caught.value


def test_subscriptions_from_fund_and_all_say_where_the_money_came_from(world: World) -> None:
    client = python_binance(world)
    client.universal_transfer(type="MAIN_FUNDING", asset="USDT", amount="300")
    assert wallets(client) == (700, 300)

    fund = client.subscribe_simple_earn_flexible_product(
        productId=PRODUCT, amount="100", sourceAccount="FUND", autoSubscribe="false"
    )
    assert wallets(client) == (700, 200)
    both = client.subscribe_simple_earn_flexible_product(
        productId=PRODUCT, amount="750", sourceAccount="ALL", autoSubscribe="false"
    )
    assert wallets(client) == (0, 150)  # SPOT's 700 first, then 50 from FUNDING
    spot = client.subscribe_simple_earn_flexible_product(productId=PRODUCT, amount="20", sourceAccount="ALL")
    assert wallets(client) == (0, 130)  # SPOT empty: all 20 from FUNDING
    (position,) = client.get_simple_earn_flexible_product_position(asset="USDT")["rows"]
    assert (position["totalAmount"], position["autoSubscribe"]) == ("870", True)  # "default true"

    rows = sdk(world).get_flexible_subscription_record(product_id=PRODUCT).data().rows
    assert [(r.purchase_id, r.type, r.source_account, r.amt_from_spot, r.amt_from_funding) for r in rows] == [
        (spot["purchaseId"], "NORMAL", "SPOTANDFUNDING", "0", "20"),
        (both["purchaseId"], "NORMAL", "SPOTANDFUNDING", "700", "50"),
        (fund["purchaseId"], "NORMAL", "FUNDING", "0", "100"),
    ]
    assert_ledger_ok(world.app)


def test_a_subscription_short_of_funds_or_refused_moves_nothing(world: World) -> None:
    client = python_binance(world)
    client.universal_transfer(type="MAIN_FUNDING", asset="USDT", amount="100")
    subscribe = client.subscribe_simple_earn_flexible_product

    def attempt(code: int, **params: str) -> None:
        refused(lambda: subscribe(productId=PRODUCT, **params), code)
        assert wallets(client) == (900, 100)  # nothing moved

    attempt(-6012, amount="150", sourceAccount="FUND")  # FUNDING holds 100: "Balance not enough"
    attempt(-6012, amount="1000.5", sourceAccount="ALL")  # 900 + 100 < 1000.5
    attempt(-6005, amount="5", sourceAccount="FUND")  # below the minimum, refused before moving
    attempt(-6014, amount="2000.01", sourceAccount="ALL")  # above the single maximum
    attempt(-1100, amount="10", sourceAccount="FUNDING")  # not one of SPOT, FUND, ALL
    attempt(-1100, amount="10", sourceAccount="fund")
    attempt(-1100, amount="-10", sourceAccount="FUND")
    attempt(-1100, amount="1e3", sourceAccount="FUND")
    attempt(-1100, amount="10", sourceAccount="FUND", autoSubscribe="yes")
    attempt(-1111, amount="10.0000001", sourceAccount="FUND")
    refused(lambda: subscribe(productId="999", amount="10", sourceAccount="FUND"), -6001)
    locked = client.subscribe_simple_earn_locked_product
    refused(lambda: locked(projectId=PROJECT, amount="1", sourceAccount="FUND"), -6012)
    assert wallets(client, "BTC") == (2, 0)
    assert client.get_simple_earn_flexible_product_position()["rows"] == []
    assert sdk(world).get_flexible_subscription_record().data().rows == []
    assert_ledger_ok(world.app)


def test_redeemed_to_fund_arrives_in_funding_and_the_record_says_so(world: World) -> None:
    client = python_binance(world)
    client.subscribe_simple_earn_flexible_product(productId=PRODUCT, amount="500", autoSubscribe="false")
    redeem = client.redeem_simple_earn_flexible_product
    refused(lambda: redeem(productId=PRODUCT, amount="1", destAccount="ALL"), -1100)  # SPOT or FUND
    redeemed = redeem(productId=PRODUCT, amount="200", destAccount="FUND")
    (record,) = client.margin_v1_get_simple_earn_flexible_history_redemption_record()["rows"]
    assert (record["redeemId"], record["destAccount"], record["status"]) == (
        redeemed["redeemId"],
        "FUNDING",
        "PAYING",
    )
    assert wallets(client) == (500, 0)  # a day's redemption delay
    days(world, 1)
    assert wallets(client) == (500, 200)
    (record,) = client.margin_v1_get_simple_earn_flexible_history_redemption_record()["rows"]
    assert (record["amount"], record["destAccount"], record["status"]) == ("200", "FUNDING", "PAID")
    assert_ledger_ok(world.app)


def test_auto_subscribe_is_set_per_product_and_sweeps_spot_on_the_next_credit(world: World) -> None:
    earn, client, exchange = sdk(world), python_binance(world), ccxt_binance(world)
    earn.subscribe_flexible_product(product_id=PRODUCT, amount=100.0, auto_subscribe=False)
    (position,) = earn.get_flexible_product_position(asset="USDT").data().rows
    assert position.auto_subscribe is False
    assert earn.set_flexible_auto_subscribe(product_id=PRODUCT, auto_subscribe=True).data().success is True
    assert earn.get_flexible_product_position(asset="USDT").data().rows[0].auto_subscribe is True
    assert wallets(client) == (900, 0)  # turning it on sweeps nothing by itself

    # money arriving in SPOT is swept: a transfer back from FUNDING (ccxt's `transfer`)
    exchange.transfer("USDT", 50, "spot", "funding")
    assert wallets(client) == (850, 50)  # SPOT → FUNDING is not a credit to SPOT
    exchange.transfer("USDT", 50, "funding", "spot")
    assert wallets(client) == (0, 0)
    (position,) = client.get_simple_earn_flexible_product_position(asset="USDT")["rows"]
    assert position["totalAmount"] == "1000"
    auto = client.margin_v1_get_simple_earn_flexible_history_subscription_record(productId=PRODUCT)["rows"][0]
    assert (auto["type"], auto["amount"], auto["sourceAccount"]) == ("AUTO", "900", "SPOT")

    off = {"productId": PRODUCT, "autoSubscribe": "false"}
    assert exchange.sapi_post_simple_earn_flexible_setautosubscribe(off) == {"success": True}
    assert client.get_simple_earn_flexible_product_position()["rows"][0]["autoSubscribe"] is False

    def set_auto(**data: str) -> object:  # python-binance has no method of its own for it
        return client._request_margin_api("post", "simple-earn/flexible/setAutoSubscribe", True, data=data)

    refused(lambda: set_auto(productId=PRODUCT), -1102)
    refused(lambda: set_auto(productId=PRODUCT, autoSubscribe="1"), -1100)
    refused(lambda: set_auto(productId="999", autoSubscribe="true"), -6001)
    refused(lambda: set_auto(productId=PROJECT, autoSubscribe="true"), -1130)  # a locked product
    assert_ledger_ok(world.app)


def test_locked_extras_quota_preview_histories_and_options(world: World) -> None:
    earn, client = sdk(world), python_binance(world)
    assert earn.get_locked_personal_left_quota(project_id=PROJECT).data().left_personal_quota == "10"
    (preview,) = earn.get_locked_subscription_preview(project_id=PROJECT, amount=1.0).data()
    now = clock.show(world.app.uow()).now
    # 1 BTC at 3.65%: 0.0001 a day, 0.003 over the 30 days
    assert (preview.est_daily_reward_amt, preview.total_reward_amt, preview.next_pay) == (
        "0.0001",
        "0.003",
        "0.0001",
    )
    assert now < preview.value_date < preview.next_pay_date < preview.rewards_end_date

    client.universal_transfer(type="MAIN_FUNDING", asset="BTC", amount="1")
    bought = earn.subscribe_locked_product(project_id=PROJECT, amount=1.5, source_account="ALL").data()
    assert wallets(client, "BTC") == (0, Decimal("0.5"))  # SPOT's 1 first, then 0.5 of FUNDING's 1
    assert earn.get_locked_personal_left_quota(project_id=PROJECT).data().left_personal_quota == "10"
    (record,) = earn.get_locked_subscription_record().data().rows
    assert (record.position_id, record.purchase_id, record.lock_period) == (
        bought.purchase_id,
        str(bought.purchase_id),
        "30",
    )
    parts = (record.source_account, record.amt_from_spot, record.amt_from_funding)
    assert parts == ("SPOTANDFUNDING", "1", "0.5")
    days(world, 2)
    (reward,) = earn.get_locked_rewards_history(position_id=str(bought.purchase_id)).data().rows
    assert (reward.position_id, reward.amount) == (bought.purchase_id, "0.00015")  # 1.5 × 3.65% / 365
    assert reward.type == "Locked Rewards"
    assert earn.get_locked_rewards_history(position_id="999999").data().rows == []

    position = str(bought.purchase_id)
    assert earn.set_locked_auto_subscribe(position_id=position, auto_subscribe=False).data().success is True
    redeem_option = client.margin_v1_post_simple_earn_locked_set_redeem_option
    assert redeem_option(positionId=position, redeemTo="SPOT") == {"success": True}
    refused(lambda: redeem_option(positionId=position, redeemTo="FLEXIBLE"), -1130)
    refused(lambda: redeem_option(positionId="999999", redeemTo="SPOT"), -6020)
    renew = {"positionId": position, "autoSubscribe": "true"}
    path = "simple-earn/locked/setAutoSubscribe"
    refused(lambda: client._request_margin_api("post", path, True, data=renew), -1130)

    redeemed = earn.redeem_locked_product(position_id=position).data()
    (out,) = client.margin_v1_get_simple_earn_locked_history_redemption_record()["rows"]
    assert (out["positionId"], out["redeemId"]) == (bought.purchase_id, redeemed.redeem_id)
    assert (out["type"], out["destAccount"]) == ("AHEAD", "SPOT")
    # the interest paid (0.00015) comes back out of the principal
    assert (out["originalAmount"], out["lossAmount"], out["amount"], out["status"]) == (
        "1.5",
        "0.00015",
        "1.49985",
        "PAID",
    )
    assert wallets(client, "BTC") == (Decimal("1.5"), Decimal("0.5"))  # 0.00015 paid + 1.49985 back
    # windows: at most 30 days, Binance's -1130 past that
    history = client.margin_v1_get_simple_earn_locked_history_subscription_record
    refused(lambda: history(startTime=0, endTime=31 * 86_400_000), -1130)
    assert history(endTime=now - 86_400_000)["rows"] == []
    assert history(startTime=now - 86_400_000)["total"] == 1
    assert_ledger_ok(world.app)
