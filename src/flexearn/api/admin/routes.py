"""The admin API as one table: method, path, handler, request schemas, result type, errors.

The server (`server.py`) routes and validates from this table and the OpenAPI document
(`openapi.py`) is generated from it; nothing about an endpoint is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flexearn.api.admin import handlers as h
from flexearn.api.admin import product_spec
from flexearn.api.admin.schema import (
    CCY,
    DECIMAL_PATTERN,
    MAX_MS,
    Schema,
    array,
    choice,
    decimal,
    integer,
    number,
    obj,
    text,
)
from flexearn.domain.catalog import (
    Level,
    Product,
)
from flexearn.domain.ledger import WALLETS
from flexearn.domain.market import DemandSource, MatchingMode
from flexearn.domain.vocabulary import values
from flexearn.services import accounts, audit, catalog, catalog_views, keys, markets, scheduler
from flexearn.services import clock as clock_service

MAX_ID = 2**63 - 1
MAX_ADVANCE_HOURS = 744  # a month per call: each hour settles every market, inside the request


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str  # a Starlette template under /admin/v1
    operation: str  # the OpenAPI operationId
    summary: str
    handler: Callable[[h.Call], Any]
    result: Any  # the handler's result type: its JSON Schema is derived from it
    status: int = 200
    body: Schema | None = None
    query: Schema | None = None  # an object schema: one property per query parameter
    errors: tuple[int, ...] = ()  # besides 400, 401 and 503, which every operation may answer
    # Work that opens transactions of its own (settlement) and is safe to repeat: it runs after
    # the handler's transaction commits, and its result is the answer.
    after: Callable[[h.Call], Any] | None = None

    @property
    def changes_state(self) -> bool:
        """POST, PUT, PATCH and DELETE: audited, and accept an Idempotency-Key."""
        return self.method not in ("GET", "HEAD")


# Path parameters, by name (the same name means the same thing in every path).
PATH_PARAMETERS: dict[str, Schema] = {
    "user_id": integer(1, MAX_ID, examples=[1]),
    "product_id": integer(1, MAX_ID, examples=[1]),
    "ccy": CCY,
    "api_key": text(1, 64, r"^[A-Za-z0-9-]{1,64}$"),
}

# Who acts, for the audit log (header of every state-changing operation; default: the token's name).
ACTOR: dict[str, Any] = {
    "name": "X-Admin-Actor",
    "in": "header",
    "required": False,
    "description": "who acts, recorded in the audit log (default: the name of the token)",
    "schema": text(1, 128, r"^[\x20-\x7e]+$", examples=["alice@ops"]),
}
# Any printable ASCII, as sent (a draft-style quoted string keeps its quotes), no outer spaces.
IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "makes a retry safe: a repeat with the same key, method, path and body within 24 hours "
        "answers as the first did (with `Idempotent-Replayed: true`) without acting again; the "
        "same key with another request is refused with 422 `idempotency_key_reused`, and while "
        "the first is still running with 409 `idempotency_key_in_use`. Keys are per admin token."
    ),
    "schema": text(1, 255, r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$", examples=["9f3b2c1e-deposit-42"]),
}
NAME = text(1, 64, r"^[^\x00-\x1f\x7f]+$", examples=["alice"])
LEVEL = choice(*values(Level))
AMOUNT = obj(
    {
        "ccy": CCY,
        "amount": decimal("positive, at most the currency's decimals", "100"),
        "account": choice(*values(WALLETS), description="the user's account (default funding)"),
    },
    ("ccy", "amount"),
)
RATE = {"type": "string", "pattern": DECIMAL_PATTERN}
SIMULATION = obj(
    {
        "mean": decimal("long-run hourly demand", "5000"),
        "base_rate": decimal("pro-rata borrow rate at the mean demand", "0.05"),
        "reversion": number(0, 1),
        "volatility": number(0, 10),
        "daily_amplitude": number(0, 1),
        "spike_probability": number(0, 1),
        "spike_multiplier": number(1, 100),
        "seed": integer(0),
    },
    ("mean",),
)
MARKET = obj(
    {
        "mode": choice(*values(MatchingMode)),
        "insurance_fee": decimal("share of borrower interest kept by the insurance fund", "0.15"),
        "demand_source": choice(*values(DemandSource)),
        "demand": decimal("static demand per hour", "1000"),
        "borrow_rate": decimal("static pro-rata borrow rate r_b", "0.05"),
        "simulation": SIMULATION,
    }
)
NEW_PRODUCT = obj(product_spec.FIELDS, ("coin", "apyList"))
PRODUCT_CHANGES = obj(
    {name: schema for name, schema in product_spec.FIELDS.items() if name not in product_spec.AT_CREATION},
    description="only the fields to change",
)
PAGE = {"limit": integer(1, 1000)}

ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute(
        "POST",
        "/users",
        "createUser",
        "Create a user",
        h.create_user,
        accounts.User,
        201,
        obj({"name": NAME, "level": LEVEL}, ("name",)),
        errors=(409,),
    ),
    AdminRoute(
        "GET",
        "/users",
        "listUsers",
        "Users by id",
        h.list_users,
        list[accounts.User],
        query=obj({**PAGE, "after_id": integer(0, MAX_ID)}),
    ),
    AdminRoute(
        "GET",
        "/users/{user_id:id}",
        "getUser",
        "A user, funding and trading balances and savings",
        h.get_user,
        h.UserDetail,
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/users/{user_id:id}/keys",
        "createKey",
        "Create an API key (secret shown once)",
        h.create_key,
        h.CreatedKey,
        201,
        obj(
            {
                "permissions": array(choice(*keys.PERMISSIONS), 2, minItems=1, uniqueItems=True),
                "facades": array(choice(*keys.FACADES), len(keys.FACADES), minItems=1, uniqueItems=True),
                "ips": array(text(2, 43, r"^[0-9A-Fa-f.:/]+$"), 20),
                "expires_days": integer(1, 3650),
                "passphrase": text(8, 64, r"^[\x21-\x7e]+$"),
            },
            ("permissions",),
        ),
        errors=(404,),
    ),
    AdminRoute(
        "GET",
        "/users/{user_id:id}/keys",
        "listKeys",
        "A user's API keys (no secrets)",
        h.list_keys,
        list[keys.KeyInfo],
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/keys/{api_key}/revoke",
        "revokeKey",
        "Revoke an API key (effective within about a second)",
        h.revoke_key,
        keys.KeyInfo,
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/users/{user_id:id}/deposits",
        "deposit",
        "Credit a funding (or trading) account",
        h.deposit,
        h.Movement,
        201,
        AMOUNT,
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/users/{user_id:id}/withdrawals",
        "withdraw",
        "Debit a funding (or trading) account",
        h.withdraw,
        h.Movement,
        201,
        AMOUNT,
        errors=(404, 409),
    ),
    AdminRoute(
        "POST",
        "/currencies",
        "addCurrency",
        "Add a currency",
        h.add_currency,
        accounts.Currency,
        201,
        obj({"ccy": CCY, "precision": integer(0, 18)}, ("ccy",)),
        errors=(409,),
    ),
    AdminRoute(
        "GET",
        "/currencies",
        "listCurrencies",
        "The enabled currencies",
        h.list_currencies,
        list[accounts.Currency],
    ),
    AdminRoute(
        "GET",
        "/markets",
        "listMarkets",
        "Market settings of every currency",
        h.list_markets,
        list[markets.MarketSettings],
    ),
    AdminRoute(
        "PUT",
        "/markets/{ccy}",
        "setMarket",
        "Create the currency's market or change the given settings",
        h.set_market,
        markets.MarketSettings,
        body=MARKET,
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/markets/{ccy}/demand",
        "postDemand",
        "Post an hour's borrow demand (external source); replaces an earlier post of an unsettled hour",
        h.post_demand,
        markets.DemandPost,
        201,
        obj(
            {
                "hour": integer(
                    3_600_000,
                    MAX_MS,
                    multipleOf=3_600_000,
                    description="business time of the hour's start, ms",
                ),
                "demand": decimal("borrowed amount for the hour", "1000"),
                "borrow_rate": decimal("annual borrow rate r_b (pro rata)", "0.05"),
            },
            ("hour", "demand"),
        ),
        errors=(404, 409),
    ),
    AdminRoute(
        "GET",
        "/markets/{ccy}/demand",
        "listDemand",
        "Posted demand, newest hour first",
        h.demand_posts,
        list[markets.DemandPost],
        query=obj(PAGE),
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/products",
        "createProduct",
        "Create a catalog product (Bitget field names)",
        h.create_product,
        Product,
        201,
        NEW_PRODUCT,
        errors=(404,),
    ),
    AdminRoute(
        "PATCH",
        "/products/{product_id:id}",
        "updateProduct",
        "Change a product's tiers, limits, times or status",
        h.update_product,
        Product,
        body=PRODUCT_CHANGES,
        errors=(404,),
    ),
    AdminRoute(
        "POST",
        "/products/{product_id:id}/status",
        "setProductStatus",
        "Start, pause or take a product offline",
        h.set_product_status,
        Product,
        body=obj({"status": product_spec.FIELDS["status"]}, ("status",)),
        errors=(404,),
    ),
    AdminRoute(
        "GET",
        "/products",
        "listProducts",
        "Every catalog product, with status and quota left",
        h.list_products,
        list[catalog.ProductView],
        query=obj({"coin": CCY}),
    ),
    AdminRoute(
        "PUT",
        "/prices/{ccy}",
        "setPrice",
        "Set a reference price in USDT",
        h.set_price,
        catalog_views.Price,
        body=obj({"usdt": decimal(example="65000")}, ("usdt",)),
        errors=(404,),
    ),
    AdminRoute("GET", "/prices", "listPrices", "Reference prices", h.list_prices, list[catalog_views.Price]),
    AdminRoute("GET", "/clock", "showClock", "Business time", h.show_clock, clock_service.ClockView),
    AdminRoute(
        "POST",
        "/clock/speed",
        "setClockSpeed",
        "Set a simulated clock's speed (business seconds per real second; 0 stands still)",
        h.set_clock_speed,
        clock_service.ClockView,
        body=obj({"speed": {**RATE, "examples": ["360"]}}, ("speed",)),
        errors=(409,),
    ),
    AdminRoute(
        "POST",
        "/clock/advance",
        "advanceClock",
        "Move a simulated clock forward and settle what became due",
        h.move_clock,
        clock_service.Advanced,
        body=obj({"hours": integer(1, MAX_ADVANCE_HOURS)}, ("hours",)),
        errors=(409,),
        after=h.settle_and_show_clock,
    ),
    AdminRoute(
        "POST",
        "/settle",
        "settle",
        "Settle every due market hour and catalog day now",
        h.nothing,
        scheduler.Settled,
        after=h.settle,
    ),
    AdminRoute(
        "GET",
        "/ledger/check",
        "checkLedger",
        "Re-verify every ledger invariant",
        h.check_ledger,
        h.LedgerReport,
    ),
    AdminRoute(
        "GET",
        "/audit",
        "auditLog",
        "Admin actions, newest first",
        h.audit_log,
        list[audit.AuditEntry],
        query=obj({**PAGE, "before_id": integer(1, MAX_ID)}),
    ),
)
