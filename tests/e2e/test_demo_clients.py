"""The real clients on a running demo: one clock for every timestamp they read, and every
typed-bitget savings model validating the demo world."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from binance.client import Client
from binance_common.configuration import ConfigurationRestAPI
from binance_sdk_simple_earn.simple_earn import SimpleEarn
from okx import Funding, PublicData
from okx.Finance import Savings
from typed_bitget import Bitget

from tests.e2e.demo_process import Demo, running_demo

pytestmark = pytest.mark.slow
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("demo"), "--history", "24") as running:
        # The demo user's money starts in its trading account: a bot moves some to funding (spot
        # on Bitget) before it buys savings, as on the exchanges.
        api_key, secret, passphrase = key(running)
        funding = Funding.FundingAPI(api_key, secret, passphrase, False, "1", domain=running.base_url)
        for ccy, amt in (("USDT", "5000"), ("BTC", "1")):
            assert funding.funds_transfer(ccy=ccy, amt=amt, from_="18", to="6")["code"] == "0"
        yield running


def key(demo: Demo) -> tuple[str, str, str]:
    return demo.printed("apiKey"), demo.printed("secretKey"), demo.printed("passphrase")


def wait_for(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return value


def test_python_okx_pages_history_by_the_servers_time(demo: Demo) -> None:
    savings = Savings.SavingsAPI(*key(demo), False, "1", domain=demo.base_url, debug=False)
    public = PublicData.PublicAPI(flag="1", domain=demo.base_url, debug=False)

    def server_now() -> int:
        return int(public.get_system_time()["data"][0]["ts"])

    before = server_now()
    rates = savings.get_public_borrow_history(ccy="USDT")["data"]
    after = server_now()
    assert before <= after < before + HOUR_MS  # a fast clock (one hour a second), read twice
    # the newest hourly row is the last settled hour: not in the server's future
    assert before - 2 * HOUR_MS <= int(rates[0]["ts"]) <= after

    assert (
        savings.savings_purchase_redemption(ccy="USDT", amt="100", side="purchase", rate="0.01")["code"]
        == "0"
    )
    wait_for("lending history", lambda: savings.get_lending_history(ccy="USDT")["data"])
    now = server_now()
    older = savings.get_lending_history(ccy="USDT", after=str(now))["data"]  # OKX: `after` = older than
    assert older
    assert all(int(r["ts"]) < now for r in older)
    assert savings.get_public_borrow_history(ccy="USDT", after=str(now))["data"]


def test_ccxt_okx_set_by_the_servers_clock_signs_and_pages_by_it(demo: Demo) -> None:
    api_key, secret, passphrase = key(demo)
    okx = ccxt.okx(
        {
            "apiKey": api_key,
            "secret": secret,
            "password": passphrase,
            "options": {"adjustForTimeDifference": True},  # signs with the server's (business) time
        }
    )
    okx.urls["api"] = {"rest": demo.base_url}
    okx.load_markets()  # reads /api/v5/public/time first
    assert abs(okx.options["timeDifference"]) > 60_000  # the business clock is not the wall clock
    okx.private_post_finance_savings_purchase_redempt(
        {"ccy": "BTC", "amt": "0.1", "side": "purchase", "rate": "0.01"}
    )
    wait_for(
        "BTC lending history", lambda: okx.private_get_finance_savings_lending_history({"ccy": "BTC"})["data"]
    )
    now = okx.fetch_time()
    page = okx.private_get_finance_savings_lending_history({"ccy": "BTC", "after": str(now)})["data"]
    assert page
    assert all(int(r["ts"]) < now for r in page)
    assert okx.fetch_balance({"type": "funding"})["BTC"]["total"] > 0


def test_ccxt_bitget_and_typed_bitget_find_records_up_to_the_servers_time(demo: Demo) -> None:
    api_key, secret, passphrase = key(demo)
    bitget = ccxt.bitget(
        {
            "apiKey": api_key,
            "secret": secret,
            "password": passphrase,
            "options": {"adjustForTimeDifference": True},
        }
    )
    bitget.urls["api"] = dict.fromkeys(bitget.urls["api"], demo.base_url)
    bitget.load_markets()
    order = bitget.private_earn_post_v2_earn_savings_subscribe(
        {"productId": "1", "periodType": "flexible", "amount": "100"}
    )
    now = bitget.fetch_time()
    answer = bitget.private_earn_get_v2_earn_savings_records({"periodType": "flexible", "endTime": str(now)})
    assert answer["requestTime"] >= now  # the envelope's time is the same clock
    found = answer["data"]["resultList"]
    assert order["data"]["orderId"] in {r["orderId"] for r in found}
    assert all(int(r["ts"]) <= now for r in found)

    async def typed() -> None:
        async with Bitget.new(access_key=api_key, secret_key=secret, passphrase=passphrase) as client:
            client.http_client.base_url = demo.base_url
            server = (await client.classic.common.time())["serverTime"]
            records = await client.classic.earn.savings.records(period_type="flexible", end_time=server)
            assert order["data"]["orderId"] in {r["orderId"] for r in records["resultList"]}
            assert all(r["ts"] <= server for r in records["resultList"])

    asyncio.run(typed())


def test_typed_bitget_validates_every_savings_endpoint_on_the_demo_world(demo: Demo) -> None:
    api_key, secret, passphrase = key(demo)

    async def scenario() -> None:
        async with Bitget.new(access_key=api_key, secret_key=secret, passphrase=passphrase) as client:
            client.http_client.base_url = demo.base_url
            savings = client.classic.earn.savings
            listed = await savings.products()  # no filter: the whole catalog on sale
            assert {p["coin"] for p in listed} == {"USDT", "BTC", "USDC", "ETH", "FLX"}
            for product in await savings.products(filter="all"):
                await savings.subscribe_info(product["productId"], period_type=product["periodType"])
            order = await savings.subscribe("2", period_type="fixed", amount=Decimal("0.01"))
            assert (
                await savings.subscribe_result(product_id="2", period_type="fixed", order_id=order["orderId"])
            )["result"] == "success"
            flexible = await savings.subscribe("1", period_type="flexible", amount=Decimal("50"))
            redeemed = await savings.redeem(product_id="1", period_type="flexible", amount=Decimal("10"))
            await savings.redeem_result(redeemed["orderId"], period_type="flexible")
            for period in ("flexible", "fixed"):
                assert (await savings.assets(period))["resultList"]
                assert (await savings.records(period_type=period))["resultList"]
            assert flexible["orderId"]
            assert (await savings.account())["usdtAmount"] > 0
            now = datetime.now(UTC)
            assert (await client.classic.common.time())["serverTime"] > now  # business time runs ahead

    asyncio.run(scenario())


def test_binance_clients_see_the_demo_worlds_products_and_page_by_the_servers_time(demo: Demo) -> None:
    """Binance's typed SDK validates every Simple Earn answer on the demo world (a model that does
    not fit raises); python-binance pages the subscription history by the server's clock."""
    api_key, secret, _ = key(demo)
    client = Client(api_key, secret, ping=False)
    client.API_URL, client.MARGIN_API_URL = f"{demo.base_url}/api", f"{demo.base_url}/sapi"
    earn = SimpleEarn(
        config_rest_api=ConfigurationRestAPI(api_key=api_key, api_secret=secret, base_path=demo.base_url)
    ).rest_api
    flexible = earn.get_simple_earn_flexible_product_list(size=100).data()
    by_asset = {r.asset: r for r in flexible.rows}
    assert set(by_asset) == {"BTC", "ETH", "USDT", "USDC", "FLX"}
    banded = {a for a, r in by_asset.items() if r.tier_annual_percentage_rate is not None}
    assert banded == {"BTC", "USDT", "FLX"}
    locked = earn.get_simple_earn_locked_product_list(size=100).data()
    terms = {(r.detail.asset, r.detail.duration) for r in locked.rows}
    assert terms == {("BTC", 30), ("USDT", 7), ("ETH", 90)}

    assert client.universal_transfer(type="FUNDING_MAIN", asset="ETH", amount="3")["tranId"]
    eth = by_asset["ETH"].product_id
    bought = earn.subscribe_flexible_product(product_id=eth, amount=2.0).data()
    ninety = next(r.project_id for r in locked.rows if r.detail.duration == 90)
    position = earn.subscribe_locked_product(project_id=ninety, amount=1.0).data()
    assert earn.get_flexible_product_position(asset="ETH").data().rows[0].total_amount == "2"
    assert earn.get_locked_product_position(asset="ETH").data().rows[0].amount == "1"
    assert earn.simple_account().data().total_amount_in_usdt  # valued at the demo's reference prices
    assert earn.get_rate_history(product_id=eth).data().rows[0].annual_percentage_rate == "0.02100000"

    now = client.get_server_time()["serverTime"]
    assert now > time.time() * 1000  # the demo's business clock runs ahead of the wall clock
    page = client.margin_v1_get_simple_earn_flexible_history_subscription_record(endTime=now, size=1)
    assert [r["purchaseId"] for r in page["rows"]] == [bought.purchase_id]
    assert all(r["time"] <= now for r in page["rows"])
    before = client.margin_v1_get_simple_earn_flexible_history_subscription_record(
        endTime=page["rows"][0]["time"] - 1
    )
    assert bought.purchase_id not in {r["purchaseId"] for r in before["rows"]}
    assert position.success is True
