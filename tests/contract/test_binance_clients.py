"""Unmodified Binance clients against a running flexearn: ccxt's `binance`, python-binance, and
Binance's own typed Simple Earn SDK (binance-sdk-simple-earn), on the catalog of
tests/contract/conftest.py (a flexible USDT ladder 0-200 at 6%, 200-5000 at 50%)."""

from __future__ import annotations

import re
from decimal import Decimal

import ccxt
import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException
from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import BadRequestError
from binance_sdk_simple_earn.simple_earn import SimpleEarn

from flexearn.services import clock, scheduler
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.helpers import advance, assert_ledger_ok

PRODUCT = str(FLEXIBLE_USDT)


def ccxt_binance(world: World) -> ccxt.binance:
    k = world.key
    exchange = ccxt.binance(
        {
            "apiKey": k.api_key,
            "secret": k.secret_key,
            # a spot-only venue: no futures markets, margin pairs or coin network list to load
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
        }
    )
    exchange.urls["api"] = {
        name: re.sub(r"^https://[^/]+", world.base_url, url)
        for name, url in exchange.urls["api"].items()
        if isinstance(url, str)
    }
    return exchange


def python_binance(world: World) -> Client:
    client = Client(world.key.api_key, world.key.secret_key, ping=False)
    client.API_URL, client.MARGIN_API_URL = f"{world.base_url}/api", f"{world.base_url}/sapi"
    return client


def days(world: World, n: int) -> None:
    advance(world.app, 24 * n)
    scheduler.settle_due_days(world.app.engine)


def test_ccxt_binance_loads_markets_moves_money_and_earns_a_worked_day(world: World) -> None:
    exchange = ccxt_binance(world)
    assert "BTC/USDT" in exchange.load_markets()
    assert abs(exchange.fetch_time() - clock.show(world.app.uow()).now) < 5000  # business time
    balance = exchange.fetch_balance()
    assert (balance["USDT"]["free"], balance["BTC"]["free"]) == (1000.0, 2.0)

    # SPOT → FUNDING and back: flexearn's funding and trading accounts
    assert exchange.transfer("USDT", 100, "spot", "funding")["id"]
    assert exchange.fetch_balance({"type": "funding"})["USDT"]["free"] == 100.0
    assert exchange.fetch_balance()["USDT"]["free"] == 900.0
    exchange.transfer("USDT", 100, "funding", "spot")

    listed = exchange.sapi_get_simple_earn_flexible_list({"asset": "USDT"})
    assert listed["total"] == 1
    (row,) = listed["rows"]
    assert (row["productId"], row["latestAnnualPercentageRate"], row["canPurchase"]) == (
        PRODUCT,
        "0.06000000",
        True,
    )
    assert row["tierAnnualPercentageRate"] == {"0-200USDT": 0.06, "200-5000USDT": 0.5}
    preview = exchange.sapi_get_simple_earn_flexible_subscriptionpreview(
        {"productId": PRODUCT, "amount": "1000"}
    )
    # a day on 1000: (200 × 6% + 800 × 50%) / 365 = 1.12876712…, rounded down to 6 places
    assert (preview["totalAmount"], preview["estDailyRealTimeRewards"]) == ("1000", "1.128767")
    bought = exchange.sapi_post_simple_earn_flexible_subscribe({"productId": PRODUCT, "amount": "1000"})
    assert bought["success"] is True
    assert exchange.fetch_balance()["USDT"]["free"] == 0.0

    days(world, 2)  # interest from the next day's start, paid a day later
    (position,) = exchange.sapi_get_simple_earn_flexible_position({"asset": "USDT"})["rows"]
    assert (position["totalAmount"], position["yesterdayRealTimeRewards"]) == ("1000", "1.128767")
    assert exchange.fetch_balance()["USDT"]["free"] == 1.128767  # paid to SPOT; the holding stays 1000
    rewards = exchange.sapi_get_simple_earn_flexible_history_rewardsrecord({"type": "REALTIME"})
    assert [(r["rewards"], r["type"]) for r in rewards["rows"]] == [("1.128767", "REALTIME")]
    assert exchange.sapi_get_simple_earn_flexible_history_rewardsrecord({"type": "BONUS"})["rows"] == []

    redeemed = exchange.sapi_post_simple_earn_flexible_redeem({"productId": PRODUCT, "amount": "500"})
    assert redeemed["success"] is True
    (record,) = exchange.sapi_get_simple_earn_flexible_history_redemptionrecord()["rows"]
    assert (record["redeemId"], record["amount"], record["status"]) == (redeemed["redeemId"], "500", "PAYING")
    subscriptions = exchange.sapi_get_simple_earn_flexible_history_subscriptionrecord({"size": 1})
    assert subscriptions["total"] == 1
    assert subscriptions["rows"][0]["purchaseId"] == bought["purchaseId"]
    assert_ledger_ok(world.app)


def test_ccxt_binance_raises_its_exceptions_for_binance_codes(world: World) -> None:
    """ccxt reads the -5xxx and -6xxx codes (its `spot` table) only on api.binance.com's URLs:
    against any other host it raises its base ExchangeError, the code in the message. The general
    codes (its top-level table) become their own exceptions wherever the server is."""
    exchange = ccxt_binance(world)
    subscribe = exchange.sapi_post_simple_earn_flexible_subscribe
    refusals = [
        ({"productId": PRODUCT, "amount": "1500"}, -6012),  # Balance not enough
        ({"productId": "999", "amount": "10"}, -6001),  # Daily product not exists.
        ({"productId": PRODUCT, "amount": "5"}, -6005),  # Smaller than min purchase limit
        ({"productId": PRODUCT, "amount": "2000.01"}, -6014),  # above the single maximum
    ]
    for params, code in refusals:
        with pytest.raises(ccxt.ExchangeError) as refused:
            subscribe(params)
        assert type(refused.value) is ccxt.ExchangeError
        assert f'"code":{code},' in str(refused.value), (code, str(refused.value))
    with pytest.raises(ccxt.ExchangeError, match='"code":-5002,'):
        exchange.transfer("USDT", 5000, "spot", "funding")
    with pytest.raises(ccxt.BadRequest, match='"code":-1111,'):  # more places than the product takes
        subscribe({"productId": PRODUCT, "amount": "10.0000001"})
    with pytest.raises(ccxt.BadRequest, match='"code":-1102,'):
        subscribe({"productId": PRODUCT})
    exchange.secret = "0" * 64
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        exchange.sapi_get_simple_earn_account()
    assert_ledger_ok(world.app)


def test_python_binance_simple_earn_methods(world: World) -> None:
    client = python_binance(world)
    assert abs(client.get_server_time()["serverTime"] - clock.show(world.app.uow()).now) < 5000
    assert "BTCUSDT" in {s["symbol"] for s in client.get_exchange_info()["symbols"]}
    assert client.get_asset_balance("USDT") == {"asset": "USDT", "free": "1000", "locked": "0"}
    (product,) = client.get_simple_earn_flexible_product_list(asset="USDT")["rows"]
    assert product["productId"] == PRODUCT
    bought = client.subscribe_simple_earn_flexible_product(productId=PRODUCT, amount="300")
    assert bought == {"purchaseId": bought["purchaseId"], "success": True}
    (position,) = client.get_simple_earn_flexible_product_position(asset="USDT")["rows"]
    assert position["totalAmount"] == "300"
    assert client.get_simple_earn_account()["totalFlexibleAmountInUSDT"] == "300.00000000"
    assert client.get_user_asset(asset="USDT") == [
        {
            "asset": "USDT",
            "free": "700",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "ipoable": "0",
            "btcValuation": "0",
        }
    ]
    assert client.universal_transfer(type="MAIN_FUNDING", asset="USDT", amount="50")["tranId"]
    assert [(r["asset"], r["free"]) for r in client.funding_wallet()] == [("USDT", "50")]
    redeemed = client.redeem_simple_earn_flexible_product(productId=PRODUCT, redeemAll="true")
    assert redeemed["success"] is True
    history = client.margin_v1_get_simple_earn_flexible_history_redemption_record(productId=PRODUCT)
    assert [r["amount"] for r in history["rows"]] == ["300"]
    with pytest.raises(BinanceAPIException) as refused:
        client.redeem_simple_earn_flexible_product(productId=PRODUCT, amount="1")  # within a minute
    assert (refused.value.status_code, refused.value.code) == (400, -6009)
    assert_ledger_ok(world.app)


def test_binance_simple_earn_sdk_on_every_flexible_endpoint_it_has_here(world: World) -> None:
    k = world.key
    earn = SimpleEarn(
        config_rest_api=ConfigurationRestAPI(
            api_key=k.api_key, api_secret=k.secret_key, base_path=world.base_url
        )
    ).rest_api
    listed = earn.get_simple_earn_flexible_product_list(asset="USDT").data()
    assert (listed.total, listed.rows[0].product_id) == (1, PRODUCT)
    assert listed.rows[0].tier_annual_percentage_rate.additional_properties == {
        "0-200USDT": 0.06,
        "200-5000USDT": 0.5,
    }
    quota = earn.get_flexible_personal_left_quota(product_id=PRODUCT).data()
    assert quota.left_personal_quota == "2000"
    preview = earn.get_flexible_subscription_preview(product_id=PRODUCT, amount=200.0).data()
    assert preview.est_daily_real_time_rewards == "0.032876"  # 200 × 6% / 365, rounded down
    # auto-subscribe off: on (Binance's default) it would sweep the 800 left in SPOT into the product
    bought = earn.subscribe_flexible_product(product_id=PRODUCT, amount=200.0, auto_subscribe=False).data()
    assert bought.success is True
    days(world, 2)
    position = earn.get_flexible_product_position(asset="USDT").data()
    assert (position.rows[0].total_amount, position.rows[0].cumulative_total_rewards) == ("200", "0.032876")
    account = earn.simple_account().data()
    assert (account.total_flexible_amount_in_usdt, account.total_locked_in_usdt) == (
        "200.00000000",
        "0.00000000",
    )
    subscriptions = earn.get_flexible_subscription_record(product_id=PRODUCT).data()
    assert [r.purchase_id for r in subscriptions.rows] == [bought.purchase_id]
    rewards = earn.get_flexible_rewards_history(type="REALTIME").data()
    assert [r.rewards for r in rewards.rows] == ["0.032876"]
    rates = earn.get_rate_history(product_id=PRODUCT).data()
    assert [r.annual_percentage_rate for r in rates.rows] == ["0.06000000"]
    redeemed = earn.redeem_flexible_product(product_id=PRODUCT, amount=200.0).data()
    assert redeemed.success is True
    assert [r.redeem_id for r in earn.get_flexible_redemption_record().data().rows] == [redeemed.redeem_id]
    with pytest.raises(BadRequestError):
        earn.subscribe_flexible_product(product_id="999", amount=10.0)
    assert_ledger_ok(world.app)


def test_locked_products_are_the_fixed_catalog_products_for_both_sdks(world: World) -> None:
    """The 30-day BTC product at 3.65% (daily interest, early redemption allowed): 1 BTC earns
    0.0001 a day; redeemed early, the interest paid comes back out of the principal."""
    client = python_binance(world)
    k = world.key
    earn = SimpleEarn(
        config_rest_api=ConfigurationRestAPI(
            api_key=k.api_key, api_secret=k.secret_key, base_path=world.base_url
        )
    ).rest_api
    (project,) = earn.get_simple_earn_locked_product_list(asset="BTC").data().rows
    assert (project.project_id, project.detail.duration, project.detail.apr) == (
        str(FIXED_BTC),
        30,
        "0.03650000",
    )
    assert (project.quota.minimum, project.quota.total_personal_quota) == ("0.001", "10")
    bought = client.subscribe_simple_earn_locked_product(projectId=str(FIXED_BTC), amount="1")
    assert bought["success"] is True
    days(world, 2)
    (position,) = earn.get_locked_product_position(asset="BTC").data().rows
    assert (position.position_id, position.amount, position.reward_amt) == (
        bought["purchaseId"],
        "1",
        "0.0001",
    )
    assert position.can_redeem_early is True
    assert Decimal(client.get_asset_balance("BTC")["free"]) == Decimal("1.0001")
    redeemed = earn.redeem_locked_product(position_id=str(position.position_id)).data()
    assert redeemed.success is True
    assert client.get_simple_earn_locked_product_position(asset="BTC")["rows"] == []
    assert Decimal(client.get_asset_balance("BTC")["free"]) == Decimal(2)  # 0.9999 back: 0.0001 deducted
    with pytest.raises(BinanceAPIException) as refused:
        client.redeem_simple_earn_locked_product(positionId=str(position.position_id))
    assert refused.value.code == -6020  # no such position now
    assert_ledger_ok(world.app)
