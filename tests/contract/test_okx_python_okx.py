"""The unmodified python-okx SDK against a running flexearn: a lender's whole hour."""

from __future__ import annotations

from okx import Funding, PublicData
from okx.Finance import Savings

from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.money import D
from tests.contract.conftest import World
from tests.helpers import T0, advance, assert_ledger_ok


def ok(response: dict[str, object]) -> list[dict[str, str]]:
    assert response["code"] == "0", response
    data = response["data"]
    assert isinstance(data, list)
    return data


def test_python_okx_purchase_settle_earn_set_rate_redeem(world: World) -> None:
    k = world.key
    args = (k.api_key, k.secret_key, k.passphrase, False, "1")
    savings = Savings.SavingsAPI(*args, domain=world.base_url, debug=False)
    funding = Funding.FundingAPI(*args, domain=world.base_url, debug=False)
    public = PublicData.PublicAPI(flag="1", domain=world.base_url, debug=False)

    (server_time,) = ok(public.get_system_time())
    assert abs(int(server_time["ts"]) - T0) < 5000  # business time: the clock of every record
    (usdt,) = ok(funding.get_balances(ccy="USDT"))
    assert usdt["availBal"] == "1000"

    (bought,) = ok(savings.savings_purchase_redemption(ccy="USDT", amt="300", side="purchase", rate="0.02"))
    assert bought == {"ccy": "USDT", "amt": "300", "side": "purchase", "rate": "0.02"}
    (position,) = ok(savings.get_saving_balance(ccy="USDT"))
    assert (position["amt"], position["loanAmt"], position["pendingAmt"]) == ("300", "0", "300")

    advance(world.app)  # T0+1h: matched, 150 of 300 lent at 2%
    (position,) = ok(savings.get_saving_balance(ccy="USDT"))
    assert (position["loanAmt"], position["pendingAmt"], position["earnings"]) == ("150", "150", "0")
    advance(world.app)  # T0+2h: the hour's interest, 150 × 1.7% / 8760
    interest = D("0.0002910958904109")
    (position,) = ok(savings.get_saving_balance(ccy="USDT"))
    assert D(position["earnings"]) == interest
    assert D(position["amt"]) == 300 + interest
    assert position["rate"] == "0.0200000000000000"

    (record,) = ok(savings.get_lending_history(ccy="USDT"))
    assert record == {
        "ccy": "USDT",
        "amt": "150",
        "earnings": str(interest),
        "rate": "0.017",
        "ts": str(T0 + HOUR_MS),
    }
    history = ok(savings.get_public_borrow_history(ccy="USDT"))
    assert [(h["ts"], h["rate"], h["lendingRate"]) for h in history] == [
        (str(T0 + 2 * HOUR_MS), "0.02", "0.017"),
        (str(T0 + HOUR_MS), "0.02", "0.017"),
    ]
    (summary,) = ok(savings.get_public_borrow_info(ccy="USDT"))
    assert (summary["preRate"], summary["avgRate"], summary["estRate"]) == ("0.02", "0.02", "0.02")

    assert ok(savings.set_lending_rate(ccy="USDT", rate="0.05")) == [{"ccy": "USDT", "rate": "0.05"}]
    (summary,) = ok(savings.get_public_borrow_info(ccy="USDT"))
    assert summary["estRate"] == "0.05"

    everything = str(300 + interest)
    (redeemed,) = ok(savings.savings_purchase_redemption(ccy="USDT", amt=everything, side="redempt", rate=""))
    assert redeemed["side"] == "redempt"
    (usdt,) = ok(funding.get_balances(ccy="USDT"))
    assert D(usdt["availBal"]) == 1000 + interest
    assert {b["ccy"] for b in ok(funding.get_balances())} == {"USDT", "BTC"}
    assert_ledger_ok(world.app)


def test_python_okx_sees_engine_refusals_as_okx_codes(world: World) -> None:
    k = world.key
    savings = Savings.SavingsAPI(
        k.api_key, k.secret_key, k.passphrase, False, "1", domain=world.base_url, debug=False
    )
    too_much = savings.savings_purchase_redemption(ccy="USDT", amt="5000", side="purchase", rate="0.02")
    assert (too_much["code"], too_much["msg"]) == ("58350", "Insufficient balance")
    bad_rate = savings.savings_purchase_redemption(ccy="USDT", amt="1", side="purchase", rate="3.66")
    assert bad_rate["code"] == "51000"
    assert bad_rate["msg"].startswith("Parameter rate error")
    unknown = savings.get_saving_balance(ccy="DOGE")
    assert unknown == {"code": "0", "msg": "", "data": []}
    no_market = savings.savings_purchase_redemption(ccy="DOGE", amt="1", side="purchase", rate="0.02")
    assert no_market["code"] == "58003"
    redeem = savings.savings_purchase_redemption(ccy="BTC", amt="1", side="redempt", rate="")
    assert (redeem["code"], redeem["msg"]) == (
        "58005",
        "The redemption amount must be equal to or less than 0",
    )
