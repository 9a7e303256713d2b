"""A running flexearn server over a seeded database, for tests that talk HTTP to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, keys, markets
from tests.helpers import market_world
from tests.server import running_server

LADDER = [
    {"rateLevel": "0", "minStepVal": "0", "maxStepVal": "200", "currentApy": "6.00"},
    {"rateLevel": "1", "minStepVal": "200", "maxStepVal": "5000", "currentApy": "50.00"},
]
# The catalog every server in these tests offers (ids in creation order).
FLEXIBLE_USDT, FIXED_BTC = 1, 2


@dataclass(frozen=True)
class World:
    app: Flexearn
    base_url: str
    user_id: int
    key: keys.NewKey
    master_key: str

    def new_key(
        self,
        permissions: str = "read,trade",
        ips: str = "",
        expires_days: int | None = None,
        facades: str = keys.ALL_FACADES,
    ) -> keys.NewKey:
        return keys.create_key(
            self.app.uow(),
            SecretBox(self.master_key),
            self.user_id,
            permissions,
            ips,
            expires_days,
            facades=facades,
        )


def _markets(app: Flexearn) -> None:
    """USDT (16 places, auction, demand 150) and BTC (8 places, demand 1); two catalog products:
    a flexible USDT ladder like Bitget's example, and a 30-day fixed BTC product."""
    market_world(app, "USDT", demand=D(150))
    accounts.add_currency(app.uow(), "BTC", 8)
    markets.set_market(app.uow(), "BTC", demand=D(1))
    flexible = catalog.create_product(
        app.uow(),
        product_spec.parse(
            {
                "coin": "USDT",
                "periodType": "flexible",
                "apyType": "ladder",
                "apyList": LADDER,
                "singleMinAmount": "10",
                "singleMaxAmount": "2000",
                "quota": "4900",
                "subscribePrecision": "6",
                "profitPrecision": "6",
                "redeemDelay": "1",
            }
        ),
    )
    fixed = catalog.create_product(
        app.uow(),
        product_spec.parse(
            {
                "coin": "BTC",
                "periodType": "fixed",
                "period": "30",
                "apyType": "single",
                "advanceRedeem": "Yes",
                "settleMethod": "daily",
                "apyList": [{"minStepVal": "0", "maxStepVal": "100", "currentApy": "3.65"}],
                "singleMinAmount": "0.001",
                "singleMaxAmount": "10",
                "subscribePrecision": "8",
                "profitPrecision": "8",
            }
        ),
    )
    assert (flexible.id, fixed.id) == (FLEXIBLE_USDT, FIXED_BTC)


def _user(app: Flexearn, master: str, base_url: str) -> World:
    """A new user holding 1000 USDT and 2 BTC, with a read+trade key."""
    user_id = accounts.create_user(app.uow(), f"user-{uuid.uuid4().hex[:8]}")
    accounts.deposit(app.uow(), user_id, "USDT", D(1000))
    accounts.deposit(app.uow(), user_id, "BTC", D(2))
    key = keys.create_key(app.uow(), SecretBox(master), user_id, "read,trade")
    return World(app, base_url, user_id, key, master)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    """A server of its own, on a clock at T0 that the test advances."""
    app = Flexearn(database_url)
    _markets(app)
    master = generate_master_key()
    try:
        with running_server(database_url, master) as base:
            yield _user(app, master, base)
    finally:
        app.close()


@pytest.fixture(scope="module")
def shared_server(module_database_url: str) -> Iterator[tuple[Flexearn, str, str]]:
    app = Flexearn(module_database_url)
    _markets(app)
    master = generate_master_key()
    try:
        with running_server(module_database_url, master) as base:
            yield app, master, base
    finally:
        app.close()


@pytest.fixture
def user(shared_server: tuple[Flexearn, str, str]) -> World:
    """A fresh user on a server shared by the module (tests must not move its clock)."""
    return _user(*shared_server)
