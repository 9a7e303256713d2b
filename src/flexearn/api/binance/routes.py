"""Binance Simple Earn (flexible) over the catalog's flexible products, with `current`/`size` paging.

A Binance flexible product is a flexible catalog product (`services/catalog*.py`); its `productId`
is the catalog id. Binance shows a flexible product's rate as a real-time APR plus bonus APRs on
bands of the holding (`tierAnnualPercentageRate`, fractions: 0.05 is 5%); the catalog pays each
band of a ladder its own APY (percent) every day. So the first band's rate is shown as
`latestAnnualPercentageRate`, a ladder's bands (each with its whole rate) as
`tierAnnualPercentageRate`, and the daily interest as REALTIME rewards. (The real-time APR that
moves, with bonus rewards of their own, is the next slice of issue 16.) Subscriptions come from,
and redemptions and interest go to, Binance's SPOT wallet: flexearn's funding account
(`api/binance/wallet.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import locked, wallet
from flexearn.api.binance.common import BOOLEANS, RATE_PLACES, STATUSES, page, rate, spot_only
from flexearn.api.binance.wire import amount
from flexearn.api.facade import Endpoint
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, OrderStatus, PeriodType, Product, Status, day_interest, day_start
from flexearn.domain.money import ZERO, round_down
from flexearn.services import catalog, catalog_trading, catalog_views, clock

EARN = "/sapi/v1/simple-earn"
FLEXIBLE = PeriodType.FLEXIBLE.value
PER_SECOND = 1_000  # Binance limits by weight (`api/binance/weights.py`); this only caps bursts
MAX_ROWS = 100_000  # history rows read for one answer (three months at most: catalog_views)

REWARD_TYPES = ("BONUS", "REALTIME", "REWARDS", "ALL")


def _tiers(product: Product) -> dict[str, float]:
    """A ladder's bands, as Binance writes them: "0-5BTC" → the band's APR, a JSON number. A rate
    cut to 8 places has fewer than 15 significant digits, so the float's text (the shortest that
    reads back) is that decimal exactly."""
    if len(product.tiers) < 2:
        return {}
    return {
        f"{t.min_step.normalize():f}-{t.max_step.normalize():f}{product.coin}": float(
            round_down(t.apy / 100, RATE_PLACES)
        )
        for t in product.tiers
    }


def _rates(product: Product) -> dict[str, Any]:
    rates: dict[str, Any] = {"latestAnnualPercentageRate": rate(product.tiers[0].apy)}
    tiers = _tiers(product)
    if tiers:
        rates["tierAnnualPercentageRate"] = tiers
    return rates


def _product_id(params: Params) -> int:
    return params.required_integer("productId", low=1)


def flexible_list(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    views = catalog.list_products(
        app.read_uow(), _user(caller), params.currency("asset"), "available_and_held"
    )
    rows = [
        {
            "asset": v.product.coin,
            **_rates(v.product),
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
    held = catalog_views.assets(app.read_uow(), _user(caller), FLEXIBLE, params.currency("asset"))
    rows = [
        {
            "totalAmount": amount(a.amount),
            **_rates(a.product),
            "yesterdayAirdropPercentageRate": "0",
            "asset": a.product.coin,
            "airDropAsset": a.product.coin,
            "canRedeem": a.allow_redemption,
            "collateralAmount": "0",
            "productId": str(a.product.id),
            "yesterdayRealTimeRewards": amount(a.last_profit),
            "cumulativeBonusRewards": "0",
            "cumulativeRealTimeRewards": amount(a.total_profit),
            "cumulativeTotalRewards": amount(a.total_profit),
            "autoSubscribe": False,
        }
        for a in held
        if product_id is None or a.product.id == product_id
    ]
    return page(params, rows)


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
    (rounded down to its profit precision, as it is paid)."""
    product_id, size = _product_id(params), params.required_decimal("amount")
    info = catalog.subscribe_info(app.read_uow(), product_id, FLEXIBLE)
    product = info.product
    held = [
        a.amount
        for a in catalog_views.assets(app.read_uow(), _user(caller), FLEXIBLE)
        if a.product.id == product_id
    ]
    total = sum(held, ZERO) + size
    return {
        "totalAmount": amount(total),
        "rewardAsset": product.coin,
        "airDropAsset": product.coin,
        "estDailyBonusRewards": "0",
        "estDailyRealTimeRewards": amount(day_interest(total, product.tiers, product.profit_precision)),
        "estDailyAirdropRewards": "0",
    }


def _records(
    app: Flexearn, caller: Caller | None, params: Params, order_type: str, id_param: str | None = None
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
    """Each day's interest, as a REALTIME reward (BONUS: none yet; REWARDS and ALL: all of them)."""
    kind = params.choice("type", REWARD_TYPES) or "ALL"
    paid = [] if kind == "BONUS" else _records(app, caller, params, "pay_interest")
    rows = [
        {
            "asset": r.product.coin,
            "rewards": amount(r.amount),
            "projectId": str(r.product.id),
            "type": "REALTIME",
            "time": r.ts,
        }
        for r in paid
    ]
    return page(params, rows)


def rate_history(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """The product's APR now, dated at the start of the current day: the catalog keeps no history
    of its rates (an operator's change takes effect at once)."""
    product = catalog.subscribe_info(app.read_uow(), _product_id(params), FLEXIBLE).product
    params.choice("aprPeriod", ("DAY", "YEAR"))
    now = clock.show(app.read_uow()).now
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
    return page(params, rows if shown else [])


# Request weights (IP), as Binance documents each endpoint (sources: docs/fidelity.md); 1 if not given.
EARN_READ = 150


def _private(method: str, path: str, handler: Any, permission: str = "read", weight: int = 1) -> Endpoint:
    return Endpoint(method, path, handler, permission, PER_SECOND, weight=weight)


def _public(path: str, handler: Any, weight: int = 1) -> Endpoint:
    return Endpoint("GET", path, handler, None, PER_SECOND, weight=weight)


ENDPOINTS = [
    _public("/api/v3/time", wallet.server_time),
    _public("/api/v3/exchangeInfo", wallet.exchange_info, 20),
    _private("GET", "/api/v3/account", wallet.spot_account, weight=20),
    _private("POST", "/sapi/v1/asset/get-funding-asset", wallet.funding_asset),
    _private("POST", "/sapi/v3/asset/getUserAsset", wallet.user_asset, weight=5),
    _private("POST", "/sapi/v1/asset/transfer", wallet.universal_transfer, "trade"),
    _private("GET", f"{EARN}/flexible/list", flexible_list, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/position", flexible_position, weight=EARN_READ),
    _private("GET", f"{EARN}/account", account, weight=EARN_READ),
    _private("POST", f"{EARN}/flexible/subscribe", flexible_subscribe, "trade"),
    _private("POST", f"{EARN}/flexible/redeem", flexible_redeem, "trade"),
    _private("GET", f"{EARN}/flexible/personalLeftQuota", personal_left_quota, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/subscriptionPreview", subscription_preview, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/history/subscriptionRecord", subscription_record, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/history/redemptionRecord", redemption_record, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/history/rewardsRecord", rewards_record, weight=EARN_READ),
    _private("GET", f"{EARN}/flexible/history/rateHistory", rate_history, weight=EARN_READ),
    _private("GET", f"{EARN}/locked/list", locked.locked_list, weight=EARN_READ),
    _private("GET", f"{EARN}/locked/position", locked.locked_position, weight=EARN_READ),
    _private("POST", f"{EARN}/locked/subscribe", locked.locked_subscribe, "trade"),
    _private("POST", f"{EARN}/locked/redeem", locked.locked_redeem, "trade"),
]
