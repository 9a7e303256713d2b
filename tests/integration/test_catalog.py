"""Catalog products (SPEC §3) on a real database: worked examples of interest, terms, limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, REDEEM_INTERVAL_MS, Status
from flexearn.domain.catalog_errors import (
    AboveMaximum,
    BeginnersOnly,
    BelowMinimum,
    NotEligible,
    ProductNotStarted,
    ProductUnavailable,
    QuotaExceeded,
    RedemptionRefused,
    SubscriptionUnfunded,
    TooFrequent,
    TooPrecise,
)
from flexearn.domain.errors import InsufficientBalance, InvalidParameter, MissingParameter, NotFound
from flexearn.domain.ledger import AccountKind, AccountRef, Entry, compound, leg
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, catalog_views, scheduler, settlement
from flexearn.services.settlement import day as day_kind
from tests.helpers import T0, assert_ledger_ok, start_clock
from tests.helpers import advance as advance_hours

# The world's clock starts at T0 + 1 h (2026-01-01T01:00Z): its first Bitget day starts at 00:00
# UTC+8 that day, 16:00 UTC, and every day starts 24 h after the one before.
DAY1 = T0 + 16 * 3_600_000
LADDER = [
    {"rateLevel": "0", "minStepVal": "0", "maxStepVal": "200", "currentApy": "6.00"},
    {"rateLevel": "1", "minStepVal": "200", "maxStepVal": "5000", "currentApy": "50.00"},
]


def world(app: Flexearn, **product: Any) -> int:
    """USDT; the clock at T0 + 1 h (a Thursday's 01:00 UTC, 09:00 UTC+8); one product."""
    start_clock(app, T0 + 3_600_000)
    accounts.add_currency(app.uow(), "USDT", 6)
    spec = {
        "coin": "USDT",
        "periodType": "flexible",
        "apyType": "ladder",
        "apyList": LADDER,
        "subscribePrecision": "6",
        "profitPrecision": "6",
        **product,
    }
    return catalog.create_product(app.uow(), product_spec.parse(spec)).id


def funded_user(app: Flexearn, amount: Decimal = D(10_000), level: str = "normal") -> int:
    user_id = accounts.create_user(app.uow(), f"u{amount}{level}{id(app)}{accounts.__name__}"[:60], level)
    accounts.deposit(app.uow(), user_id, "USDT", amount)
    return user_id


def days(app: Flexearn, n: int) -> list[settlement.SettledDay]:
    advance_hours(app, 24 * n)
    return scheduler.settle_due_days(app.engine)


def holding(app: Flexearn, user_id: int) -> sa.Row[Any]:
    with app.engine.connect() as conn:
        return conn.execute(sa.select(t.holding).where(t.holding.c.user_id == user_id)).one()


def funding(app: Flexearn, user_id: int) -> Decimal:
    return accounts.funding_balances(app.uow(), user_id)[0].available


def test_ladder_worked_example_1000_earns_1_128767_for_a_day(app: Flexearn) -> None:
    product = world(app)
    alice = funded_user(app)
    order = catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(1000))
    assert (order.order_type, order.status) == ("subscribe", "success")
    first, second = days(app, 2)
    # interest starts at the next 00:00 UTC+8, 16:00 UTC, and is paid a day later
    assert (first.day, first.interest) == (DAY1, D(0))
    assert (second.day, second.interest) == (DAY1 + DAY_MS, D("1.128767"))
    assert funding(app, alice) == D("9001.128767")
    assert_ledger_ok(app)


def test_a_subscription_earns_from_the_next_16_00_utc_as_in_bitgets_example(app: Flexearn) -> None:
    """The seed's subscribe-info: subscribed 07:51:59Z, interest from 16:00Z, first paid a day later."""
    product = world(app)
    advance_hours(app, 6.8664)  # 2026-01-01T07:51:59Z
    info = catalog.subscribe_info(app.uow(), product, "flexible")
    s = info.schedule
    assert (s.interest_time, s.settle_time) == (DAY1, DAY1 + DAY_MS)
    alice = funded_user(app)
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(1000))
    assert holding(app, alice).interest_time == DAY1
    advance_hours(app, 9)  # 16:51Z: a minute after 16:00Z, subscriptions wait for the next day
    assert catalog.subscribe_info(app.uow(), product, "flexible").schedule.interest_time == DAY1 + DAY_MS


def test_flexible_interest_is_paid_to_funding_every_day_on_the_principal(app: Flexearn) -> None:
    """Bitget pays flexible interest daily to the spot account: the holding stays what was bought."""
    product = world(app)
    alice = funded_user(app)
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(1000))
    days(app, 5)  # five day starts; four full days earned, the same each day
    row = holding(app, alice)
    assert (row.amount, row.total_profit, row.last_profit) == (D(1000), D("4.515068"), D("1.128767"))
    assert funding(app, alice) == D(9000) + D("4.515068")
    paid = [r.amount for r in catalog_views.records(app.uow(), alice, "flexible", "pay_interest")[0]]
    assert paid == [D("1.128767")] * 4
    assert_ledger_ok(app)


def test_fixed_daily_pays_funding_and_returns_principal_at_expiry(app: Flexearn) -> None:
    product = world(
        app,
        periodType="fixed",
        period="3",
        settleMethod="daily",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "36.5"}],
    )
    alice = funded_user(app, D(1000))
    catalog_trading.subscribe(app.uow(), alice, product, "fixed", D(1000))
    assert funding(app, alice) == 0
    days(app, 2)
    assert funding(app, alice) == D("1")  # 1000 × 36.5% / 365 for the one day earned so far
    days(app, 3)  # interest for the days ending DAY1+2d and DAY1+3d, expiry at DAY1+3d
    assert funding(app, alice) == D(1003)
    assert holding(app, alice).open is False
    assert_ledger_ok(app)


def test_fixed_maturity_pays_everything_at_expiry(app: Flexearn) -> None:
    product = world(
        app,
        periodType="fixed",
        period="2",
        settleMethod="maturity",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "36.5"}],
    )
    alice = funded_user(app, D(1000))
    catalog_trading.subscribe(app.uow(), alice, product, "fixed", D(1000))
    days(app, 2)
    assert (funding(app, alice), holding(app, alice).accrued) == (D(0), D(1))
    days(app, 1)
    assert funding(app, alice) == D(1002)
    records = {(r.order_type, r.amount) for r in catalog_views.records(app.uow(), alice, "fixed")[0]}
    assert records == {("subscribe", D(1000)), ("pay_interest", D(2)), ("redeem", D(1000))}
    assert_ledger_ok(app)


def test_early_redemption_returns_principal_less_the_interest_paid(app: Flexearn) -> None:
    product = world(
        app,
        periodType="fixed",
        period="30",
        settleMethod="daily",
        advanceRedeem="Yes",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "36.5"}],
    )
    alice = funded_user(app, D(1000))
    order = catalog_trading.subscribe(app.uow(), alice, product, "fixed", D(1000))
    days(app, 3)
    assert funding(app, alice) == D(2)
    with pytest.raises(InvalidParameter, match="whole"):
        catalog_trading.redeem(app.uow(), alice, product, "fixed", D(500), order.id)
    redeemed = catalog_trading.redeem(app.uow(), alice, product, "fixed", D(1000), order.id)
    assert redeemed.status == "success"
    assert funding(app, alice) == D(1000)  # 2 paid + 998 returned
    kinds = [(r.order_type, r.amount) for r in catalog_views.records(app.uow(), alice, "fixed")[0]]
    assert ("deduction", D(2)) in kinds
    assert_ledger_ok(app)


def test_fixed_without_early_redemption_refuses(app: Flexearn) -> None:
    product = world(
        app,
        periodType="fixed",
        period="30",
        advanceRedeem="No",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "5"}],
    )
    alice = funded_user(app)
    order = catalog_trading.subscribe(app.uow(), alice, product, "fixed", D(100))
    with pytest.raises(RedemptionRefused):
        catalog_trading.redeem(app.uow(), alice, product, "fixed", D(100), order.id)


def test_redemption_is_processing_until_its_delay_passes(app: Flexearn) -> None:
    product = world(app, redeemDelay="2")
    alice = funded_user(app, D(1000))
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(1000))
    order = catalog_trading.redeem(app.uow(), alice, product, "flexible", D(400))
    assert (order.status, order.arrive_at) == ("processing", T0 + 3_600_000 + 2 * DAY_MS)
    days(app, 1)
    assert catalog_trading.order_of(app.uow(), alice, order.id, "redeem").status == "processing"
    assert funding(app, alice) == 0
    days(app, 1)
    assert catalog_trading.order_of(app.uow(), alice, order.id, "redeem").status == "success"
    # the 400 arrived; the 600 left earned a day, paid to funding: (200 × 6% + 400 × 50%) / 365
    assert funding(app, alice) == D(400) + D("0.580821")
    assert_ledger_ok(app)


def test_quota_sells_out_and_frees_again(app: Flexearn) -> None:
    product = world(
        app,
        quota="1000",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000000", "currentApy": "5"}],
    )
    alice, bob = funded_user(app), funded_user(app, D(5000))
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(700))
    with pytest.raises(QuotaExceeded, match="only 300"):
        catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(301))
    catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(300))
    (view,) = catalog.list_products(app.uow(), None, "USDT", "all")
    assert (view.status.value, view.remaining) == ("sold_out", D(0))
    with pytest.raises(ProductUnavailable, match="sold_out"):
        catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(1))
    catalog_trading.redeem(app.uow(), alice, product, "flexible", D(100))
    (view,) = catalog.list_products(app.uow(), None, "USDT", "all")
    assert (view.status.value, view.remaining) == ("in_progress", D(100))


def test_the_quota_counts_what_is_held_exactly(app: Flexearn) -> None:
    """Holdings of 0.1 and 0.2 leave exactly 0.000001 of a 0.300001 quota, summed by either
    database's path (a float sum, 0.30000000000000004, would leave less and refuse the last)."""
    product = world(
        app,
        quota="0.300001",
        apyType="single",
        apyList=[{"minStepVal": "0", "maxStepVal": "1000000000", "currentApy": "5"}],
    )
    alice, bob, carol = funded_user(app, D(1)), funded_user(app, D(2)), funded_user(app, D(3))
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D("0.1"))
    catalog_trading.subscribe(app.uow(), bob, product, "flexible", D("0.2"))
    with pytest.raises(QuotaExceeded, match=r"only 0\.000001 of"):
        catalog_trading.subscribe(app.uow(), carol, product, "flexible", D("0.000002"))
    catalog_trading.subscribe(app.uow(), carol, product, "flexible", D("0.000001"))
    (view,) = catalog.list_products(app.uow(), None, "USDT", "all")
    assert (view.status.value, view.remaining) == ("sold_out", D(0))


def test_levels_beginner_once_and_vip_only(app: Flexearn) -> None:
    beginner_product = world(app, productLevel="beginner")
    vip_product = catalog.create_product(
        app.uow(),
        product_spec.parse({"coin": "USDT", "productLevel": "VIP", "apyList": LADDER, "apyType": "ladder"}),
    ).id
    newcomer = funded_user(app, level="beginner")
    catalog_trading.subscribe(app.uow(), newcomer, beginner_product, "flexible", D(10))
    with pytest.raises(BeginnersOnly, match="never subscribed"):
        catalog_trading.subscribe(app.uow(), newcomer, beginner_product, "flexible", D(10))
    with pytest.raises(NotEligible, match="VIP"):
        catalog_trading.subscribe(app.uow(), newcomer, vip_product, "flexible", D(10))
    vip = funded_user(app, level="VIP")
    catalog_trading.subscribe(app.uow(), vip, vip_product, "flexible", D(10))


def test_limits_precision_and_funds_are_checked(app: Flexearn) -> None:
    product = world(app, singleMinAmount="10", singleMaxAmount="500", subscribePrecision="2")
    alice = funded_user(app, D(100))
    for amount, error in ((D(9), BelowMinimum), (D(0), BelowMinimum), (D(501), AboveMaximum)):
        with pytest.raises(error):
            catalog_trading.subscribe(app.uow(), alice, product, "flexible", amount)
    with pytest.raises(TooPrecise, match="at most 2 decimal places"):
        catalog_trading.subscribe(app.uow(), alice, product, "flexible", D("10.001"))
    with pytest.raises(SubscriptionUnfunded):
        catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(200))
    with pytest.raises(InvalidParameter, match="periodType"):
        catalog_trading.subscribe(app.uow(), alice, product, "fixed", D(20))
    assert funding(app, alice) == D(100)
    assert_ledger_ok(app)


def test_status_refusals_and_transitions(app: Flexearn) -> None:
    product = world(app, startTime=str(T0 + DAY_MS), endTime=str(T0 + 3 * DAY_MS))
    alice = funded_user(app)
    with pytest.raises(ProductNotStarted, match="not_started"):
        catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(10))
    days(app, 1)
    catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(10))
    catalog.set_status(app.uow(), product, Status.PAUSED)
    with pytest.raises(ProductUnavailable, match="paused"):
        catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(10))
    catalog.set_status(app.uow(), product, Status.IN_PROGRESS)
    days(app, 2)
    with pytest.raises(ProductUnavailable, match="completed"):
        catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(10))
    catalog.set_status(app.uow(), product, Status.OFF_LINE)
    assert catalog.list_products(app.uow(), None, "USDT", "available") == []
    with pytest.raises(InvalidParameter, match="status"):  # the operator's word, where it arrives
        catalog.set_status(app.uow(), product, product_spec.operator_status("sold_out"))


def test_each_product_day_settles_once(app: Flexearn) -> None:
    product = world(app)
    days(app, 3)
    assert scheduler.settle_due_days(app.engine) == []
    assert settlement.settle_day(app.uow(), product, DAY1) is None
    with app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.product_day)).scalar() == 3


def test_a_users_redemptions_are_more_than_a_minute_apart_on_the_wall_clock(app: Flexearn) -> None:
    """Bitget: "The interval of each redeem should be more than 1min, or it would return error"."""
    product = world(app)
    single = [LADDER[0] | {"maxStepVal": "1000000000"}]
    other = catalog.create_product(
        app.uow(), product_spec.parse({"coin": "USDT", "apyType": "single", "apyList": single})
    ).id
    alice, bob = funded_user(app), funded_user(app, D(5000))
    for user in (alice, bob):
        catalog_trading.subscribe(app.uow(), user, product, "flexible", D(1000))
    catalog_trading.subscribe(app.uow(), alice, other, "flexible", D(1000))
    at = 1_800_000_000_000
    catalog_trading.redeem(app.uow(), alice, product, "flexible", D(100), at=at)
    for product_id, later in ((product, 400), (other, REDEEM_INTERVAL_MS)):  # per user, any product
        with pytest.raises(TooFrequent):
            catalog_trading.redeem(app.uow(), alice, product_id, "flexible", D(100), at=at + later)
    catalog_trading.redeem(app.uow(), bob, product, "flexible", D(100), at=at + 400)  # another user's own
    with pytest.raises(BelowMinimum):  # a refused redemption does not start the minute
        catalog_trading.redeem(app.uow(), alice, other, "flexible", D(0), at=at + REDEEM_INTERVAL_MS + 1)
    catalog_trading.redeem(app.uow(), alice, other, "flexible", D(100), at=at + REDEEM_INTERVAL_MS + 1)
    with pytest.raises(TooFrequent):
        catalog_trading.redeem(app.uow(), alice, product, "flexible", D(100), at=at + REDEEM_INTERVAL_MS + 2)
    assert (holding_of(app, alice, product), holding_of(app, alice, other)) == (D(900), D(900))
    assert_ledger_ok(app)


def holding_of(app: Flexearn, user_id: int, product_id: int) -> Decimal:
    with app.engine.connect() as conn:
        h = t.holding
        amount: Decimal = conn.execute(
            sa.select(h.c.amount).where(h.c.user_id == user_id, h.c.product_id == product_id)
        ).scalar_one()
    return amount


def holders_of_100(app: Flexearn, n: int) -> tuple[int, list[int]]:
    """A product paying 36.5 % on every amount (0.1 a day on 100) and `n` users holding 100 each."""
    single = [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "36.5"}]
    product = world(app, apyType="single", apyList=single)
    users = [accounts.create_user(app.uow(), f"holder-{i}", "normal") for i in range(n)]
    for user in users:
        accounts.deposit(app.uow(), user, "USDT", D(100))
        catalog_trading.subscribe(app.uow(), user, product, "flexible", D(100))
    return product, users


def test_a_day_of_many_entries_is_posted_a_bounded_group_at_a_time(
    app: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A product's day posts its interest entries `ENTRIES_PER_POST` at a time (what posting builds
    stays bounded whatever the product's size): the same entries, names and balances as at once."""
    product, users = holders_of_100(app, 201)
    posted: list[list[str]] = []
    post_many = repo.post_many

    def recorded(conn: sa.Connection, entries: list[Entry], ts: int) -> list[int]:
        posted.append([e.ref for e in entries])
        return post_many(conn, entries, ts)

    monkeypatch.setattr(day_kind, "ENTRIES_PER_POST", 2)
    monkeypatch.setattr(repo, "post_many", recorded)
    first, second = days(app, 2)
    assert (first.holdings, second.holdings, second.interest) == (0, 201, D("20.1"))
    day = f"product:{product}:day:{second.day}"
    assert posted == [[day, f"{day}:part:2"], [f"{day}:part:3"]]  # 100, 100 and 1 users
    with app.engine.connect() as conn:
        entry = t.journal_entry
        written = conn.execute(
            sa.select(entry.c.ref, sa.func.count(t.journal_leg.c.id))
            .join(t.journal_leg, t.journal_leg.c.entry_id == entry.c.id)
            .where(entry.c.kind == "catalog_interest")
            .group_by(entry.c.ref)
        ).all()
    assert sorted(written) == [(day, 101), (f"{day}:part:2", 101), (f"{day}:part:3", 2)]
    assert {funding(app, user) for user in users} == {D("0.1")}
    assert_ledger_ok(app)


def test_the_results_name_an_order_or_the_latest_of_a_product(app: Flexearn) -> None:
    """subscribe-result documents productId and periodType (its example sends orderId); redeem-result
    an orderId described as the "subscription order ID"."""
    product = world(app)
    alice, bob = funded_user(app), funded_user(app, D(5000))
    first = catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(100))
    second = catalog_trading.subscribe(app.uow(), alice, product, "flexible", D(200))
    theirs = catalog_trading.subscribe(app.uow(), bob, product, "flexible", D(300))
    assert catalog_views.subscription(app.uow(), alice, "flexible", None, product).id == second.id
    assert catalog_views.subscription(app.uow(), alice, "flexible", first.id, product).id == first.id
    assert catalog_views.subscription(app.uow(), alice, "flexible", first.id, None).id == first.id
    for order_id, product_id in ((theirs.id, None), (first.id, product + 1), (None, product + 1)):
        with pytest.raises(NotFound):
            catalog_views.subscription(app.uow(), alice, "flexible", order_id, product_id)
    with pytest.raises(MissingParameter, match="productId"):
        catalog_views.subscription(app.uow(), alice, "flexible", None, None)
    with pytest.raises(InvalidParameter, match="periodType"):
        catalog_views.subscription(app.uow(), alice, "fixed", first.id, None)
    with pytest.raises(NotFound):  # nothing redeemed yet
        catalog_views.redemption(app.uow(), alice, "flexible", first.id)
    redeemed = catalog_trading.redeem(app.uow(), alice, product, "flexible", D(50))
    for named in (redeemed.id, first.id, second.id):  # the holding's latest redemption
        assert catalog_views.redemption(app.uow(), alice, "flexible", named).id == redeemed.id
    with pytest.raises(NotFound):
        catalog_views.redemption(app.uow(), bob, "flexible", redeemed.id)


def test_a_day_paid_to_many_funding_accounts_is_posted_in_entries_of_a_hundred_users(app: Flexearn) -> None:
    """PostgreSQL checks each entry's balance once per leg: a day of interest for every holder goes
    out in entries of at most `USERS_PER_ENTRY` users, their balances moved set-based."""
    product, users = holders_of_100(app, 150)
    first, second = days(app, 2)
    assert (first.holdings, second.holdings, second.interest) == (0, 150, D(15))  # 0.1 each
    with app.engine.connect() as conn:
        refs = conn.execute(
            sa.select(t.journal_entry.c.ref).where(t.journal_entry.c.kind == "catalog_interest")
        ).scalars()
        day = f"product:{product}:day:{second.day}"
        assert sorted(refs) == [day, f"{day}:part:2"]
    assert {funding(app, user) for user in users} == {D("0.1")}
    assert_ledger_ok(app)
    debits = [leg(AccountRef.funding(user, "USDT"), D("-0.1")) for user in users[:99]]
    overdraw = [*debits, leg(AccountRef.funding(users[99], "USDT"), D("-0.2"))]
    external = leg(AccountRef.system(AccountKind.EXTERNAL, "USDT"), D("10.1"))
    with app.uow() as uow, pytest.raises(InsufficientBalance):  # the set-based path refuses as well
        repo.post(uow.conn, compound("test", "USDT", [*overdraw, external], "t"), 0)
    assert {funding(app, user) for user in users} == {D("0.1")}
