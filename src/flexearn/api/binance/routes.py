"""Binance Simple Earn (flexible) over the catalog's flexible products, with `current`/`size` paging.

A Binance flexible product is a flexible catalog product (`services/catalog*.py`); its `productId`
is the catalog id. Binance shows a flexible product's rate as a real-time APR plus bonus APRs on
bands of the holding (`tierAnnualPercentageRate`, fractions: 0.05 is 5%); the catalog pays each
band of a ladder its own APY (percent) every day. So the first band's rate is shown as
`latestAnnualPercentageRate`, a ladder's bands (each with its whole rate) as
`tierAnnualPercentageRate`, and the daily interest as REALTIME rewards. (The real-time APR that
moves, with bonus rewards of their own, is the next slice of issue 16.) Subscriptions come from
Binance's SPOT wallet (flexearn's funding account), its FUNDING wallet (the trading account) or
both (`sourceAccount`); redemptions go to either (`destAccount`), interest to SPOT
(`api/binance/wallet.py`). Auto-subscribe sweeps SPOT into a product (`services/earn_wallets.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import locked, wallet
from flexearn.api.binance.common import (
    BOOLEANS,
    DESTINATIONS,
    RATE_PLACES,
    SOURCES,
    STATUSES,
    chosen_wallet,
    destination,
    left_quota,
    page,
    paged,
    rate,
    records,
    subscription_fields,
)
from flexearn.api.binance.wire import amount
from flexearn.api.facade import Endpoint
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, OrderStatus, PeriodType, Product, Status, day_interest, day_start
from flexearn.domain.money import ZERO, round_down
from flexearn.services import catalog, catalog_trading, catalog_views, clock, earn_wallets

EARN = "/sapi/v1/simple-earn"
FLEXIBLE = PeriodType.FLEXIBLE.value
PER_SECOND = 1_000  # Binance limits by weight (`api/binance/weights.py`); this only caps bursts

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
    auto = earn_wallets.products_on(app.read_uow(), _user(caller))
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
            "autoSubscribe": a.product.id in auto,
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
    """The user's flexible orders of `order_type` (`common.records`), the last three months by default."""
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
    _private("POST", f"{EARN}/flexible/subscribe", flexible_subscribe, "trade"),
    _private("POST", f"{EARN}/flexible/redeem", flexible_redeem, "trade"),
    _private("POST", f"{EARN}/flexible/setAutoSubscribe", set_auto_subscribe, "trade", EARN_READ),
    _earn_read("flexible/personalLeftQuota", personal_left_quota),
    _earn_read("flexible/subscriptionPreview", subscription_preview),
    _earn_read("flexible/history/subscriptionRecord", subscription_record),
    _earn_read("flexible/history/redemptionRecord", redemption_record),
    _earn_read("flexible/history/rewardsRecord", rewards_record),
    _earn_read("flexible/history/rateHistory", rate_history),
    _earn_read("locked/list", locked.locked_list),
    _earn_read("locked/position", locked.locked_position),
    _private("POST", f"{EARN}/locked/subscribe", locked.locked_subscribe, "trade"),
    _private("POST", f"{EARN}/locked/redeem", locked.locked_redeem, "trade"),
    _earn_read("locked/personalLeftQuota", locked.personal_left_quota),
    _earn_read("locked/subscriptionPreview", locked.subscription_preview),
    _earn_read("locked/history/subscriptionRecord", locked.subscription_record),
    _earn_read("locked/history/redemptionRecord", locked.redemption_record),
    _earn_read("locked/history/rewardsRecord", locked.rewards_record),
    _private("POST", f"{EARN}/locked/setAutoSubscribe", locked.set_auto_subscribe, "trade", EARN_READ),
    _private("POST", f"{EARN}/locked/setRedeemOption", locked.set_redeem_option, "trade", 50),
]
