"""Random HTTP requests for the façade fuzz tests, a sender that signs them, and a tally.

An `Attempt` is what a client could send: any method, a known path (or a near miss of one),
hostile headers, query and body. Half of them are signed with a valid key over exactly the bytes
that go out, so that they get past authentication into the handlers' parameter validation; the
rest carry garbage or plausible-but-wrong credentials. `Fuzzer.send` counts every request sent.
Binance signs inside the request rather than in headers: a signed Binance attempt gets `timestamp`
appended to its query and, after it, `signature` over the query and body exactly as they go out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx
from hypothesis import strategies as st

from flexearn.api.binance.routes import ENDPOINTS as BINANCE_ENDPOINTS
from flexearn.api.bitget.routes import ENDPOINTS as BITGET_ENDPOINTS
from flexearn.api.okx.routes import ENDPOINTS as OKX_ENDPOINTS
from flexearn.services.keys import NewKey

# Every route the façades serve, with its method (the tests follow the route tables).
ROUTES = [(e.method, e.path) for e in [*OKX_ENDPOINTS, *BITGET_ENDPOINTS, *BINANCE_ENDPOINTS]]
BINANCE_ROUTES = [(e.method, e.path) for e in BINANCE_ENDPOINTS]
# Every parameter a Binance route reads (and the ones its wire reads), for the focused tests.
BINANCE_PARAMS = [
    *("asset", "amount", "productId", "projectId", "positionId", "redeemAll", "destAccount"),
    *("sourceAccount", "redeemTo", "autoSubscribe", "current", "size", "startTime", "endTime"),
    *("type", "purchaseId", "redeemId", "aprPeriod", "omitZeroBalances", "needBtcValuation", "lang"),
    *("symbol", "recvWindow", "timestamp", "signature"),
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "FOO"]
PARAMS = [
    *("ccy", "amt", "side", "rate", "after", "before", "limit", "instType", "instId"),
    *("productId", "periodType", "amount", "orderId", "coin", "filter", "orderType"),
    *("startTime", "endTime", "idLessThan", "assetType", "symbol", "x", "", "CCY", "ccy[]"),
    *BINANCE_PARAMS,
]
OKX_HEADERS = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")
BITGET_HEADERS = ("ACCESS-KEY", "ACCESS-SIGN", "ACCESS-TIMESTAMP", "ACCESS-PASSPHRASE")
BINANCE_KEY_HEADER = "X-MBX-APIKEY"
AUTH_HEADERS = (*OKX_HEADERS, *BITGET_HEADERS, BINANCE_KEY_HEADER)
# Codes that mean "stopped before the handler": authentication, unknown route, rate limit.
GATE_CODES = {
    *("404", "50011", "50102", "50103", "50104", "50105", "50106", "50107", "50110", "50111"),
    *("50112", "50113", "50120", "40404", "429", "40001", "40002", "40003", "40005", "40006"),
    *("40008", "40009", "40011", "40012", "40014", "40018"),
    # Binance's: weight, timestamp, signature, key, route, recvWindow, a parameter sent twice (its
    # -1102 for a missing signature or timestamp is also a handler's missing parameter: counted)
    *("-1003", "-1021", "-1022", "-2014", "-2015", "-1099", "-1131", "-1101"),
}

# Texts that have broken number, currency and choice parsers somewhere.
TRICKY = [
    *("", " ", "0", "-0", "-0.0", "0E-30", "1e400", "-1e400", "1e-400", "1E+999999999", "1e9999"),
    *("NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "0x10", "1_000", "+1", " 1 "),
    *("1.", ".5", "1,5", "²", "١٢٣", "𝟙", "9" * 40, "9" * 5000, "0" * 4400 + "1", str(2**63)),
    *(str(2**64), "-1", "10000000000000000", "10000000000000001", "null", "true", "[]", "{}"),
    *("\x00", "é", "USDT", "usdt", "BTC", "ÜSDT", "ß", "purchase", "redempt", "flexible", "fixed"),
    *("1", "2", "10", "0.001", "0.05", "5", "100", "SPOT", "available", "all", "hold_only"),
    *("BTC-USDT", "BTCUSDT", "USDT,BTC," * 30, "subscribe", "redeem"),
    *("FUND", "ALL", "FLEXIBLE", "MAIN_FUNDING", "FUNDING_MAIN", "REALTIME", "BONUS", "DAY"),
    *("１０", "10.000000000000000000001", "1" * 10_000, "60001", "0.1e1", "true", "false"),
]
texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=24),
    st.decimals(allow_nan=False, places=20).map(str),
    st.integers(-(10**40), 10**40).map(str),
)


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str  # percent-encoded as it goes on the wire
    query: str  # raw query string, "" for none
    body: bytes
    signed: bool
    # Applied after signing: (name, value) headers to add, and auth headers to drop.
    extra: tuple[tuple[str, bytes], ...] = ()
    drop: tuple[str, ...] = ()


# --- paths ---------------------------------------------------------------------------------------


@st.composite
def near_miss(draw: st.DrawFn, path: str) -> str:
    """A path one slip away from a real one: the slips routers and proxies disagree about."""
    i = draw(st.integers(2, len(path) - 1))
    slash = path.rfind("/", 0, i + 1)
    swapped = path.replace("/api/v5/", "/api/v2/") if "/v5/" in path else path.replace("/api/v2/", "/api/v5/")
    slips = [
        lambda: path + "/",
        path.upper,
        lambda: path[:i] + path[i].swapcase() + path[i + 1 :],
        lambda: path[:slash] + "/" + path[slash:],
        # the same route percent-encoded (it routes after decoding), or an encoded slash
        lambda: path[:i] + ("%2F" if path[i] == "/" else f"%{ord(path[i]):02X}") + path[i + 1 :],
        lambda: path + "/" + "a" * draw(st.integers(1, 6000)),
        lambda: (
            path + draw(st.sampled_from([";x", "%00", "%ff", "/.", "/..", "/%2e%2e/admin/v1/users", "#"]))
        ),
        lambda: swapped,
        lambda: path[:i] + "/./" + path[i:],
        lambda: "/api/" + quote(draw(st.text(max_size=30)), safe="/"),
        lambda: path[:i],  # cut short (not to "/": the dashboard, not a façade)
    ]
    return draw(st.sampled_from(slips))()


def paths(route: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(route), st.just(route), near_miss(route))


# --- queries and bodies ----------------------------------------------------------------------------


@st.composite
def queries(draw: st.DrawFn) -> str:
    """Repeated, empty, valueless and unencoded pairs, as well as properly encoded ones."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS), texts), max_size=5))
    parts = []
    for name, value in pairs:
        spelling = draw(st.integers(0, 5))
        if spelling == 0:
            parts.append(name)
        elif spelling == 1 and value.isascii() and value.isprintable() and not set(value) & set(" #"):
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    if draw(st.booleans()) and parts:
        parts.append("")  # a trailing or doubled "&"
    return "&".join(parts)


NUMBER_TOKENS = [
    *("1e400", "-0", "-0.0", "1E+999999999", "123456789012345678901234567890.123456789", "NaN"),
    *("Infinity", "-Infinity", "1" * 4300, "1" * 4301, "0.000000000000000000000001", "5", "10"),
]


def _object(pairs: list[tuple[str, str]]) -> str:
    """A JSON object written by hand: keys may repeat, values are raw JSON tokens."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


json_leaves = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    texts.map(json.dumps),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=False).map(json.dumps),
    st.sampled_from(NUMBER_TOKENS),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(PARAMS), inner), max_size=3).map(_object),
    ),
    max_leaves=6,
)


objects = st.lists(st.tuples(st.sampled_from(PARAMS), json_values), max_size=6).map(_object)
bodies = (
    st.one_of(
        st.just(""),
        objects,
        objects,
        json_values,
        st.sampled_from(["[]", "null", '"x"', "1", "{", "{}}", '{"ccy":"USDT",}', " ", "\ufeff{}"]),
        st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 50_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    ).map(str.encode)
    | st.binary(max_size=64)
    | objects.map(lambda s: s.encode("utf-16"))
)


# --- headers ---------------------------------------------------------------------------------------

header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.encode),
    st.sampled_from(["é", "ü€", "\u00ff", "２０２６", "²"]).map(lambda s: s.encode("utf-8")),
    st.sampled_from([b"\xe9", b"\xff\xfe", b"caf\xe9"]),
    st.integers(100, 7000).map(lambda n: b"x" * n),
    st.sampled_from([b"", b" ", b"0", b"-1", b"1e400", b"NaN", b"2026-01-01T00:00:00.000Z"]),
    st.sampled_from([b"99999999999999999", b"0001-01-01T00:00:00Z", b"9999-12-31T23:59:59.999Z"]),
).map(bytes.strip)  # HTTP strips the whitespace around a header value (and h11 refuses to send it)
content_types = st.sampled_from(
    [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/json; charset=utf-16",
        b"",
        b"\xe9/\xe9",
    ]
)


@st.composite
def tampering(draw: st.DrawFn) -> tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]]:
    """How the headers are spoiled after signing: usually not at all."""
    kind = draw(st.integers(0, 14))
    auth = draw(st.sampled_from(AUTH_HEADERS))
    if kind == 0:  # dropped
        return (), (auth,)
    if kind == 1:  # replaced: missing, empty, oversized, non-ASCII, plausible
        return ((auth, draw(header_values)),), (auth,)
    if kind == 2:  # duplicated, the garbage first or last
        return ((auth, draw(header_values)),), ()
    if kind == 3:
        return (("Content-Type", draw(content_types)),), ()
    if kind == 4:
        name = draw(st.sampled_from(["locale", "X-Request-Id", "X-Forwarded-For", "X-Simulated-Trading"]))
        return ((name, draw(header_values)),), ()
    return (), ()


@st.composite
def attempts(draw: st.DrawFn) -> Attempt:
    method, route = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 4)) == 0:
        method = draw(st.sampled_from(METHODS))
    path = draw(paths(route))
    signed = draw(st.booleans())
    extra, drop = draw(tampering()) if signed else draw(garbage_credentials())
    query = draw(queries()) if method != "POST" or draw(st.booleans()) else ""
    body = draw(bodies) if method not in ("GET", "HEAD") or draw(st.integers(0, 5)) == 0 else b""
    return Attempt(method, path, query, body, signed, extra, drop)


@st.composite
def garbage_credentials(draw: st.DrawFn) -> tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]]:
    """Some of any exchange's auth headers, each garbage or a plausible stand-in ("key", "now")."""
    names = draw(st.lists(st.sampled_from([*AUTH_HEADERS, "Content-Type"]), max_size=6))
    values = st.one_of(header_values, st.sampled_from([b"<key>", b"<passphrase>", b"<now>"]))
    return tuple((name, draw(values)) for name in names), ()


# --- sending ---------------------------------------------------------------------------------------


def facade_of(raw_path: bytes) -> str:
    """Whose envelope an answer must be in: the server decides by the decoded path's prefix."""
    path = unquote(raw_path.partition(b"?")[0].decode("ascii"))
    if path.startswith(("/api/v2/", "/api/v3/account/settings")):
        return "bitget"
    return "binance" if path.startswith(("/api/v3/", "/sapi/")) else "okx"


def _okx_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bitget_now() -> str:
    return str(time.time_ns() // 1_000_000)


def _resolve(name: str, value: bytes, key: NewKey) -> bytes:
    """Stand-ins that let garbage credentials get further: the real key or passphrase, or now."""
    if value == b"<key>":
        return key.api_key.encode()
    if value == b"<passphrase>":
        return key.passphrase.encode()
    if value == b"<now>":
        return (_okx_now() if name.startswith("OK-") else _bitget_now()).encode()
    return value


def _signature(secret: str, timestamp: str, method: str, target: bytes, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + method.encode() + target + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def binance_signed(secret: str, url: httpx.URL, body: bytes, timestamp: int | None = None) -> httpx.URL:
    """`url` with Binance's `timestamp` (now, by default) appended to its query and, after it,
    `signature`: hex HMAC-SHA256 over the query and the body exactly as they go out."""
    path, _, query = url.raw_path.partition(b"?")
    stamp = b"timestamp=%d" % (time.time_ns() // 1_000_000 if timestamp is None else timestamp)
    query = query + b"&" + stamp if query else stamp
    signature = hmac.new(secret.encode(), query + body, hashlib.sha256).hexdigest().encode()
    return url.copy_with(raw_path=path + b"?" + query + b"&signature=" + signature)


@dataclass
class Tally:
    by_facade: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    signed_reached_handler: int = 0

    def record(self, response: httpx.Response, *, signed: bool) -> None:
        """Count an answer; `signed`: validly signed, so counted if it got past authentication."""
        self.by_facade[facade_of(response.request.url.raw_path)] += 1
        self.by_status[response.status_code] += 1
        if signed and response.content:
            try:
                code = str(response.json().get("code"))
            except (ValueError, AttributeError):
                return
            if code not in GATE_CODES:
                self.signed_reached_handler += 1

    @property
    def requests(self) -> int:
        return sum(self.by_facade.values())

    def line(self, label: str) -> str:
        statuses = dict(sorted(self.by_status.items()))
        return (
            f"FUZZ {label} requests={self.requests} okx={self.by_facade['okx']} "
            f"bitget={self.by_facade['bitget']} binance={self.by_facade['binance']} "
            f"signed_past_auth={self.signed_reached_handler} "
            f"by_status={statuses}"
        )


class Fuzzer:
    """Sends attempts to one server with a pool of keys and source addresses (127.0.0.0/8 is all
    loopback), so that per-user and per-IP rate limits rarely make an example wait."""

    def __init__(self, base_url: str, keys: list[NewKey], tally: Tally, addresses: int = 32) -> None:
        self.keys, self.tally = keys, tally
        self.clients = [
            httpx.Client(
                base_url=base_url,
                timeout=20,
                transport=httpx.HTTPTransport(local_address=f"127.0.0.{2 + i}"),
            )
            for i in range(addresses)
        ]
        self._turn = 0

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def send(self, attempt: Attempt) -> httpx.Response:
        """Send, re-signing and retrying while rate limited, so that examples reach validation (each
        try from the next address: Binance's weight limit is per address and per minute)."""
        for _ in range(100):
            response = self.send_once(attempt)
            if response.status_code != 429:
                return response
            time.sleep(0.05)
        raise AssertionError("still rate limited after 5 s")

    def send_once(self, attempt: Attempt) -> httpx.Response:
        self._turn += 1
        client = self.clients[self._turn % len(self.clients)]
        key = self.keys[self._turn % len(self.keys)]
        target = attempt.path + ("?" + attempt.query if attempt.query else "")
        url = client.build_request(attempt.method, target).url
        raw = url.raw_path  # what goes on the wire, and so what is signed
        if facade_of(raw) == "binance":
            headers = [(BINANCE_KEY_HEADER, key.api_key.encode())] if attempt.signed else []
            url = binance_signed(key.secret_key, url, attempt.body) if attempt.signed else url
        else:
            headers = self._signed(key, attempt.method, raw, attempt.body) if attempt.signed else []
        headers = [(n, v) for n, v in headers if n not in attempt.drop]
        headers += [(name, _resolve(name, value, key)) for name, value in attempt.extra]
        encoded = [(name.encode(), value) for name, value in headers]
        response = client.send(httpx.Request(attempt.method, url, headers=encoded, content=attempt.body))
        self._count(attempt, raw, response)
        return response

    def _signed(self, key: NewKey, method: str, raw: bytes, body: bytes) -> list[tuple[str, bytes]]:
        okx = facade_of(raw) == "okx"
        timestamp = _okx_now() if okx else _bitget_now()
        sign = _signature(key.secret_key, timestamp, method, raw, body)
        names = OKX_HEADERS if okx else BITGET_HEADERS
        values = (key.api_key, sign, timestamp, key.passphrase)
        return [(name, value.encode()) for name, value in zip(names, values, strict=True)]

    def _count(self, attempt: Attempt, raw: bytes, response: httpx.Response) -> None:
        self.tally.record(response, signed=attempt.signed and not attempt.extra and not attempt.drop)
