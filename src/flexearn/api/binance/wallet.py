"""Binance's wallets around Simple Earn, and what ccxt's `binance` reads to load markets.

flexearn's `funding` account is Binance's SPOT wallet: Simple Earn subscribes from it and pays
into it unless told otherwise (as Bitget Earn does from Bitget's spot account, `api/bitget/wallet.py`;
`sourceAccount` FUND or ALL and `destAccount` FUND name the FUNDING wallet too); `/api/v3/account`
and `getUserAsset` show it, available as `free` and frozen as `locked`. flexearn's `trading` account
is Binance's FUNDING wallet (`get-funding-asset`). Universal transfers move money between the two
(`MAIN_FUNDING`, `FUNDING_MAIN`); Binance's other wallets (margin, futures, options) are not
modelled and transfers naming them are refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import errors
from flexearn.api.binance.wire import amount
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO
from flexearn.services import accounts, clock, transfers

QUOTE = "USDT"
TRANSFER_TYPES = {
    "MAIN_FUNDING": (AccountKind.FUNDING, AccountKind.TRADING),
    "FUNDING_MAIN": (AccountKind.TRADING, AccountKind.FUNDING),
}


def _now(app: Flexearn) -> int:
    # Business time, the clock of every record (as Bitget's and OKX's time endpoints answer).
    return clock.show(app.read_uow()).now


def server_time(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, int]:
    return {"serverTime": _now(app)}


def _step(places: int) -> str:
    return amount(Decimal(1).scaleb(-places), 8) if places < 8 else "0.00000001"


def exchange_info(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """The spot pairs of the enabled currencies against USDT (as the OKX and Bitget façades list
    them): the catalog trades none of them, but ccxt's `load_markets` needs markets."""
    currencies = accounts.list_currencies(app.read_uow())
    wanted = params.text("symbol")
    symbols = [
        {
            "symbol": f"{c.ccy}{QUOTE}",
            "status": "TRADING",
            "baseAsset": c.ccy,
            "baseAssetPrecision": min(c.precision, 8),
            "quoteAsset": QUOTE,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00010000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.00010000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _step(c.precision),
                    "maxQty": "9000000.00000000",
                    "stepSize": _step(c.precision),
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }
        for c in currencies
        if c.ccy != QUOTE and QUOTE in {d.ccy for d in currencies} and wanted in (None, f"{c.ccy}{QUOTE}")
    ]
    return {
        "timezone": "UTC",
        "serverTime": _now(app),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def spot_account(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """The SPOT wallet (flexearn's funding account): every enabled currency, held or not, unless
    `omitZeroBalances=true`."""
    omit = params.choice("omitZeroBalances", ("true", "false")) == "true"
    user = _user(caller)
    wallet = accounts.funding_wallet(app.read_uow(), user)
    return {
        "makerCommission": 0,
        "takerCommission": 0,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0", "taker": "0", "buyer": "0", "seller": "0"},
        "canTrade": False,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": wallet.now,
        "accountType": "SPOT",
        "balances": [
            {"asset": b.ccy, "free": amount(b.available), "locked": amount(b.frozen)}
            for b in wallet.balances
            if not omit or b.available or b.frozen
        ],
        "permissions": ["SPOT"],
        "uid": user,
    }


def _asset_row(ccy: str, free: Decimal, locked: Decimal) -> dict[str, str]:
    return {
        "asset": ccy,
        "free": amount(free),
        "locked": amount(locked),
        "freeze": "0",
        "withdrawing": "0",
        "ipoable": "0",
        "btcValuation": "0",  # valuation is not modelled here
    }


def user_asset(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, str]]:
    """The SPOT wallet's assets held (positive only, as Binance lists them)."""
    wanted = params.currency("asset")
    params.choice("needBtcValuation", ("true", "false"))
    return [
        _asset_row(b.ccy, b.available, b.frozen)
        for b in accounts.funding_balances(app.read_uow(), _user(caller))
        if (wanted is None or b.ccy == wanted) and (b.available or b.frozen)
    ]


def funding_asset(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, str]]:
    """The FUNDING wallet (flexearn's trading account): its assets held."""
    wanted = params.currency("asset")
    params.choice("needBtcValuation", ("true", "false"))
    rows = []
    for b in accounts.trading_balances(app.read_uow(), _user(caller)):
        if (wanted is None or b.ccy == wanted) and b.balance:
            row = _asset_row(b.ccy, b.balance, ZERO)
            del row["ipoable"]
            rows.append(row)
    return rows


def universal_transfer(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, int]:
    kind = params.required_text("type")
    if kind not in TRANSFER_TYPES:
        raise errors.bad_value(
            "type", "flexearn holds money in SPOT and FUNDING: MAIN_FUNDING or FUNDING_MAIN"
        )
    source, target = TRANSFER_TYPES[kind]
    done = transfers.transfer(
        app.uow(),
        _user(caller),
        params.required_currency("asset"),
        params.required_decimal("amount"),
        source,
        target,
        param="amount",
    )
    return {"tranId": done.id}
