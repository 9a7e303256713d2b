"""Binance Simple Earn (flexible) over the catalog's flexible products, with `current`/`size` paging.

A Binance flexible product is a flexible catalog product (`services/catalog*.py`); its `productId`
is the catalog id. Binance shows a flexible product's rate as a real-time APR plus bonus APRs on
bands of the holding (`tierAnnualPercentageRate`, fractions: 0.05 is 5%).

A product with a real-time APR source (Binance's model, `domain/realtime.py`) is shown as it
earns: its current real-time APR as `latestAnnualPercentageRate`, its bands (the catalog tiers)
as `tierAnnualPercentageRate`, its day's REALTIME (`pay_interest`) and BONUS (`pay_bonus`)
rewards by type, its APR's recorded changes as `rateHistory`. A product without one (Bitget's
model) pays each band of its ladder its own APY (percent) every day: its first band's rate is
shown as `latestAnnualPercentageRate`, a ladder's bands (each with its whole rate) as
`tierAnnualPercentageRate`, and the daily interest as REALTIME rewards. Subscriptions come from,
and redemptions and interest go to, Binance's SPOT wallet: flexearn's funding account
(`api/binance/wallet.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import errors, locked, wallet
from flexearn.api.binance.common import BOOLEANS, RATE_PLACES, STATUSES, page, rate, spot_only
from flexearn.api.binance.wire import amount
from flexearn.api.facade import Endpoint
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import (
    DAY_MS,
    OrderStatus,
    OrderType,
    PeriodType,
    Product,
    Status,
    Tier,
    day_interest,
    day_start,
)
from flexearn.domain.money import ZERO, round_down
from flexearn.domain.realtime import day_estimate
from flexearn.services import catalog, catalog_trading, catalog_views, clock, realtime_apr

EARN = "/sapi/v1/simple-earn"
FLEXIBLE = PeriodType.FLEXIBLE.value
PER_SECOND = 1_000  # Binance limits by weight (`api/binance/weights.py`); this only caps bursts
MAX_ROWS = 100_000  # history rows read for one answer (three months at most: catalog_views)

# rewardsRecord's `type` (Binance: "BONUS - Bonus tiered APR, REALTIME - Real-time APR, REWARDS -
# Historical rewards, ALL - All types"): the day's orders of each. Every reward here is a day's
# real-time or bonus reward, so REWARDS, like ALL, is both.
PAY_INTEREST, PAY_BONUS = OrderType.PAY_INTEREST.value, OrderType.PAY_BONUS.value
REWARD_TYPES = {
    "BONUS": (PAY_BONUS,),
    "REALTIME": (PAY_INTEREST,),
    "REWARDS": (PAY_INTEREST, PAY_BONUS),
    "ALL": (PAY_INTEREST, PAY_BONUS),
}
RATE_WINDOW_MS = 30 * DAY_MS  # rateHistory's default window (Binance: "the last 30 days")
MAX_RATE_SPAN_MS = 365 * DAY_MS  # "cannot be longer than 1 year"


def _bands(tiers: tuple[Tier, ...], coin: str) -> dict[str, float]:
    """Bands as Binance writes them: "0-5BTC" → the band's APR, a JSON number. A rate cut to 8
    places has fewer than 15 significant digits, so the float's text (the shortest that reads
    back) is that decimal exactly."""
    return {
        f"{t.min_step.normalize():f}-{t.max_step.normalize():f}{coin}": float(
            round_down(t.apy / 100, RATE_PLACES)
        )
        for t in tiers
    }


def _bonus_bands(product: Product) -> tuple[Tier, ...]:
    return tuple(t for t in product.tiers if t.apy > 0)


def _rates(product: Product, aprs: dict[int, Decimal]) -> dict[str, Any]:
    """A real-time product: its APR now and its bonus bands (those that pay); else the first
    band's APY and a ladder's bands."""
    if product.realtime:
        rates: dict[str, Any] = {"latestAnnualPercentageRate": rate(aprs.get(product.id, ZERO))}
        bands = _bands(_bonus_bands(product), product.coin)
    else:
        rates = {"latestAnnualPercentageRate": rate(product.tiers[0].apy)}
        bands = _bands(product.tiers, product.coin) if len(product.tiers) > 1 else {}
    if bands:
        rates["tierAnnualPercentageRate"] = bands
    return rates


def _aprs(app: Flexearn, products: list[Product]) -> dict[int, Decimal]:
    """The current real-time APR of those of `products` that have one."""
    return realtime_apr.current_aprs(app.read_uow(), sorted({p.id for p in products if p.realtime}))


def _product_id(params: Params) -> int:
    return params.required_integer("productId", low=1)


def flexible_list(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    views = catalog.list_products(
        app.read_uow(), _user(caller), params.currency("asset"), "available_and_held"
    )
    aprs = _aprs(app, [v.product for v in views])
    rows = [
        {
            "asset": v.product.coin,
            **_rates(v.product, aprs),
            "airDropPercentageRate": "0",
            "canPurchase": v.status is Status.IN_PROGRESS,
            "canRedeem": True,
            "isSoldOut": v.status is Status.SOLD_OUT,
            "hot": False,
            "minPurchaseAmount": amount(v.product.single_min),
            "productId": str(v.product.id),
            **({} if v.product.start_time is None else {"subscriptionStartTime": v.product.start_time}),
            "status": STATUSES[v.status],
        }
        for v in views
        if v.product.period_type is PeriodType.FLEXIBLE
    ]
    return page(params, rows)


def flexible_position(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    product_id = params.integer("productId", low=1)
    held = [
        a
        for a in catalog_views.assets(app.read_uow(), _user(caller), FLEXIBLE, params.currency("asset"))
        if product_id is None or a.product.id == product_id
    ]
    aprs = _aprs(app, [a.product for a in held])
    totals = catalog_views.reward_totals(app.read_uow(), [a.holding_id for a in held if a.product.realtime])
    rows = [
        {
            "totalAmount": amount(a.amount),
            **_rates(a.product, aprs),
            "yesterdayAirdropPercentageRate": "0",
            "asset": a.product.coin,
            "airDropAsset": a.product.coin,
            "canRedeem": a.allow_redemption,
            "collateralAmount": "0",
            "productId": str(a.product.id),
            **_rewards(a, totals.get(a.holding_id)),
            "autoSubscribe": False,
        }
        for a in held
    ]
    return page(params, rows)


def _rewards(held: catalog_views.Asset, totals: catalog_views.RewardTotals | None) -> dict[str, str]:
    """A real-time holding's rewards by kind, from its orders; a catalog holding's daily interest
    is all real-time (its last day's and in all)."""
    if not held.product.realtime:
        realtime, bonus, last = held.total_profit, ZERO, held.last_profit
    else:
        totals = totals or catalog_views.RewardTotals()
        realtime, bonus, last = totals.realtime, totals.bonus, totals.last_day_realtime
    return {
        "yesterdayRealTimeRewards": amount(last),
        "cumulativeBonusRewards": amount(bonus),
        "cumulativeRealTimeRewards": amount(realtime),
        "cumulativeTotalRewards": amount(held.total_profit),
    }


def account(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    """The user's flexible and locked (fixed-term) catalog holdings, valued at the operator's
    reference prices (`catalog_views.set_price`), rounded down to 8 places."""
    uow = app.read_uow
    user = _user(caller)
    prices = {p.ccy: p.usdt for p in catalog_views.prices(uow())}
    prices.setdefault("USDT", Decimal(1))

    def usdt(period: str) -> Decimal:
        held = catalog_views.assets(uow(), user, period)
        return round_down(sum((a.amount * prices.get(a.product.coin, ZERO) for a in held), ZERO), 8)

    btc = prices.get("BTC")

    def in_btc(value: Decimal) -> str:
        return amount(round_down(value / btc, 8) if btc else ZERO, 8)

    flexible, locked = usdt(FLEXIBLE), usdt(PeriodType.FIXED.value)
    total = flexible + locked
    return {
        "totalAmountInBTC": in_btc(total),
        "totalAmountInUSDT": amount(total, 8),
        "totalFlexibleAmountInBTC": in_btc(flexible),
        "totalFlexibleAmountInUSDT": amount(flexible, 8),
        "totalLockedInBTC": in_btc(locked),
        "totalLockedInUSDT": amount(locked, 8),
    }


def flexible_subscribe(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    spot_only(params, "sourceAccount", ("SPOT", "FUND", "ALL"))
    params.choice("autoSubscribe", BOOLEANS)  # read, not yet kept: auto-subscribe is the next slice
    order = catalog_trading.subscribe(
        app.uow(), _user(caller), _product_id(params), FLEXIBLE, params.required_decimal("amount")
    )
    return {"purchaseId": order.id, "success": True}


def flexible_redeem(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    spot_only(params, "destAccount", ("SPOT", "FUND"))
    user, product_id = _user(caller), _product_id(params)
    if params.choice("redeemAll", BOOLEANS) == "true":
        held = [a for a in catalog_views.assets(app.read_uow(), user, FLEXIBLE) if a.product.id == product_id]
        size = held[0].amount if held else ZERO  # nothing held: the engine's refusal
    else:
        size = params.required_decimal("amount")
    order = catalog_trading.redeem(app.uow(), user, product_id, FLEXIBLE, size)
    return {"redeemId": order.id, "success": True}


def personal_left_quota(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    """How much more one subscription may buy: the product's single maximum, or what is left of
    its quota if that is less."""
    info = catalog.subscribe_info(app.read_uow(), _product_id(params), FLEXIBLE)
    left = info.product.single_max if info.remaining is None else min(info.remaining, info.product.single_max)
    return {"leftPersonalQuota": amount(left)}


def subscription_preview(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    """The holding after subscribing `amount`, and a day's interest on it at the product's rates
    (rounded down to its profit precision, as it is paid): for a real-time product, a whole day at
    its APR now and its bonus bands."""
    product_id, size = _product_id(params), params.required_decimal("amount")
    info = catalog.subscribe_info(app.read_uow(), product_id, FLEXIBLE)
    product = info.product
    held = [
        a.amount
        for a in catalog_views.assets(app.read_uow(), _user(caller), FLEXIBLE)
        if a.product.id == product_id
    ]
    total = sum(held, ZERO) + size
    if product.realtime:
        apr = _aprs(app, [product]).get(product.id, ZERO)
        realtime, bonus = day_estimate(total, apr, _bonus_bands(product), product.profit_precision)
    else:
        realtime, bonus = day_interest(total, product.tiers, product.profit_precision), ZERO
    return {
        "totalAmount": amount(total),
        "rewardAsset": product.coin,
        "airDropAsset": product.coin,
        "estDailyBonusRewards": amount(bonus),
        "estDailyRealTimeRewards": amount(realtime),
        "estDailyAirdropRewards": "0",
    }


def _records(
    app: Flexearn, caller: Caller | None, params: Params, order_type: str | None, id_param: str | None = None
) -> list[catalog_views.Record]:
    """The user's flexible orders of `order_type`, newest first, within the window asked for (the
    last three months by default); of `asset`, `productId` and the order `id_param` names, if given."""
    found, _ = catalog_views.records(
        app.read_uow(),
        _user(caller),
        FLEXIBLE,
        order_type,
        params.currency("asset"),
        params.integer("startTime"),
        params.integer("endTime"),
        MAX_ROWS,
    )
    product_id = params.integer("productId", low=1)
    order_id = None if id_param is None else params.integer(id_param, low=1)
    return [
        r
        for r in found
        if (product_id is None or r.product.id == product_id) and (order_id is None or r.order_id == order_id)
    ]


def subscription_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    rows = [
        {
            "amount": amount(r.amount),
            "asset": r.product.coin,
            "time": r.ts,
            "purchaseId": r.order_id,
            "productId": str(r.product.id),
            "type": "NORMAL",
            "sourceAccount": "SPOT",
            "amtFromSpot": amount(r.amount),
            "amtFromFunding": "0",
            "status": "SUCCESS" if r.status == OrderStatus.SUCCESS else "PURCHASING",
        }
        for r in _records(app, caller, params, "subscribe", "purchaseId")
    ]
    return page(params, rows)


def redemption_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    rows = [
        {
            "amount": amount(r.amount),
            "asset": r.product.coin,
            "time": r.ts,
            "projectId": str(r.product.id),
            "redeemId": r.order_id,
            "destAccount": "SPOT",
            "status": "PAID" if r.status == OrderStatus.SUCCESS else "PAYING",
        }
        for r in _records(app, caller, params, "redeem", "redeemId")
    ]
    return page(params, rows)


def rewards_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """Each day's rewards by type: REALTIME (a day's interest; of a real-time product, its
    real-time part) and BONUS (a real-time product's bonus bands), newest first."""
    kinds = REWARD_TYPES[params.choice("type", tuple(REWARD_TYPES)) or "ALL"]
    order_type = kinds[0] if len(kinds) == 1 else None
    rows = [
        {
            "asset": r.product.coin,
            "rewards": amount(r.amount),
            "projectId": str(r.product.id),
            "type": "BONUS" if r.order_type == PAY_BONUS else "REALTIME",
            "time": r.ts,
        }
        for r in _records(app, caller, params, order_type)
        if r.order_type in kinds
    ]
    return page(params, rows)


def rate_history(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """A real-time product's APR as recorded (`services/realtime_apr.py`), newest first, over
    Binance's window: the last 30 days, 30 days from `startTime` or before `endTime`, at most a
    year. A product of Bitget's model keeps no history of its rates (an operator's change takes
    effect at once): its APR now, dated at the start of the current day."""
    product = catalog.subscribe_info(app.read_uow(), _product_id(params), FLEXIBLE).product
    params.choice("aprPeriod", ("DAY", "YEAR"))  # read; Binance does not say what it changes
    now = clock.show(app.read_uow()).now
    start, end = params.integer("startTime"), params.integer("endTime")
    if product.realtime:
        return page(params, _apr_rows(app, product, start, end, now))
    dated = day_start(now)
    shown = (start is None or start <= dated) and (end is None or dated <= end) and dated > now - 90 * DAY_MS
    rows = [
        {
            "productId": str(product.id),
            "asset": product.coin,
            "annualPercentageRate": rate(product.tiers[0].apy),
            "time": dated,
        }
    ]
    return page(params, rows if shown else [])


def _apr_rows(app: Flexearn, product: Product, start: int | None, end: int | None, now: int) -> list[Any]:
    """The recorded APR over Binance's window, newest first (the APR in effect at the window's
    start, dated at it, last)."""
    if start is None:
        end = now if end is None else end
        start = end - RATE_WINDOW_MS
    elif end is None:
        end = start + RATE_WINDOW_MS
    if end < start or end - start > MAX_RATE_SPAN_MS:
        raise errors.bad_value("endTime", "not before startTime, and at most a year after it")
    history = realtime_apr.apr_history(app.read_uow(), product.id, start, end)
    return [
        {"productId": str(product.id), "asset": product.coin, "annualPercentageRate": rate(apr), "time": ts}
        for ts, apr in reversed(history)
    ]


def _private(method: str, path: str, handler: Any, permission: str = "read") -> Endpoint:
    return Endpoint(method, path, handler, permission, PER_SECOND)


def _public(path: str, handler: Any) -> Endpoint:
    return Endpoint("GET", path, handler, None, PER_SECOND)


ENDPOINTS = [
    _public("/api/v3/time", wallet.server_time),
    _public("/api/v3/exchangeInfo", wallet.exchange_info),
    _private("GET", "/api/v3/account", wallet.spot_account),
    _private("POST", "/sapi/v1/asset/get-funding-asset", wallet.funding_asset),
    _private("POST", "/sapi/v3/asset/getUserAsset", wallet.user_asset),
    _private("POST", "/sapi/v1/asset/transfer", wallet.universal_transfer, "trade"),
    _private("GET", f"{EARN}/flexible/list", flexible_list),
    _private("GET", f"{EARN}/flexible/position", flexible_position),
    _private("GET", f"{EARN}/account", account),
    _private("POST", f"{EARN}/flexible/subscribe", flexible_subscribe, "trade"),
    _private("POST", f"{EARN}/flexible/redeem", flexible_redeem, "trade"),
    _private("GET", f"{EARN}/flexible/personalLeftQuota", personal_left_quota),
    _private("GET", f"{EARN}/flexible/subscriptionPreview", subscription_preview),
    _private("GET", f"{EARN}/flexible/history/subscriptionRecord", subscription_record),
    _private("GET", f"{EARN}/flexible/history/redemptionRecord", redemption_record),
    _private("GET", f"{EARN}/flexible/history/rewardsRecord", rewards_record),
    _private("GET", f"{EARN}/flexible/history/rateHistory", rate_history),
    _private("GET", f"{EARN}/locked/list", locked.locked_list),
    _private("GET", f"{EARN}/locked/position", locked.locked_position),
    _private("POST", f"{EARN}/locked/subscribe", locked.locked_subscribe, "trade"),
    _private("POST", f"{EARN}/locked/redeem", locked.locked_redeem, "trade"),
]

# Request weights (IP), as Binance documents each endpoint (sources: docs/fidelity.md); 1 if absent.
WEIGHTS = {
    "/api/v3/exchangeInfo": 20,
    "/api/v3/account": 20,
    "/sapi/v3/asset/getUserAsset": 5,
    **{
        f"{EARN}/{path}": 150
        for path in (
            "flexible/list",
            "flexible/position",
            "account",
            "flexible/personalLeftQuota",
            "flexible/subscriptionPreview",
            "flexible/history/subscriptionRecord",
            "flexible/history/redemptionRecord",
            "flexible/history/rewardsRecord",
            "flexible/history/rateHistory",
            "locked/list",
            "locked/position",
        )
    },
}
