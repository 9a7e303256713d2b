"""OKX authentication, permissions, replay refusal, rate limits and input errors over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest

from flexearn.api.auth import REVOCATION_CHECK_SECONDS
from flexearn.services import keys
from tests.contract.conftest import World
from tests.contract.okx_http import OkxHttp, okx_timestamp, signed_headers

BALANCE = "/api/v5/finance/savings/balance"
PURCHASE = "/api/v5/finance/savings/purchase-redempt"


def code(response: httpx.Response) -> tuple[int, str]:
    payload = response.json()
    assert set(payload) == {"code", "msg", "data"}
    assert payload["data"] == [] or payload["code"] == "0"
    return response.status_code, payload["code"]


def test_missing_headers_each_have_their_own_code(user: World) -> None:
    client = httpx.Client(base_url=user.base_url)
    full = signed_headers(user.key, "GET", BALANCE)
    expected = {
        "OK-ACCESS-KEY": "50103",
        "OK-ACCESS-PASSPHRASE": "50104",
        "OK-ACCESS-SIGN": "50106",
        "OK-ACCESS-TIMESTAMP": "50107",
    }
    for header, okx_code in expected.items():
        headers = {k: v for k, v in full.items() if k != header}
        assert code(client.get(BALANCE, headers=headers)) == (401, okx_code)


def test_bad_credentials_are_refused_with_okx_codes(user: World) -> None:
    client = OkxHttp(user.base_url, user.key)
    assert code(client.get(BALANCE, passphrase="wrong")) == (401, "50105")
    assert code(client.get(BALANCE, timestamp="yesterday")) == (401, "50112")
    assert code(client.get(BALANCE, timestamp=okx_timestamp(timedelta(seconds=-31)))) == (401, "50102")
    assert code(client.get(BALANCE, timestamp=okx_timestamp(timedelta(seconds=31)))) == (401, "50102")
    assert code(client.get(BALANCE, timestamp=okx_timestamp(timedelta(seconds=-25)))) == (200, "0")
    forged = keys.NewKey(user.key.api_key, "F" * 32, user.key.passphrase)
    assert code(OkxHttp(user.base_url, forged).get(BALANCE)) == (401, "50113")
    unknown = keys.NewKey("00000000-0000-0000-0000-000000000000", "F" * 32, "x")
    assert code(OkxHttp(user.base_url, unknown).get(BALANCE)) == (401, "50111")


def test_the_signature_covers_the_raw_query_and_body(user: World) -> None:
    client = httpx.Client(base_url=user.base_url)
    headers = signed_headers(user.key, "GET", f"{BALANCE}?ccy=USDT")
    assert code(client.get(f"{BALANCE}?ccy=BTC", headers=headers)) == (401, "50113")
    body = '{"ccy":"USDT","amt":"1","side":"purchase"}'
    headers = signed_headers(user.key, "POST", PURCHASE, body)
    tampered = body.replace('"1"', '"2"')
    assert code(client.post(PURCHASE, content=tampered, headers=headers)) == (401, "50113")
    # spaced JSON (python-okx) and compact JSON (ccxt) both verify over the bytes as sent
    spaced = json.dumps({"ccy": "USDT", "amt": "1", "side": "purchase", "rate": ""})
    assert code(
        client.post(PURCHASE, content=spaced, headers=signed_headers(user.key, "POST", PURCHASE, spaced))
    ) == (200, "0")


def test_a_replayed_signed_request_is_refused(user: World) -> None:
    client = httpx.Client(base_url=user.base_url)
    body = '{"ccy":"USDT","amt":"1","side":"purchase"}'
    headers = signed_headers(user.key, "POST", PURCHASE, body)
    assert code(client.post(PURCHASE, content=body, headers=headers)) == (200, "0")
    assert code(client.post(PURCHASE, content=body, headers=headers)) == (401, "50113")
    (position,) = OkxHttp(user.base_url, user.key).get(BALANCE).json()["data"]
    assert position["amt"] == "1"  # bought once


def test_permissions_ip_allowlist_expiry_and_revocation(user: World) -> None:
    read_only = user.new_key("read")
    client = OkxHttp(user.base_url, read_only)
    assert code(client.get(BALANCE)) == (200, "0")
    assert code(client.post(PURCHASE, {"ccy": "USDT", "amt": "1", "side": "purchase"})) == (200, "50120")
    elsewhere = user.new_key("read", ips="10.1.2.3,192.168.0.0/16")
    assert code(OkxHttp(user.base_url, elsewhere).get(BALANCE)) == (401, "50110")
    here = user.new_key("read", ips="127.0.0.0/8")
    assert code(OkxHttp(user.base_url, here).get(BALANCE)) == (200, "0")
    keys.revoke_key(user.app.uow(), here.api_key)
    time.sleep(REVOCATION_CHECK_SECONDS + 0.5)  # the server asks for revocations every second
    assert code(OkxHttp(user.base_url, here).get(BALANCE)) == (401, "50111")


def test_six_requests_per_second_per_endpoint_then_429(user: World) -> None:
    client = OkxHttp(user.base_url, user.key)
    answers = [code(client.get(BALANCE)) for _ in range(8)]
    assert answers[:6] == [(200, "0")] * 6
    assert (429, "50011") in answers[6:]
    assert code(client.get("/api/v5/finance/savings/lending-history")) == (200, "0")  # another endpoint
    time.sleep(1.1)
    assert code(client.get(BALANCE)) == (200, "0")
    public = httpx.Client(base_url=user.base_url)
    summary = [public.get("/api/v5/finance/savings/lending-rate-summary").status_code for _ in range(8)]
    assert summary.count(429) >= 1


@pytest.mark.parametrize(
    ("body", "expected_code", "param"),
    [
        ("{not json", "50002", None),
        ("[1, 2]", "50002", None),
        ('{"amt": "1", "side": "purchase"}', "50014", "ccy"),
        ('{"ccy": "USDT", "side": "purchase"}', "50014", "amt"),
        ('{"ccy": "USDT", "amt": "", "side": "purchase"}', "50014", "amt"),
        ('{"ccy": "USDT", "amt": "1"}', "50014", "side"),
        ('{"ccy": "USDT", "amt": "-1", "side": "purchase"}', "51000", "amt"),
        ('{"ccy": "USDT", "amt": "1e400", "side": "purchase"}', "51000", "amt"),
        ('{"ccy": "USDT", "amt": "0.00000000000000001", "side": "purchase"}', "51000", "amt"),
        ('{"ccy": "USDT", "amt": "NaN", "side": "purchase"}', "51000", "amt"),
        ('{"ccy": "USDT", "amt": ["1"], "side": "purchase"}', "51000", "amt"),
        ('{"ccy": "USDT", "amt": "1", "side": "purchase", "rate": "0.009"}', "51000", "rate"),
        ('{"ccy": "USDT", "amt": "1", "side": "purchase", "rate": "3.651"}', "51000", "rate"),
        ('{"ccy": "USDT", "amt": "1", "side": "sell"}', "51000", "side"),
        ('{"ccy": "US DT", "amt": "1", "side": "purchase"}', "51000", "ccy"),
    ],
)
def test_bad_input_gets_the_okx_code_naming_the_parameter_and_writes_nothing(
    user: World, body: str, expected_code: str, param: str | None
) -> None:
    client = OkxHttp(user.base_url, user.key)
    response = client.post(PURCHASE, body)
    assert response.status_code == 400
    payload = response.json()
    assert (payload["code"], payload["data"]) == (expected_code, [])
    if param:
        assert f"Parameter {param} " in payload["msg"]
    assert client.get(BALANCE).json()["data"] == []


def test_numbers_in_json_bodies_are_taken_exactly(user: World) -> None:
    client = OkxHttp(user.base_url, user.key)
    response = client.post(PURCHASE, '{"ccy": "USDT", "amt": 0.1, "side": "purchase", "rate": 0.05}')
    assert response.json()["data"] == [{"ccy": "USDT", "amt": "0.1", "side": "purchase", "rate": "0.05"}]


def test_query_parameters_are_validated(user: World) -> None:
    client = OkxHttp(user.base_url, user.key)
    history = "/api/v5/finance/savings/lending-history"
    for query, param in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("after=-5", "after"),
    ):
        response = client.get(f"{history}?{query}")
        assert (response.status_code, response.json()["code"]) == (400, "51000")
        assert f"Parameter {param} error" in response.json()["msg"]
    many = ",".join(f"C{i}" for i in range(21))
    assert client.get(f"/api/v5/asset/balances?ccy={many}").json()["code"] == "51000"
    assert client.get("/api/v5/public/instruments").json()["code"] == "50014"


def test_unknown_paths_and_methods_answer_in_the_envelope(user: World) -> None:
    client = httpx.Client(base_url=user.base_url)
    assert client.get("/api/v5/nothing").status_code == 404
    assert client.get("/api/v5/nothing").json()["data"] == []
    assert client.delete(BALANCE).json()["data"] == []
