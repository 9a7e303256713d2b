"""Binance's signed requests, bad input and weights on the wire, by hand (httpx): each refusal with
Binance's HTTP status and code, and nothing written."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import pytest

from flexearn.domain.errors import InvalidParameter
from flexearn.services import accounts, catalog_views, keys
from tests.contract.bitget_http import BitgetHttp
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World
from tests.contract.okx_http import OkxHttp
from tests.helpers import assert_ledger_ok

EARN = "/sapi/v1/simple-earn"
SUBSCRIBE = f"{EARN}/flexible/subscribe"
ACCOUNT = f"{EARN}/account"


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def call(
    world: World,
    method: str,
    path: str,
    params: str = "",
    *,
    body: str = "",
    key: keys.NewKey | None = None,
    timestamp: int | None = None,
    signed_over: str | None = None,
    upper: bool = False,
) -> httpx.Response:
    """A signed request: `timestamp` appended to the query (or the body, if there is one), the
    signature over query + body (or over `signed_over`) appended after it."""
    key = key or world.key
    stamp = f"timestamp={now_ms() if timestamp is None else timestamp}"
    if body:
        body = f"{body}&{stamp}"
    else:
        params = f"{params}&{stamp}" if params else stamp
    signature = sign(key.secret_key, params + body if signed_over is None else signed_over)
    signature = signature.upper() if upper else signature
    if body:
        body += f"&signature={signature}"
    else:
        params += f"&signature={signature}"
    headers = {"X-MBX-APIKEY": key.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    return httpx.request(method, f"{world.base_url}{path}?{params}", content=body, headers=headers)


def refused(response: httpx.Response, status: int, code: int) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert set(response.json()) == {"code", "msg"}
    assert response.headers["x-mbx-used-weight-1m"].isdigit()


def test_signed_requests_from_query_body_or_both_are_accepted_and_answer_bare_json(user: World) -> None:
    read = call(user, "GET", ACCOUNT)
    assert read.status_code == 200, read.text
    assert set(read.json()) >= {"totalAmountInUSDT", "totalFlexibleAmountInUSDT"}  # no envelope
    assert int(read.headers["x-mbx-used-weight-1m"]) >= 150
    assert int(read.headers["x-sapi-used-ip-weight-1m"]) >= 150
    product = f"productId={FLEXIBLE_USDT}"
    in_body = call(user, "POST", SUBSCRIBE, body=f"{product}&amount=10")
    assert in_body.json()["success"] is True, in_body.text
    both = call(user, "POST", SUBSCRIBE, product, body="amount=10")  # signed over query + body
    assert both.json()["success"] is True, both.text
    in_query = call(user, "POST", SUBSCRIBE, f"{product}&amount=10&recvWindow=60000")
    assert in_query.json()["success"] is True, in_query.text
    assert call(user, "GET", ACCOUNT, upper=True).status_code == 200  # hex: "not case-sensitive"
    assert call(user, "GET", "/api/v3/time").json()["serverTime"] > 0  # public: signature ignored
    assert_ledger_ok(user.app)


def test_the_auth_matrix_answers_binance_codes(user: World) -> None:
    product = f"productId={FLEXIBLE_USDT}"
    other = call(user, "POST", SUBSCRIBE, body=f"{product}&amount=10", signed_over=f"{product}&amount=99")
    refused(other, 400, -1022)
    refused(call(user, "GET", ACCOUNT, timestamp=now_ms() - 10_000), 400, -1021)  # recvWindow 5000
    assert call(user, "GET", ACCOUNT, "recvWindow=20000", timestamp=now_ms() - 10_000).status_code == 200
    refused(call(user, "GET", ACCOUNT, timestamp=now_ms() + 3_000), 400, -1021)  # over 1 s ahead
    refused(call(user, "GET", ACCOUNT, "recvWindow=60001"), 400, -1131)
    refused(call(user, "GET", ACCOUNT, "recvWindow=abc"), 400, -1100)
    headers = {"X-MBX-APIKEY": user.key.api_key}
    refused(httpx.get(f"{user.base_url}{ACCOUNT}?timestamp={now_ms()}", headers=headers), 400, -1102)
    refused(httpx.get(f"{user.base_url}{ACCOUNT}?signature=00", headers=headers), 400, -1102)
    refused(httpx.get(f"{user.base_url}{ACCOUNT}?timestamp=1&signature=00"), 401, -2014)
    stranger = keys.NewKey("not-a-key", user.key.secret_key, "")
    refused(call(user, "GET", ACCOUNT, key=stranger), 401, -2015)
    refused(call(user, "POST", SUBSCRIBE, f"{product}&amount=10", key=user.new_key("read")), 401, -2015)
    once = now_ms()
    assert call(user, "GET", ACCOUNT, timestamp=once).status_code == 200
    refused(call(user, "GET", ACCOUNT, timestamp=once), 400, -1022)  # the same signed request again
    refused(call(user, "GET", ACCOUNT, "a=1&a=2"), 400, -1101)
    assert_ledger_ok(user.app)


def test_the_same_parameters_signed_alike_for_two_endpoints_are_each_answered_once(user: World) -> None:
    """Binance signs the parameters, not the path: a client asking two endpoints with the same
    parameters in one millisecond signs both alike. Each is answered; each again is a replay."""
    once = now_ms()
    positions = f"{EARN}/flexible/position"
    assert call(user, "GET", ACCOUNT, timestamp=once).status_code == 200
    assert call(user, "GET", positions, timestamp=once).status_code == 200
    refused(call(user, "GET", ACCOUNT, timestamp=once), 400, -1022)
    refused(call(user, "GET", positions, timestamp=once), 400, -1022)


@pytest.mark.parametrize("history", ["subscriptionRecord", "redemptionRecord", "rewardsRecord"])
def test_flexible_histories_span_at_most_30_days(user: World, history: str) -> None:
    """Binance's SDK: "The time between startTime and endTime cannot be longer than 30 days"."""
    path, day = f"{EARN}/flexible/history/{history}", 86_400_000
    end = now_ms()
    assert call(user, "GET", path, f"startTime={end - 30 * day}&endTime={end}").status_code == 200
    refused(call(user, "GET", path, f"startTime={end - 30 * day - 1}&endTime={end}"), 400, -1130)
    refused(call(user, "GET", path, f"startTime={end}&endTime={end - 1}"), 400, -1130)


def test_a_key_works_only_on_the_facades_it_names(user: World) -> None:
    """Binance signs with the secret alone: a key kept off the Binance façade is refused there
    (-2015) however well signed, so its passphrase stays a second factor on OKX and Bitget; a
    Binance-only key is refused on the others with their own "no permission" codes."""
    with_passphrase = user.new_key("read,trade", facades="okx,bitget")
    refused(call(user, "GET", ACCOUNT, key=with_passphrase), 401, -2015)
    subscribe = call(user, "POST", SUBSCRIBE, f"productId={FLEXIBLE_USDT}&amount=10", key=with_passphrase)
    refused(subscribe, 401, -2015)
    okx = OkxHttp(user.base_url, with_passphrase).get("/api/v5/finance/savings/balance")
    assert (okx.status_code, okx.json()["code"]) == (200, "0"), okx.text
    bitget = BitgetHttp(user.base_url, with_passphrase).get("/api/v2/earn/savings/product")
    assert (bitget.status_code, bitget.json()["code"]) == (200, "00000"), bitget.text
    binance_only = user.new_key("read", facades="binance")
    assert call(user, "GET", ACCOUNT, key=binance_only).status_code == 200
    okx = OkxHttp(user.base_url, binance_only).get("/api/v5/finance/savings/balance")
    assert (okx.status_code, okx.json()["code"]) == (200, "50120"), okx.text
    bitget = BitgetHttp(user.base_url, binance_only).get("/api/v2/earn/savings/product")
    assert (bitget.status_code, bitget.json()["code"]) == (400, "40014"), bitget.text
    with pytest.raises(InvalidParameter, match="binance, bitget, okx"):
        user.new_key("read", facades="okx,ftx")
    made = {k.api_key: k.facades for k in keys.list_keys(user.app.uow(), user.user_id)}
    assert (made[with_passphrase.api_key], made[binance_only.api_key]) == (("bitget", "okx"), ("binance",))
    assert_ledger_ok(user.app)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("", -1102),
        ("1e400", -1100),
        ("NaN", -1100),
        ("-1", -1100),
        ("1" * 100, -1100),
        ("10.0000000000000000001", -1100),  # past the 18 places any amount may have
        ("10.0000001", -1111),  # past the product's 6
        ("0", -6005),
    ],
)
def test_hostile_amounts_are_refused_and_nothing_is_written(user: World, amount: str, code: int) -> None:
    response = call(user, "POST", SUBSCRIBE, body=f"productId={FLEXIBLE_USDT}&amount={amount}")
    refused(response, 400, code)
    if code == -1100:  # Binance's words, the amount grammar as the legal range
        legal = "legal range is '^[0-9]{1,20}(?:\\.[0-9]{1,18})?$'."
        assert response.json()["msg"] == f"Illegal characters found in parameter 'amount'; {legal}"
    assert call(user, "GET", f"{EARN}/flexible/position").json()["total"] == 0
    assert_ledger_ok(user.app)


def test_unknown_paths_answer_in_binance_words_and_bitgets_v3_path_stays_bitgets(user: World) -> None:
    missing = httpx.get(f"{user.base_url}/sapi/v1/simple-earn/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, -1099)
    bitget = httpx.get(f"{user.base_url}/api/v3/account/settings")
    assert bitget.json()["code"] == "40001"  # Bitget's ACCESS-KEY header missing


def test_weight_past_the_minutes_limit_is_answered_429_with_retry_after(world: World) -> None:
    """12000 a minute for /sapi/ from one address; the list costs 150. (If the minute turns during
    the loop, the count starts again: the loop allows for one turn.)"""
    used = []
    for _ in range(2 * 12_000 // 150 + 2):
        response = call(world, "GET", f"{EARN}/flexible/list")
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
        used.append(int(response.headers["x-mbx-used-weight-1m"]))
    refused(response, 429, -1003)
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert used[-1] + 150 > 12_000 >= used[-1]
    assert int(response.headers["x-mbx-used-weight-1m"]) == used[-1]  # a refusal is not counted
    # /api/ has a minute of its own
    assert httpx.get(f"{world.base_url}/api/v3/time").status_code == 200


# --- the matrix: each way a request goes wrong, on every kind of endpoint, with Binance's code ----

LOCKED_SUBSCRIBE, REDEEM = f"{EARN}/locked/subscribe", f"{EARN}/flexible/redeem"
TRANSFER = "/sapi/v1/asset/transfer"
# Where an amount is read, with the other parameters that make the request otherwise good.
AMOUNT_ENDPOINTS = [
    (SUBSCRIBE, f"productId={FLEXIBLE_USDT}"),
    (LOCKED_SUBSCRIBE, f"projectId={FIXED_BTC}"),
    (REDEEM, f"productId={FLEXIBLE_USDT}"),
    (TRANSFER, "type=MAIN_FUNDING&asset=USDT"),
    (f"{EARN}/flexible/subscriptionPreview", f"productId={FLEXIBLE_USDT}"),
]
HOSTILE_AMOUNTS = [
    ("1e400", -1100),
    ("NaN", -1100),
    ("Infinity", -1100),
    ("-1", -1100),
    ("0x10", -1100),
    ("1" * 10_000, -1100),  # ten thousand digits
    ("%EF%BC%91%EF%BC%90", -1100),  # full-width "１０": a digit to str.isdigit(), not to Binance
    ("%C2%B2", -1100),  # "²"
    ("1%2C5", -1100),  # "1,5"
    ("+1", -1100),
    ("%201%20", -1100),  # " 1 "
    ("1_000", -1100),
]


def balances(world: World) -> tuple[object, ...]:
    """Everything the user holds, read from the engine: what a refused request must leave alone."""
    uow = world.app.read_uow
    return (
        accounts.funding_balances(uow(), world.user_id),
        accounts.trading_balances(uow(), world.user_id),
        catalog_views.assets(uow(), world.user_id, "flexible"),
        catalog_views.assets(uow(), world.user_id, "fixed"),
    )


@pytest.mark.parametrize(("path", "others"), AMOUNT_ENDPOINTS, ids=lambda v: str(v).rsplit("/", 1)[-1])
@pytest.mark.parametrize(("value", "code"), HOSTILE_AMOUNTS, ids=lambda v: str(v)[:12])
def test_hostile_amounts_get_1100_on_every_endpoint_that_reads_one(
    user: World, path: str, others: str, value: str, code: int
) -> None:
    before = balances(user)
    method = "GET" if path.endswith("Preview") else "POST"
    if method == "GET":
        response = call(user, method, path, f"{others}&amount={value}")
    else:
        response = call(user, method, path, body=f"{others}&amount={value}")
    refused(response, 400, code)
    assert "'amount'" in response.json()["msg"]
    assert balances(user) == before
    assert_ledger_ok(user.app)


@pytest.mark.parametrize(
    ("path", "others", "code"),
    [
        (SUBSCRIBE, f"productId={FLEXIBLE_USDT}", -1111),  # the product takes 6 places
        (LOCKED_SUBSCRIBE, f"projectId={FIXED_BTC}", -1111),  # 8
        (TRANSFER, "type=MAIN_FUNDING&asset=BTC", -1111),  # BTC has 8 places
    ],
)
def test_more_places_than_the_asset_or_product_allows_is_1111(
    user: World, path: str, others: str, code: int
) -> None:
    before = balances(user)
    refused(call(user, "POST", path, body=f"{others}&amount=0.000000001"), 400, code)
    assert balances(user) == before
    assert_ledger_ok(user.app)


@pytest.mark.parametrize(
    ("method", "path", "params", "missing"),
    [
        ("POST", SUBSCRIBE, "amount=10", "productId"),
        ("POST", SUBSCRIBE, f"productId={FLEXIBLE_USDT}", "amount"),
        ("POST", SUBSCRIBE, f"productId={FLEXIBLE_USDT}&amount=", "amount"),
        ("POST", LOCKED_SUBSCRIBE, "amount=1", "projectId"),
        ("POST", REDEEM, f"productId={FLEXIBLE_USDT}", "amount"),  # neither amount nor redeemAll
        ("POST", f"{EARN}/locked/redeem", "", "positionId"),
        ("POST", TRANSFER, "asset=USDT&amount=1", "type"),
        ("POST", TRANSFER, "type=MAIN_FUNDING&amount=1", "asset"),
        ("GET", f"{EARN}/flexible/personalLeftQuota", "", "productId"),
        ("GET", f"{EARN}/flexible/subscriptionPreview", f"productId={FLEXIBLE_USDT}", "amount"),
        ("GET", f"{EARN}/flexible/history/rateHistory", "", "productId"),
    ],
)
def test_a_missing_parameter_is_1102_naming_it(
    user: World, method: str, path: str, params: str, missing: str
) -> None:
    before = balances(user)
    if method == "POST" and params:
        response = call(user, method, path, body=params)
    else:
        response = call(user, method, path, params)
    refused(response, 400, -1102)
    assert f"'{missing}'" in response.json()["msg"]
    assert balances(user) == before


def test_a_signature_over_other_bytes_than_those_sent_is_1022(user: World) -> None:
    """Binance signs the bytes as sent: the query string and then the body, percent-encoding and
    order included, `signature` itself left out."""
    product, stamp = f"productId={FLEXIBLE_USDT}", f"timestamp={now_ms()}"
    headers = {"X-MBX-APIKEY": user.key.api_key}
    secret = user.key.secret_key

    def send(query: str, body: str, signed_over: str) -> httpx.Response:
        query = f"{query}&signature={sign(secret, signed_over)}"
        return httpx.post(f"{user.base_url}{SUBSCRIBE}?{query}", content=body, headers=headers)

    before = balances(user)
    body = f"{product}&amount=1%30"  # "10", percent-encoded
    refusals = [
        (stamp, body, body),  # the query left out
        (stamp, body, stamp),  # the body left out
        (stamp, body, body + stamp),  # body before query
        (stamp, body, f"{stamp}{product}&amount=10"),  # the decoded form, not the bytes sent
        (stamp, body, f"{stamp}amount=1%30&{product}"),  # the parameters in another order
        (stamp, body, f"{stamp}&{body}"),  # an "&" the request does not have
    ]
    for query, sent, over in refusals:
        refused(send(query, sent, over), 400, -1022)
    other_secret = sign(user.new_key().secret_key, stamp + body)
    response = httpx.post(
        f"{user.base_url}{SUBSCRIBE}?{stamp}&signature={other_secret}", content=body, headers=headers
    )
    refused(response, 400, -1022)  # this key's request, another key's secret
    appended = f"{stamp}&signature={sign(secret, stamp + body)}&amount=99"  # a parameter after signing
    refused(httpx.post(f"{user.base_url}{SUBSCRIBE}?{appended}", content=body, headers=headers), 400, -1022)
    assert balances(user) == before
    ok = send(stamp, body, stamp + body)  # the same request signed over what it sends
    assert ok.json()["success"] is True, ok.text
    assert_ledger_ok(user.app)


@pytest.mark.parametrize(
    ("offset_ms", "window", "code"),
    [
        (-5_001, "", -1021),  # older than the default window of 5000
        (-59_000, "recvWindow=60000", None),  # the largest window takes it
        (-61_000, "recvWindow=60000", -1021),
        (1_500, "", -1021),  # more than 1000 ms ahead, whatever the window
        (1_500, "recvWindow=60000", -1021),
        (0, "recvWindow=60001", -1131),
        (0, "recvWindow=99999999999999999", -1100),  # over 16 digits
        (0, "recvWindow=-1", -1100),
        (0, "recvWindow=%EF%BC%95", -1100),  # full-width 5
    ],
)
def test_stale_future_and_out_of_range_timestamps(
    user: World, offset_ms: int, window: str, code: int | None
) -> None:
    response = call(user, "GET", ACCOUNT, window, timestamp=now_ms() + offset_ms)
    if code is None:
        assert response.status_code == 200, response.text
    else:
        refused(response, 400, code)


@pytest.mark.parametrize("stamp", ["", "abc", "1e12", "%EF%BC%91", "-1", "12345678901234567"])
def test_a_malformed_timestamp_is_refused(user: World, stamp: str) -> None:
    query = f"timestamp={stamp}"
    headers = {"X-MBX-APIKEY": user.key.api_key}
    url = f"{user.base_url}{ACCOUNT}?{query}&signature={sign(user.key.secret_key, query)}"
    refused(httpx.get(url, headers=headers), 400, -1102 if stamp == "" else -1100)
