"""Unmodified Bitget clients against a running flexearn: ccxt's `bitget` and the strict typed-bitget."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest
from typed_bitget import Bitget

from flexearn.services import clock, scheduler
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.helpers import advance, assert_ledger_ok

API_KEYS = (
    "spot",
    "mix",
    "user",
    "p2p",
    "broker",
    "margin",
    "common",
    "tax",
    "convert",
    "copy",
    "earn",
    "uta",
)


def bitget_client(world: World) -> ccxt.bitget:
    k = world.key
    exchange = ccxt.bitget({"apiKey": k.api_key, "secret": k.secret_key, "password": k.passphrase})
    exchange.urls["api"] = dict.fromkeys(API_KEYS, world.base_url)
    return exchange


def days(world: World, n: int) -> None:
    advance(world.app, 24 * n)
    scheduler.settle_due_days(world.app.engine)


def data(response: dict[str, object]) -> object:
    assert (response["code"], response["msg"]) == ("00000", "success"), response
    return response["data"]


def test_ccxt_bitget_loads_markets_and_uses_all_nine_savings_endpoints(world: World) -> None:
    exchange = bitget_client(world)
    markets = exchange.load_markets()  # coins, the v3 probe (refused: classic mode), symbols, margin, mix
    assert "BTC/USDT" in markets
    assert exchange.fetch_balance()["USDT"]["free"] == 1000.0
    # the server's time is business time (here a simulated clock at T0), as every record's
    assert abs(exchange.fetch_time() - clock.show(world.app.uow()).now) < 5000

    products = data(exchange.private_earn_get_v2_earn_savings_product({"coin": "USDT"}))
    assert [p["productId"] for p in products] == [str(FLEXIBLE_USDT)]
    info = data(
        exchange.private_earn_get_v2_earn_savings_subscribe_info(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible"}
        )
    )
    assert (info["singleMinAmount"], info["remainingAmount"], info["redeemDelay"]) == (
        "10.000000",
        "4900.000000",
        "D+1",
    )
    order = data(
        exchange.private_earn_post_v2_earn_savings_subscribe(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "1000"}
        )
    )
    assert data(
        exchange.private_earn_get_v2_earn_savings_subscribe_result(
            {"orderId": order["orderId"], "periodType": "flexible"}
        )
    ) == {"result": "success", "msg": ""}
    days(world, 2)
    (asset,) = data(exchange.private_earn_get_v2_earn_savings_assets({"periodType": "flexible"}))[
        "resultList"
    ]
    assert (asset["holdAmount"], asset["lastProfit"]) == (
        "1001.128767",
        "1.128767",
    )  # the ladder worked example
    account = data(exchange.private_earn_get_v2_earn_savings_account())
    assert account["usdtAmount"] == "1001.128767"

    redeemed = data(
        exchange.private_earn_post_v2_earn_savings_redeem(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "500"}
        )
    )
    assert redeemed["status"] == "processing"  # D+1
    result = data(
        exchange.private_earn_get_v2_earn_savings_redeem_result(
            {"orderId": redeemed["orderId"], "periodType": "flexible"}
        )
    )
    assert result["result"] == "success"
    assert result["msg"].startswith("processing")
    days(world, 1)
    records = data(exchange.private_earn_get_v2_earn_savings_records({"periodType": "flexible"}))[
        "resultList"
    ]
    assert [r["orderType"] for r in records] == ["pay_interest", "redeem", "pay_interest", "subscribe"]
    assert exchange.fetch_balance()["USDT"]["free"] == 500.0
    assert_ledger_ok(world.app)


def test_ccxt_bitget_raises_its_exceptions_for_bitget_codes(world: World) -> None:
    exchange = bitget_client(world)
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.private_earn_post_v2_earn_savings_subscribe(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "1500"}
        )
    with pytest.raises(ccxt.BadRequest):
        exchange.private_earn_post_v2_earn_savings_subscribe(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "5"}
        )
    exchange.secret = "0" * 32
    with pytest.raises(ccxt.AuthenticationError):
        exchange.private_earn_get_v2_earn_savings_account()


def test_typed_bitget_validates_a_subscribe_settle_records_redeem_scenario(world: World) -> None:
    async def scenario() -> None:
        k = world.key
        async with Bitget.new(
            access_key=k.api_key, secret_key=k.secret_key, passphrase=k.passphrase
        ) as client:
            client.http_client.base_url = world.base_url
            savings = client.classic.earn.savings
            assert (await client.classic.common.time())["serverTime"]
            products = await savings.products("BTC", filter="available")
            assert [p["productId"] for p in products] == [str(FIXED_BTC)]
            info = await savings.subscribe_info(str(FIXED_BTC), period_type="fixed")
            assert info["expireTime"] != ""
            order = await savings.subscribe(str(FIXED_BTC), period_type="fixed", amount=Decimal("1"))
            status = await savings.subscribe_result(
                product_id=str(FIXED_BTC), period_type="fixed", order_id=order["orderId"]
            )
            assert status["result"] == "success"
            await asyncio.to_thread(days, world, 3)
            assets = await savings.assets("fixed")
            (held,) = assets["resultList"]
            assert (held["holdAmount"], held["totalProfit"]) == (Decimal(1), Decimal("0.0002"))
            records = await savings.records(period_type="fixed")
            assert {r["orderType"] for r in records["resultList"]} == {"subscribe", "pay_interest"}
            redeemed = await savings.redeem(
                product_id=str(FIXED_BTC), period_type="fixed", amount=Decimal(1), order_id=order["orderId"]
            )
            assert (await savings.redeem_result(redeemed["orderId"], period_type="fixed"))[
                "result"
            ] == "success"
            summary = await savings.account()
            assert summary["btcAmount"] == 0
            (btc,) = [a for a in await client.classic.spot.account.assets() if a["coin"] == "BTC"]
            assert btc["available"] == Decimal(2)  # 0.0002 paid, then taken back as the deduction

    asyncio.run(scenario())
    assert_ledger_ok(world.app)
