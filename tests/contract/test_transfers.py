"""The accounts around savings with the real clients: OKX's trading account and asset transfers,
bills and valuation; Bitget's spot ⇄ USDT-M futures transfers and account overviews.

flexearn's funding account is OKX's funding account ("6") and Bitget's spot account; its trading
account is OKX's trading account ("18") and Bitget's `usdt_futures` (ccxt's `swap`). Savings are
bought from funding only, so money in trading needs a transfer first, as on both exchanges.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import ccxt
import pytest
from okx import Account, Funding
from okx.Finance import Savings
from typed_bitget import Bitget

from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import D
from flexearn.services import accounts, catalog_views
from tests.contract.conftest import FLEXIBLE_USDT, World
from tests.contract.test_bitget_clients import bitget_client, data
from tests.contract.test_okx_ccxt import okx_client
from tests.contract.test_okx_python_okx import ok
from tests.helpers import T0, advance, assert_ledger_ok

TO_TRADING, FROM_TRADING = "131", "130"  # OKX's funding bill types for transfers


def _in_trading(world: World, ccy: str, amount: str) -> None:
    accounts.deposit(world.app.uow(), world.user_id, ccy, D(amount), AccountKind.TRADING)


def test_ccxt_okx_reads_the_trading_account_and_transfers_both_ways(world: World) -> None:
    _in_trading(world, "USDT", "500")
    exchange = okx_client(world)

    trading = exchange.fetch_balance()  # ccxt's default: the trading account (GET /api/v5/account/balance)
    assert (trading["USDT"]["total"], trading["USDT"]["free"], trading["USDT"]["used"]) == (500.0, 500.0, 0.0)
    assert "BTC" not in trading["total"]  # the 2 BTC are in funding
    assert trading["info"]["data"][0]["totalEq"] == "500"  # USDT at one dollar
    assert exchange.fetch_balance({"type": "funding"})["USDT"]["total"] == 1000.0

    moved = exchange.transfer("USDT", 200, "trading", "funding")
    assert (moved["currency"], moved["amount"], moved["fromAccount"], moved["toAccount"]) == (
        "USDT",
        200.0,
        "trading",
        "funding",
    )
    assert moved["info"]["from"] == "18"
    assert moved["info"]["to"] == "6"
    assert moved["info"]["transId"]
    back = exchange.transfer("BTC", 0.5, "funding", "trading")
    assert (back["fromAccount"], back["toAccount"], back["amount"]) == ("funding", "trading", 0.5)

    trading = exchange.fetch_balance()
    funding = exchange.fetch_balance({"type": "funding"})
    assert (trading["USDT"]["total"], trading["BTC"]["total"]) == (300.0, 0.5)
    assert (funding["USDT"]["total"], funding["BTC"]["total"]) == (1200.0, 1.5)

    time.sleep(1.05)  # OKX allows two transfers a second per user
    with pytest.raises(ccxt.InsufficientFunds):  # 58350 Insufficient balance; nothing moves
        exchange.transfer("USDT", 300.5, "trading", "funding")
    assert exchange.fetch_balance()["USDT"]["total"] == 300.0
    assert_ledger_ok(world.app)


def test_savings_are_bought_from_funding_only(world: World) -> None:
    """Money in the trading account cannot buy savings on either façade until it is transferred."""
    okx, bitget = okx_client(world), bitget_client(world)
    accounts.withdraw(world.app.uow(), world.user_id, "USDT", D(1000))
    _in_trading(world, "USDT", "800")
    with pytest.raises(ccxt.InsufficientFunds):  # OKX 58350
        okx.private_post_finance_savings_purchase_redempt({"ccy": "USDT", "amt": "100", "side": "purchase"})
    subscription = {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "100"}
    # Bitget Earn's own code for an unfunded subscription (59011; ccxt has no class for it)
    with pytest.raises(ccxt.ExchangeError, match='"code":"59011"'):
        bitget.private_earn_post_v2_earn_savings_subscribe(subscription)

    okx.transfer("USDT", 300, "trading", "funding")
    purchase = {"ccy": "USDT", "amt": "100", "side": "purchase"}
    bought = okx.private_post_finance_savings_purchase_redempt(purchase)
    assert bought["data"][0]["amt"] == "100"
    bitget.transfer("USDT", 200, "swap", "spot")
    assert data(bitget.private_earn_post_v2_earn_savings_subscribe(subscription))["status"] == "success"
    funding = okx.fetch_balance({"type": "funding"})
    assert funding["USDT"]["total"] == 300.0  # 300 + 200 in, 100 and 100 bought
    assert okx.fetch_balance()["USDT"]["total"] == 300.0
    assert_ledger_ok(world.app)


def test_python_okx_transfer_bills_and_asset_valuation(world: World) -> None:
    catalog_views.set_price(world.app.uow(), "BTC", D(50000))
    _in_trading(world, "USDT", "250")
    k = world.key
    args = (k.api_key, k.secret_key, k.passphrase, False, "1")
    funding = Funding.FundingAPI(*args, domain=world.base_url, debug=False)
    account = Account.AccountAPI(*args, domain=world.base_url, debug=False)
    savings = Savings.SavingsAPI(*args, domain=world.base_url, debug=False)

    (moved,) = ok(funding.funds_transfer(ccy="USDT", amt="250", from_="18", to="6"))
    assert {key: moved[key] for key in ("ccy", "amt", "from", "to", "clientId")} == {
        "ccy": "USDT",
        "amt": "250",
        "from": "18",
        "to": "6",
        "clientId": "",
    }
    (balance,) = ok(account.get_account_balance())
    assert (balance["totalEq"], balance["details"]) == ("0", [])  # the trading account is empty now
    advance(world.app)  # an hour later (business time)
    ok(savings.savings_purchase_redemption(ccy="USDT", amt="1000", side="purchase", rate="0.01"))

    bills = ok(funding.get_bills(ccy="USDT"))  # newest first; `bal` is the balance after each bill
    assert [(b["type"], b["balChg"], b["bal"]) for b in bills] == [
        ("75", "-1000", "250"),  # subscription to savings
        (FROM_TRADING, "250", "1250"),
        ("1", "1000", "1000"),  # the deposit
    ]
    later = T0 + 1 + HOUR_MS  # the business clock's times
    assert [b["ts"] for b in bills] == [str(later), str(T0 + 1), str(T0 + 1)]
    assert ok(funding.get_bills(ccy="USDT", limit="1")) == bills[:1]
    assert ok(funding.get_bills(ccy="USDT", after=str(later))) == bills[1:]  # after: older than ts
    assert ok(funding.get_bills(ccy="USDT", before=str(T0 + 1))) == bills[:1]  # before: newer than ts
    assert ok(funding.get_bills(ccy="USDT", type=FROM_TRADING)) == bills[1:2]
    assert {b["ccy"] for b in ok(funding.get_bills())} == {"USDT", "BTC"}

    (valued,) = ok(funding.get_asset_valuation(ccy="USDT"))
    # funding 250 USDT + 2 BTC at 50000; earn 1000 USDT (the savings position)
    assert valued["details"] == {"funding": "100250", "trading": "0", "classic": "0", "earn": "1000"}
    assert (valued["totalBal"], valued["ts"]) == ("101250", str(later))
    assert_ledger_ok(world.app)


def test_okx_refuses_transfers_it_does_not_model(world: World) -> None:
    exchange = okx_client(world)
    transfer = exchange.private_post_asset_transfer
    with pytest.raises(ccxt.BadRequest, match="Parameter type error"):  # sub-account transfers
        transfer({"ccy": "USDT", "amt": "1", "from": "6", "to": "18", "type": "1", "subAcct": "x"})
    time.sleep(1.05)
    with pytest.raises(ccxt.BadRequest, match="Parameter to error"):
        transfer({"ccy": "USDT", "amt": "1", "from": "6", "to": "6"})
    with pytest.raises(ccxt.BadRequest, match="Parameter amt error"):  # BTC has 8 decimal places
        transfer({"ccy": "BTC", "amt": "0.000000001", "from": "6", "to": "18"})
    time.sleep(1.05)
    with pytest.raises(ccxt.BadRequest, match="Parameter from error"):
        transfer({"ccy": "USDT", "amt": "1", "from": "1", "to": "18"})
    with pytest.raises(ccxt.BadRequest, match="Parameter ccy error"):
        transfer({"ccy": "DOGE", "amt": "1", "from": "6", "to": "18"})
    assert exchange.fetch_balance()["total"] == {}
    assert_ledger_ok(world.app)


def test_ccxt_bitget_reads_spot_and_futures_and_transfers_both_ways(world: World) -> None:
    _in_trading(world, "USDT", "300")
    exchange = bitget_client(world)

    spot = exchange.fetch_balance()  # ccxt's default: spot, flexearn's funding account
    assert (spot["USDT"]["total"], spot["BTC"]["total"]) == (1000.0, 2.0)
    futures = exchange.fetch_balance({"type": "swap"})  # GET /api/v2/mix/account/accounts, USDT-FUTURES
    assert (futures["USDT"]["free"], futures["USDT"]["total"]) == (300.0, 300.0)

    moved = exchange.transfer("USDT", 100, "swap", "spot")
    assert moved["id"]
    assert moved["info"]["clientOid"] is None
    exchange.transfer("USDT", 40.5, "spot", "swap", {"clientOid": "mine-1"})
    assert exchange.fetch_balance()["USDT"]["total"] == 1059.5
    assert exchange.fetch_balance({"type": "swap"})["USDT"]["total"] == 240.5
    with pytest.raises(ccxt.InsufficientFunds):  # 43012
        exchange.transfer("USDT", 241, "swap", "spot")
    with pytest.raises(ccxt.BadRequest, match="fromType"):  # Bitget's P2P funding account: not modelled
        exchange.transfer("USDT", 1, "p2p", "spot")

    overview = data(exchange.private_spot_get_v2_account_all_account_balance())
    assert overview == [
        {"accountType": "spot", "usdtBalance": "1059.5"},
        {"accountType": "futures", "usdtBalance": "240.5"},
        {"accountType": "funding", "usdtBalance": "0"},
        {"accountType": "earn", "usdtBalance": "0"},
        {"accountType": "bots", "usdtBalance": "0"},
        {"accountType": "margin", "usdtBalance": "0"},
    ]
    assert data(exchange.private_spot_get_v2_account_funding_assets()) == []
    assert_ledger_ok(world.app)


def test_typed_bitget_validates_transfer_and_account_endpoints(world: World) -> None:
    _in_trading(world, "USDT", "300")

    async def scenario() -> None:
        k = world.key
        keys = {"access_key": k.api_key, "secret_key": k.secret_key, "passphrase": k.passphrase}
        async with Bitget.new(**keys) as client:
            client.http_client.base_url = world.base_url
            done = await client.classic.spot.transfer.create(
                from_type="usdt_futures", to_type="spot", amount=Decimal("120"), coin="USDT", client_oid="t1"
            )
            assert done["clientOid"] == "t1"
            assert done["transferId"]
            (futures,) = await client.classic.mix.account.list("USDT-FUTURES")
            assert (futures["marginCoin"], futures["available"], futures["usdtEquity"]) == (
                "USDT",
                Decimal(180),
                Decimal(180),
            )
            assert await client.classic.mix.account.list("COIN-FUTURES") == []
            overview = await client.classic.common.all_account_balance()
            assert {row["accountType"]: row["usdtBalance"] for row in overview}["spot"] == Decimal(1120)
            assert await client.classic.common.funding_assets() == []

    asyncio.run(scenario())
    assert_ledger_ok(world.app)
