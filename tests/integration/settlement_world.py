"""A world of settled hours and catalog days, and its snapshot: what settlement wrote, ledger included.

`test_settlement_golden.py` holds today's code to the snapshot that the code of 549310d (before
settlement was reshaped) wrote for the same world, committed as `golden/settlement_world.json`.
That file was made by this module as committed in 092eda3, whose code is 549310d's, on both
databases (checked to agree), and is remade the same way:

    git archive 092eda3 | tar -x -C /tmp/at-092eda3 && cd /tmp/at-092eda3
    PYTHONPATH=src:. python -m tests.integration.settlement_world settlement_world.json

The world: `seed` (an auction and a pro-rata market, a flexible and a
one-day fixed daily-paid ladder product, 24 users), plus a 2-day fixed product paid at maturity
and some users subscribing to it, then HOURS hours of trading, each settled by the scheduler.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import clock
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, markets, savings, scheduler
from tests.helpers import T0, start_clock

USERS = 24
LADDER = [
    {"rateLevel": "0", "minStepVal": "0", "maxStepVal": "200", "currentApy": "6.00"},
    {"rateLevel": "1", "minStepVal": "200", "maxStepVal": "5000", "currentApy": "12.00"},
]


def seed(app: Flexearn) -> tuple[list[int], list[int]]:
    """Two markets, two products, USERS funded users saving in the flexible one (every third in the
    fixed one too)."""
    start_clock(app, T0 + HOUR_MS + 1)
    accounts.add_currency(app.uow(), "USDT", 8)
    accounts.add_currency(app.uow(), "BTC", 10)
    markets.set_market(app.uow(), "USDT", mode="auction", demand=D(9000))
    markets.set_market(app.uow(), "BTC", mode="pro_rata", demand=D("3.5"), borrow_rate=D("0.06"))
    spec = {"coin": "USDT", "apyType": "ladder", "apyList": LADDER}
    flexible = catalog.create_product(app.uow(), product_spec.parse({**spec, "periodType": "flexible"})).id
    fixed = catalog.create_product(
        app.uow(), product_spec.parse({**spec, "periodType": "fixed", "period": "1", "settleMethod": "daily"})
    ).id
    rng = random.Random(7)
    users = []
    for n in range(USERS):
        user = accounts.create_user(app.uow(), f"user{n}")
        accounts.deposit(app.uow(), user, "USDT", D(50_000))
        accounts.deposit(app.uow(), user, "BTC", D(20))
        users.append(user)
        catalog_trading.subscribe(app.uow(), user, flexible, "flexible", D(rng.randint(50, 3000)))
        if n % 3 == 0:
            catalog_trading.subscribe(app.uow(), user, fixed, "fixed", D(rng.randint(100, 900)))
    return users, [flexible, fixed]


def trade(app: Flexearn, users: list[int], rng: random.Random) -> None:
    """An hour's trading: purchases at a rate, redemptions, rate changes."""
    for user in rng.sample(users, 8):
        ccy, lot = rng.choice([("USDT", 1500), ("BTC", 1)])
        rate = D(rng.choice(["0.01", "0.02", "0.04", "0.06", "0.09"]))
        action = rng.random()
        held = next((p.amt for p in savings.positions(app.uow(), user, ccy)), D(0))
        if action < 0.6 or held == 0:
            savings.purchase(app.uow(), user, ccy, D(rng.randint(1, 100)) * lot / 100, rate)
        elif action < 0.85:
            savings.redeem(app.uow(), user, ccy, (held / 3).quantize(D("0.0001"), rounding="ROUND_DOWN"))
        else:
            savings.set_rate(app.uow(), user, ccy, rate)


HOURS = 72  # three Bitget days turn: 2026-01-01T16:00Z, 01-02T16:00Z, 01-03T16:00Z


def build(app: Flexearn, ranges: int, threads: int = 1) -> None:
    users, _ = seed(app)
    spec = {"coin": "USDT", "apyType": "ladder", "apyList": LADDER, "periodType": "fixed"}
    maturity = catalog.create_product(
        app.uow(), product_spec.parse({**spec, "period": "2", "settleMethod": "maturity"})
    ).id
    for user in users[1::4]:
        catalog_trading.subscribe(app.uow(), user, maturity, "fixed", D(700 + 13 * user))
    rng = random.Random(11)
    for _ in range(HOURS):
        trade(app, users, rng)
        with app.uow() as uow:
            clock.advance(uow.conn, HOUR_MS)
            uow.commit()
        scheduler.settle_all_due(app.engine, ranges=ranges, threads=threads)


def _text(value: Any) -> Any:
    """Amounts by value (SQLite keeps the text written, PostgreSQL the numeric's scale)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


def snapshot(app: Flexearn, *, ranged: bool = False) -> dict[str, Any]:
    """Every row settlement writes, without ids and wall-clock times. The journal as (kind, ref, ts,
    legs by account key) per entry; `ranged`: only what a settlement in ranges writes the same —
    each account's balance and sum of legs, and the entries that are not settlement's."""
    p, h, mh, ho = t.position, t.lending_history, t.market_hour, t.holding
    o, pd, a = t.earn_order, t.product_day, t.account
    e, leg = t.journal_entry, t.journal_leg
    with app.engine.connect() as conn:

        def rows(query: sa.Select[Any]) -> list[list[Any]]:
            return [[_text(v) for v in r] for r in conn.execute(query)]

        found = conn.execute(sa.select(e.c.id, e.c.kind, e.c.ref, e.c.ts))
        entries: dict[int, tuple[str, str, int]] = {i: (kind, ref, ts) for i, kind, ref, ts in found}
        legs: dict[int, list[list[Any]]] = defaultdict(list)
        sums: dict[str, Decimal] = defaultdict(Decimal)
        query = sa.select(leg.c.entry_id, a.c.key, leg.c.amount, leg.c.position_id, leg.c.holding_id).join(
            a, a.c.id == leg.c.account_id
        )
        for entry_id, key, amount, position_id, holding_id in conn.execute(query):
            legs[entry_id].append([key, _text(amount), position_id, holding_id])
            sums[key] += amount
        settled = ("interest", "catalog_interest")
        journal = sorted(
            [*entries[i], sorted(legs[i])] for i in entries if not (ranged and entries[i][0] in settled)
        )
        return {
            "positions": rows(sa.select(p.c.id, p.c.amt, p.c.loan, p.c.earnings, p.c.rate).order_by(p.c.id)),
            "history": rows(
                sa.select(h.c.position_id, h.c.ts, h.c.amt, h.c.earnings, h.c.rate).order_by(
                    h.c.ts, h.c.position_id
                )
            ),
            "hours": rows(
                sa.select(*(c for c in mh.c if c.name not in ("entry_id", "created_at"))).order_by(
                    mh.c.ccy, mh.c.hour
                )
            ),
            "holdings": rows(
                sa.select(
                    ho.c.id,
                    ho.c.user_id,
                    ho.c.product_id,
                    ho.c.amount,
                    ho.c.accrued,
                    ho.c.total_profit,
                    ho.c.last_profit,
                    ho.c.interest_time,
                    ho.c.expire_time,
                    ho.c.open,
                ).order_by(ho.c.id)
            ),
            "orders": sorted(
                rows(sa.select(o.c.user_id, o.c.holding_id, o.c.order_type, o.c.amount, o.c.status, o.c.ts)),
                key=str,
            ),
            "days": rows(
                sa.select(pd.c.product_id, pd.c.day, pd.c.holdings, pd.c.interest).order_by(
                    pd.c.product_id, pd.c.day
                )
            ),
            "balances": rows(sa.select(a.c.key, a.c.balance).order_by(a.c.key)),
            "leg_sums": {key: _text(total) for key, total in sorted(sums.items())},
            "journal": journal,
        }


def main(out: str) -> None:
    """Build the world on SQLite and on PostgreSQL (in ranges of 1), check both agree, write it."""
    from tests.conftest import postgres_database

    snaps = []
    with tempfile.TemporaryDirectory() as directory:
        snaps.append(_built(f"sqlite:///{directory}/world.db"))
    for url in postgres_database():
        snaps.append(_built(url))
    assert snaps[0] == snaps[1], "SQLite and PostgreSQL disagree"
    Path(out).write_text(json.dumps(snaps[0], indent=0, sort_keys=True) + "\n")


def _built(url: str) -> dict[str, Any]:
    app = Flexearn(url)
    try:
        build(app, ranges=1)
        return snapshot(app)
    finally:
        app.close()


if __name__ == "__main__":
    main(sys.argv[1])
