"""Nothing a client sends produces a server error: random requests of every shape on the façades,
signed and unsigned, against a running server on each backend; the ledger holds afterwards.

The number of examples per test is FLEXEARN_FUZZ_EXAMPLES (default 100; the general test runs
three times as many). Each backend's run ends with one summary line, `FUZZ <backend> requests=…`,
printed to the terminal and recorded as the test suite's `fuzz_<backend>` property (junit XML).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from flexearn.adapters import tables as t
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind
from tests.contract.bitget_http import BitgetHttp
from tests.contract.conftest import World, _user
from tests.contract.fuzz_requests import (
    BINANCE_PARAMS,
    BINANCE_ROUTES,
    Attempt,
    Fuzzer,
    Tally,
    attempts,
    facade_of,
    texts,
)
from tests.contract.okx_http import OkxHttp
from tests.helpers import assert_ledger_ok

EXAMPLES = int(os.environ.get("FLEXEARN_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = 4  # users, each with a key: the per-user limits (6/s per endpoint) rarely make one wait
TALLIES: dict[str, Tally] = {}


@dataclass
class Target:
    """The module's server, a pool of users with keys, and the tally of everything sent."""

    app: Flexearn
    users: list[World]
    fuzzer: Fuzzer
    tally: Tally
    probe: Fuzzer  # for the single requests of the regression tests: not in the tally
    clients: list[tuple[OkxHttp, BitgetHttp]]  # one pair per user's key
    anonymous: OkxHttp

    def okx(self) -> OkxHttp:
        return self._next()[0]

    def bitget(self) -> BitgetHttp:
        return self._next()[1]

    def _next(self) -> tuple[OkxHttp, BitgetHttp]:
        """The next user's clients: the per-user limits then rarely make an example wait."""
        self.clients.append(self.clients.pop(0))
        return self.clients[0]

    def send(self, send: Callable[[], httpx.Response], signed: bool = True) -> httpx.Response:
        """Send, waiting out 429s, so that every example reaches validation rather than the limiter."""
        for _ in range(100):
            response = send()
            self.tally.record(response, signed=signed)
            if response.status_code != 429:
                return response
            time.sleep(0.05)
        raise AssertionError("still rate limited after 5 s")


@pytest.fixture(scope="module")
def target(shared_server: tuple[Flexearn, str, str], module_database_url: str) -> Iterator[Target]:
    app, master, base = shared_server
    users = [_user(app, master, base) for _ in range(KEYS)]
    tally = TALLIES.setdefault(sa.make_url(module_database_url).get_backend_name(), Tally())
    fuzzer = Fuzzer(base, [u.key for u in users], tally)
    probe = Fuzzer(base, [u.key for u in users], Tally(), addresses=1)
    clients = [(OkxHttp(base, u.key), BitgetHttp(base, u.key)) for u in users]
    anonymous = OkxHttp(base)
    try:
        yield Target(app, users, fuzzer, tally, probe, clients, anonymous)
    finally:
        fuzzer.close()
        probe.close()
        for http in [anonymous, *(c for pair in clients for c in pair)]:
            http.client.close()


def assert_okx_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    payload = response.json()
    assert set(payload) == {"code", "msg", "data"}, payload
    assert isinstance(payload["code"], str), payload
    assert isinstance(payload["msg"], str), payload
    assert isinstance(payload["data"], list), payload
    assert payload["code"] != "0" or (response.status_code, payload["msg"]) == (200, ""), payload


def assert_bitget_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    payload = response.json()
    assert set(payload) == {"code", "msg", "requestTime", "data"}, payload
    assert isinstance(payload["code"], str), payload
    assert isinstance(payload["requestTime"], int), payload
    assert (payload["code"] == "00000") == (payload["msg"] == "success"), payload
    assert (payload["code"] == "00000") == (response.status_code == 200), payload


def assert_binance_answered(response: httpx.Response) -> None:
    """Binance's answers: a success (2xx, the object or list itself), or a 4xx whose body is
    exactly `{"code": <negative int>, "msg": <text>}`."""
    assert response.status_code < 500, response.text
    payload = response.json()
    if response.status_code < 300:
        assert isinstance(payload, dict | list), payload
        assert not (isinstance(payload, dict) and "code" in payload and "msg" in payload), payload
        return
    assert 400 <= response.status_code < 500, response.text
    assert set(payload) == {"code", "msg"}, payload
    assert isinstance(payload["code"], int), payload
    assert payload["code"] < 0, payload
    assert isinstance(payload["msg"], str), payload


def assert_answered(response: httpx.Response) -> None:
    """Below 500, in the envelope of the façade the path belongs to (HEAD: no body at all)."""
    assert response.status_code < 500, f"{response.status_code} {response.text[:500]}"
    if response.request.method == "HEAD":
        assert response.content == b""
    elif facade_of(response.request.url.raw_path) == "okx":
        assert_okx_answered(response)
    elif facade_of(response.request.url.raw_path) == "binance":
        assert_binance_answered(response)
    else:
        assert_bitget_answered(response)


# --- the general fuzzer: any method, path, header, query and body ---------------------------------


@settings(FUZZ, max_examples=3 * EXAMPLES)
@given(attempt=attempts())
def test_random_requests_are_answered_in_the_envelope(target: Target, attempt: Attempt) -> None:
    note(repr(attempt)[:2000])
    assert_answered(target.fuzzer.send(attempt))


@pytest.mark.parametrize("header", ["OK-ACCESS-SIGN", "ACCESS-SIGN"])
def test_a_non_ascii_signature_is_refused_as_a_bad_signature(target: Target, header: str) -> None:
    path = "/api/v5/finance/savings/balance" if header.startswith("OK-") else "/api/v2/earn/savings/account"
    response = target.probe.send(Attempt("GET", path, "", b"", **spoiled(header, "é".encode())))
    assert_answered(response)
    assert response.json()["code"] in ("50113", "40009")


def test_a_trailing_slash_is_not_found_in_the_envelope(target: Target) -> None:
    response = target.probe.send(Attempt("GET", "/api/v5/public/time/", "", b"", signed=False))
    assert response.status_code == 404
    assert_okx_answered(response)


def spoiled(header: str, value: bytes) -> dict[str, Any]:
    return {"signed": True, "extra": ((header, value),), "drop": (header,)}


BALANCE, HISTORY = "/api/v5/finance/savings/balance", "/api/v5/finance/savings/lending-history"
PURCHASE, PRODUCT = "/api/v5/finance/savings/purchase-redempt", "/api/v2/earn/savings/product"
# Requests that answered 500 before the fix named, and the code each must get instead.
ONCE_BROKEN = [
    # params.integer: "²".isdigit() but int("²") raises; int() refuses over 4300 digits
    (Attempt("GET", HISTORY, "after=%C2%B2", b"", signed=True), "51000"),
    (Attempt("GET", HISTORY, "after=" + "0" * 4400 + "1", b"", signed=True), "51000"),
    (Attempt("GET", "/api/v2/earn/savings/records", "periodType=fixed&limit=%C2%B9", b"", True), "40017"),
    # params.json_object: json.loads raises RecursionError on deep nesting
    (Attempt("POST", PURCHASE, "", b"[" * 50_000, signed=True), "50002"),
    (Attempt("POST", "/api/v2/earn/savings/subscribe", "", b'{"a":' * 50_000, signed=True), "40017"),
    # bitget.wire._ms_timestamp: the same isdigit() trap in ACCESS-TIMESTAMP
    (Attempt("GET", PRODUCT, "", b"", **spoiled("ACCESS-TIMESTAMP", b"\xb2")), "40005"),
]


@pytest.mark.parametrize(("attempt", "code"), ONCE_BROKEN)
def test_inputs_that_once_broke_the_server_get_the_exchange_error(
    target: Target, attempt: Attempt, code: str
) -> None:
    response = target.probe.send(attempt)
    assert_answered(response)
    assert response.json()["code"] == code


# --- focused: signed requests with plausible parameters, so that handlers' validation is reached --

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


@FUZZ
@given(path=st.sampled_from(POSTS), body=bodies)
def test_random_signed_bodies_never_break_the_server(target: Target, path: str, body: dict[str, Any]) -> None:
    client = target.okx()
    assert_okx_answered(target.send(lambda: client.post(path, json.dumps(body, default=str))))


@FUZZ
@given(path=st.sampled_from(GETS), query=queries)
def test_random_signed_queries_never_break_the_server(
    target: Target, path: str, query: list[tuple[str, str]]
) -> None:
    client = target.okx()
    query_text = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    assert_okx_answered(target.send(lambda: client.get(query_text.replace(" ", "%20"))))


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
    target: Target, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    client = target.anonymous.client
    garbage = lambda: client.request(method, path, headers=headers, content=body)  # noqa: E731
    assert_okx_answered(target.send(garbage, signed=False))


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
                *("productId", "periodType", "orderId", "coin", "filter", "orderType"),
                *("startTime", "endTime", "limit", "idLessThan", "assetType"),
            ]
        ),
        st.text(alphabet="0123456789flexibdUSTBC_-.,%", max_size=12),
    ),
    max_size=4,
)


@FUZZ
@given(path=st.sampled_from(BITGET_POSTS), body=bitget_bodies)
def test_random_signed_bitget_bodies_never_break_the_server(
    target: Target, path: str, body: dict[str, Any]
) -> None:
    client = target.bitget()
    assert_bitget_answered(target.send(lambda: client.post(path, json.dumps(body, default=str))))


@FUZZ
@given(path=st.sampled_from(BITGET_GETS), query=bitget_queries)
def test_random_signed_bitget_queries_never_break_the_server(
    target: Target, path: str, query: list[tuple[str, str]]
) -> None:
    client = target.bitget()
    query_text = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    assert_bitget_answered(target.send(lambda: client.get(query_text)))


# Binance: every route, its parameters (and its wire's) with hostile values, in the query string or
# the form body, signed over exactly the bytes sent or not signed at all.
binance_values = st.one_of(
    texts, st.sampled_from(["1", "2", "10", "0.5", "USDT", "BTC", "SPOT", "true", "ALL", "1" * 10_000])
)
binance_pairs = st.lists(st.tuples(st.sampled_from(BINANCE_PARAMS), binance_values), max_size=6)


def _form(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


@FUZZ
@given(route=st.sampled_from(BINANCE_ROUTES), query=binance_pairs, form=binance_pairs, signed=st.booleans())
def test_random_binance_queries_and_forms_never_break_the_server(
    target: Target,
    route: tuple[str, str],
    query: list[tuple[str, str]],
    form: list[tuple[str, str]],
    signed: bool,
) -> None:
    method, path = route
    body = _form(form).encode() if method == "POST" else b""
    attempt = Attempt(method, path, _form(query), body, signed)
    note(repr(attempt)[:2000])
    assert_binance_answered(target.fuzzer.send(attempt))


# --- afterwards ----------------------------------------------------------------------------------


def test_the_ledger_is_intact_after_the_fuzzing(
    target: Target,
    module_database_url: str,
    capsys: pytest.CaptureFixture[str],
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    assert_ledger_ok(target.app)
    with target.app.uow() as uow:  # compared in Python: SQLite keeps amounts as text
        balances = uow.conn.execute(sa.select(t.account.c.key, t.account.c.kind, t.account.c.balance))
        negative = [row for row in balances if AccountKind(row.kind).user_owned and row.balance < 0]
    assert negative == []
    backend = sa.make_url(module_database_url).get_backend_name()
    line = target.tally.line(backend)
    record_testsuite_property(f"fuzz_{backend}", line)
    with capsys.disabled():
        print(f"\n{line}")
    assert not [status for status in target.tally.by_status if status >= 500]
    assert target.fuzzer.tally.signed_reached_handler > 0, "no signed request got past authentication"
