"""The Simple Earn endpoints of Binance's SDK for what flexearn does not have.

binance-sdk-simple-earn has, beside the flexible and locked products, a flexible holding's
collateral record (Simple Earn used as a loan's collateral), Earn's Yield Arena giveaways, and two
products of their own, BFUSD and RWUSD. flexearn lends no money against holdings and runs no
giveaways: their lists are served, empty. It has no BFUSD or RWUSD product: each of their
endpoints is refused, once the request is authenticated, with Binance's Simple Earn answer to a
product the user may not use, -6003 (docs/fidelity.md: Binance does not document what a user
without access is answered; this is the choice).
"""

from __future__ import annotations

from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import errors
from flexearn.api.binance.common import page, window
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.services import clock

NOT_OFFERED = errors.BinanceError("-6003", "Product not exist or you don't have permission")
# Each product's endpoints, as the SDK calls them (method, path under /sapi/v1/<product>/).
PRODUCTS = ("bfusd", "rwusd")
PRODUCT_ENDPOINTS = (
    ("GET", "account"),
    ("GET", "quota"),
    ("GET", "history/rateHistory"),
    ("GET", "history/redemptionHistory"),
    ("GET", "history/rewardsHistory"),
    ("GET", "history/subscriptionHistory"),
    ("POST", "redeem"),
    ("POST", "subscribe"),
)


def collateral_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """No holding here is a loan's collateral: no rows, over a window and page read as the other
    histories read theirs. `total` is a string, as Binance's SDK models this answer's."""
    params.integer("productId", low=1)
    window(clock.show(app.read_uow()).now, params)
    return {"rows": page(params, [])["rows"], "total": "0"}


def arena_activities(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """No giveaways are run here. `lang` is read: any value answers in the one language there is."""
    params.text("lang")
    return {"activities": []}


def not_offered(app: Flexearn, caller: Caller | None, params: Params) -> Any:
    raise NOT_OFFERED
