"""Nothing a client sends produces a server error: random signed bodies and queries, and garbage,
on both façades."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.bitget_http import BitgetHttp
from tests.contract.conftest import World
from tests.contract.okx_http import OkxHttp
from tests.helpers import assert_ledger_ok

SAVINGS = "/api/v5/finance/savings/"
POSTS = [SAVINGS + "purchase-redempt", SAVINGS + "set-lending-rate"]
GETS = [
    SAVINGS + p for p in ("balance", "lending-history", "lending-rate-summary", "lending-rate-history")
] + [
    "/api/v5/asset/balances",
    "/api/v5/asset/currencies",
    "/api/v5/public/instruments",
    "/api/v5/public/time",
]

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        ["USDT", "BTC", "purchase", "redempt", "0.05", "1", "-1", "1e9999", "NaN", "", " 1 ", "0"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
bodies = st.dictionaries(st.sampled_from(["ccy", "amt", "side", "rate", "x"]), values, max_size=5)
queries = st.lists(
    st.tuples(
        st.sampled_from(["ccy", "after", "before", "limit", "instType", "instId", "z"]),
        st.text(alphabet="ABCDUSTx0123456789-.,%=&é ", max_size=12),
    ),
    max_size=4,
)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def past_the_limit(send: Callable[[], httpx.Response]) -> httpx.Response:
    """Send, waiting out 429s, so that every example reaches validation rather than the limiter."""
    for _ in range(50):
        response = send()
        if response.status_code != 429:
            return response
        time.sleep(0.05)
    raise AssertionError("still rate limited after 2.5 s")


def assert_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    payload = response.json()
    assert set(payload) == {"code", "msg", "data"}
    assert isinstance(payload["data"], list)


@FUZZ
@given(path=st.sampled_from(POSTS), body=bodies)
def test_random_signed_bodies_never_break_the_server(user: World, path: str, body: dict[str, Any]) -> None:
    client = OkxHttp(user.base_url, user.key)
    assert_answered(past_the_limit(lambda: client.post(path, json.dumps(body, default=str))))


@FUZZ
@given(path=st.sampled_from(GETS), query=queries)
def test_random_signed_queries_never_break_the_server(
    user: World, path: str, query: list[tuple[str, str]]
) -> None:
    client = OkxHttp(user.base_url, user.key)
    target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    assert_answered(past_the_limit(lambda: client.get(target.replace(" ", "%20"))))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(POSTS + GETS + ["/api/v5/", "/api/v5/finance/savings/balance/x"]),
    headers=st.dictionaries(
        st.sampled_from(["OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE"]),
        st.text(alphabet="abcXYZ0123456789-:.TZ=+/", max_size=40),
    ),
    body=st.binary(max_size=64),
)
def test_garbage_requests_are_answered_in_the_envelope(
    user: World, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    client = OkxHttp(user.base_url).client
    assert_answered(past_the_limit(lambda: client.request(method, path, headers=headers, content=body)))


BITGET = "/api/v2/earn/savings/"
BITGET_POSTS = [BITGET + "subscribe", BITGET + "redeem"]
BITGET_GETS = [
    BITGET + p
    for p in (
        "product",
        "subscribe-info",
        "records",
        "subscribe-result",
        "redeem-result",
        "assets",
        "account",
    )
] + ["/api/v2/spot/account/assets", "/api/v2/public/time"]
bitget_bodies = st.dictionaries(
    st.sampled_from(["productId", "periodType", "amount", "orderId", "x"]),
    st.one_of(values, st.sampled_from(["1", "2", "flexible", "fixed", "10", "0.001"])),
    max_size=5,
)
bitget_queries = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "productId",
                "periodType",
                "orderId",
                "coin",
                "filter",
                "orderType",
                "startTime",
                "endTime",
                "limit",
                "idLessThan",
                "assetType",
            ]
        ),
        st.text(alphabet="0123456789flexibdUSTBC_-.,%", max_size=12),
    ),
    max_size=4,
)


@FUZZ
@given(path=st.sampled_from(BITGET_POSTS), body=bitget_bodies)
def test_random_signed_bitget_bodies_never_break_the_server(
    user: World, path: str, body: dict[str, Any]
) -> None:
    client = BitgetHttp(user.base_url, user.key)
    assert_bitget_answered(past_the_limit(lambda: client.post(path, json.dumps(body, default=str))))


@FUZZ
@given(path=st.sampled_from(BITGET_GETS), query=bitget_queries)
def test_random_signed_bitget_queries_never_break_the_server(
    user: World, path: str, query: list[tuple[str, str]]
) -> None:
    client = BitgetHttp(user.base_url, user.key)
    target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    assert_bitget_answered(past_the_limit(lambda: client.get(target)))


def assert_bitget_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    payload = response.json()
    assert set(payload) == {"code", "msg", "requestTime", "data"}
    assert (payload["code"] == "00000") == (payload["msg"] == "success")


def test_the_ledger_is_intact_after_the_fuzzing(user: World) -> None:
    assert_ledger_ok(user.app)
