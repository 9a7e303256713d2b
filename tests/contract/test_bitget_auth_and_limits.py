"""Bitget authentication, permissions, replay refusal, rate limits and input errors over real HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from flexearn.services import keys
from tests.contract.bitget_http import BitgetHttp, signed_headers
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.contract.okx_http import OkxHttp
from tests.helpers import assert_ledger_ok

ACCOUNT = "/api/v2/earn/savings/account"
SUBSCRIBE = "/api/v2/earn/savings/subscribe"


def code(response: httpx.Response) -> tuple[int, str]:
    payload = response.json()
    assert set(payload) == {"code", "msg", "requestTime", "data"}
    return response.status_code, payload["code"]


def test_missing_headers_each_have_their_own_code(user: World) -> None:
    client = httpx.Client(base_url=user.base_url)
    full = signed_headers(user.key, "GET", ACCOUNT)
    for header, expected in {
        "ACCESS-KEY": "40001",
        "ACCESS-SIGN": "40002",
        "ACCESS-TIMESTAMP": "40003",
        "ACCESS-PASSPHRASE": "40011",
    }.items():
        headers = {k: v for k, v in full.items() if k != header}
        assert code(client.get(ACCOUNT, headers=headers)) == (400, expected)


def test_bad_credentials_are_refused_with_bitget_codes(user: World) -> None:
    client = BitgetHttp(user.base_url, user.key)
    now = time.time_ns() // 1_000_000
    assert code(client.get(ACCOUNT, passphrase="wrong")) == (400, "40012")
    assert code(client.get(ACCOUNT, timestamp="2026-01-01T00:00:00Z")) == (400, "40005")
    assert code(client.get(ACCOUNT, timestamp=str(now - 31_000))) == (400, "40008")
    assert code(client.get(ACCOUNT, timestamp=str(now - 20_000))) == (200, "00000")
    forged = keys.NewKey(user.key.api_key, "F" * 32, user.key.passphrase)
    assert code(BitgetHttp(user.base_url, forged).get(ACCOUNT)) == (400, "40009")
    unknown = keys.NewKey("00000000-0000-0000-0000-000000000000", "F" * 32, "x")
    assert code(BitgetHttp(user.base_url, unknown).get(ACCOUNT)) == (400, "40006")


def test_one_key_serves_both_facades_and_a_replay_is_refused_on_either(user: World) -> None:
    body = f'{{"productId":"{FLEXIBLE_USDT}","periodType":"flexible","amount":"10"}}'
    headers = signed_headers(user.key, "POST", SUBSCRIBE, body)
    client = httpx.Client(base_url=user.base_url)
    assert code(client.post(SUBSCRIBE, content=body, headers=headers)) == (200, "00000")
    assert code(client.post(SUBSCRIBE, content=body, headers=headers)) == (400, "40009")
    (usdt,) = [
        b
        for b in OkxHttp(user.base_url, user.key).get("/api/v5/asset/balances").json()["data"]
        if b["ccy"] == "USDT"
    ]
    assert usdt["availBal"] == "990"  # the funding balance is shared: subscribed once


def test_permissions_and_ip_allowlist(user: World) -> None:
    read_only = BitgetHttp(user.base_url, user.new_key("read"))
    assert code(read_only.get(ACCOUNT)) == (200, "00000")
    refused = read_only.post(
        SUBSCRIBE, {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "10"}
    )
    assert code(refused) == (400, "40014")
    elsewhere = BitgetHttp(user.base_url, user.new_key("read", ips="10.9.9.9"))
    assert code(elsewhere.get(ACCOUNT)) == (400, "40018")


def test_ten_requests_per_second_per_user_then_429(user: World) -> None:
    client = BitgetHttp(user.base_url, user.key)
    answers = [code(client.get(ACCOUNT)) for _ in range(12)]
    assert answers[:10] == [(200, "00000")] * 10
    assert (429, "429") in answers[10:]


@pytest.mark.parametrize(
    ("body", "expected_code", "says"),
    [
        ("{oops", "40017", None),
        ('{"periodType": "flexible", "amount": "10"}', "40019", "productId"),
        ('{"productId": "1", "amount": "10"}', "40019", "periodType"),
        ('{"productId": "1", "periodType": "flexible"}', "40019", "amount"),
        ('{"productId": "1", "periodType": "forever", "amount": "10"}', "40017", "periodType"),
        ('{"productId": "x", "periodType": "flexible", "amount": "10"}', "40017", "productId"),
        ('{"productId": "999", "periodType": "flexible", "amount": "10"}', "59049", "Product does not exist"),
        ('{"productId": "1", "periodType": "fixed", "amount": "10"}', "40017", "periodType"),
        # Bitget's Earn codes, in its words (api/bitget/errors.py names the source)
        ('{"productId": "1", "periodType": "flexible", "amount": "9.99"}', "59020", "Minimum limit"),
        ('{"productId": "1", "periodType": "flexible", "amount": "10.0000001"}', "59010", "exceed 6 digits"),
        ('{"productId": "1", "periodType": "flexible", "amount": "2000.01"}', "59030", "max amount"),
        ('{"productId": "1", "periodType": "flexible", "amount": "NaN"}', "40017", "amount"),
        ('{"productId": "1", "periodType": "flexible", "amount": "1500"}', "59011", "Insufficient balance"),
    ],
)
def test_bad_subscriptions_get_bitget_codes_naming_the_parameter_or_rule_and_write_nothing(
    user: World, body: str, expected_code: str, says: str | None
) -> None:
    client = BitgetHttp(user.base_url, user.key)
    response = client.post(SUBSCRIBE, body)
    assert code(response) == (400, expected_code)
    if says:
        assert says in response.json()["msg"]
    assets = client.get("/api/v2/earn/savings/assets?periodType=flexible").json()["data"]
    assert assets["resultList"] == []
    assert_ledger_ok(user.app)


def test_fixed_redemption_needs_its_order_and_unknown_orders_are_named(user: World) -> None:
    client = BitgetHttp(user.base_url, user.key)
    redeem = {"productId": str(FIXED_BTC), "periodType": "fixed", "amount": "1"}
    assert code(client.post("/api/v2/earn/savings/redeem", redeem)) == (400, "59025")
    missing = client.get("/api/v2/earn/savings/redeem-result?orderId=424242&periodType=fixed")
    assert code(missing) == (400, "40034")
    assert code(client.get("/api/v2/earn/savings/records")) == (400, "40019")
    span = client.get("/api/v2/earn/savings/records?periodType=fixed&startTime=0&endTime=99999999999")
    assert code(span) == (400, "40017")


def test_unknown_paths_answer_in_bitget_envelope(user: World) -> None:
    response = httpx.get(f"{user.base_url}/api/v2/earn/savings/nothing")
    assert code(response) == (404, "40404")
