"""OKX's accounts around Simple Earn: the trading account's balance, transfers between the funding
("6") and trading ("18") accounts, the funding account's bills, the valuation of every account.

Simple Earn buys from the funding account only, so a bot's money goes trading → funding by
`POST /api/v5/asset/transfer` before a purchase, as on OKX.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.facade import user_of as _user
from flexearn.api.okx import errors, wire
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import round_down
from flexearn.services import transfers, valuation

# OKX's account ids (asset/transfer `from`/`to`), as ccxt's okx `accountsByType` names them.
ACCOUNTS = {"6": AccountKind.FUNDING, "18": AccountKind.TRADING}
IDS = {kind: okx_id for okx_id, kind in ACCOUNTS.items()}
MAX_CCYS = 20  # OKX: "no more than 20" currencies in `ccy`
CLIENT_ID_LENGTH = 32  # OKX: alphanumerics, 1 to 32 characters

# OKX's funding-account bill types (asset/bills `type`) for the journal entries that touch funding.
BILL_TYPES = {
    "deposit": "1",
    "withdrawal": "2",
    "purchase": "75",  # subscription to savings
    "subscribe": "75",
    "redemption": "76",  # redemption from savings
    "redeem": "76",
    "redeem_arrival": "76",
    "expiry": "76",
    # catalog interest paid to funding: OKX's table has no flexible-product interest to funding;
    # its nearest is "343: [Simple Earn Fixed] Interest" (OKX's docs as captured Nov 2025)
    "catalog_interest": "343",
}
FROM_TRADING, TO_TRADING = "130", "131"  # "Transferred from / to Trading account"


def _ccys(params: Params) -> set[str] | None:
    wanted = params.text("ccy")
    ccys = {c.strip().upper() for c in wanted.split(",") if c.strip()} if wanted else None
    if ccys is not None and len(ccys) > MAX_CCYS:
        raise errors.invalid("ccy", f"at most {MAX_CCYS} currencies")
    return ccys


def _usd(amount: Decimal, price: Decimal | None) -> str:
    return "" if price is None else wire.amount(round_down(amount * price, valuation.PLACES))


def account_balance(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """The trading account in OKX's shape (spot mode: cash only, no liabilities or positions);
    USD values at the operator's reference prices, USDT counted as one dollar."""
    ccys = _ccys(params)
    held = valuation.holdings(app.read_uow(), _user(caller))
    now = str(held.now)
    details = [
        {
            "ccy": ccy,
            "eq": wire.amount(amount),
            "cashBal": wire.amount(amount),
            "availBal": wire.amount(amount),
            "availEq": wire.amount(amount),
            "frozenBal": "0",
            "ordFrozen": "0",
            "fixedBal": "0",
            "eqUsd": _usd(amount, held.prices.get(ccy)),
            "disEq": _usd(amount, held.prices.get(ccy)),
            "isoEq": "0",
            "upl": "0",
            "liab": "",
            "uplLiab": "",
            "crossLiab": "",
            "isoLiab": "",
            "interest": "",
            "maxLoan": "",
            "mgnRatio": "",
            "notionalLever": "",
            "twap": "0",
            "stgyEq": "0",
            "borrowFroz": "",
            "uTime": now,
        }
        for ccy, amount in sorted(held.trading.items())
        if amount and (ccys is None or ccy in ccys)
    ]
    total = valuation.in_usdt(held.trading, held.prices)
    return [
        {
            "totalEq": wire.amount(round_down(total, valuation.PLACES)),
            "adjEq": "",
            "isoEq": "0",
            "ordFroz": "",
            "imr": "",
            "mmr": "",
            "mgnRatio": "",
            "notionalUsd": "",
            "borrowFroz": "",
            "upl": "0",
            "uTime": now,
            "details": details,
        }
    ]


def funds_transfer(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """Within the account only (`type` 0): OKX's sub-account transfers (1 to 4) are not modelled."""
    ccy = params.required_currency()
    amt = params.required_decimal("amt")
    source = params.required_choice("from", tuple(ACCOUNTS))
    target = params.required_choice("to", tuple(ACCOUNTS))
    if (params.text("type") or "0") != "0":
        raise errors.invalid("type", "only 0 (within the account) is supported")
    if source == target:
        raise errors.invalid("to", "must differ from from")
    client_id = params.text("clientId") or ""
    if client_id and not (len(client_id) <= CLIENT_ID_LENGTH and client_id.isascii() and client_id.isalnum()):
        raise errors.invalid("clientId", f"1 to {CLIENT_ID_LENGTH} letters and digits")
    done = transfers.transfer(app.uow(), _user(caller), ccy, amt, ACCOUNTS[source], ACCOUNTS[target])
    return [
        {
            "transId": str(done.id),
            "ccy": ccy,
            "clientId": client_id,
            "from": source,
            "amt": wire.amount(amt),
            "to": target,
        }
    ]


def _bill_type(bill: transfers.Bill) -> str:
    direction = transfers.transfer_direction(AccountKind.FUNDING, bill)
    if direction is not None:
        return FROM_TRADING if direction[0] is AccountKind.TRADING else TO_TRADING
    return BILL_TYPES.get(bill.kind, "")


def asset_bills(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """The funding account's bills, newest first; `after`/`before` are timestamps, as OKX pages
    this endpoint. A `type` filter is applied to the page read (at most `limit` bills)."""
    limit = params.integer("limit", low=1, high=100) or 100
    wanted = params.text("type")
    found = transfers.bills(
        app.read_uow(),
        _user(caller),
        AccountKind.FUNDING,
        params.currency(),
        before_ts=params.integer("after"),
        after_ts=params.integer("before"),
        limit=limit,
    )
    return [
        {
            "billId": str(b.id),
            "ccy": b.ccy,
            "clientId": "",
            "balChg": wire.amount(b.change),
            "bal": wire.amount(b.balance),
            "type": _bill_type(b),
            "ts": str(b.ts),
        }
        for b in found
        if wanted is None or _bill_type(b) == wanted
    ]


def asset_valuation(app: Flexearn, caller: Caller | None, params: Params) -> list[Any]:
    """Every account valued in `ccy` (default BTC, as on OKX): a currency with a reference
    price, USDT, or USD (taken as USDT)."""
    unit = params.currency() or "BTC"
    held = valuation.holdings(app.read_uow(), _user(caller))
    price = Decimal(1) if unit == "USD" else held.prices.get(unit)
    if price is None:
        raise errors.invalid("ccy", f"no reference price for {unit}")
    parts = {
        "funding": valuation.in_usdt(held.funding, held.prices),
        "trading": valuation.in_usdt(held.trading, held.prices),
        "earn": valuation.in_usdt(held.earn, held.prices),
    }

    def value(usdt: Decimal) -> str:
        return wire.amount(valuation.valued(usdt, price))

    return [
        {
            "totalBal": value(sum(parts.values(), Decimal(0))),
            "ts": str(held.now),
            "details": {
                "funding": value(parts["funding"]),
                "trading": value(parts["trading"]),
                "classic": "0",
                "earn": value(parts["earn"]),
            },
        }
    ]
