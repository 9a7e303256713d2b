"""Fuzz soak: N requests (default 100,000) over both façades and the admin API, then the ledger check.

    python bench/fuzz_soak.py [--requests 100000] [--seed 1] [--concurrency 4]
                              [--postgres | --db URL] [--server-workers 1]

A real `flexearn serve` (no scheduler) on a fresh database — a SQLite file in a temporary directory
by default; `--postgres` makes a private PostgreSQL cluster (`tests/deployment/services.py`);
`--db URL` uses an empty database you made — seeded as the contract tests seed theirs (USDT and BTC
markets, a flexible USDT ladder product and a 30-day BTC product; `tests/contract/conftest.py`)
plus an `ETH` market fed by posted demand, users holding funds, read+trade keys and an admin token.

The cases, in an order fixed by `--seed`, mix:

* `fuzz`: `tests/contract/fuzz_requests.attempts()` — any method, known and near-miss paths,
  hostile headers, queries and bodies, half validly signed — and the same kind of strategy over the
  admin API's route table, drawn by hypothesis (seeded);
* `valid`: signed reads and writes on both façades and admin calls an operator makes (deposits,
  withdrawals, listings, an hour of clock now and then), so that state moves while the rest runs;
* the battery of issue 11: hostile amounts (`AMOUNTS`) on OKX purchase/redempt and set-lending-rate,
  Bitget subscribe/redeem and the admin deposits, withdrawals and demand posts; hostile integers in
  admin and façade queries (`INTEGERS`); trailing-slash paths with a foreign Host header; wrong
  passphrases and signatures; oversize bodies (64 KiB to 1 MiB).

`--concurrency` threads send them over keep-alive connections from several loopback addresses,
re-sending a case up to 3 times while it is answered 429. Amounts that make the server store a
huge number (`1E-999000`: about a megabyte of text per accepted request on SQLite) are sent at most
`--amplifier-cap` times per endpoint, so a run's database stays small.

Output: requests tried, answers by status class, server errors — a 5xx other than the 503 that
backpressure answers (OKX 50001, Bitget 40604, admin `unavailable`) — by input with a sample of
each and the exception the server logged for it, redirects to a foreign host, battery amounts the
server accepted, then `flexearn ledger check --full`. Exit status 1 when a goal is missed (server
errors, foreign redirects, the server dying, a red ledger), else 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package, run as a script

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from tests.contract.conftest import FIXED_BTC, FLEXIBLE_USDT, World, _markets, _user
from tests.contract.fuzz_requests import (
    BITGET_HEADERS,
    METHODS,
    OKX_HEADERS,
    Attempt,
    Fuzzer,
    attempts,
    bodies,
    header_values,
    near_miss,
    texts,
)
from tests.contract.fuzz_requests import Tally as FuzzTally
from tests.deployment.cluster import Process
from tests.deployment.services import private_postgres
from tests.server import ADMIN_TOKEN, FLEXEARN, free_port, full_ledger_check

from flexearn.adapters.secrets import generate_master_key
from flexearn.api.admin.routes import ROUTES as ADMIN_ROUTES
from flexearn.bootstrap import Flexearn
from flexearn.services import accounts, markets

OKX_SAVINGS = "/api/v5/finance/savings"
BITGET_SAVINGS = "/api/v2/earn/savings"
ADMIN = "/admin/v1"
EXTERNAL = "ETH"  # a currency whose market takes posted demand (admin demand posts)
BEARER = f"Bearer {ADMIN_TOKEN}".encode()

# --- the battery of issue 11 -----------------------------------------------------------------------

# Amounts as raw JSON tokens (strings quoted; a few bare numbers and other types too).
HOSTILE_AMOUNTS = [
    # what the issue found
    *("0.000000001", "1E-60", "1E-999000", "1E-999999999", "1E+999999999", "1E-20000"),
    *(" 1", "\t2", "１", "٣", "1_0", "+3", "1e2"),
    # neighbours: other spellings Decimal() or float() take, and plain garbage
    *("1 ", "1\n", "1.", ".5", "-1", "-0", "0", "0E-30", "NaN", "sNaN", "Infinity", "-Infinity"),
    *("0x10", "1,5", "", " ", "1e-7", "1E2", "٣.٥", "𝟙", "²", "1" * 40, "0." + "0" * 40 + "1"),
    *("10.0000000000000000001", "12.1234567", "1" * 21, "1" * 4301, "1e400", "1E-6143", "1e-1000000"),
]
AMPLIFIERS = {"1E-999000", "1e-1000000", "1E-20000", "1E-6143"}  # stored whole: big text per write
AMOUNT_TOKENS = [json.dumps(a) for a in HOSTILE_AMOUNTS] + [
    *("1", "1.5", "1e-60", "1E+999999999", "-1", "0", "null", "true", '["1"]', '{"a":"1"}'),
]
# Integers in admin and façade queries.
INTEGERS = [
    *("²", "٣", "１", "1_0", "+3", " 1", "1 ", "-1", "0", "1e2", "0x10", "", "1.0", "²³", "𝟙"),
    *("9" * 30, "9" * 4400, "10", "3", "%", "%00", "1%00", "\x00"),
]
FOREIGN_HOSTS = [b"evil.example", b"evil.example:8443", b"127.0.0.1.evil.example", b"[::1]"]
SLASHED = [
    *(f"{ADMIN}/users/", f"{ADMIN}/currencies/", f"{ADMIN}/products/", f"{ADMIN}/", f"{ADMIN}/clock/"),
    *(f"{ADMIN}/users/1/", f"{ADMIN}/ledger/check/", f"{ADMIN}/markets/USDT/demand/"),
    *(f"{OKX_SAVINGS}/balance/", f"{OKX_SAVINGS}/purchase-redempt/", "/api/v5/public/time/"),
    *(f"{BITGET_SAVINGS}/product/", f"{BITGET_SAVINGS}/subscribe/", "/api/v2/public/time/"),
    *("/dashboard/", "/healthz/", "/metrics/", "//admin/v1/users"),
]

# Relative weights of the kinds of case.
MIX = {
    "fuzz": 300,  # hypothesis: façades (5 in 6) and admin API (1 in 6)
    "valid": 380,
    "amount": 230,
    "integer": 50,
    "slash_host": 20,
    "bad_signature": 8,
    "wrong_passphrase": 2,  # each costs the server a scrypt (0.1 s of CPU)
    "oversize": 3,
}


@dataclass(frozen=True)
class Case:
    kind: str  # a key of MIX
    label: str  # what it tries, for the report
    attempt: Attempt
    pool: str = "trade"  # whose keys sign it: trade, fuzz, victim
    hostile_amount: bool = False  # a battery amount or integer outside the grammar: accepting it is news
    why: str | None = None  # what is wrong with it
    where: str = ""  # amount cases: the endpoint and field
    value: str = ""  # amount cases: the value as shown


PLACES = {"USDT": 16, "BTC": 8, EXTERNAL: 8}  # the currencies' precision, as seeded
PRODUCT_PLACES = {FLEXIBLE_USDT: 6, FIXED_BTC: 8}  # subscribePrecision (below the coins')
PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
MAX_PLAIN = 30  # characters: a plain amount longer than this is hostile too


def lax(token: str, places: int) -> str | None:
    """Why an amount token is outside the strict grammar of issue 11 (ASCII digits, an optional
    point, a length limit, no more decimals than `places`), or None for a plain amount."""
    if not token.startswith('"'):
        return "not a string"
    text = json.loads(token)
    if not PLAIN.fullmatch(text):
        return "not plain ASCII digits"
    if len(text) > MAX_PLAIN:
        return "too long"
    if len(text.partition(".")[2]) > places:
        return f"more than {places} decimals"
    return None


def lax_integer(text: str) -> str | None:
    """Why a query or path integer is outside issue 11's grammar (ASCII digits only; 19 at most,
    a BIGINT), or None. Empty is absent: OKX's SDKs send `after=` for a parameter not given."""
    if text == "":
        return None
    if not re.fullmatch(r"[0-9]+", text, re.ASCII):
        return "not ASCII digits"
    if len(text) > 19:
        return "too long"
    return None


def shown(token: str, limit: int = 24) -> str:
    """A battery value for a label: the decoded string's repr (escapes visible), cut short."""
    text = repr(json.loads(token)) if token.startswith('"') else token
    return text if len(text) <= limit else f"{text[:14]}…({len(text)} chars)"


# --- the admin API under hypothesis ----------------------------------------------------------------

ADMIN_PARAMS = ["limit", "after_id", "before_id", "coin", "x", "", "limit[]"]


@st.composite
def admin_attempts(draw: st.DrawFn, user_ids: list[int]) -> Attempt:
    """Any method on an admin route (or a near miss of one), ids and currencies from `texts`,
    hostile queries and bodies, with the real bearer token most of the time."""
    route = draw(st.sampled_from(ADMIN_ROUTES))
    method = route.method if draw(st.integers(0, 4)) else draw(st.sampled_from(METHODS))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        plausible = str(draw(st.sampled_from(user_ids))) if "id" in name else "USDT"
        return quote(draw(st.one_of(st.just(plausible), st.just(plausible), texts)), safe="")

    path = re.sub(r"\{(\w+)(?::\w+)?\}", fill, ADMIN + route.path)
    if draw(st.integers(0, 5)) == 0:
        path = draw(near_miss(path))
    pairs = draw(st.lists(st.tuples(st.sampled_from(ADMIN_PARAMS), texts), max_size=4))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    body = draw(bodies) if method not in ("GET", "HEAD") or draw(st.integers(0, 5)) == 0 else b""
    extra: list[tuple[str, bytes]] = []
    auth = draw(st.integers(0, 9))
    if auth == 0:
        extra.append(("Authorization", draw(header_values)))
    elif auth > 1:
        extra.append(("Authorization", BEARER))
    for name in draw(
        st.lists(st.sampled_from(["Idempotency-Key", "X-Admin-Actor", "Content-Type"]), max_size=2)
    ):
        extra.append((name, draw(header_values)))
    return Attempt(method, path, query, body, signed=False, extra=tuple(extra))


def fuzz_cases(user_ids: list[int]) -> st.SearchStrategy[Case]:
    facades = attempts().map(lambda a: Case("fuzz", f"fuzz façade {a.method}", a, pool="fuzz"))
    admin = admin_attempts(user_ids).map(lambda a: Case("fuzz", f"fuzz admin {a.method}", a, pool="fuzz"))
    return st.one_of(facades, facades, facades, facades, facades, admin)


def _produce(strategy: st.SearchStrategy[Case], count: int, seed: int, out: Any) -> None:
    """Puts `count` cases drawn from `strategy` on `out`, then None (in a process of its own)."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=max(count, 1),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def produce(case: Case) -> None:
        out.put(case)

    try:
        produce()
    finally:
        out.put(None)


def _feed(user_ids: list[int], count: int, seed: int, out: Any) -> None:
    _produce(fuzz_cases(user_ids), count, seed, out)


class HypothesisFeed:
    """Draws `count` cases from `fuzz_cases` with hypothesis, seeded (the same seed gives the same
    cases), in a process of its own: drawing costs ~3-5 ms of CPU a case, which would otherwise
    compete with the senders for this process's interpreter lock. `next()` hands them out in order."""

    def __init__(self, user_ids: list[int], count: int, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.items: Any = context.Queue(maxsize=1024)
        self.process = context.Process(target=_feed, args=(user_ids, count, seed, self.items), daemon=True)
        self.process.start()
        self.done = False

    def next(self) -> Case | None:
        if self.done:
            return None
        item = self.items.get()
        if item is None:
            self.done = True
            self.process.join(timeout=10)
        return item  # type: ignore[no-any-return]


# --- the seeded generator of everything else -------------------------------------------------------


class Battery:
    """The valid traffic and the battery, from a seeded `random.Random`."""

    def __init__(self, rng: random.Random, user_ids: list[int], amplifier_cap: int) -> None:
        self.rng, self.user_ids, self.amplifier_cap = rng, user_ids, amplifier_cap
        self.amplified: Counter[tuple[str, str]] = Counter()

    def case(self, kind: str) -> Case:
        return getattr(self, kind)()  # type: ignore[no-any-return]

    # -- helpers
    def _json(self, fields: dict[str, str]) -> bytes:
        """A JSON object from raw JSON tokens (so that bare numbers and garbage go out as they are)."""
        return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode()

    def _amount(self, where: str) -> str:
        """A battery amount token for endpoint `where`, respecting the amplifier cap."""
        while True:
            token = self.rng.choice(AMOUNT_TOKENS)
            raw = json.loads(token) if token.startswith('"') else None
            if raw in AMPLIFIERS:
                if self.amplified[where, raw] >= self.amplifier_cap:
                    continue
                self.amplified[where, raw] += 1
            return token

    def _user(self) -> int:
        return self.rng.choice(self.user_ids)

    def _admin(self, method: str, path: str, query: str = "", body: bytes = b"", **extra: bytes) -> Attempt:
        headers = [("Authorization", BEARER), *((k.replace("_", "-"), v) for k, v in extra.items())]
        if body:
            headers.append(("Content-Type", b"application/json"))
        return Attempt(method, ADMIN + path, query, body, signed=False, extra=tuple(headers))

    # -- valid traffic
    def valid(self) -> Case:
        r = self.rng
        side = r.random()
        if side < 0.45:
            return self._valid_okx(r)
        if side < 0.85:
            return self._valid_bitget(r)
        return self._valid_admin(r)

    def _valid_okx(self, r: random.Random) -> Case:
        ccy = r.choice(["USDT", "USDT", "BTC"])
        small = r.choice(["1", "0.5", "2.25", "0.00000001", "3.1"] if ccy == "USDT" else ["0.001", "0.0001"])
        choice = r.randrange(12)
        if choice < 3:
            side = "purchase" if choice < 2 else "redempt"
            body = {"ccy": ccy, "amt": small, "side": side}
            if side == "purchase" and r.random() < 0.3:
                body["rate"] = f"0.{r.randint(1, 30):02d}"
            return self._signed("valid okx " + side, "POST", f"{OKX_SAVINGS}/purchase-redempt", body)
        if choice == 3:
            body = {"ccy": ccy, "rate": f"0.{r.randint(1, 30):02d}"}
            return self._signed("valid okx set-lending-rate", "POST", f"{OKX_SAVINGS}/set-lending-rate", body)
        target = r.choice(
            [
                f"{OKX_SAVINGS}/balance?ccy={ccy}",
                f"{OKX_SAVINGS}/balance",
                f"{OKX_SAVINGS}/lending-history?ccy={ccy}&limit=10",
                f"{OKX_SAVINGS}/lending-rate-summary?ccy={ccy}",
                f"{OKX_SAVINGS}/lending-rate-history?ccy={ccy}&limit=5",
                "/api/v5/asset/balances",
                "/api/v5/asset/currencies",
                "/api/v5/public/time",
                "/api/v5/public/instruments?instType=SPOT",
            ]
        )
        return self._signed_get("okx", target)

    def _valid_bitget(self, r: random.Random) -> Case:
        choice = r.randrange(12)
        if choice < 3:
            kind = "subscribe" if choice < 2 else "redeem"
            fixed = r.random() < 0.2
            product, period = (FIXED_BTC, "fixed") if fixed else (FLEXIBLE_USDT, "flexible")
            amount = r.choice(["0.001", "0.002"] if fixed else ["10", "12.5", "20", "1", "3"])
            body = {"productId": str(product), "periodType": period, "amount": amount}
            return self._signed("valid bitget " + kind, "POST", f"{BITGET_SAVINGS}/{kind}", body)
        target = r.choice(
            [
                f"{BITGET_SAVINGS}/product?coin=USDT",
                f"{BITGET_SAVINGS}/product",
                f"{BITGET_SAVINGS}/subscribe-info?productId={FLEXIBLE_USDT}&periodType=flexible",
                f"{BITGET_SAVINGS}/records?periodType=flexible&limit=20",
                f"{BITGET_SAVINGS}/assets?periodType=flexible",
                f"{BITGET_SAVINGS}/account",
                f"{BITGET_SAVINGS}/subscribe-result?orderId={r.randint(1, 500)}",
                f"{BITGET_SAVINGS}/redeem-result?orderId={r.randint(1, 500)}",
                "/api/v2/spot/account/assets",
                "/api/v2/public/time",
                "/api/v2/spot/public/coins",
                "/api/v2/spot/public/symbols",
            ]
        )
        return self._signed_get("bitget", target)

    def _valid_admin(self, r: random.Random) -> Case:
        user = self._user()
        choice = r.randrange(40)
        if choice < 6:
            amount = r.choice(["100", "250.5", "1000"])
            attempt = self._admin(
                "POST", f"/users/{user}/deposits", body=self._json({"ccy": '"USDT"', "amount": f'"{amount}"'})
            )
            return Case("valid", "valid admin deposit", attempt)
        if choice < 8:
            attempt = self._admin(
                "POST", f"/users/{user}/withdrawals", body=self._json({"ccy": '"USDT"', "amount": '"1"'})
            )
            return Case("valid", "valid admin withdrawal", attempt)
        if choice == 8:
            return Case(
                "valid",
                "valid admin clock advance",
                self._admin("POST", "/clock/advance", body=b'{"hours":1}'),
            )
        if choice == 9 and r.random() < 0.1:
            return Case("valid", "valid admin ledger check", self._admin("GET", "/ledger/check"))
        if choice == 10:
            hour = 1_767_225_600_000 + r.randint(2, 2000) * 3_600_000
            body = self._json({"hour": str(hour), "demand": f'"{r.randint(1, 500)}"'})
            return Case(
                "valid",
                "valid admin demand post",
                self._admin("POST", f"/markets/{EXTERNAL}/demand", body=body),
            )
        path, query = r.choice(
            [
                ("/users", "limit=10"),
                ("/users", f"limit=5&after_id={r.randint(0, 40)}"),
                (f"/users/{user}", ""),
                (f"/users/{user}/keys", ""),
                ("/currencies", ""),
                ("/markets", ""),
                (f"/markets/{EXTERNAL}/demand", "limit=5"),
                ("/products", ""),
                ("/products", "coin=USDT"),
                ("/prices", ""),
                ("/clock", ""),
                ("/audit", "limit=5"),
            ]
        )
        return Case("valid", "valid admin GET " + path.split("/")[1], self._admin("GET", path, query))

    def _signed(self, label: str, method: str, path: str, body: dict[str, str], kind: str = "valid") -> Case:
        return Case(kind, label, Attempt(method, path, "", json.dumps(body).encode(), signed=True))

    def _signed_get(self, facade: str, target: str) -> Case:
        """A valid signed GET of `target` (path?query), named by the façade and the path's last part."""
        path, _, query = target.partition("?")
        label = f"valid {facade} GET " + path.rsplit("/", 1)[1]
        return Case("valid", label, Attempt("GET", path, query, b"", True))

    # -- the battery
    def amount(self) -> Case:
        r = self.rng
        where = r.choice(
            [
                *("okx purchase", "okx purchase", "okx redempt", "okx redempt", "okx set-lending-rate"),
                *("bitget subscribe", "bitget subscribe", "bitget redeem", "bitget redeem", "bitget redeem"),
                *("admin deposit", "admin withdrawal", "admin demand"),
            ]
        )
        token = self._amount(where)
        ccy = r.choice(["USDT", "USDT", "BTC"])
        places = PLACES[ccy]
        if where.startswith("okx"):
            if where.endswith("rate"):
                body = self._json({"ccy": json.dumps(ccy), "rate": token})
                path, places = f"{OKX_SAVINGS}/set-lending-rate", 18
            else:
                body = self._json(
                    {"ccy": json.dumps(ccy), "amt": token, "side": json.dumps(where.split()[1])}
                )
                path = f"{OKX_SAVINGS}/purchase-redempt"
            attempt = Attempt("POST", path, "", body, signed=True)
        elif where.startswith("bitget"):
            fixed = r.random() < 0.15
            product, period = (FIXED_BTC, '"fixed"') if fixed else (FLEXIBLE_USDT, '"flexible"')
            places = PRODUCT_PLACES[product]
            body = self._json({"productId": f'"{product}"', "periodType": period, "amount": token})
            attempt = Attempt("POST", f"{BITGET_SAVINGS}/{where.split()[1]}", "", body, signed=True)
        elif where == "admin demand":
            hour = 1_767_225_600_000 + r.randint(2, 2000) * 3_600_000
            field_ = r.choice(["demand", "borrow_rate"])
            fields = {"hour": str(hour), "demand": '"10"', field_: token}
            attempt = self._admin("POST", f"/markets/{EXTERNAL}/demand", body=self._json(fields))
            places = PLACES[EXTERNAL] if field_ == "demand" else 18
        else:
            kind = "deposits" if where == "admin deposit" else "withdrawals"
            body = self._json({"ccy": json.dumps(ccy), "amount": token})
            attempt = self._admin("POST", f"/users/{self._user()}/{kind}", body=body)
        why = lax(token, places)
        value = shown(token)
        label = f"{where} {value}"
        return Case(
            "amount", label, attempt, hostile_amount=why is not None, why=why, where=where, value=value
        )

    def integer(self) -> Case:
        r = self.rng
        raw = r.choice(INTEGERS)
        value = quote(raw, safe="")
        where, path, query = r.choice(
            [
                ("admin users limit", "/users", f"limit={value}"),
                ("admin users after_id", "/users", f"after_id={value}"),
                ("admin users limit+after_id", "/users", f"limit=5&after_id={value}"),
                ("admin demand limit", f"/markets/{EXTERNAL}/demand", f"limit={value}"),
                ("admin audit limit", "/audit", f"limit={value}"),
                ("admin audit before_id", "/audit", f"before_id={value}"),
                ("admin user id", f"/users/{value}", ""),
                ("admin user keys id", f"/users/{value}/keys", ""),
                ("admin product id", f"/products/{value}", ""),
                ("okx lending-history limit", "", f"limit={value}"),
                ("okx lending-history after", "", f"after={value}"),
                ("okx lending-rate-history before", "", f"ccy=USDT&before={value}"),
                ("bitget records limit", "", f"periodType=flexible&limit={value}"),
                ("bitget records idLessThan", "", f"periodType=flexible&idLessThan={value}"),
                ("bitget records startTime", "", f"periodType=flexible&startTime={value}"),
                ("bitget subscribe-result orderId", "", f"orderId={value}"),
                ("bitget product productId", "", f"productId={value}"),
            ]
        )
        value = shown(json.dumps(raw, ensure_ascii=False))
        label = f"{where} {value}"
        if where.startswith("admin"):
            if where == "admin product id":
                attempt = self._admin("PATCH", path, body=b'{"singleMinAmount":"10"}')
            else:
                attempt = self._admin("GET", path, query)
        else:
            endpoint = {
                "okx lending-history": f"{OKX_SAVINGS}/lending-history",
                "okx lending-rate-history": f"{OKX_SAVINGS}/lending-rate-history",
                "bitget records": f"{BITGET_SAVINGS}/records",
                "bitget subscribe-result": f"{BITGET_SAVINGS}/subscribe-result",
                "bitget product": f"{BITGET_SAVINGS}/product",
            }[" ".join(where.split()[:2])]
            attempt = Attempt("GET", endpoint, query, b"", signed=True)
        why = lax_integer(raw)
        return Case(
            "integer", label, attempt, hostile_amount=why is not None, why=why, where=where, value=value
        )

    def slash_host(self) -> Case:
        r = self.rng
        path = r.choice(SLASHED)
        method = r.choice(["GET", "GET", "POST", "PUT"])
        host = r.choice(FOREIGN_HOSTS)
        extra: list[tuple[str, bytes]] = [("Host", host)]
        if r.random() < 0.5:
            extra.append(("Authorization", BEARER))
        body = b'{"name":"x"}' if method != "GET" else b""
        label = f"slash+host {method} {path}"
        return Case("slash_host", label, Attempt(method, path, "", body, signed=False, extra=tuple(extra)))

    def _credential_case(self, kind: str, header_index: int) -> Case:
        r = self.rng
        okx = r.random() < 0.5
        names = OKX_HEADERS if okx else BITGET_HEADERS
        header = names[header_index]
        if okx:
            path, query = f"{OKX_SAVINGS}/balance", "ccy=USDT"
        else:
            path, query = f"{BITGET_SAVINGS}/account", ""
        value = r.choice([b"wrong-passphrase", b"", b"x" * 64, f"guess-{r.randrange(10**6)}".encode()])
        if header_index == 1:
            value = r.choice([b"AAAA", b"bm90IGEgc2lnbmF0dXJl", b"x" * 44, b"=" * 44])
        attempt = Attempt("GET", path, query, b"", signed=True, extra=((header, value),), drop=(header,))
        return Case(kind, f"{kind} {'okx' if okx else 'bitget'}", attempt, pool="victim")

    def bad_signature(self) -> Case:
        return self._credential_case("bad_signature", 1)

    def wrong_passphrase(self) -> Case:
        return self._credential_case("wrong_passphrase", 3)

    def oversize(self) -> Case:
        r = self.rng
        size = r.choice([65 * 1024, 256 * 1024, 1024 * 1024])
        where = r.choice(
            ["okx purchase", "bitget subscribe", "admin users", "okx unsigned", "admin no token"]
        )
        padding = "a" * size
        signed, extra = False, ()
        if where == "okx purchase":
            path, body, signed = (
                f"{OKX_SAVINGS}/purchase-redempt",
                {"ccy": "USDT", "amt": "1", "side": "purchase", "x": padding},
                True,
            )
        elif where == "bitget subscribe":
            path, body, signed = (
                f"{BITGET_SAVINGS}/subscribe",
                {"productId": "1", "periodType": "flexible", "amount": "10", "x": padding},
                True,
            )
        elif where == "okx unsigned":
            path, body = f"{OKX_SAVINGS}/purchase-redempt", {"x": padding}
        else:
            path, body = f"{ADMIN}/users", {"name": "big", "x": padding}
            if where == "admin users":
                extra = (("Authorization", BEARER),)
        attempt = Attempt("POST", path, "", json.dumps(body).encode(), signed=signed, extra=extra)
        return Case("oversize", f"oversize {where} {size // 1024} KiB", attempt)


def generate(count: int, seed: int, user_ids: list[int], amplifier_cap: int) -> Iterator[Case]:
    """The run's cases, in an order fixed by `seed`."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    plan = rng.choices(kinds, weights, k=count)
    feed = HypothesisFeed(user_ids, plan.count("fuzz"), seed)
    battery = Battery(random.Random(seed + 1), user_ids, amplifier_cap)
    for kind in plan:
        case = feed.next() if kind == "fuzz" else None
        yield case if case is not None else battery.case("valid" if kind == "fuzz" else kind)


# --- sending and counting --------------------------------------------------------------------------

# OKX, Bitget, admin: the database is unavailable or too slow (nothing was written; or, for a clock
# advance, the clock moved and settlement is left to the settler).
BACKPRESSURE = {"50001", "40604", "unavailable", "applied_settlement_pending"}


def code_of(response: httpx.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    code = payload.get("code", payload.get("error"))
    return None if code is None else str(code)


@dataclass
class Sample:
    label: str
    status: str
    request: str
    answer: str
    request_id: str = ""


@dataclass
class Report:
    cases: int = 0
    tried: int = 0  # requests sent, re-sends after 429 included
    by_class: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # per kind
    errors: Counter[str] = field(default_factory=Counter)  # server errors by label
    error_samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    backpressure: int = 0
    transport: Counter[str] = field(default_factory=Counter)
    transport_samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    redirects: Counter[str] = field(default_factory=Counter)  # to a foreign host, by label
    redirect_samples: list[Sample] = field(default_factory=list)
    # battery amounts and integers acknowledged: kind -> (value, why) -> endpoints
    accepted: dict[str, dict[tuple[str, str], Counter[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )
    harness_errors: int = 0  # exceptions in this script while sending (goal 0: else the run is void)
    lock: threading.Lock = field(default_factory=threading.Lock)


def describe(attempt: Attempt, limit: int = 300) -> str:
    body = (
        attempt.body
        if len(attempt.body) <= 120
        else attempt.body[:80] + f"…({len(attempt.body)} bytes)".encode()
    )
    target = attempt.path + ("?" + attempt.query if attempt.query else "")
    if len(target) > 160:
        target = target[:120] + f"…({len(target)} chars)"
    extra = [(n, v[:40]) for n, v in attempt.extra if n != "Authorization" or v != BEARER]
    text = f"{attempt.method} {target} body={body!r}" + (" signed" if attempt.signed else "")
    if extra:
        text += f" headers={extra}"
    return text[:limit]


def succeeded(response: httpx.Response) -> bool:
    if response.status_code >= 300:
        return False
    return code_of(response) in ("0", "00000") or response.request.url.path.startswith(ADMIN)


class Sender:
    """One thread's connections: a `Fuzzer` per pool of keys (they rotate keys and addresses)."""

    def __init__(self, base: str, pools: dict[str, list[Any]], report: Report, index: int) -> None:
        self.report = report
        self.tally = FuzzTally()
        self.fuzzers = {name: Fuzzer(base, keys, self.tally, addresses=4) for name, keys in pools.items()}
        for fuzzer in self.fuzzers.values():  # threads start at different keys and addresses
            fuzzer._turn = index * 7

    def close(self) -> None:
        for fuzzer in self.fuzzers.values():
            fuzzer.close()

    def send(self, case: Case) -> None:
        fuzzer = self.fuzzers[case.pool]
        r = self.report
        response: httpx.Response | None = None
        tries = 0
        for attempt_no in range(4):
            tries += 1
            try:
                response = fuzzer.send_once(case.attempt)
            except httpx.HTTPError as error:
                name = type(error).__name__
                with r.lock:
                    r.tried += tries
                    r.cases += 1
                    r.by_kind[case.kind] += 1
                    r.by_class["transport"] += 1
                    r.statuses[case.kind][name] += 1
                    r.transport[f"{name}: {case.label}"] += 1
                    samples = r.transport_samples[name]
                    if len(samples) < 5:
                        samples.append(Sample(case.label, name, describe(case.attempt), str(error)[:200]))
                return
            if response.status_code != 429 or attempt_no == 3:
                break
            time.sleep(0.05 * (attempt_no + 1))
        assert response is not None
        status = response.status_code
        code = code_of(response)
        with r.lock:
            r.tried += tries
            r.cases += 1
            r.by_kind[case.kind] += 1
            r.by_class[f"{status // 100}xx"] += 1
            r.statuses[case.kind][str(status) if code is None else f"{status} {code}"] += 1
            if status >= 500:
                if status == 503 and code in BACKPRESSURE:
                    r.backpressure += 1
                else:
                    r.errors[case.label] += 1
                    samples = r.error_samples[case.label]
                    if len(samples) < 3:
                        samples.append(
                            Sample(
                                case.label,
                                f"{status} {code}",
                                describe(case.attempt),
                                response.text[:200],
                                response.headers.get("x-request-id", ""),
                            )
                        )
            elif 300 <= status < 400:
                location = response.headers.get("location", "")
                host = urlsplit(location).hostname
                if location and host not in (None, "127.0.0.1", "localhost"):
                    r.redirects[case.label] += 1
                    if len(r.redirect_samples) < 5:
                        r.redirect_samples.append(
                            Sample(case.label, str(status), describe(case.attempt), f"Location: {location}")
                        )
            if case.hostile_amount and succeeded(response):
                r.accepted[case.kind][case.value, case.why or ""][case.where] += 1


# --- the server ------------------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    backend: str
    app: Flexearn
    users: list[World]
    victims: list[World]
    server: Process
    sqlite_path: Path | None


@contextmanager
def target(args: argparse.Namespace, root: Path) -> Iterator[Target]:
    with ExitStack() as stack:
        sqlite_path = None
        if args.db:
            url = args.db
        elif args.postgres:
            url = stack.enter_context(private_postgres()).url
        else:
            sqlite_path = root / "flexearn.db"
            url = f"sqlite:///{sqlite_path}"
        app = Flexearn(url)
        stack.callback(app.close)
        _markets(app)  # USDT, BTC; products FLEXIBLE_USDT and FIXED_BTC; clock still at T0 + 1
        accounts.add_currency(app.uow(), EXTERNAL, 8)
        markets.set_market(app.uow(), EXTERNAL, demand_source="external")
        master = generate_master_key()
        users = [_user(app, master, "") for _ in range(args.users)]
        victims = [_user(app, master, "") for _ in range(4)]
        port = free_port()
        env = {
            **os.environ,
            "FLEXEARN_MASTER_KEY": master,
            "FLEXEARN_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLEXEARN_LOG_LEVEL": "WARNING",  # no access log: 100k lines cost CPU; errors still logged
        }
        argv = [FLEXEARN, "serve", "--port", str(port), "--db", url, "--no-scheduler"]
        argv += ["--workers", str(args.server_workers)]
        server = Process("serve", argv, env, root / "serve.log", port)
        server.start()
        stack.callback(server.stop)
        backend = "sqlite" if url.startswith("sqlite") else "postgresql"
        yield Target(server.url, backend, app, users, victims, server, sqlite_path)


def logged_errors(log: str) -> tuple[Counter[str], dict[str, str]]:
    """The server's logged exceptions: (count by last traceback line, that line by request id).

    flexearn logs a traceback in `exc`; granian logs the ones that escape the application (a
    500 answered by Starlette itself) in `message`, without a request id."""
    found: Counter[str] = Counter()
    by_request: dict[str, str] = {}
    for line in log.splitlines():
        if not line.startswith("{") or "Traceback" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        trace = record.get("exc") or record.get("message", "")
        if "Traceback" not in trace:
            continue
        last = exception_line(trace)
        if not record.get("exc"):
            last += f" (logged by {record.get('logger')})"
        found[last] += 1
        if record.get("request_id"):
            by_request[record["request_id"]] = last
    return found, by_request


def exception_line(trace: str) -> str:
    """The `Type: message` line of a traceback (SQLAlchemy's end with `[SQL: …]` and a link)."""
    lines = trace.strip().splitlines()
    found = [line for line in lines if re.match(r"[A-Za-z_][\w.]*: ", line)]
    return (found[-1] if found else lines[-1])[:200]


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="flexearn-fuzz-soak-"))
    try:
        with target(args, root) as t:
            outcome = soak(args, t)
            lines, missed = render(args, t.backend, outcome)
        print("\n".join(lines), flush=True)
        return 1 if missed else 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def session_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the processes of session `pid` (a server and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == pid:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


@dataclass
class Outcome:
    report: Report
    seconds: float
    alive: bool
    signed_past_auth: int
    exceptions: Counter[str]
    by_request: dict[str, str]
    ledger_code: int
    ledger_output: str
    ledger_seconds: float
    client_cpu: float
    server_cpu: float
    database_mb: float | None


def soak(args: argparse.Namespace, t: Target) -> Outcome:
    """Send the cases, stop the server, check the ledger."""
    user_ids = [u.user_id for u in t.users]
    pools = {
        "trade": [u.key for u in t.users[: len(t.users) // 2]],
        "fuzz": [u.key for u in t.users[len(t.users) // 2 :]],
        "victim": [v.key for v in t.victims],
    }
    report = Report()
    work: queue.Queue[Case | None] = queue.Queue(maxsize=2000)
    senders = [Sender(t.url, pools, report, i) for i in range(args.concurrency)]

    def drain(sender: Sender) -> None:
        while (case := work.get()) is not None:
            try:
                sender.send(case)
            except Exception:  # a bug of this script: counted, shown once, and the run goes on
                with report.lock:
                    report.harness_errors += 1
                    if report.harness_errors == 1:
                        traceback.print_exc()

    threads = [threading.Thread(target=drain, args=(s,), daemon=True) for s in senders]
    print(
        f"FUZZ SOAK {t.backend}: {args.requests} cases, seed {args.seed}, concurrency {args.concurrency}, "
        f"server {t.url} ({args.server_workers} worker(s))",
        flush=True,
    )
    assert t.server.proc is not None
    server_pid = t.server.proc.pid
    server_cpu = session_cpu_seconds(server_pid)
    cpu = time.process_time()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    next_progress = started + args.progress
    for case in generate(args.requests, args.seed, user_ids, args.amplifier_cap):
        work.put(case)
        if args.progress and time.monotonic() >= next_progress:
            next_progress += args.progress
            print(
                f"  {time.monotonic() - started:6.0f} s: {report.cases} cases, {report.tried} requests, "
                f"server errors {sum(report.errors.values())}, {dict(report.by_class)}",
                flush=True,
            )
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    server_cpu = session_cpu_seconds(server_pid) - server_cpu
    cpu = time.process_time() - cpu
    for sender in senders:
        sender.close()
    alive = t.server.alive()
    t.server.stop()
    exceptions, by_request = logged_errors(t.server.output())
    code, output, seconds = full_ledger_check(t.app.engine.url.render_as_string(hide_password=False))
    size = None
    if t.sqlite_path is not None:
        files = t.sqlite_path.parent.glob(t.sqlite_path.name + "*")
        size = sum(p.stat().st_size for p in files) / 2**20
    return Outcome(
        report,
        elapsed,
        alive,
        sum(s.tally.signed_reached_handler for s in senders),
        exceptions,
        by_request,
        code,
        output,
        seconds,
        cpu,
        server_cpu,
        size,
    )


def render(args: argparse.Namespace, backend: str, o: Outcome) -> tuple[list[str], list[str]]:
    """The report's lines, and the goals missed."""
    r = o.report
    errors, redirects = sum(r.errors.values()), sum(r.redirects.values())
    size = "" if o.database_mb is None else f"; SQLite files {o.database_mb:.1f} MB"
    out = [
        "",
        f"FUZZ SOAK {backend} seed={args.seed}: {r.cases} cases, {r.tried} requests tried "
        f"in {o.seconds:.1f} s ({r.tried / o.seconds:.0f}/s), concurrency {args.concurrency}; "
        f"CPU s: client {o.client_cpu:.0f} (+ hypothesis process), server {o.server_cpu:.0f}{size}",
        f"  cases by kind: {dict(r.by_kind.most_common())}",
        f"  answers by class: {dict(sorted(r.by_class.items()))}; 503 backpressure {r.backpressure}; "
        f"signed requests past authentication {o.signed_past_auth}",
        f"SERVER ERRORS (5xx other than backpressure; goal 0): {errors}",
    ]
    for label, n in r.errors.most_common():
        out.append(f"  {n:6d}  {label}")
        for sample in r.error_samples[label][:1]:
            out.append(f"            {sample.status}: {sample.request}")
            logged = o.by_request.get(sample.request_id)
            out.append(f"            server logged: {logged or '(nothing with this request id)'}")
    if o.exceptions:
        out.append("  exceptions in the server log (last traceback line):")
        out += [f"  {n:6d}  {line}" for line, n in o.exceptions.most_common(20)]
    out.append(f"REDIRECTS TO A FOREIGN HOST (goal 0): {redirects}")
    out += [f"  {n:6d}  {label}" for label, n in r.redirects.most_common()]
    out += [f"            {s.request} -> {s.status} {s.answer}" for s in r.redirect_samples[:3]]
    for kind, what in (("amount", "AMOUNTS"), ("integer", "INTEGERS")):
        accepted = r.accepted[kind]
        total = sum(n for where in accepted.values() for n in where.values())
        out.append(f"BATTERY {what} ACCEPTED (answered 0 / 00000 / admin 2xx; outside the grammar): {total}")
        for (value, why), where in sorted(accepted.items(), key=lambda x: -x[1].total()):
            endpoints = ", ".join(f"{name} {n}" for name, n in where.most_common())
            out.append(f"  {where.total():6d}  {value} ({why}): {endpoints}")
    out.append("ANSWERS TO THE BATTERY (status and code, by kind of case):")
    for kind in ("integer", "slash_host", "bad_signature", "wrong_passphrase", "oversize"):
        answers = ", ".join(f"{label} ×{n}" for label, n in r.statuses[kind].most_common(8))
        out.append(f"  {kind}: {answers}")
    out.append(f"TRANSPORT ERRORS (no HTTP answer): {sum(r.transport.values())}")
    out += [f"  {n:6d}  {label}" for label, n in r.transport.most_common(15)]
    out.append(f"SERVER {'alive' if o.alive else 'DIED'} at the end; harness errors {r.harness_errors}")
    verdict = "green" if o.ledger_code == 0 else f"RED (exit {o.ledger_code})"
    out.append(f"LEDGER CHECK (flexearn ledger check --full, {o.ledger_seconds:.1f} s): {verdict}")
    out += [f"  {line[:300]}" for line in o.ledger_output.splitlines()[:30]]
    goals = {
        "server errors": errors > 0,
        "foreign redirects": redirects > 0,
        "server died": not o.alive,
        "ledger check": o.ledger_code != 0,
        "harness errors": r.harness_errors > 0,
    }
    missed = [name for name, bad in goals.items() if bad]
    out.append(f"GOALS: {'met' if not missed else 'MISSED: ' + ', '.join(missed)}")
    return out, missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="cases to send (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="sending threads (connections)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true", help="a private PostgreSQL cluster")
    where.add_argument("--db", help="an empty database to use (SQLAlchemy URL)")
    parser.add_argument("--server-workers", type=int, default=1, help="`serve --workers`")
    parser.add_argument("--users", type=int, default=24, help="users with keys (half trade, half fuzz)")
    parser.add_argument("--amplifier-cap", type=int, default=3, help="sends per endpoint of 1E-999000 & co")
    parser.add_argument("--progress", type=float, default=30, help="seconds between progress lines (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and clean up on TERM
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
