"""Auto-subscribe (services/earn_wallets.py) on a real database, through the scheduler: the day's
interest paid into funding, a deposit and a transfer into funding are swept into the product for a
user with it on, and stay in funding for a user with it off; what the product cannot take is
skipped without a word, and nothing a sweep does unbalances the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import Status
from flexearn.domain.catalog_errors import NoSuchProduct
from flexearn.domain.earn_wallets import Wallet
from flexearn.domain.errors import InvalidParameter
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, earn_wallets, transfers
from tests.conftest import postgres_database
from tests.helpers import assert_ledger_ok
from tests.integration.test_catalog import days, funded_user, funding, holding, world


def _auto_orders(app: Flexearn, user_id: int) -> list[tuple[Decimal, str, bool]]:
    o, w = t.earn_order, t.order_wallet
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.c.amount, w.c.wallet, w.c.auto)
            .join(w, w.c.order_id == o.c.id)
            .where(o.c.user_id == user_id)
            .order_by(o.c.id)
        ).all()
    return [(r.amount, r.wallet, r.auto) for r in rows]


def test_interest_deposits_and_transfers_are_swept_with_auto_subscribe_on_and_not_off(app: Flexearn) -> None:
    product = world(app, singleMinAmount="1", singleMaxAmount="5000", quota="100000")
    on, off = funded_user(app, D(1000)), funded_user(app, D(1000), "VIP")
    for user in (on, off):
        catalog_trading.subscribe(app.uow(), user, product, "flexible", D(1000))
    earn_wallets.set_auto_subscribe(app.uow(), on, product, True)
    assert earn_wallets.products_on(app.uow(), on) == {product}
    assert earn_wallets.products_on(app.uow(), off) == set()

    days(app, 2)  # interest from the next day's start, paid into funding a day later
    # a day on 1000: (200 × 6% + 800 × 50%) / 365 = 1.128767 (rounded down to 6 places)
    assert funding(app, off) == D("1.128767")  # paid, left in funding
    assert holding(app, off).amount == D(1000)
    assert funding(app, on) == 0  # paid, then swept
    assert holding(app, on).amount == D("1001.128767")
    assert _auto_orders(app, on) == [(D("1.128767"), "funding", True)]

    accounts.deposit(app.uow(), on, "USDT", D(50))
    accounts.deposit(app.uow(), off, "USDT", D(50))
    assert (funding(app, on), holding(app, on).amount) == (0, D("1051.128767"))
    assert funding(app, off) == D("51.128767")

    # trading → funding (a transfer into SPOT) is swept; funding → trading is not a sweep
    accounts.deposit(app.uow(), on, "USDT", D(30), AccountKind.TRADING)
    transfers.transfer(app.uow(), on, "USDT", D(30), AccountKind.TRADING, AccountKind.FUNDING)
    assert (funding(app, on), holding(app, on).amount) == (0, D("1081.128767"))

    earn_wallets.set_auto_subscribe(app.uow(), on, product, False)
    accounts.deposit(app.uow(), on, "USDT", D(5))
    assert (funding(app, on), holding(app, on).amount) == (D(5), D("1081.128767"))
    assert [a for a, _, _ in _auto_orders(app, on)] == [D("1.128767"), D(50), D(30)]
    assert_ledger_ok(app)


def test_a_sweep_skips_silently_what_the_product_cannot_take(app: Flexearn) -> None:
    """Below the product's minimum, above its single maximum or quota left, or while it is paused:
    the deposit is made, the sweep takes what it can (or nothing), and no error is raised."""
    product = world(app, singleMinAmount="10", singleMaxAmount="100", quota="150")
    user = funded_user(app, D(20))
    catalog_trading.subscribe(app.uow(), user, product, "flexible", D(20))
    earn_wallets.set_auto_subscribe(app.uow(), user, product, True)

    accounts.deposit(app.uow(), user, "USDT", D(5))  # below the minimum of 10: stays
    assert (funding(app, user), holding(app, user).amount) == (D(5), D(20))
    accounts.deposit(app.uow(), user, "USDT", D(300))  # 305: the single maximum is 100
    assert (funding(app, user), holding(app, user).amount) == (D(205), D(120))
    accounts.deposit(app.uow(), user, "USDT", D(1))  # 206 available, 30 left of the quota
    assert (funding(app, user), holding(app, user).amount) == (D(176), D(150))

    catalog.set_status(app.uow(), product, Status.PAUSED)
    accounts.deposit(app.uow(), user, "USDT", D(100))
    assert funding(app, user) == D(276)
    assert_ledger_ok(app)


def test_setting_auto_subscribe_takes_only_a_flexible_product(app: Flexearn) -> None:
    product = world(app)
    fixed = catalog.create_product(
        app.uow(),
        product_spec.parse(
            {
                "coin": "USDT",
                "periodType": "fixed",
                "period": "7",
                "apyType": "single",
                "apyList": [{"minStepVal": "0", "maxStepVal": "100", "currentApy": "5"}],
            }
        ),
    ).id
    user = funded_user(app)
    with pytest.raises(NoSuchProduct):
        earn_wallets.set_auto_subscribe(app.uow(), user, 999, True)
    with pytest.raises(InvalidParameter):
        earn_wallets.set_auto_subscribe(app.uow(), user, fixed, True)
    earn_wallets.set_auto_subscribe(app.uow(), user, product, True)
    earn_wallets.set_auto_subscribe(app.uow(), user, product, True)  # again: still on, once
    assert earn_wallets.products_on(app.uow(), user) == {product}


def test_a_subscription_from_all_takes_funding_first_and_is_refused_whole(app: Flexearn) -> None:
    product = world(app, singleMinAmount="1", singleMaxAmount="5000")
    user = funded_user(app, D(100))
    accounts.deposit(app.uow(), user, "USDT", D(40), AccountKind.TRADING)
    order = catalog_trading.subscribe(app.uow(), user, product, "flexible", D(120), Wallet.ALL)
    assert _auto_orders(app, user) == [(D(120), "all", False)]
    assert funding(app, user) == 0
    assert accounts.trading_balances(app.uow(), user)[0].balance == D(20)
    with app.engine.connect() as conn:
        parts = conn.execute(sa.select(t.order_wallet).where(t.order_wallet.c.order_id == order.id)).one()
    assert (parts.funding, parts.trading) == (D(100), D(20))
    assert_ledger_ok(app)


def test_a_deposit_while_the_products_day_is_settled_in_ranges_is_made_and_swept_later(app: Flexearn) -> None:
    """A product whose day is open (being settled in ranges) is skipped: the deposit neither
    waits nor fails, and the next credit sweeps what was left."""
    product = world(app, singleMinAmount="1", singleMaxAmount="5000")
    user = funded_user(app, D(100))
    earn_wallets.set_auto_subscribe(app.uow(), user, product, True)
    opened = {"kind": "day", "key": str(product), "period": 0, "plan": "{}", "opened_at": 0}
    with app.engine.begin() as conn:
        conn.execute(sa.insert(t.settlement_open).values(**opened))
    accounts.deposit(app.uow(), user, "USDT", D(10))
    assert funding(app, user) == D(110)
    with app.engine.begin() as conn:
        conn.execute(sa.delete(t.settlement_open))
    accounts.deposit(app.uow(), user, "USDT", D(1))
    assert (funding(app, user), holding(app, user).amount) == (0, D(111))
    assert_ledger_ok(app)


def test_a_single_maximum_finer_than_the_precision_is_swept_cut_to_the_precision(app: Flexearn) -> None:
    """The single maximum 100.0000005 has more places than the product takes (6): the sweep
    subscribes it cut down, 100, where the uncut amount would be refused (and, in the deposit's
    own transaction, once refused the deposit with it)."""
    product = world(app, singleMinAmount="1", singleMaxAmount="100.0000005")
    user = funded_user(app, D(1))
    catalog_trading.subscribe(app.uow(), user, product, "flexible", D(1))
    earn_wallets.set_auto_subscribe(app.uow(), user, product, True)
    accounts.deposit(app.uow(), user, "USDT", D(150))
    assert (funding(app, user), holding(app, user).amount) == (D(50), D(101))
    assert_ledger_ok(app)


@pytest.mark.postgres
def test_a_deposit_while_the_product_is_locked_is_made_at_once_and_swept_later() -> None:
    """Another transaction holds the product's row (as a day settled in one transaction does, for
    all of it): the deposit neither waits for it nor fails, its sweep skips the product (SKIP
    LOCKED), and the next credit sweeps what was left. PostgreSQL's row locks (SQLite has one
    writer at a time: a sweep there never meets a lock another writer holds)."""
    for url in postgres_database():
        app = Flexearn(url)
        try:
            product = world(app, singleMinAmount="1", singleMaxAmount="5000")
            user = funded_user(app, D(100))
            earn_wallets.set_auto_subscribe(app.uow(), user, product, True)
            with app.engine.connect() as settling:
                settling.execute(sa.select(t.product.c.id).where(t.product.c.id == product).with_for_update())
                accounts.deposit(app.uow(), user, "USDT", D(10))  # once: waited for `settling`
                assert funding(app, user) == D(110)
                settling.rollback()
            accounts.deposit(app.uow(), user, "USDT", D(1))
            assert (funding(app, user), holding(app, user).amount) == (0, D(111))
            assert_ledger_ok(app)
        finally:
            app.close()
