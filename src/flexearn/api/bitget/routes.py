"""Bitget v2 endpoints: Earn savings over the catalog, the spot funding account, and what ccxt's
`bitget` reads to load markets in classic mode."""

from __future__ import annotations

from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.bitget import errors, wallet
from flexearn.api.bitget.wire import amount, ms
from flexearn.api.facade import Endpoint
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import PeriodType, Product, Tier
from flexearn.domain.vocabulary import values
from flexearn.services import accounts, catalog, catalog_trading, catalog_views, clock

USER_LIMIT = 10  # requests per second per user (SPEC §5)
PUBLIC_LIMIT = 20  # per IP
SAVINGS = "/api/v2/earn/savings"
PERIOD_TYPES = values(PeriodType)  # Bitget's periodType words are the domain's


def _product_id(params: Params) -> int:
    return params.required_integer("productId", low=1)


def _tiers(product: Product) -> list[dict[str, str]]:
    places = product.subscribe_precision
    return [
        {
            "rateLevel": str(i),
            "minStepVal": amount(t.min_step, places),
            "maxStepVal": amount(t.max_step, places),
            "currentApy": amount(t.apy, 2),
        }
        for i, t in enumerate(product.tiers)
    ]


def _fixed(product: Product, value: str) -> str:
    return value if product.period_type is PeriodType.FIXED else ""


def product(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, Any]]:
    filter_ = params.choice("filter", catalog.FILTERS) or "available"
    views = catalog.list_products(app.read_uow(), _user(caller), params.currency("coin"), filter_)
    return [
        {
            "productId": str(v.product.id),
            "coin": v.product.coin,
            "periodType": v.product.period_type.value,
            "period": _fixed(v.product, str(v.product.period_days or "")),
            "apyType": v.product.apy_type.value,
            "advanceRedeem": _fixed(v.product, "Yes" if v.product.advance_redeem else "No"),
            "settleMethod": _fixed(v.product, v.product.settle_method.value),
            "apyList": _tiers(v.product),
            "status": v.status.value,
            "productLevel": v.product.level.value,
        }
        for v in views
    ]


def subscribe_info(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    info = catalog.subscribe_info(
        app.read_uow(), _product_id(params), params.required_choice("periodType", PERIOD_TYPES)
    )
    p, s, places = info.product, info.schedule, info.product.subscribe_precision
    # Without a quota, a subscription is limited only by singleMaxAmount.
    remaining = info.remaining if info.remaining is not None else p.single_max
    return {
        "singleMinAmount": amount(p.single_min, places),
        "singleMaxAmount": amount(p.single_max, places),
        "remainingAmount": amount(remaining, places),
        "subscribePrecision": str(p.subscribe_precision),
        "profitPrecision": str(p.profit_precision),
        "subscribeTime": ms(s.subscribe_time),
        "interestTime": ms(s.interest_time),
        "settleTime": ms(s.settle_time),
        "expireTime": ms(s.expire_time),
        "redeemTime": ms(s.redeem_time),
        "settleMethod": _fixed(p, p.settle_method.value),
        "apyList": _tiers(p),
        "redeemDelay": f"D+{p.redeem_delay_days}" if p.redeem_delay_days else "",
    }


def records(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    found, end_id = catalog_views.records(
        app.read_uow(),
        _user(caller),
        params.required_choice("periodType", PERIOD_TYPES),
        params.choice("orderType", catalog_views.ORDER_TYPES),
        params.currency("coin"),
        params.integer("startTime"),
        params.integer("endTime"),
        params.integer("limit", low=1, high=100) or 20,
        params.integer("idLessThan"),
    )
    return {
        "resultList": [
            {
                "orderId": str(r.order_id),
                "coinName": r.product.coin,
                "settleCoinName": r.product.coin,
                "productType": r.product.period_type.value,
                "period": _fixed(r.product, str(r.product.period_days or "")),
                "productLevel": r.product.level.value,
                "amount": amount(r.amount),
                "ts": str(r.ts),
                "orderType": r.order_type,
            }
            for r in found
        ],
        "endId": "" if end_id is None else str(end_id),
    }


def subscribe(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    order = catalog_trading.subscribe(
        app.uow(),
        _user(caller),
        _product_id(params),
        params.required_choice("periodType", PERIOD_TYPES),
        params.required_decimal("amount"),
    )
    return {"orderId": str(order.id), "status": order.status}


def subscribe_result(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    order = catalog_views.subscription(
        app.read_uow(),
        _user(caller),
        params.required_choice("periodType", PERIOD_TYPES),
        params.integer("orderId", low=1),
        params.integer("productId", low=1),
    )
    return _result(order.status)


def _result(status: str) -> dict[str, str]:
    """An accepted order (even one whose funds are still on their way) succeeded; `msg` is only
    for a failure ("There will only be a message when it fails")."""
    failed = status == "fail"
    return {"result": "fail" if failed else "success", "msg": "the order failed" if failed else ""}


def redeem(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    order = catalog_trading.redeem(
        app.uow(),
        _user(caller),
        _product_id(params),
        params.required_choice("periodType", PERIOD_TYPES),
        params.required_decimal("amount"),
        params.integer("orderId", low=1),
    )
    return {"orderId": str(order.id), "status": order.status}


def redeem_result(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    order = catalog_views.redemption(
        app.read_uow(),
        _user(caller),
        params.required_choice("periodType", PERIOD_TYPES),
        params.required_integer("orderId", low=1),
    )
    return _result(order.status)


def assets(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    period = params.required_choice("periodType", PERIOD_TYPES)
    limit = params.integer("limit", low=1, high=100) or 20
    before = params.integer("idLessThan")
    held = [
        a
        for a in catalog_views.assets(app.read_uow(), _user(caller), period)
        if before is None or a.holding_id < before
    ]
    page = sorted(held, key=lambda a: a.holding_id, reverse=True)[:limit]
    return {
        "resultList": [
            {
                "productId": str(a.product.id),
                "orderId": "" if a.order_id is None else str(a.order_id),
                "productCoin": a.product.coin,
                "interestCoin": a.product.coin,
                "periodType": a.product.period_type.value,
                "period": _fixed(a.product, str(a.product.period_days or "")),
                "holdAmount": amount(a.amount),
                "lastProfit": amount(a.last_profit),
                "totalProfit": amount(a.total_profit),
                "holdDays": str(a.hold_days),
                "status": "in_holding",
                "allowRedemption": "Yes" if a.allow_redemption else "No",
                "advanceRedeem": _fixed(a.product, "Yes" if a.product.advance_redeem else "No"),
                "productLevel": a.product.level.value,
                "apy": _asset_apy(a.product.tiers),
            }
            for a in page
        ],
        "endId": str(page[-1].holding_id) if page else "",
    }


def _asset_apy(tiers: tuple[Tier, ...]) -> list[dict[str, str]]:
    return [
        {
            "rateLevel": str(i),
            "minApy": amount(t.apy, 2),
            "maxApy": amount(t.apy, 2),
            "currentApy": amount(t.apy, 2),
        }
        for i, t in enumerate(tiers)
    ]


def account(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    totals = catalog_views.account(app.read_uow(), _user(caller))
    return {
        "btcAmount": amount(totals.btc_amount),
        "usdtAmount": amount(totals.usdt_amount),
        "btc24hEarning": amount(totals.btc_24h_earning),
        "usdt24hEarning": amount(totals.usdt_24h_earning),
        "btcTotalEarning": amount(totals.btc_total_earning),
        "usdtTotalEarning": amount(totals.usdt_total_earning),
    }


def spot_assets(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, Any]]:
    coin = params.currency("coin")
    everything = params.choice("assetType", ("hold_only", "all")) == "all"
    now = str(clock.show(app.read_uow()).now)
    return [
        {
            "coin": b.ccy,
            "available": amount(b.available),
            "frozen": amount(b.frozen),
            "locked": "0",
            "limitAvailable": "0",
            "uTime": now,
        }
        for b in accounts.funding_balances(app.read_uow(), _user(caller))
        if (coin is None or b.ccy == coin) and (everything or b.available or b.frozen)
    ]


def public_time(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    # Business time, the clock of every record: paging history by it works on a simulated clock.
    return {"serverTime": str(clock.show(app.read_uow()).now)}


def account_settings_v3(app: Flexearn, caller: Caller | None, params: Params) -> None:
    """ccxt probes this for a unified account; refusing it keeps ccxt in classic (v2) mode."""
    raise errors.BitgetError("40084", "The account is in classic mode; use the v2 interfaces", 400)


def spot_coins(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, Any]]:
    wanted = params.currency("coin")
    return [
        {
            "coinId": str(i + 1),
            "coin": c.ccy,
            "transfer": "true",
            "areaCoin": "no",
            "chains": [
                {
                    "chain": c.ccy,
                    "needTag": "false",
                    "withdrawable": "true",
                    "rechargeable": "true",
                    "withdrawFee": "0",
                    "extraWithdrawFee": "0",
                    "depositConfirm": "1",
                    "withdrawConfirm": "1",
                    "minDepositAmount": "0",
                    "minWithdrawAmount": "0",
                    "browserUrl": "",
                    "contractAddress": "",
                    "withdrawStep": "0",
                    "withdrawMinScale": str(c.precision),
                    "congestion": "normal",
                }
            ],
        }
        for i, c in enumerate(accounts.list_currencies(app.read_uow()))
        if wanted is None or c.ccy == wanted
    ]


QUOTE = "USDT"


def spot_symbols(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, str]]:
    currencies = accounts.list_currencies(app.read_uow())
    if QUOTE not in {c.ccy for c in currencies}:
        return []
    wanted = params.text("symbol")
    return [
        {
            "symbol": f"{c.ccy}{QUOTE}",
            "baseCoin": c.ccy,
            "quoteCoin": QUOTE,
            "minTradeAmount": "0",
            "maxTradeAmount": "10000000000",
            "takerFeeRate": "0.001",
            "makerFeeRate": "0.001",
            "pricePrecision": "4",
            "quantityPrecision": str(min(c.precision, 8)),
            "quotePrecision": "6",
            "status": "online",
            "minTradeUSDT": "1",
            "buyLimitPriceRatio": "0.05",
            "sellLimitPriceRatio": "0.05",
            "areaSymbol": "no",
        }
        for c in currencies
        if c.ccy != QUOTE and (wanted is None or wanted == f"{c.ccy}{QUOTE}")
    ]


def nothing(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """Margin currencies and futures contracts: none here (so ccxt's load_markets finds spot only)."""
    return []


def _private(
    method: str, path: str, handler: Any, permission: str = "read", *, commits_once: bool = False
) -> Endpoint:
    return Endpoint(method, path, handler, permission, USER_LIMIT, commits_once=commits_once)


def _public(path: str, handler: Any) -> Endpoint:
    return Endpoint("GET", path, handler, None, PUBLIC_LIMIT)


ENDPOINTS = [
    _private("GET", f"{SAVINGS}/product", product),
    _private("GET", f"{SAVINGS}/subscribe-info", subscribe_info),
    _private("GET", f"{SAVINGS}/records", records),
    _private("POST", f"{SAVINGS}/subscribe", subscribe, "trade", commits_once=True),
    _private("GET", f"{SAVINGS}/subscribe-result", subscribe_result),
    _private("POST", f"{SAVINGS}/redeem", redeem, "trade", commits_once=True),
    _private("GET", f"{SAVINGS}/redeem-result", redeem_result),
    _private("GET", f"{SAVINGS}/assets", assets),
    _private("GET", f"{SAVINGS}/account", account),
    _private("GET", "/api/v2/spot/account/assets", spot_assets),
    _public("/api/v2/public/time", public_time),
    _private("GET", "/api/v3/account/settings", account_settings_v3),
    _public("/api/v2/spot/public/coins", spot_coins),
    _public("/api/v2/spot/public/symbols", spot_symbols),
    _public("/api/v2/margin/currencies", nothing),
    _public("/api/v2/mix/market/contracts", nothing),
    # the accounts around Earn (api/bitget/wallet.py), limited per user as Bitget documents them
    _private("POST", "/api/v2/spot/wallet/transfer", wallet.wallet_transfer, "trade"),
    Endpoint("GET", "/api/v2/account/all-account-balance", wallet.all_account_balance, "read", 1),
    _private("GET", "/api/v2/account/funding-assets", wallet.funding_assets),
    _private("GET", "/api/v2/mix/account/accounts", wallet.futures_accounts),
]
