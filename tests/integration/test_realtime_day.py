"""Binance's flexible model settled on a real database (SQLite and PostgreSQL): a day of real-time
plus bonus rewards with a subscription, a redemption and an APR change inside it, every figure
worked by hand here (docs/facades.md, "A day of real-time and bonus rewards").

The product: BTC, rewards to 8 places, a manual real-time APR of 2% from its creation, bonus bands
0–5 BTC at 3% and 5–10 BTC at 1% (nothing above 10). A minute's reward is balance × APR / 525 600
(365 × 1440); a minute earns on the least balance held through the whole of it.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from flexearn.adapters import clock
from flexearn.adapters import tables as t
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, ProductFields
from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, realtime_apr, scheduler
from tests.helpers import T0, advance, assert_ledger_ok, lender, market_world, start_clock

HOUR, MINUTE = 3_600_000, 60_000
DAY1 = T0 + 16 * HOUR  # the first day start after the world's creation at T0 + 1 h
BANDS = [
    {"minStepVal": "0", "maxStepVal": "5", "currentApy": "3"},
    {"minStepVal": "5", "maxStepVal": "10", "currentApy": "1"},
]


def world(app: Flexearn, **spec: Any) -> int:
    start_clock(app, T0 + HOUR)
    accounts.add_currency(app.uow(), "BTC", 8)
    fields = {"coin": "BTC", "apyType": "ladder", "apyList": BANDS, "aprSource": "manual", "apr": "2", **spec}
    return catalog.create_product(app.uow(), product_spec.parse(fields)).id


def user(app: Flexearn, name: str) -> int:
    user_id = accounts.create_user(app.uow(), name, "normal")
    accounts.deposit(app.uow(), user_id, "BTC", D(20))
    return user_id


def move_to(app: Flexearn, at: int) -> None:
    with app.uow() as uow:
        clock.advance(uow.conn, at - uow.now())
        uow.commit()


def orders(app: Flexearn, user_id: int, order_type: str) -> list[tuple[int, Decimal]]:
    o = t.earn_order
    with app.engine.connect() as conn:
        query = sa.select(o.c.ts, o.c.amount).where(o.c.user_id == user_id, o.c.order_type == order_type)
        rows = conn.execute(query.order_by(o.c.id)).all()
    return [(r.ts, r.amount) for r in rows]


@pytest.mark.parametrize("ranges", [1, 3])
def test_a_day_of_real_time_and_bonus_rewards_by_hand(app: Flexearn, ranges: int) -> None:
    """In one transaction, and in three ranges of users (Alice and Bob in different ones)."""
    product = world(app)
    alice = user(app, "alice")
    for filler in range(3):  # users between Alice and Bob, so that three ranges split them
        user(app, f"carol{filler}")
    bob, dave = user(app, "bob"), user(app, "dave")
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(4))  # at T0 + 1 h, a whole minute
    move_to(app, DAY1 + 2 * HOUR)
    catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(1))
    move_to(app, DAY1 + 3 * HOUR)
    catalog_trading.redeem(app.uow(), bob, product, "flexible", D(1), at=1)  # bob's holding closes
    move_to(app, DAY1 + 6 * HOUR + 30_500)  # inside minute 360 of day 2: earns from minute 361
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(8))

    # Day 1 ([DAY1 − 1 day, DAY1)), settled late, after day 2's orders: alice held 4 BTC for the
    # 900 minutes from T0 + 1 h. REALTIME 4 × 2 × 900 = 7200 percent-minutes / 52 560 000
    # = 0.000136986301… → 0.00013698; BONUS 4 × 3 × 900 = 10 800 → 0.000205479452… → 0.00020547.
    [day1] = scheduler.settle_due_days(app.engine, ranges=ranges)
    assert (day1.day, day1.holdings, day1.interest) == (DAY1, 1, D("0.00034245"))

    move_to(app, DAY1 + 12 * HOUR)
    catalog.update_product(app.uow(), product, ProductFields(apr=D(5)))  # 5% from minute 720
    move_to(app, DAY1 + 18 * HOUR + 20_000)  # inside minute 1080: it earns on what is left
    catalog_trading.redeem(app.uow(), alice, product, "flexible", D(10), at=2)
    move_to(app, DAY1 + DAY_MS - MINUTE)
    catalog_trading.subscribe(app.uow(), dave, product, "flexible", D(1))  # the last minute: 1439
    move_to(app, DAY1 + DAY_MS)
    [day2] = scheduler.settle_due_days(app.engine, ranges=ranges)

    # Day 2, alice: 4 BTC over minutes [0, 361), 12 over [361, 1080), 2 over [1080, 1440).
    # REALTIME: 4×2×361 + 12×2×359 + 12×5×360 + 2×5×360 = 2888 + 8616 + 21600 + 3600 = 36 704
    #   / 52 560 000 = 0.000698325722… → 0.00069832.
    # BONUS: (4×3)×361 + (5×3 + 5×1)×719 + (2×3)×360 = 4332 + 14 380 + 2160 = 20 872
    #   / 52 560 000 = 0.000397108066… → 0.00039710.
    # Bob held 1 BTC for minutes [120, 180) and nothing at the day's end (his holding is closed):
    # REALTIME 1×2×60 = 120 → 0.00000228; BONUS 1×3×60 = 180 → 0.00000342.
    assert orders(app, alice, "pay_interest") == [(DAY1, D("0.00013698")), (DAY1 + DAY_MS, D("0.00069832"))]
    assert orders(app, alice, "pay_bonus") == [(DAY1, D("0.00020547")), (DAY1 + DAY_MS, D("0.00039710"))]
    assert orders(app, bob, "pay_interest") == [(DAY1 + DAY_MS, D("0.00000228"))]
    assert orders(app, bob, "pay_bonus") == [(DAY1 + DAY_MS, D("0.00000342"))]
    # Dave held 1 BTC for minute 1439 only: REALTIME 1×5×1 = 5 → 0.000000095… → 0.00000009;
    # BONUS 1×3×1 = 3 → 0.000000057… → 0.00000005.
    assert orders(app, dave, "pay_interest") == [(DAY1 + DAY_MS, D("0.00000009"))]
    assert orders(app, dave, "pay_bonus") == [(DAY1 + DAY_MS, D("0.00000005"))]
    assert (day2.holdings, day2.interest) == (3, D("0.00109542") + D("0.00000570") + D("0.00000014"))

    # Paid to funding (Binance's SPOT): 20 − 4 − 8 + 10 + both days' rewards.
    day1_paid, day2_paid = D("0.00034245"), D("0.00109542")
    assert accounts.funding_balances(app.uow(), alice)[0].available == D(18) + day1_paid + day2_paid
    assert accounts.funding_balances(app.uow(), bob)[0].available == D(20) + D("0.00000570")
    with app.engine.connect() as conn:
        held = conn.execute(
            sa.select(t.holding.c.amount, t.holding.c.total_profit, t.holding.c.last_profit).where(
                t.holding.c.user_id == alice
            )
        ).one()
    assert tuple(held) == (D(2), day1_paid + day2_paid, day2_paid)
    assert realtime_apr.apr_history(app.uow(), product) == [(T0 + HOUR, D(2)), (DAY1 + 12 * HOUR, D(5))]
    j = t.journal_entry
    with app.engine.connect() as conn:
        query = sa.select(j.c.ref).where(j.c.kind == "catalog_interest", j.c.ts == DAY1 + DAY_MS)
        day2_refs = list(conn.execute(query.order_by(j.c.ref)).scalars())
    whole = f"product:{product}:day:{DAY1 + DAY_MS}"
    # three ranges: Alice in the first, Bob and Dave in the last, each range its own entry
    assert day2_refs == ([whole] if ranges == 1 else [f"{whole}:range:0", f"{whole}:range:2"])
    assert_ledger_ok(app)


def test_a_product_without_an_apr_source_keeps_the_catalog_day(app: Flexearn) -> None:
    """Bitget's model unchanged: 4 BTC at the ladder's 3% on the first 5: 4 × 3% / 365 = 0.00032876…"""
    product = world(app, aprSource=None, apr=None)
    alice = user(app, "alice")
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(4))
    move_to(app, DAY1 + DAY_MS)
    scheduler.settle_due_days(app.engine)
    assert orders(app, alice, "pay_interest") == [(DAY1 + DAY_MS, D("0.00032876"))]
    assert orders(app, alice, "pay_bonus") == []
    assert realtime_apr.apr_history(app.uow(), product) == []


def test_the_simulated_apr_walks_each_hour_within_its_bounds_and_pays_on_it(app: Flexearn) -> None:
    product = world(app, aprSource="simulated", apr="4", aprLow="3", aprHigh="5", aprStep="0.5", aprSeed="9")
    alice = user(app, "alice")
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(1))
    move_to(app, DAY1 + DAY_MS)
    scheduler.settle_all_due(app.engine)
    history = realtime_apr.apr_history(app.uow(), product)
    assert [ts for ts, _ in history] == list(range(T0 + HOUR, DAY1 + DAY_MS + 1, HOUR))
    assert all(D(3) <= apr <= D(5) for _, apr in history)
    assert all(abs(b - a) <= D("0.5") for (_, a), (_, b) in itertools.pairwise(history))
    # Day 2 by hand from the walk's recorded hours: 1 BTC, each hour 60 minutes at its APR.
    day2 = [apr for ts, apr in history if DAY1 <= ts < DAY1 + DAY_MS]
    expected = (sum(day2, D(0)) * 60 / D(52_560_000)).quantize(D("0.00000001"), rounding="ROUND_DOWN")
    assert orders(app, alice, "pay_interest")[-1] == (DAY1 + DAY_MS, expected)
    assert_ledger_ok(app)


def test_an_apr_set_by_hand_on_a_walking_product_keeps_the_walks_hours_before_it(app: Flexearn) -> None:
    """The walk's hours not yet caught up are recorded before the operator's APR (else the history,
    and a day paid on it, would show a flat rate where the walk moved)."""
    product = world(app, aprSource="simulated", apr="4", aprLow="3", aprHigh="5", aprStep="0.5", aprSeed="9")
    move_to(app, T0 + 3 * HOUR + 1_000)  # no settlement pass: the walk is not caught up
    catalog.update_product(app.uow(), product, product_spec.parse({"apr": "3.5"}))
    history = realtime_apr.apr_history(app.uow(), product)
    assert [ts for ts, _ in history] == [*range(T0 + HOUR, T0 + 3 * HOUR + 1, HOUR), T0 + 3 * HOUR + 1_000]
    assert history[-1][1] == D("3.5")


@pytest.mark.parametrize(
    ("spec", "error", "param"),
    [
        ({"aprSource": "manual", "apr": None}, MissingParameter, "apr"),
        ({"aprSource": "weekly"}, InvalidParameter, "aprSource"),
        (
            {"aprSource": "simulated", "apr": "9", "aprLow": "1", "aprHigh": "5", "aprStep": "1"},
            InvalidParameter,
            "apr",
        ),
        ({"aprSource": "simulated", "aprLow": "1"}, MissingParameter, "aprHigh"),
        ({"aprSource": "market"}, InvalidParameter, "aprSource"),  # no BTC lending market
        ({"aprSource": None, "apr": "3"}, InvalidParameter, "apr"),
        ({"periodType": "fixed", "period": "30"}, InvalidParameter, "aprSource"),
        ({"apr": "-1"}, InvalidParameter, "apr"),
    ],
)
def test_bad_apr_specs_are_refused_whole(
    app: Flexearn, spec: dict[str, Any], error: type[Exception], param: str
) -> None:
    start_clock(app, T0 + HOUR)
    accounts.add_currency(app.uow(), "BTC", 8)
    fields = {"coin": "BTC", "apyType": "ladder", "apyList": BANDS, "aprSource": "manual", "apr": "2", **spec}
    with pytest.raises(error) as refused:
        catalog.create_product(app.uow(), product_spec.parse(fields))
    assert refused.value.param == param  # type: ignore[attr-defined]
    assert catalog.list_products(app.uow(), None, None, "all") == []


def test_the_market_source_follows_the_settled_lending_rate_of_the_same_currency(app: Flexearn) -> None:
    """The hourly settlement example (test_hourly_settlement.py): lenders at 2%, 5% and 10% and a
    demand of 150 clear at a borrow rate of 5%, a lending rate of 4.25% after the 15% fee."""
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    lender(app, "B", "USDT", D(100), D("0.05"))
    spec = {"coin": "USDT", "apyList": [BANDS[0]], "aprSource": "market"}
    product = catalog.create_product(app.uow(), product_spec.parse(spec)).id
    assert realtime_apr.apr_history(app.uow(), product) == []  # no hour settled yet
    advance(app, 2)
    scheduler.settle_all_due(app.engine)
    # Both hours lend at 4.25%: one change, at the first hour.
    assert realtime_apr.apr_history(app.uow(), product) == [(T0 + HOUR, D("4.25"))]
    with app.uow() as uow:
        assert realtime_apr.current(uow.conn, [product], uow.now()) == {product: D("4.25")}


def uow_now(app: Flexearn) -> int:
    with app.uow() as uow:
        return uow.now()


def row_counts(app: Flexearn) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in t.metadata.tables.items()
        }


def test_accrual_by_the_minute_writes_nothing_until_the_days_distribution(app: Flexearn) -> None:
    """Two holdings earning through every minute of two days, the hours settled as the settler
    does: no row is written anywhere until the distribution, which writes the same few rows however
    many minutes a day has."""
    product = world(app)
    alice, bob = user(app, "alice"), user(app, "bob")
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(4))
    catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(7))
    scheduler.settle_all_due(app.engine)
    before = row_counts(app)
    for hour in range(1, 40):  # every hour until day 2's end, settled as the settler settles hours
        move_to(app, T0 + HOUR + hour * HOUR)
        scheduler.settle_due_hours(app.engine)
        assert row_counts(app) == before, hour
    assert uow_now(app) == DAY1 + DAY_MS
    scheduler.settle_due_days(app.engine)  # days 1 and 2
    written = {name: n - before[name] for name, n in row_counts(app).items() if n != before[name]}
    # per day: 2 holdings × (REALTIME, BONUS) orders, one journal entry (3 legs) and the day's
    # marker; once, the account the interest is booked from
    assert written == {
        "earn_order": 2 * 2 * 2,
        "journal_entry": 2,
        "journal_leg": 2 * 3,
        "earn_product_day": 2,
        "ledger_account": 1,
    }
    assert [ts for ts, _ in orders(app, alice, "pay_bonus")] == [DAY1, DAY1 + DAY_MS]
    assert_ledger_ok(app)
