"""OKX's smaller conventions, through the unmodified python-okx SDK (and raw HTTP where no SDK
call can send the request): a pro-rata pool's rates, paging with `before`, an empty POST body, a
rate set before any purchase."""

from __future__ import annotations

import httpx
from okx.Finance import Savings

from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.market import DEFAULT_INSURANCE_FEE
from flexearn.domain.money import D
from flexearn.services import accounts, markets
from tests.contract.conftest import World
from tests.contract.okx_http import signed_headers
from tests.helpers import T0, advance, assert_ledger_ok


def ok(response: dict[str, object]) -> list[dict[str, str]]:
    assert response["code"] == "0", response
    data = response["data"]
    assert isinstance(data, list)
    return data


def sdk(world: World) -> Savings.SavingsAPI:
    k = world.key
    return Savings.SavingsAPI(k.api_key, k.secret_key, k.passphrase, False, "1", domain=world.base_url)


def test_a_pro_rata_pool_takes_no_cut_by_default_and_its_rate_is_written_as_okx_writes_it(
    world: World,
) -> None:
    accounts.add_currency(world.app.uow(), "USDC", 8)
    pool = markets.set_market(world.app.uow(), "USDC", mode="pro_rata", demand=D(1000), borrow_rate=D("0.05"))
    assert pool.insurance_fee == 0
    assert markets.set_market(world.app.uow(), "USDT").insurance_fee == DEFAULT_INSURANCE_FEE  # auction
    accounts.deposit(world.app.uow(), world.user_id, "USDC", D(3000))
    savings = sdk(world)
    # OKX's announcement example: 5 % borrow rate, 1,000 borrowed of 1,250 eligible → 4 %.
    ok(savings.savings_purchase_redemption(ccy="USDC", amt="1250", side="purchase", rate="0.01"))
    advance(world.app)
    (latest,) = ok(savings.get_public_borrow_history(ccy="USDC"))
    assert (latest["rate"], latest["lendingRate"]) == ("0.05", "0.04")
    # 1,000 of 3,000 eligible: 5 % / 3 = 0.016666… is written with OKX's 4 places, cut down (never
    # more than the lenders earn).
    ok(savings.savings_purchase_redemption(ccy="USDC", amt="1750", side="purchase", rate="0.01"))
    advance(world.app)
    latest = ok(savings.get_public_borrow_history(ccy="USDC"))[0]
    assert (latest["rate"], latest["lendingRate"]) == ("0.05", "0.0166")
    assert_ledger_ok(world.app)


def test_before_alone_gives_the_newest_records_newer_than_it(world: World) -> None:
    savings = sdk(world)
    ok(savings.savings_purchase_redemption(ccy="USDT", amt="300", side="purchase", rate="0.01"))
    for _ in range(6):  # hours T0+1h … T0+6h; lent from T0+1h, records from T0+1h to T0+5h
        advance(world.app)
    hours = [int(r["ts"]) for r in ok(savings.get_lending_history(ccy="USDT"))]
    assert hours == [T0 + n * HOUR_MS for n in range(5, 0, -1)]
    newest = ok(savings.get_lending_history(ccy="USDT", before=str(T0 + HOUR_MS), limit="2"))
    assert [int(r["ts"]) for r in newest] == [T0 + 5 * HOUR_MS, T0 + 4 * HOUR_MS]
    older = ok(savings.get_lending_history(ccy="USDT", after=str(T0 + 4 * HOUR_MS), limit="2"))
    assert [int(r["ts"]) for r in older] == [T0 + 3 * HOUR_MS, T0 + 2 * HOUR_MS]
    between = ok(
        savings.get_lending_history(ccy="USDT", after=str(T0 + 5 * HOUR_MS), before=str(T0 + 2 * HOUR_MS))
    )
    assert [int(r["ts"]) for r in between] == [T0 + 4 * HOUR_MS, T0 + 3 * HOUR_MS]
    rates = ok(savings.get_public_borrow_history(ccy="USDT", before=str(T0 + HOUR_MS), limit="1"))
    assert [int(r["ts"]) for r in rates] == [T0 + 6 * HOUR_MS]


def test_an_empty_post_body_is_okx_50000(world: World) -> None:
    path = "/api/v5/finance/savings/purchase-redempt"
    for body in ("", " "):
        response = httpx.post(
            world.base_url + path, content=body, headers=signed_headers(world.key, "POST", path, body)
        )
        assert (response.status_code, response.json()) == (
            400,
            {"code": "50000", "msg": "Body for POST request cannot be empty.", "data": []},
        )
    # an empty object is a body: its missing parameters are named
    response = httpx.post(
        world.base_url + path, content="{}", headers=signed_headers(world.key, "POST", path, "{}")
    )
    assert response.json()["code"] == "50014"


def test_a_rate_set_before_any_purchase_shows_no_position_and_applies_to_the_first(world: World) -> None:
    savings = sdk(world)
    (answer,) = ok(savings.set_lending_rate(ccy="USDT", rate="0.05"))
    assert answer == {"ccy": "USDT", "rate": "0.05"}
    assert ok(savings.get_saving_balance(ccy="USDT")) == []
    assert ok(savings.get_saving_balance()) == []
    ok(savings.savings_purchase_redemption(ccy="USDT", amt="10", side="purchase", rate=""))
    (position,) = ok(savings.get_saving_balance(ccy="USDT"))
    assert (position["amt"], position["rate"]) == ("10", "0.0500000000000000")
