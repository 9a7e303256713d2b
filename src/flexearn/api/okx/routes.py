"""OKX v5 endpoints. Each handler parses its parameters, calls one service, shapes the records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.facade import Endpoint
from flexearn.api.facade import user_of as _user
from flexearn.api.okx import errors, wallet, wire
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.market import check_rate
from flexearn.services import accounts, clock, market_data, savings

SAVINGS_LIMIT = 6  # requests per second per user (private) or IP (public), per endpoint
PREFIX = "/api/v5"
SAVINGS = f"{PREFIX}/finance/savings"


# --- Simple Earn flexible ----------------------------------------------------------------------


def balance(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    # A position that never held anything (only a rate set ahead of a first purchase) is not shown.
    positions = [
        p for p in savings.positions(app.read_uow(), _user(caller), params.currency()) if p.amt or p.earnings
    ]
    return [
        {
            "earnings": wire.amount(p.earnings),
            "redemptAmt": "",
            "rate": wire.rate(p.rate),
            "ccy": p.ccy,
            "amt": wire.amount(p.amt),
            "loanAmt": wire.amount(p.loan),
            "pendingAmt": wire.amount(p.pending),
        }
        for p in positions
    ]


def purchase_redempt(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    ccy = params.required_currency()
    amt = params.required_decimal("amt")
    side = params.required_text("side")
    if side == "purchase":
        given = params.decimal("rate")
        if given is not None:
            check_rate(given)
        position = savings.purchase(app.uow(), _user(caller), ccy, amt, given)
        return [{"ccy": ccy, "amt": wire.amount(amt), "side": side, "rate": wire.amount(position.rate)}]
    if side == "redempt":
        savings.redeem(app.uow(), _user(caller), ccy, amt)
        return [{"ccy": ccy, "amt": wire.amount(amt), "side": side, "rate": ""}]
    raise errors.invalid("side", "purchase or redempt")


def set_lending_rate(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    ccy = params.required_currency()
    new_rate = params.required_decimal("rate")
    position = savings.set_rate(app.uow(), _user(caller), ccy, new_rate)
    return [{"ccy": ccy, "rate": wire.amount(position.rate)}]


def _page(params: Params) -> market_data.Page:
    limit = params.integer("limit", low=1, high=100)
    return market_data.Page(
        params.integer("after"), params.integer("before"), 100 if limit is None else limit
    )


def lending_history(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    records = market_data.lending_history(app.read_uow(), _user(caller), params.currency(), _page(params))
    return [
        {
            "ccy": r.ccy,
            "amt": wire.amount(r.amt),
            "earnings": wire.amount(r.earnings),
            "rate": wire.amount(r.rate),
            "ts": str(r.ts),
        }
        for r in records
    ]


def lending_rate_summary(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    return [
        {
            "ccy": s.ccy,
            "avgAmt": wire.amount(s.avg_lent),
            "avgAmtUsd": "",
            "avgRate": wire.amount(s.avg_rate),
            "preRate": wire.amount(s.pre_rate),
            "estRate": wire.amount(s.est_rate),
        }
        for s in market_data.rate_summary(app.read_uow(), params.currency(), app.figures)
    ]


def lending_rate_history(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    return [
        {
            "ccy": r.ccy,
            "amt": wire.amount(r.lent),
            "rate": wire.amount(r.borrow_rate),
            "lendingRate": wire.public_rate(r.lending_rate),
            "ts": str(r.ts),
        }
        for r in market_data.rate_history(app.read_uow(), params.currency(), _page(params))
    ]


# --- around savings: time, funding balances ----------------------------------------------------------


def system_time(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    # Business time, the clock of every record: paging history by it works on a simulated clock.
    return [{"ts": str(clock.show(app.read_uow()).now)}]


MAX_BALANCE_CCYS = 20


def asset_balances(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    wanted = params.text("ccy")
    ccys = {c.strip().upper() for c in wanted.split(",") if c.strip()} if wanted else None
    if ccys is not None and len(ccys) > MAX_BALANCE_CCYS:
        raise errors.invalid("ccy", f"at most {MAX_BALANCE_CCYS} currencies")
    return [
        {
            "availBal": wire.amount(b.available),
            "bal": wire.amount(b.available + b.frozen),
            "ccy": b.ccy,
            "frozenBal": wire.amount(b.frozen),
        }
        for b in accounts.funding_balances(app.read_uow(), _user(caller))
        if (ccys is None or b.ccy in ccys) and (b.available or b.frozen)
    ]


def asset_currencies(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """Every enabled currency, so that ccxt's authenticated `load_markets` knows them all."""
    wanted = params.text("ccy")
    ccys = {c.strip().upper() for c in wanted.split(",") if c.strip()} if wanted else None
    return [
        {
            "ccy": c.ccy,
            "name": c.ccy,
            "chain": f"{c.ccy}-flexearn",
            "canDep": True,
            "canWd": True,
            "canInternal": True,
            "minDep": "0",
            "minWd": "0",
            "maxWd": "",
            "wdTickSz": str(c.precision),
            "fee": "0",
            "minFee": "0",
            "maxFee": "0",
            "mainNet": True,
        }
        for c in accounts.list_currencies(app.read_uow())
        if ccys is None or c.ccy in ccys
    ]


QUOTE = "USDT"


def public_instruments(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """Spot pairs against USDT of the enabled currencies; other instrument types are empty."""
    inst_type = params.required_text("instType")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise errors.invalid("instType", "SPOT, MARGIN, SWAP, FUTURES or OPTION")
    if inst_type != "SPOT":
        return []
    currencies = accounts.list_currencies(app.read_uow())
    if QUOTE not in {c.ccy for c in currencies}:
        return []
    wanted = params.text("instId")
    return [
        {
            "instType": "SPOT",
            "instId": f"{c.ccy}-{QUOTE}",
            "baseCcy": c.ccy,
            "quoteCcy": QUOTE,
            "state": "live",
            "tickSz": "0.0001",
            "lotSz": wire.amount(Decimal(1).scaleb(-c.precision)),
            "minSz": wire.amount(Decimal(1).scaleb(-c.precision)),
            "ctVal": "",
            "ctMult": "",
            "ctValCcy": "",
            "settleCcy": "",
            "uly": "",
            "instFamily": "",
            "lever": "",
            "listTime": "",
            "expTime": "",
        }
        for c in currencies
        if c.ccy != QUOTE and (wanted is None or wanted == f"{c.ccy}-{QUOTE}")
    ]


ENDPOINTS = [
    Endpoint("GET", f"{SAVINGS}/balance", balance, "read", SAVINGS_LIMIT),
    Endpoint(
        "POST", f"{SAVINGS}/purchase-redempt", purchase_redempt, "trade", SAVINGS_LIMIT, commits_once=True
    ),
    Endpoint(
        "POST", f"{SAVINGS}/set-lending-rate", set_lending_rate, "trade", SAVINGS_LIMIT, commits_once=True
    ),
    Endpoint("GET", f"{SAVINGS}/lending-history", lending_history, "read", SAVINGS_LIMIT),
    # public figures from stored data only: served from memory between changes (api/answers.py)
    Endpoint(
        "GET", f"{SAVINGS}/lending-rate-summary", lending_rate_summary, None, SAVINGS_LIMIT, cached=True
    ),
    Endpoint(
        "GET", f"{SAVINGS}/lending-rate-history", lending_rate_history, None, SAVINGS_LIMIT, cached=True
    ),
    Endpoint("GET", f"{PREFIX}/public/time", system_time, None, 10),
    Endpoint("GET", f"{PREFIX}/asset/balances", asset_balances, "read", SAVINGS_LIMIT),
    Endpoint("GET", f"{PREFIX}/asset/currencies", asset_currencies, "read", SAVINGS_LIMIT),
    Endpoint("GET", f"{PREFIX}/public/instruments", public_instruments, None, 10, cached=True),
    # the accounts around Simple Earn (api/okx/wallet.py), limited per user as OKX documents them
    Endpoint("GET", f"{PREFIX}/account/balance", wallet.account_balance, "read", 5),
    Endpoint("POST", f"{PREFIX}/asset/transfer", wallet.funds_transfer, "trade", 2),
    Endpoint("GET", f"{PREFIX}/asset/bills", wallet.asset_bills, "read", 6),
    Endpoint("GET", f"{PREFIX}/asset/asset-valuation", wallet.asset_valuation, "read", 1),
]
