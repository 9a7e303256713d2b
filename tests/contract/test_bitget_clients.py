"""Unmodified Bitget clients against a running flexearn: ccxt's `bitget` and the strict typed-bitget."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest
from typed_bitget import Bitget
from typed_core.exceptions import ApiError

from flexearn.api.admin import product_spec
from flexearn.domain.catalog import DAY_MS, DAY_START_MS
from flexearn.services import catalog, clock, scheduler
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.helpers import T0, advance, assert_ledger_ok

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
    # Bitget's day turns at 00:00 UTC+8: interest from the next 16:00 UTC, paid a day later
    interest_time = int(info["interestTime"])
    assert (interest_time % DAY_MS, int(info["settleTime"])) == (DAY_START_MS, interest_time + DAY_MS)
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
    # as Bitget documents it: productId and periodType (the latest subscription to the product)
    assert data(
        exchange.private_earn_get_v2_earn_savings_subscribe_result(
            {"productId": str(FLEXIBLE_USDT), "periodType": "flexible"}
        )
    ) == {"result": "success", "msg": ""}
    days(world, 2)
    (asset,) = data(exchange.private_earn_get_v2_earn_savings_assets({"periodType": "flexible"}))[
        "resultList"
    ]
    # the ladder worked example, paid to the spot account: the holding stays 1000
    held = (asset["holdAmount"], asset["lastProfit"], asset["totalProfit"])
    assert held == ("1000", "1.128767", "1.128767")
    assert exchange.fetch_balance()["USDT"]["free"] == 1.128767
    account = data(exchange.private_earn_get_v2_earn_savings_account())
    assert (account["usdtAmount"], account["usdtTotalEarning"]) == ("1000", "1.128767")

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
    assert result == {"result": "success", "msg": ""}  # accepted; a msg only on failure
    by_subscription = exchange.private_earn_get_v2_earn_savings_redeem_result(
        {"orderId": order["orderId"], "periodType": "flexible"}  # "subscription order ID"
    )
    assert data(by_subscription) == result
    days(world, 1)
    records = data(exchange.private_earn_get_v2_earn_savings_records({"periodType": "flexible"}))[
        "resultList"
    ]
    assert [r["orderType"] for r in records] == ["pay_interest", "redeem", "pay_interest", "subscribe"]
    assert records[0]["amount"] == "0.443835"  # a day on the 500 left: (200 × 6% + 300 × 50%) / 365
    assert exchange.fetch_balance()["USDT"]["free"] == 501.572602  # 500 back, 1.128767 + 0.443835 paid
    assert_ledger_ok(world.app)


def test_ccxt_bitget_raises_its_exceptions_for_bitget_codes(world: World) -> None:
    exchange = bitget_client(world)
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    with pytest.raises(ccxt.BadRequest):  # 40019
        exchange.private_earn_post_v2_earn_savings_subscribe({"productId": str(FLEXIBLE_USDT), "amount": "5"})
    exchange.secret = "0" * 32
    with pytest.raises(ccxt.AuthenticationError):
        exchange.private_earn_get_v2_earn_savings_account()


def product(world: World, **spec: str) -> str:
    """A new USDT product at 5% (the server reads the catalog from the database it shares)."""
    single = [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "5"}]
    made = catalog.create_product(
        world.app.uow(), product_spec.parse({"coin": "USDT", "apyList": single, **spec})
    )
    return str(made.id)


def test_ccxt_bitget_sees_each_earn_refusal_with_its_59xxx_code_as_an_exchange_error(world: World) -> None:
    """Bitget's Earn codes (its REST error-code table): ccxt has none of them, so each is its base
    ExchangeError, never an authentication, rate-limit or network error."""
    exchange = bitget_client(world)
    exchange.rateLimit = 120  # ms: ccxt paces its calls under the 10 a second allowed per user
    beginners, vip = product(world, productLevel="beginner"), product(world, productLevel="VIP")
    later = product(world, startTime=str(T0 + 10 * DAY_MS))
    locked = product(world, periodType="fixed", period="30", advanceRedeem="No")
    catalog.update_product(world.app.uow(), FLEXIBLE_USDT, product_spec.parse({"quota": "50"}))
    flexible = {"productId": str(FLEXIBLE_USDT), "periodType": "flexible"}
    subscribe, redeem = (
        exchange.private_earn_post_v2_earn_savings_subscribe,
        exchange.private_earn_post_v2_earn_savings_redeem,
    )
    assert data(subscribe({**flexible, "amount": "20"}))["status"] == "success"  # no longer a beginner
    fixed = data(subscribe({"productId": locked, "periodType": "fixed", "amount": "100"}))["orderId"]
    refusals = [
        (subscribe, {"productId": "999", "periodType": "flexible", "amount": "10"}, "59049"),
        (subscribe, {**flexible, "amount": "5"}, "59020"),
        (subscribe, {**flexible, "amount": "10.0000001"}, "59010"),
        (subscribe, {**flexible, "amount": "2000.01"}, "59030"),
        (subscribe, {**flexible, "amount": "31"}, "59023"),  # 30 of the quota of 50 remain
        (subscribe, {"productId": later, "periodType": "flexible", "amount": "10"}, "59003"),
        (subscribe, {"productId": beginners, "periodType": "flexible", "amount": "10"}, "59027"),
        (subscribe, {"productId": vip, "periodType": "flexible", "amount": "10"}, "59029"),
        (subscribe, {"productId": product(world), "periodType": "flexible", "amount": "1500"}, "59011"),
        (redeem, {**flexible, "amount": "0"}, "59035"),
        (redeem, {**flexible, "amount": "0.0000001"}, "59034"),
        (redeem, {**flexible, "amount": "21"}, "59022"),
        (redeem, {"productId": locked, "periodType": "fixed", "amount": "100"}, "59025"),
        (redeem, {"productId": locked, "periodType": "fixed", "amount": "100", "orderId": fixed}, "59031"),
    ]
    for call, params, code in refusals:
        with pytest.raises(ccxt.ExchangeError) as refused:
            call(params)
        assert type(refused.value) is ccxt.ExchangeError, (code, refused.value)
        assert f'"code":"{code}"' in str(refused.value), (code, str(refused.value))
    assert data(redeem({**flexible, "amount": "10"}))["status"] == "processing"
    with pytest.raises(ccxt.ExchangeError, match='"code":"59044","msg":"Operations are frequent'):
        redeem({**flexible, "amount": "10"})  # within a minute of the last
    assert_ledger_ok(world.app)


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
            assert status == {"result": "success", "msg": ""}
            await asyncio.to_thread(days, world, 3)
            assets = await savings.assets("fixed")
            (held,) = assets["resultList"]
            assert (held["holdAmount"], held["totalProfit"]) == (Decimal(1), Decimal("0.0002"))
            records = await savings.records(period_type="fixed")
            assert {r["orderType"] for r in records["resultList"]} == {"subscribe", "pay_interest"}
            redeemed = await savings.redeem(
                product_id=str(FIXED_BTC), period_type="fixed", amount=Decimal(1), order_id=order["orderId"]
            )
            assert await savings.redeem_result(redeemed["orderId"], period_type="fixed") == {
                "result": "success",
                "msg": "",
            }
            with pytest.raises(ApiError) as refused:  # neither BadRequest nor RateLimited
                await savings.redeem(
                    product_id=str(FIXED_BTC),
                    period_type="fixed",
                    amount=Decimal(1),
                    order_id=order["orderId"],
                )
            assert type(refused.value) is ApiError
            assert refused.value.args[:2] == ("59044", "Operations are frequent, please try again later.")
            summary = await savings.account()
            assert summary["btcAmount"] == 0
            (btc,) = [a for a in await client.classic.spot.account.assets() if a["coin"] == "BTC"]
            assert btc["available"] == Decimal(2)  # 0.0002 paid, then taken back as the deduction

    asyncio.run(scenario())
    assert_ledger_ok(world.app)
