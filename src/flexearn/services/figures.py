"""Figures that read every position or every settled period, computed once per change and kept in
this process's memory, so that public reads (the dashboard, `lending-rate-summary`'s estimate,
/metrics) cost a few index lookups however often they are asked.

Two figures are kept: each currency's `Book` (its positions summed: the supply curve, what is held
and what is lent) and the `Totals` of history (interest paid, catalog holdings). Each is stored
with the *data version* read in the same transaction — the newest journal entry, the newest rate
setting and each market's last settled hour, three index lookups. Every change of a position or
holding moves one of them: purchases, redemptions, subscriptions and interest post a journal
entry, a rate change writes a rate setting, a settled hour writes its market hour (even one with
no interest, which moves the loans). An unchanged version serves the figure from memory.

How stale a figure may be (what docs/dashboard.md promises):
- a figure of fewer than `exact_below` rows (a sandbox-sized market) is recomputed as soon as the
  version moves: it is exact;
- a larger one is recomputed when the version moved but at most once per `1 / cpu_share` times
  the time its last computation took (10× by default): however many clients ask, recomputing it
  takes at most about a tenth of a thread, and it is late by at most that interval (about 1 s at
  50,000 positions);
- whatever the version says, a figure is recomputed when asked after `max_age` seconds (10): on
  PostgreSQL, ids are taken before commit, so a transaction committing after one with a newer id
  does not move the version; this bounds how long that can go unseen.

While one thread recomputes a figure, the others serve the previous one rather than queue behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.domain.money import ZERO
from flexearn.services.ledger_check import _sums as exact_sums

EXACT_BELOW = 1_000  # rows: figures smaller than this are recomputed on every change
CPU_SHARE = 0.1  # of a thread, at most, spent recomputing one figure that keeps changing
MAX_AGE_S = 10.0  # seconds a figure is served on an unchanged version before it is read again


class Sized(Protocol):
    @property
    def rows(self) -> int: ...


F = TypeVar("F", bound=Sized)


@dataclass(frozen=True)
class Book:
    """One currency's positions, summed."""

    supply: tuple[tuple[Decimal, Decimal], ...]  # (minimum rate, amount offered at it), cheapest first
    amount: Decimal  # everything held
    lent: Decimal  # lent in the current hour
    rows: int  # positions read


@dataclass(frozen=True)
class Totals:
    """Sums over history, per currency (market) or coin (catalog)."""

    interest_paid: dict[str, Decimal]  # market interest paid to lenders, ever
    catalog_held: dict[str, Decimal]  # open catalog holdings
    catalog_interest_paid: dict[str, Decimal]  # catalog interest paid, ever
    rows: int  # settled hours and days read


def read_book(conn: sa.Connection, ccy: str) -> Book:
    """Every position of `ccy`, summed: by PostgreSQL (exact NUMERIC sums, a row per rate), or here
    on SQLite, which keeps amounts as text and may not add them up in SQL."""
    p = t.position
    if conn.dialect.name == "postgresql":
        offered = sa.func.sum(sa.case((p.c.amt > ZERO, p.c.amt)), type_=t.Amount)
        query = sa.select(p.c.rate, offered, sa.func.sum(p.c.amt), sa.func.sum(p.c.loan), sa.func.count())
        groups = conn.execute(query.where(p.c.ccy == ccy).group_by(p.c.rate).order_by(p.c.rate)).all()
        return Book(
            tuple((rate, amount) for rate, amount, *_ in groups if amount is not None),
            sum((g[2] for g in groups), ZERO),
            sum((g[3] for g in groups), ZERO),
            sum(g[4] for g in groups),
        )
    by_rate: dict[Decimal, Decimal] = {}
    amount = lent = ZERO
    rows = 0
    query = sa.select(p.c.rate, p.c.amt, p.c.loan).where(p.c.ccy == ccy)
    for rate, amt, loan in conn.execute(query.execution_options(yield_per=10_000)):
        rows += 1
        amount += amt
        lent += loan
        if amt > 0:
            by_rate[rate] = by_rate.get(rate, ZERO) + amt
    return Book(tuple(sorted(by_rate.items())), amount, lent, rows)


def read_totals(conn: sa.Connection) -> Totals:
    m, h = t.market_hour, t.holding
    paid = exact_sums(conn, m.c.interest_paid, [m.c.ccy], m)
    joined = h.join(t.product, t.product.c.id == h.c.product_id)
    held = exact_sums(conn, h.c.amount, [t.product.c.coin], joined, h.c.open.is_(True))
    days = t.product_day.join(t.product, t.product.c.id == t.product_day.c.product_id)
    catalog_paid = exact_sums(conn, t.product_day.c.interest, [t.product.c.coin], days)
    count = sa.select(sa.func.count()).select_from
    rows = sum(conn.execute(count(table)).scalar_one() for table in (m, t.product_day))
    return Totals(dict(paid), dict(held), dict(catalog_paid), rows)


def data_version(conn: sa.Connection) -> Hashable:
    """What moves whenever a position, holding or settled period changes (see the module doc)."""
    m, last = t.market, t.market_hour
    hours = conn.execute(
        sa.select(
            m.c.ccy, sa.select(sa.func.max(last.c.hour)).where(last.c.ccy == m.c.ccy).scalar_subquery()
        ).order_by(m.c.ccy)
    ).all()
    newest = conn.execute(
        sa.select(
            sa.select(sa.func.max(t.journal_entry.c.id)).scalar_subquery(),
            sa.select(sa.func.max(t.rate_setting.c.id)).scalar_subquery(),
        )
    ).one()
    return (tuple(newest), tuple(map(tuple, hours)))


@dataclass
class _Entry:
    version: Hashable
    value: Any
    at: float  # time.monotonic() when computed
    cost: float  # seconds the computation took
    rows: int


@dataclass
class FigureCache:
    """This process's figures (one per `Flexearn`); see the module doc for when each is recomputed."""

    exact_below: int = EXACT_BELOW
    cpu_share: float = CPU_SHARE
    max_age: float = MAX_AGE_S
    _entries: dict[Hashable, _Entry] = field(default_factory=dict)
    _computing: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    computed: int = 0  # computations so far (for tests and curiosity)

    def get(self, key: Hashable, version: Hashable, compute: Callable[[], F]) -> F:
        with self._lock:
            entry = self._entries.get(key)
            gate = self._computing.setdefault(key, threading.Lock())
        if entry is not None and self._servable(entry, version):
            return entry.value  # type: ignore[no-any-return]
        if not gate.acquire(blocking=entry is None):  # another thread recomputes it: serve the last
            return entry.value  # type: ignore[union-attr,no-any-return]
        try:
            entry = self._entries.get(key)  # it may have been recomputed while this thread waited
            if entry is not None and entry.version == version and self._young(entry):
                return entry.value  # type: ignore[no-any-return]
            started = time.monotonic()
            value = compute()
            done = time.monotonic()
            with self._lock:
                self._entries[key] = _Entry(version, value, done, done - started, value.rows)
                self.computed += 1
            return value
        finally:
            gate.release()

    def _young(self, entry: _Entry) -> bool:
        return time.monotonic() - entry.at < max(self.max_age, self._interval(entry))

    def _interval(self, entry: _Entry) -> float:
        """The least time between two computations of a figure that keeps changing."""
        return 0.0 if entry.rows < self.exact_below else entry.cost / self.cpu_share

    def _servable(self, entry: _Entry, version: Hashable) -> bool:
        if entry.version == version:
            return self._young(entry)
        return time.monotonic() - entry.at < self._interval(entry)


class Figures:
    """The figures as one transaction sees them: served from `cache` when it holds them for the
    data version this transaction reads (read once, before anything else), else read here."""

    def __init__(self, conn: sa.Connection, cache: FigureCache | None) -> None:
        self.conn, self.cache = conn, cache
        self.version = None if cache is None else data_version(conn)

    def book(self, ccy: str) -> Book:
        if self.cache is None:
            return read_book(self.conn, ccy)
        return self.cache.get(("book", ccy), self.version, lambda: read_book(self.conn, ccy))

    def totals(self) -> Totals:
        if self.cache is None:
            return read_totals(self.conn)
        return self.cache.get(("totals",), self.version, lambda: read_totals(self.conn))
