"""The unmodified ccxt `okx` class against a running flexearn: implicit and unified methods."""

from __future__ import annotations

import ccxt
import pytest

from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.money import D
from tests.contract.conftest import World
from tests.helpers import T0, advance, assert_ledger_ok


def okx_client(world: World) -> ccxt.okx:
    k = world.key
    exchange = ccxt.okx({"apiKey": k.api_key, "secret": k.secret_key, "password": k.passphrase})
    exchange.urls["api"] = {"rest": world.base_url}
    return exchange


def test_ccxt_loads_markets_and_drives_savings_end_to_end(world: World) -> None:
    exchange = okx_client(world)
    markets = exchange.load_markets()  # currencies (signed), then SPOT/FUTURES/SWAP/OPTION instruments
    assert "BTC/USDT" in markets
    assert markets["BTC/USDT"]["active"] is True
    assert {"BTC", "USDT"} <= set(exchange.currencies)
    assert abs(exchange.fetch_time() - T0) < 5000  # business time: the clock of every record

    funding = exchange.fetch_balance({"type": "funding"})
    assert (funding["USDT"]["free"], funding["BTC"]["total"]) == (1000.0, 2.0)

    bought = exchange.private_post_finance_savings_purchase_redempt(
        {"ccy": "USDT", "amt": "300", "side": "purchase", "rate": "0.02"}
    )
    assert bought["data"] == [{"ccy": "USDT", "amt": "300", "side": "purchase", "rate": "0.02"}]
    advance(world.app, 2)

    (position,) = exchange.private_get_finance_savings_balance({"ccy": "USDT"})["data"]
    interest = D("0.0002910958904109")
    assert (position["loanAmt"], D(position["earnings"])) == ("150", interest)
    (record,) = exchange.private_get_finance_savings_lending_history({"ccy": "USDT"})["data"]
    assert (record["ts"], record["earnings"]) == (str(T0 + HOUR_MS), str(interest))
    (summary,) = exchange.public_get_finance_savings_lending_rate_summary({"ccy": "USDT"})["data"]
    assert summary["preRate"] == "0.02"
    history = exchange.public_get_finance_savings_lending_rate_history({"ccy": "USDT"})["data"]
    assert [h["ts"] for h in history] == [str(T0 + 2 * HOUR_MS), str(T0 + HOUR_MS)]

    rates = exchange.fetch_borrow_rate_history("USDT")
    assert [(r["timestamp"], r["rate"]) for r in rates] == [(T0 + HOUR_MS, 0.02), (T0 + 2 * HOUR_MS, 0.02)]
    since = exchange.fetch_borrow_rate_history("USDT", since=T0 + HOUR_MS + 1, limit=5)
    assert [r["timestamp"] for r in since] == [T0 + 2 * HOUR_MS]

    assert exchange.private_post_finance_savings_set_lending_rate({"ccy": "USDT", "rate": "0.03"})[
        "data"
    ] == [{"ccy": "USDT", "rate": "0.03"}]
    exchange.private_post_finance_savings_purchase_redempt(
        {"ccy": "USDT", "amt": str(300 + interest), "side": "redempt", "rate": ""}
    )
    funding = exchange.fetch_balance({"type": "funding"})
    assert D(str(funding["info"]["data"][1]["availBal"])) == 1000 + interest
    assert_ledger_ok(world.app)


def test_ccxt_raises_its_own_exceptions_for_okx_codes(world: World) -> None:
    exchange = okx_client(world)
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.private_post_finance_savings_purchase_redempt(
            {"ccy": "USDT", "amt": "5000", "side": "purchase"}
        )
    with pytest.raises(ccxt.BadRequest, match="Parameter side error"):
        exchange.private_post_finance_savings_purchase_redempt({"ccy": "USDT", "amt": "1", "side": "buy"})
    exchange.secret = "0" * 32
    with pytest.raises(ccxt.AuthenticationError):
        exchange.private_get_finance_savings_balance()
