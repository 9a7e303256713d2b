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
`tierAnnualPercentageRate`, and the daily interest as REALTIME rewards.

Subscriptions come from Binance's SPOT wallet (flexearn's funding account), its FUNDING wallet (the
trading account) or both (`sourceAccount`); redemptions go to either (`destAccount`), interest to
SPOT (`api/binance/wallet.py`). Auto-subscribe sweeps SPOT into a product (`services/earn_wallets.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import locked, unoffered, wallet
from flexearn.api.binance.common import (
    BOOLEANS,
    DESTINATIONS,
    RATE_PLACES,
    SOURCES,
    STATUSES,
    chosen_wallet,
    destination,
    left_quota,
    listed_bands,
    page,
    paged,
    rate,
    records,
    subscription_fields,
    window,
)
from flexearn.api.binance.wire import amount
from flexearn.api.facade import Endpoint, Number
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
from flexearn.services import catalog, catalog_trading, catalog_views, clock, earn_wallets, realtime_apr

EARN = "/sapi/v1/simple-earn"
FLEXIBLE = PeriodType.FLEXIBLE.value
PER_SECOND = 1_000  # Binance limits by weight (`api/binance/weights.py`); this only caps bursts

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
RATE_WINDOW_DAYS = 30  # rateHistory's default window (Binance: "the last 30 days")
RATE_SPAN_DAYS = 365  # "cannot be longer than 1 year"


def _bands(tiers: tuple[Tier, ...], coin: str) -> dict[str, Number]:
    """Bands as Binance writes them: "0-5BTC" → the band's APR, a JSON number. A rate cut to 8
    places has fewer than 15 significant digits, so the float's text (the shortest that reads
    back) is that decimal exactly."""
    return {
        f"{t.min_step.normalize():f}-{t.max_step.normalize():f}{coin}": Number(
            round_down(t.apy / 100, RATE_PLACES)
        )
        for t in tiers
    }


def _rates(product: Product, aprs: dict[int, Decimal]) -> dict[str, Any]:
    """A real-time product: its APR now and its bonus bands (those that pay); else the first
    band's APY and a ladder's bands."""
    now = aprs.get(product.id, ZERO) if product.realtime else product.tiers[0].apy
    rates: dict[str, Any] = {"latestAnnualPercentageRate": rate(now)}
    bands = _bands(listed_bands(product), product.coin)
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
    auto = earn_wallets.products_on(app.read_uow(), _user(caller))
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
            "autoSubscribe": a.product.id in auto,
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
    """From SPOT, FUND or both (`sourceAccount`); sets the product's auto-subscribe as it goes
    (`autoSubscribe`, "true or false, default true")."""
    product_id, size = _product_id(params), params.required_decimal("amount")
    source = chosen_wallet(params, "sourceAccount", SOURCES)
    auto = params.choice("autoSubscribe", BOOLEANS) != "false"
    order = earn_wallets.subscribe(app.uow(), _user(caller), product_id, size, source, auto)
    return {"purchaseId": order.id, "success": True}


def set_auto_subscribe(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, bool]:
    on = params.required_choice("autoSubscribe", BOOLEANS) == "true"
    earn_wallets.set_auto_subscribe(app.uow(), _user(caller), _product_id(params), on)
    return {"success": True}


def flexible_redeem(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """To SPOT or FUND (`destAccount`)."""
    to = chosen_wallet(params, "destAccount", DESTINATIONS)
    user, product_id = _user(caller), _product_id(params)
    if params.choice("redeemAll", BOOLEANS) == "true":
        held = [a for a in catalog_views.assets(app.read_uow(), user, FLEXIBLE) if a.product.id == product_id]
        size = held[0].amount if held else ZERO  # nothing held: the engine's refusal
    else:
        size = params.required_decimal("amount")
    order = catalog_trading.redeem(app.uow(), user, product_id, FLEXIBLE, size, to=to)
    return {"redeemId": order.id, "success": True}


def personal_left_quota(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    return {"leftPersonalQuota": left_quota(app, _product_id(params), FLEXIBLE)}


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
        realtime, bonus = day_estimate(total, apr, product.bonus_bands, product.profit_precision)
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
    """The user's flexible orders of `order_type` (`common.records`), the last 30 days by default."""
    return records(app, caller, params, FLEXIBLE, order_type, id_param)


def subscription_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    result, wallets = paged(app, params, _records(app, caller, params, "subscribe", "purchaseId"))
    result["rows"] = [
        {
            "amount": amount(r.amount),
            "asset": r.product.coin,
            "time": r.ts,
            "purchaseId": r.order_id,
            "productId": str(r.product.id),
            **subscription_fields(r, wallets.get(r.order_id)),
            "status": "SUCCESS" if r.status == OrderStatus.SUCCESS else "PURCHASING",
        }
        for r in result["rows"]
    ]
    return result


def redemption_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    result, wallets = paged(app, params, _records(app, caller, params, "redeem", "redeemId"))
    result["rows"] = [
        {
            "amount": amount(r.amount),
            "asset": r.product.coin,
            "time": r.ts,
            "projectId": str(r.product.id),
            "redeemId": r.order_id,
            "destAccount": destination(wallets.get(r.order_id)),
            "status": "PAID" if r.status == OrderStatus.SUCCESS else "PAYING",
        }
        for r in result["rows"]
    ]
    return result


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
    if product.realtime:
        span = window(now, params, RATE_WINDOW_DAYS, RATE_SPAN_DAYS)
        return _text_total(page(params, _apr_rows(app, product, *span)))
    start, end = params.integer("startTime"), params.integer("endTime")
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
    return _text_total(page(params, rows if shown else []))


def _text_total(result: dict[str, Any]) -> dict[str, Any]:
    """rateHistory's `total` is a string (Binance's SDK: `GetRateHistoryResponse.total: StrictStr`,
    where every other Simple Earn list's is an integer)."""
    return {**result, "total": str(result["total"])}


def _apr_rows(app: Flexearn, product: Product, start: int, end: int) -> list[Any]:
    """The recorded APR over [start, end], newest first (the APR in effect at `start`, dated at
    it, last)."""
    history = realtime_apr.apr_history(app.read_uow(), product.id, start, end)
    return [
        {"productId": str(product.id), "asset": product.coin, "annualPercentageRate": rate(apr), "time": ts}
        for ts, apr in reversed(history)
    ]


_PERMISSIONS = {"GET": "read", "POST": "trade"}

# Request weights (IP), as Binance documents each endpoint (sources: docs/fidelity.md); 1 if not given.
EARN_READ = 150


def _private(
    method: str,
    path: str,
    handler: Any,
    permission: str = "read",
    weight: int = 1,
    *,
    commits_once: bool = False,
) -> Endpoint:
    return Endpoint(method, path, handler, permission, PER_SECOND, weight=weight, commits_once=commits_once)


def _earn_read(path: str, handler: Any) -> Endpoint:
    """A Simple Earn read: GET, `read` permission, weight 150."""
    return _private("GET", f"{EARN}/{path}", handler, weight=EARN_READ)


def _public(path: str, handler: Any, weight: int = 1) -> Endpoint:
    return Endpoint("GET", path, handler, None, PER_SECOND, weight=weight)


ENDPOINTS = [
    _public("/api/v3/time", wallet.server_time),
    _public("/api/v3/exchangeInfo", wallet.exchange_info, 20),
    _private("GET", "/api/v3/account", wallet.spot_account, weight=20),
    _private("POST", "/sapi/v1/asset/get-funding-asset", wallet.funding_asset),
    _private("POST", "/sapi/v3/asset/getUserAsset", wallet.user_asset, weight=5),
    _private("POST", "/sapi/v1/asset/transfer", wallet.universal_transfer, "trade"),
    _earn_read("flexible/list", flexible_list),
    _earn_read("flexible/position", flexible_position),
    _earn_read("account", account),
    _private("POST", f"{EARN}/flexible/subscribe", flexible_subscribe, "trade", commits_once=True),
    _private("POST", f"{EARN}/flexible/redeem", flexible_redeem, "trade"),
    _private(
        "POST", f"{EARN}/flexible/setAutoSubscribe", set_auto_subscribe, "trade", EARN_READ, commits_once=True
    ),
    _earn_read("flexible/personalLeftQuota", personal_left_quota),
    _earn_read("flexible/subscriptionPreview", subscription_preview),
    _earn_read("flexible/history/subscriptionRecord", subscription_record),
    _earn_read("flexible/history/redemptionRecord", redemption_record),
    _earn_read("flexible/history/rewardsRecord", rewards_record),
    _earn_read("flexible/history/rateHistory", rate_history),
    _earn_read("locked/list", locked.locked_list),
    _earn_read("locked/position", locked.locked_position),
    _private("POST", f"{EARN}/locked/subscribe", locked.locked_subscribe, "trade", commits_once=True),
    _private("POST", f"{EARN}/locked/redeem", locked.locked_redeem, "trade"),
    _earn_read("locked/personalLeftQuota", locked.personal_left_quota),
    _earn_read("locked/subscriptionPreview", locked.subscription_preview),
    _earn_read("locked/history/subscriptionRecord", locked.subscription_record),
    _earn_read("locked/history/redemptionRecord", locked.redemption_record),
    _earn_read("locked/history/rewardsRecord", locked.rewards_record),
    _private("POST", f"{EARN}/locked/setAutoSubscribe", locked.set_auto_subscribe, "trade", EARN_READ),
    _private("POST", f"{EARN}/locked/setRedeemOption", locked.set_redeem_option, "trade", 50),
    # what the SDK has beside them, for what flexearn does not offer (`api/binance/unoffered.py`)
    _private("GET", f"{EARN}/flexible/history/collateralRecord", unoffered.collateral_record),
    _private("GET", "/sapi/v1/earn/arena/activities", unoffered.arena_activities, weight=EARN_READ),
    *(
        _private(method, f"/sapi/v1/{product}/{path}", unoffered.not_offered, _PERMISSIONS[method], EARN_READ)
        for product in unoffered.PRODUCTS
        for method, path in unoffered.PRODUCT_ENDPOINTS
    ),
]
