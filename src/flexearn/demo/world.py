"""The sandbox world: currencies, markets, lenders, catalog products, a user with a key whose money
is in its trading account (as a real user's is: savings are bought from funding, after a transfer).

The catalog is what all three façades sell: Bitget's savings products, and Binance's Simple Earn
flexible products (one per BTC, ETH, USDT and the operator's own token, FLX or as `--token`
names it, some with bands; BTC's with a real-time APR that moves each hour, as Binance's flexible
products earn) and locked products (the fixed-term ones). The operator's token
has no lending market: it is bought and sold only as catalog products, so it adds nothing to
each hour's settlement (the demo's start time).

Everything random is drawn from one generator seeded by `--seed`; the simulated demand is seeded
by (seed, currency, hour), so the same seed and the same start hour give the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flexearn.adapters.clock import HOUR_MS, floor_hour, wall_ms
from flexearn.adapters.secrets import SecretBox
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.errors import FlexearnError
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import D
from flexearn.services import (
    accounts,
    catalog,
    catalog_trading,
    catalog_views,
    keys,
    markets,
    savings,
    scheduler,
)
from flexearn.services import clock as clock_service


@dataclass(frozen=True)
class Coin:
    precision: int
    mode: str | None  # the lending market's matching mode; None: no market, catalog products only
    lot: Decimal  # a typical lender's holding
    demand: Decimal  # simulated mean borrow demand per hour
    rate: Decimal  # base borrow rate
    usdt: Decimal  # reference price


MARKETS: dict[str, Coin] = {  # the currencies with a lending market
    "BTC": Coin(8, "auction", D("0.5"), D("12"), D("0.02"), D("65000")),
    "ETH": Coin(8, "auction", D("8"), D("200"), D("0.03"), D("3200")),
    "SOL": Coin(6, "auction", D("150"), D("3500"), D("0.05"), D("150")),
    "USDT": Coin(6, "pro_rata", D("20000"), D("450000"), D("0.08"), D("1")),
    "USDC": Coin(6, "pro_rata", D("15000"), D("250000"), D("0.06"), D("1")),
}
# The operator's own token (as BNB is Binance's), named by `flexearn demo --token` (FLX unless
# named): catalog products only, no market.
HOUSE_TOKEN = "FLX"
HOUSE_COIN = Coin(8, None, D("50"), D(0), D(0), D("4.5"))
LENDERS = 40
DEMO_USER = "demo"
HISTORY_HOURS = 7 * 24

LADDER = [
    {"minStepVal": "0", "maxStepVal": "200", "currentApy": "6"},
    {"minStepVal": "200", "maxStepVal": "5000", "currentApy": "50"},
]
# The catalog, in creation order (product ids 1 to 8 on a fresh database; 1 to 4 were the first
# demo's, kept in place for the bots and snippets that name them).
PRODUCTS: list[dict[str, Any]] = [
    {  # the Bitget seed's ladder: 6% on the first 200 USDT, 50% up to 5000
        "coin": "USDT", "periodType": "flexible", "apyType": "ladder", "apyList": LADDER,
        "singleMinAmount": "10", "singleMaxAmount": "5000", "quota": "150000",
        "subscribePrecision": "6", "profitPrecision": "6", "redeemDelay": "1",
    },
    {
        "coin": "BTC", "periodType": "fixed", "period": "30", "apyType": "single",
        "apyList": [{"minStepVal": "0", "maxStepVal": "100", "currentApy": "3.65"}],
        "advanceRedeem": "Yes", "singleMinAmount": "0.001", "singleMaxAmount": "10", "quota": "40",
        "subscribePrecision": "8", "profitPrecision": "8",
    },
    {  # not VIP-only: Bitget documents the level as `VIP` and typed-bitget's product list admits
       # only `vip` (its records and assets admit `VIP`), so a listed VIP product fails its validation
        "coin": "USDC", "periodType": "flexible", "apyType": "single",
        "apyList": [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "12"}],
        "singleMinAmount": "100", "singleMaxAmount": "100000", "quota": "1000000",
        "subscribePrecision": "6", "profitPrecision": "6",
    },
    {
        "coin": "USDT", "periodType": "fixed", "period": "7", "apyType": "single",
        "productLevel": "beginner",
        "apyList": [{"minStepVal": "0", "maxStepVal": "500", "currentApy": "20"}],
        "singleMinAmount": "10", "singleMaxAmount": "500", "quota": "20000",
        "subscribePrecision": "6", "profitPrecision": "6",
    },
    {  # Binance's flexible BTC, Binance's model: a real-time APR that moves each hour (a seeded
       # walk, 1-3%, from 1.8%) plus bonus bands on the first 20 BTC (`tierAnnualPercentageRate`)
        "coin": "BTC", "periodType": "flexible", "apyType": "ladder",
        "aprSource": "simulated", "apr": "1.8", "aprLow": "1", "aprHigh": "3", "aprStep": "0.05",
        "apyList": [
            {"minStepVal": "0", "maxStepVal": "1", "currentApy": "2.5"},
            {"minStepVal": "1", "maxStepVal": "20", "currentApy": "0.8"},
        ],
        "singleMinAmount": "0.0001", "singleMaxAmount": "20", "quota": "500",
        "subscribePrecision": "8", "profitPrecision": "8",
    },
    {
        "coin": "ETH", "periodType": "flexible", "apyType": "single",
        "apyList": [{"minStepVal": "0", "maxStepVal": "1000", "currentApy": "2.1"}],
        "singleMinAmount": "0.001", "singleMaxAmount": "1000", "quota": "20000",
        "subscribePrecision": "8", "profitPrecision": "8",
    },
    {  # the operator's token, as Binance lists BNB: a high rate on a small first band
        "coin": HOUSE_TOKEN, "periodType": "flexible", "apyType": "ladder",
        "apyList": [
            {"minStepVal": "0", "maxStepVal": "100", "currentApy": "9"},
            {"minStepVal": "100", "maxStepVal": "10000", "currentApy": "1.5"},
        ],
        "singleMinAmount": "1", "singleMaxAmount": "10000", "quota": "1000000",
        "subscribePrecision": "8", "profitPrecision": "8",
    },
    {  # Binance's locked ETH: 90 days
        "coin": "ETH", "periodType": "fixed", "period": "90", "apyType": "single",
        "apyList": [{"minStepVal": "0", "maxStepVal": "500", "currentApy": "4.2"}],
        "advanceRedeem": "Yes", "singleMinAmount": "0.01", "singleMaxAmount": "500", "quota": "5000",
        "subscribePrecision": "8", "profitPrecision": "8",
    },
]  # fmt: skip


def coins(token: str) -> dict[str, Coin]:
    """The world's currencies: the markets', and the operator's token named `token`."""
    if token in MARKETS:
        raise ValueError(f"the operator's token cannot be named {token}: a market's currency")
    return {**MARKETS, token: HOUSE_COIN}


def products(token: str) -> list[dict[str, Any]]:
    """The catalog, the operator's token's products in `token`."""
    return [{**spec, "coin": token} if spec["coin"] == HOUSE_TOKEN else spec for spec in PRODUCTS]


@dataclass(frozen=True)
class DemoWorld:
    user_id: int
    key: keys.NewKey
    now: int  # business time when the clock starts running
    product_ids: list[int]
    seed: int
    history_hours: int
    resumed: bool = False  # a world built by an earlier run, continued
    token: str = HOUSE_TOKEN  # the operator's token's name


def seed_world(
    app: Flexearn,
    box: SecretBox,
    *,
    seed: int,
    speed: Decimal,
    now: int | None = None,
    history_hours: int = HISTORY_HOURS,
    key: keys.NewKey | None = None,
    progress: scheduler.Progress | None = None,
    token: str = HOUSE_TOKEN,
) -> DemoWorld:
    """Build the world on an empty database `history_hours` before `now`, settle up to `now`,
    then start the simulated clock there at `speed` (`progress`: told each history hour built).
    The demo user gets `key` if given (the key file's: a rebuilt world keeps a bot's key), else a
    new one; the operator's token is named `token`."""
    rng = random.Random(seed)
    now = floor_hour(wall_ms() if now is None else now)
    _set_clock(app, D(0), now - history_hours * HOUR_MS)
    world_coins, specs = coins(token), products(token)
    for ccy, coin in world_coins.items():
        accounts.add_currency(app.uow(), ccy, coin.precision)
        catalog_views.set_price(app.uow(), ccy, coin.usdt)
        if coin.mode is None:  # the operator's token: catalog products only
            continue
        simulation = SimulatedDemand(mean=coin.demand, base_rate=coin.rate, seed=seed)
        markets.set_market(
            app.uow(),
            ccy,
            mode=coin.mode,
            demand_source="simulated",
            demand=coin.demand,
            borrow_rate=coin.rate,
            simulation=simulation,
        )
    product_ids = [catalog.create_product(app.uow(), product_spec.parse(spec)).id for spec in specs]
    lenders = [_lender(app, rng, n) for n in range(LENDERS)]
    for user_id in rng.sample(lenders, 12):
        _subscribe_somewhere(app, rng, user_id, dict(zip(product_ids, specs, strict=True)), world_coins)
    user_id = accounts.create_user(app.uow(), DEMO_USER)
    # where a real user's money starts: a transfer to funding comes first
    for ccy, coin in world_coins.items():
        accounts.deposit(app.uow(), user_id, ccy, coin.lot * 10, AccountKind.TRADING)
    key = keys.create_key(app.uow(), box, user_id, "read,trade", reissue=key)
    for hour in range(history_hours):
        clock_service.move(app.uow(), 1)
        scheduler.settle_all_due(app.engine)
        _market_activity(app, rng, lenders)
        if progress is not None:
            progress(hour + 1, history_hours)
    _set_clock(app, speed, now)
    scheduler.settle_all_due(app.engine)
    return DemoWorld(user_id, key, now, product_ids, seed, history_hours, token=token)


def _set_clock(app: Flexearn, speed: Decimal, at: int) -> None:
    clock_service.set_simulated(app.uow(), speed, at)


def _amount(rng: random.Random, coin: Coin) -> Decimal:
    return (coin.lot * rng.randint(10, 400) / 100).quantize(D(1).scaleb(-min(coin.precision, 4)))


def _rate(rng: random.Random, coin: Coin) -> Decimal:
    # minimum rates spread around the base rate, in whole basis points
    return max(D("0.01"), (coin.rate * rng.randint(20, 220) / 100).quantize(D("0.0001")))


def _lender(app: Flexearn, rng: random.Random, n: int) -> int:
    user_id = accounts.create_user(app.uow(), f"lender{n:02d}", "VIP" if n % 8 == 0 else "normal")
    for ccy, coin in MARKETS.items():  # the operator's token: deposited if it is subscribed to
        amount = _amount(rng, coin)
        accounts.deposit(app.uow(), user_id, ccy, amount * 2)
        savings.purchase(app.uow(), user_id, ccy, amount, _rate(rng, coin))
    return user_id


def _subscribe_somewhere(
    app: Flexearn,
    rng: random.Random,
    user_id: int,
    catalog_specs: dict[int, dict[str, Any]],
    world_coins: dict[str, Coin],
) -> None:
    """A lender puts some of its spare funds in a catalog product (id → spec) it is allowed to buy.
    (Each lender's deposit of the operator's token is made here, when needed, not for all forty:
    a transaction each, and the demo's start time counts them.)"""
    for product_id in rng.sample(list(catalog_specs), len(catalog_specs)):
        spec = catalog_specs[product_id]
        ccy, top = spec["coin"], D(spec["singleMaxAmount"])
        places = D(1).scaleb(-int(spec["subscribePrecision"]))
        amount = min(top, _amount(rng, world_coins[ccy])).quantize(places)
        if ccy not in MARKETS:  # the operator's token: a lender holds it only to buy its products
            accounts.deposit(app.uow(), user_id, ccy, amount)
        try:
            catalog_trading.subscribe(app.uow(), user_id, product_id, spec["periodType"], amount)
            return
        except FlexearnError:  # not eligible, below the minimum, out of funds: try another
            continue


def _market_activity(app: Flexearn, rng: random.Random, lenders: list[int]) -> None:
    """Now and then a lender buys more, redeems some, or moves its minimum rate."""
    if rng.random() > 0.3:
        return
    user_id, ccy = rng.choice(lenders), rng.choice(list(MARKETS))
    coin, action = MARKETS[ccy], rng.choice(("buy", "redeem", "rate"))
    try:
        if action == "buy":
            accounts.deposit(app.uow(), user_id, ccy, coin.lot)
            savings.purchase(app.uow(), user_id, ccy, coin.lot, _rate(rng, coin))
        elif action == "redeem":
            savings.redeem(app.uow(), user_id, ccy, (coin.lot / 4).quantize(D("0.0001")))
        else:
            savings.set_rate(app.uow(), user_id, ccy, _rate(rng, coin))
    except FlexearnError:  # e.g. redeeming more than the position holds: the lender changes its mind
        pass
