"""Bitget's accounts around Earn: transfers between the spot and USDT-M futures accounts, the
futures account's assets, the overview of every account, and the funding (P2P) account.

flexearn's `funding` account is Bitget's spot account (Bitget Earn subscribes from spot and
redeems to it; `/api/v2/spot/account/assets` shows it); its `trading` account is Bitget's USDT-M
futures account (`usdt_futures`, ccxt's `swap`). Bitget's own funding account (`p2p`), its coin-
and USDC-M futures and its margin accounts are not modelled: they hold nothing, and transfers
naming them are refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.bitget import errors
from flexearn.api.bitget.wire import amount
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO, round_down
from flexearn.services import transfers, valuation

# Bitget's account types (wallet/transfer `fromType`/`toType`), and those flexearn holds money in.
ACCOUNT_TYPES = (
    "spot",
    "p2p",
    "coin_futures",
    "usdt_futures",
    "usdc_futures",
    "crossed_margin",
    "isolated_margin",
)
ACCOUNTS = {"spot": AccountKind.FUNDING, "usdt_futures": AccountKind.TRADING}
PRODUCT_TYPES = ("USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES")
CLIENT_OID_LENGTH = 64


def _account(params: Params, name: str) -> AccountKind:
    chosen = params.required_choice(name, ACCOUNT_TYPES)
    if chosen not in ACCOUNTS:
        raise errors.invalid(name, "flexearn holds money in the spot and usdt_futures accounts only")
    return ACCOUNTS[chosen]


def wallet_transfer(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    source, target = _account(params, "fromType"), _account(params, "toType")
    coin = params.required_currency("coin")
    size = params.required_decimal("amount")
    if source is target:
        raise errors.invalid("toType", "must differ from fromType")
    client_oid = params.text("clientOid")
    if client_oid is not None and len(client_oid) > CLIENT_OID_LENGTH:
        raise errors.invalid("clientOid", f"at most {CLIENT_OID_LENGTH} characters")
    done = transfers.transfer(app.uow(), _user(caller), coin, size, source, target, param="amount")
    return {"transferId": str(done.id), "clientOid": client_oid}


def _round(value: Decimal) -> str:
    return amount(round_down(value, valuation.PLACES))


def all_account_balance(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, str]]:
    """Each account's value in USDT at the operator's reference prices; `earn` is every savings
    holding (Earn catalog and Simple Earn positions alike)."""
    held = valuation.holdings(app.read_uow(), _user(caller))
    values = {
        "spot": valuation.in_usdt(held.funding, held.prices),
        "futures": valuation.in_usdt(held.trading, held.prices),
        "funding": ZERO,
        "earn": valuation.in_usdt(held.earn, held.prices),
        "bots": ZERO,
        "margin": ZERO,
    }
    return [{"accountType": kind, "usdtBalance": _round(value)} for kind, value in values.items()]


def funding_assets(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, str]]:
    """Bitget's funding (P2P) account: not modelled, so empty (Earn money is in spot)."""
    params.currency("coin")  # still checked
    return []


def futures_accounts(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, Any]]:
    """The USDT-M futures account, one row per coin held (cash only: no positions, no orders);
    the coin- and USDC-M accounts are empty."""
    if params.required_choice("productType", PRODUCT_TYPES) != "USDT-FUTURES":
        return []
    held = valuation.holdings(app.read_uow(), _user(caller))
    btc = held.prices.get("BTC")
    rows = []
    for coin, balance in sorted(held.trading.items()):
        if not balance:
            continue
        usdt = balance * held.prices.get(coin, ZERO)
        cash = amount(balance)
        rows.append(
            {
                "marginCoin": coin,
                "locked": "0",
                "available": cash,
                "crossedMaxAvailable": cash,
                "isolatedMaxAvailable": cash,
                "maxTransferOut": cash,
                "accountEquity": cash,
                "usdtEquity": _round(usdt),
                "btcEquity": _round(usdt / btc) if btc else "0",
                "crossedRiskRate": "0",
                "unrealizedPL": "0",
                "coupon": "0",
                "crossedUnrealizedPL": "0",
                "isolatedUnrealizedPL": "",
                "assetMode": "single",
                "grant": "",
                "isolatedMargin": "0",
                "crossedMargin": "0",
            }
        )
    return rows
