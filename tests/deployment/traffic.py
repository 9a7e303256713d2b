"""Client traffic on both façades, and the oracle that checks every write against the journal.

Each `Trader` is one user making one request at a time, signed as OKX and Bitget document it,
sent to any API process it does not currently distrust (a client-side load balancer: after a
reset, a refused connection or a 5xx it avoids that process for a moment). Every write carries
an amount no other write of that user and kind carries (`base + i × 1e-8`), so the journal tells
which writes were applied, and how often. Each answer is recorded as

- acknowledged: code 0 / 00000 — the write must be in the journal exactly once;
- refused: an error code (including 429, and "service unavailable": 503 with OKX 50001 or Bitget
  40604, which promises that nothing was written) — the write must not be there;
- unsent: the connection was refused — the server never saw it, so it must not be there;
- unknown: reset, timeout or another 5xx — it may be there, at most once.

A client never resends a write whose answer was unknown (the exchanges' savings calls carry no
client order id, so a resend could rightly apply twice): its next write has a fresh amount.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import httpx
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.services.keys import NewKey
from tests.contract import bitget_http, okx_http
from tests.deployment.cluster import CCY, Cluster, Member

OKX, BITGET = "okx", "bitget"
SAVINGS = "/api/v2/earn/savings"
# Amount bases per kind of write: a write's amount is its base plus its sequence number × 1e-8.
BASES = {"purchase": Decimal(5), "redemption": Decimal(1), "subscribe": Decimal(10), "redeem": Decimal(2)}
STEP = Decimal("1e-8")


class Outcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    REFUSED = "refused"
    UNSENT = "unsent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Write:
    user_id: int
    kind: str  # the journal entry kind it makes: purchase, redemption, subscribe, redeem
    amount: Decimal
    outcome: Outcome
    label: str
    at: float  # time.monotonic() when the answer came


@dataclass
class Tally:
    """What every trader saw, shared between their threads."""

    writes: list[Write] = field(default_factory=list)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (façade, label)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # per façade
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # per request kind
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, facade: str, kind: str, label: str, seconds: float, write: Write | None) -> None:
        with self.lock:
            self.answers[facade, label] += 1
            self.latencies[facade].append(seconds)
            self.by_kind[kind].append(seconds)
            if write is not None:
                self.writes.append(write)

    def requests(self, facade: str | None = None) -> int:
        return sum(n for (f, _), n in self.answers.items() if facade in (None, f))

    def outcomes(self) -> Counter[Outcome]:
        return Counter(w.outcome for w in self.writes)


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    label: str  # "ok", the exchange's error code, an HTTP status, or what went wrong on the wire


UNAVAILABLE = {"50001", "40604"}  # OKX, Bitget: "service unavailable", nothing was written


def classify(send: Callable[[], httpx.Response], ok_code: str) -> Answer:
    try:
        response = send()
    except httpx.ConnectError:
        return Answer(Outcome.UNSENT, "connection refused")
    except httpx.TimeoutException:
        return Answer(Outcome.UNKNOWN, "timeout")
    except httpx.TransportError as error:
        return Answer(Outcome.UNKNOWN, type(error).__name__)
    try:
        code = str(response.json().get("code"))
    except (ValueError, AttributeError):
        return Answer(Outcome.UNKNOWN, f"HTTP {response.status_code}, not JSON")
    if response.status_code >= 500:
        unavailable = response.status_code == 503 and code in UNAVAILABLE  # nothing was written
        return Answer(Outcome.REFUSED if unavailable else Outcome.UNKNOWN, f"{response.status_code} {code}")
    return Answer(Outcome.ACKNOWLEDGED, "ok") if code == ok_code else Answer(Outcome.REFUSED, code)


# The kinds of request a trader makes, and how often (relative weights).
LOAD_MIX = {
    "purchase": 4,
    "redemption": 2,
    "set_rate": 2,
    "subscribe": 3,
    "redeem": 2,
    "okx_balance": 2,
    "okx_history": 1,
    "okx_assets": 1,
    "bitget_assets": 2,
    "bitget_account": 1,
    "bitget_product": 1,
}
BURST_MIX = {"purchase": 1, "subscribe": 1}


class Trader:
    def __init__(
        self,
        member: Member,
        urls: Sequence[str],
        product_id: int,
        tally: Tally,
        mix: Mapping[str, int],
        seed: int,
    ) -> None:
        self.member, self.urls, self.product_id, self.tally = member, list(urls), product_id, tally
        self.kinds, self.weights = list(mix), list(mix.values())
        self.rng = random.Random(seed)
        self.client = httpx.Client(timeout=10)
        self.sequence: Counter[str] = Counter()
        self.avoid_until: dict[str, float] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step(self.rng.choices(self.kinds, self.weights)[0])
        finally:
            self.client.close()

    def _base(self) -> str:
        now = time.monotonic()
        trusted = [u for u in self.urls if self.avoid_until.get(u, 0) <= now]
        return self.rng.choice(trusted or self.urls)

    def _amount(self, kind: str) -> Decimal:
        self.sequence[kind] += 1
        return BASES[kind] + self.sequence[kind] * STEP

    def step(self, kind: str) -> None:
        rate = f"0.{self.rng.randint(1, 30):02d}"
        match kind:
            case "purchase" | "redemption":
                amount = self._amount(kind)
                body: dict[str, Any] = {"ccy": CCY, "amt": str(amount), "side": "purchase"}
                if kind == "redemption":
                    body["side"] = "redempt"
                elif self.rng.random() < 0.3:
                    body["rate"] = rate  # a purchase may change the minimum rate too
                self._send(OKX, kind, "POST", "/api/v5/finance/savings/purchase-redempt", body, amount)
            case "subscribe" | "redeem":
                amount = self._amount(kind)
                body = {"productId": str(self.product_id), "periodType": "flexible", "amount": str(amount)}
                self._send(BITGET, kind, "POST", f"{SAVINGS}/{kind}", body, amount)
            case "set_rate":
                body = {"ccy": CCY, "rate": rate}
                self._send(OKX, kind, "POST", "/api/v5/finance/savings/set-lending-rate", body)
            case _:
                facade, target = READS[kind]
                self._send(facade, kind, "GET", target)

    def _send(
        self,
        facade: str,
        kind: str,
        method: str,
        target: str,
        body: dict[str, Any] | None = None,
        amount: Decimal | None = None,
    ) -> None:
        base = self._base()
        started = time.perf_counter()
        answer = send(self.client, facade, self.member.key, base, method, target, body)
        seconds = time.perf_counter() - started
        if answer.outcome in (Outcome.UNSENT, Outcome.UNKNOWN):
            self.avoid_until[base] = time.monotonic() + 1.0  # as a load balancer's health check would
            time.sleep(0.05)
        write = (
            None
            if amount is None
            else Write(self.member.user_id, kind, amount, answer.outcome, answer.label, time.monotonic())
        )
        self.tally.note(facade, kind, answer.label, seconds, write)


READS = {
    "okx_balance": (OKX, f"/api/v5/finance/savings/balance?ccy={CCY}"),
    "okx_history": (OKX, "/api/v5/finance/savings/lending-history?limit=10"),
    "okx_assets": (OKX, "/api/v5/asset/balances"),
    "bitget_assets": (BITGET, f"{SAVINGS}/assets?periodType=flexible"),
    "bitget_account": (BITGET, f"{SAVINGS}/account"),
    "bitget_product": (BITGET, f"{SAVINGS}/product?coin={CCY}"),
}


def send(
    client: httpx.Client,
    facade: str,
    key: NewKey,
    base: str,
    method: str,
    target: str,
    body: dict[str, Any] | None = None,
) -> Answer:
    """One request, signed as its exchange documents it (a fresh timestamp), and what came of it."""
    if facade == OKX:
        text = "" if body is None else json.dumps(body)
        headers, ok_code = okx_http.signed_headers(key, method, target, text), "0"
    else:
        text = "" if body is None else json.dumps(body, separators=(",", ":"))
        headers, ok_code = bitget_http.signed_headers(key, method, target, text), "00000"
    return classify(
        lambda: client.request(method, base + target, content=text.encode(), headers=headers), ok_code
    )


def run_traders(
    members: Sequence[Member],
    urls: Sequence[str],
    product_id: int,
    tally: Tally,
    mix: Mapping[str, int],
    stop: threading.Event,
    seed: int = 0,
) -> list[threading.Thread]:
    """Start one thread per member; they run until `stop` is set (join the returned threads)."""
    threads = [
        threading.Thread(
            target=Trader(m, urls, product_id, tally, mix, seed * 1000 + i).run, args=(stop,), daemon=True
        )
        for i, m in enumerate(members)
    ]
    for thread in threads:
        thread.start()
    return threads


@dataclass(frozen=True)
class LoadRun:
    tally: Tally
    seconds: float
    hours: int  # currency-hours settled, once each, in order
    days: int  # product-days likewise
    writes: WriteCheck

    def summary(self) -> str:
        return (
            f"{report(self.tally, self.seconds)}\nWRITES: {self.writes.line()}\n"
            f"SETTLED: hours={self.hours} days={self.days}"
        )


def load_run(c: Cluster, traders: int, speed: Decimal, mix: Mapping[str, int], seconds: float) -> LoadRun:
    """Seed `c`, let `traders` members trade `mix` for `seconds` while the clock runs `speed`
    business seconds per real second, then verify the cluster and check every write."""
    product_id = c.seed(speed)
    members = c.members(traders)
    tally, stop = Tally(), threading.Event()
    started = time.monotonic()
    threads = run_traders(members, c.urls, product_id, tally, mix, stop)
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    hours, days = c.verify()
    writes = check_writes(c.app.engine, tally.writes, [m.user_id for m in members])
    return LoadRun(tally, elapsed, hours, days, writes)


# --- the oracle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteCheck:
    acknowledged: int
    refused: int
    unsent: int
    unknown: int
    applied_unknown: list[Write]  # unknown, and in the journal (once)
    lost: list[Write]  # acknowledged, not in the journal
    wrongly_applied: list[Write]  # refused or unsent, yet in the journal
    twice: list[tuple[int, str, Decimal]]  # in the journal more than once
    phantom: list[tuple[int, str, Decimal]]  # in the journal, never sent

    def assert_held(self) -> None:
        assert self.lost == [], f"acknowledged writes lost: {self.lost[:10]}"
        assert self.wrongly_applied == [], f"refused writes applied: {self.wrongly_applied[:10]}"
        assert self.twice == [], f"writes applied twice: {self.twice[:10]}"
        assert self.phantom == [], f"writes nobody sent: {self.phantom[:10]}"

    def line(self) -> str:
        return (
            f"acknowledged={self.acknowledged} refused={self.refused} unsent={self.unsent} "
            f"unknown={self.unknown} applied_unknown={len(self.applied_unknown)}"
            + (
                f" (answered: {Counter(w.label for w in self.applied_unknown)})"
                if self.applied_unknown
                else ""
            )
        )


def applied_writes(engine: sa.Engine, user_ids: Sequence[int]) -> Counter[tuple[int, str, Decimal]]:
    """How often each (user, kind, amount) moved the user's funding account, from the journal."""
    e, leg, account = t.journal_entry, t.journal_leg, t.account
    query = (
        sa.select(account.c.user_id, e.c.kind, leg.c.amount)
        .select_from(leg.join(e, e.c.id == leg.c.entry_id).join(account, account.c.id == leg.c.account_id))
        .where(account.c.kind == "funding", e.c.kind.in_(BASES), account.c.user_id.in_(user_ids))
    )
    with engine.connect() as conn:
        return Counter((row.user_id, row.kind, abs(row.amount)) for row in conn.execute(query))


def check_writes(engine: sa.Engine, writes: Sequence[Write], user_ids: Sequence[int]) -> WriteCheck:
    applied = applied_writes(engine, user_ids)
    sent = {(w.user_id, w.kind, w.amount): w for w in writes}
    assert len(sent) == len(writes), "the traders reused an amount"
    outcomes = Counter(w.outcome for w in writes)

    def seen(w: Write) -> int:
        return applied.get((w.user_id, w.kind, w.amount), 0)

    return WriteCheck(
        acknowledged=outcomes[Outcome.ACKNOWLEDGED],
        refused=outcomes[Outcome.REFUSED],
        unsent=outcomes[Outcome.UNSENT],
        unknown=outcomes[Outcome.UNKNOWN],
        applied_unknown=[w for w in writes if w.outcome is Outcome.UNKNOWN and seen(w)],
        lost=[w for w in writes if w.outcome is Outcome.ACKNOWLEDGED and not seen(w)],
        wrongly_applied=[w for w in writes if w.outcome in (Outcome.REFUSED, Outcome.UNSENT) and seen(w)],
        twice=[k for k, n in applied.items() if n > 1],
        phantom=[k for k in applied if k not in sent],
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def report(tally: Tally, seconds: float) -> str:
    """Requests, throughput and latency per façade, and the mix of answers."""
    lines = [f"LOAD: {tally.requests()} requests in {seconds:.1f} s ({tally.requests() / seconds:.0f}/s)"]
    for facade in (OKX, BITGET):
        lat = tally.latencies[facade]
        mix = ", ".join(f"{label}={n}" for (f, label), n in tally.answers.most_common() if f == facade)
        lines.append(
            f"  {facade}: {tally.requests(facade)} requests ({tally.requests(facade) / seconds:.0f}/s), "
            f"latency p50 {percentile(lat, 0.5) * 1000:.1f} ms, p95 {percentile(lat, 0.95) * 1000:.1f} ms, "
            f"p99 {percentile(lat, 0.99) * 1000:.1f} ms; answers: {mix}"
        )
    lines.append(
        "  p50/p95 ms by request: "
        + ", ".join(
            f"{kind} {percentile(lat, 0.5) * 1000:.0f}/{percentile(lat, 0.95) * 1000:.0f}"
            for kind, lat in sorted(tally.by_kind.items())
        )
    )
    return "\n".join(lines)
