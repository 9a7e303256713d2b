"""What the Binance Simple Earn endpoints share: paging, rates, statuses, wallets, history records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import errors
from flexearn.api.binance.wire import amount
from flexearn.api.facade import user_of
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, Product, Status, Tier
from flexearn.domain.earn_wallets import Wallet
from flexearn.domain.money import ZERO, round_down
from flexearn.services import catalog, catalog_rows, catalog_views, clock

RATE_PLACES = 8
# Binance's product statuses: "PREHEATING", "PURCHASING", "END".
STATUSES = {
    Status.NOT_STARTED: "PREHEATING",
    Status.IN_PROGRESS: "PURCHASING",
    Status.PAUSED: "PURCHASING",
    Status.SOLD_OUT: "PURCHASING",
    Status.COMPLETED: "END",
    Status.OFF_LINE: "END",
}
BOOLEANS = ("true", "false")
MAX_ROWS = 100_000  # history rows read for one answer (30 days at most: `window`)


def listed_bands(product: Product) -> tuple[Tier, ...]:
    """The bands Binance lists as `tierAnnualPercentageRate`: a real-time product's bonus bands
    that pay; a ladder's bands (none for a single rate, as Binance lists none)."""
    if product.realtime:
        return product.bonus_bands
    return product.tiers if len(product.tiers) > 1 else ()


def page(params: Params, rows: list[Any]) -> dict[str, Any]:
    """Binance's paging: page `current` (from 1) of `size` rows (default 10, at most 100)."""
    current = params.integer("current", low=1, high=10**9) or 1
    size = params.integer("size", low=1, high=100) or 10
    return {"rows": rows[(current - 1) * size : current * size], "total": len(rows)}


def rate(apy_percent: Decimal) -> str:
    """An APY in percent as Binance's APR: a fraction, cut to 8 places."""
    return amount(round_down(apy_percent / 100, RATE_PLACES), RATE_PLACES)


# Binance's wallets for `sourceAccount` and `destAccount` (SDK enums: SPOT, FUND, ALL; SPOT, FUND),
# "default SPOT"; SPOT is flexearn's funding account, FUND its trading account (api/binance/wallet.py).
SOURCES = {"SPOT": Wallet.FUNDING, "FUND": Wallet.TRADING, "ALL": Wallet.ALL}
DESTINATIONS = {"SPOT": Wallet.FUNDING, "FUND": Wallet.TRADING}
# How Binance's records name the wallets: `sourceAccount` "SPOT, FUNDING, SPOTANDFUNDING".
RECORD_NAMES = {Wallet.FUNDING: "SPOT", Wallet.TRADING: "FUNDING", Wallet.ALL: "SPOTANDFUNDING"}
HISTORY_DAYS = 30  # "The time between startTime and endTime cannot be longer than 30 days."


def chosen_wallet(params: Params, name: str, choices: dict[str, Wallet]) -> Wallet:
    """The wallet `name` chooses, SPOT if not given."""
    return choices[params.choice(name, tuple(choices)) or "SPOT"]


def spot_only(params: Params, name: str, choices: tuple[str, ...]) -> None:
    """A choice only SPOT of which is served (a locked product's `redeemTo`: FLEXIBLE is not)."""
    chosen = params.choice(name, choices)
    if chosen not in (None, "SPOT"):
        raise errors.bad_value(name, "only SPOT: a locked position here is redeemed to SPOT")


def window(
    now: int, params: Params, days: int = HISTORY_DAYS, most_days: int | None = None
) -> tuple[int, int]:
    """Binance's history window: the last `days` if neither end is given, the `days` after
    `startTime` or before `endTime` if only one is; at most `most_days` long (`days` unless said:
    `rateHistory`'s may be a year)."""
    most_days = most_days or days
    span, most = days * DAY_MS, most_days * DAY_MS
    start, end = params.integer("startTime", low=0), params.integer("endTime", low=0)
    end = end if end is not None else (start + span if start is not None else now)
    start = start if start is not None else end - span
    if end < start or end - start > most:
        raise errors.bad_value("endTime", f"not before startTime, and at most {most_days} days after it")
    return start, end


def records(
    app: Flexearn,
    caller: Caller | None,
    params: Params,
    period: str,
    order_type: str | None,
    id_param: str | None = None,
) -> list[catalog_views.Record]:
    """The user's `period` orders of `order_type` (None: of every type), newest first, within
    Binance's 30-day window (`window`); of `asset`, `productId` and the order `id_param` names, if
    given."""
    start, end = window(clock.show(app.read_uow()).now, params)
    found, _ = catalog_views.records(
        app.read_uow(), user_of(caller), period, order_type, params.currency("asset"), start, end, MAX_ROWS
    )
    product_id = params.integer("productId", low=1)
    order_id = None if id_param is None else params.integer(id_param, low=1)
    return [
        r
        for r in found
        if (product_id is None or r.product.id == product_id) and (order_id is None or r.order_id == order_id)
    ]


def left_quota(app: Flexearn, product_id: int, period: str) -> str:
    """How much more one subscription may buy: the product's single maximum, or what is left of
    its quota if that is less."""
    info = catalog.subscribe_info(app.read_uow(), product_id, period)
    left = info.product.single_max if info.remaining is None else min(info.remaining, info.product.single_max)
    return amount(left)


def paged(
    app: Flexearn, params: Params, found: list[catalog_views.Record]
) -> tuple[dict[str, Any], dict[int, catalog_rows.OrderWallet]]:
    """The page of `found` asked for (its `rows` still records), and its orders' wallet rows."""
    result = page(params, found)
    return result, catalog_views.order_wallets(app.read_uow(), [r.order_id for r in result["rows"]])


def subscription_fields(r: catalog_views.Record, found: catalog_rows.OrderWallet | None) -> dict[str, Any]:
    """A subscription record's `type` (AUTO: made by auto-subscribe), `sourceAccount`,
    `amtFromSpot` and `amtFromFunding`, as they were."""
    wallet, funding, trading = Wallet.FUNDING, r.amount, ZERO
    if found is not None:
        wallet, funding, trading = found.wallet, found.parts.funding, found.parts.trading
    return {
        "type": "AUTO" if found is not None and found.auto else "NORMAL",
        "sourceAccount": RECORD_NAMES[wallet],
        "amtFromSpot": amount(funding),
        "amtFromFunding": amount(trading),
    }


def destination(found: catalog_rows.OrderWallet | None) -> str:
    """A redemption record's `destAccount`."""
    return RECORD_NAMES[found.wallet] if found is not None else "SPOT"
