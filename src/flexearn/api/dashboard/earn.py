"""The dashboard's Simple Earn panel: the catalog as a Binance user sees it, and a product's APR history.

A flexible catalog product is Binance's flexible product, a fixed one its locked product (the
façade's mapping, `api/binance/routes.py` and `locked.py`); rates are shown as Binance shows them,
APRs as fractions cut to 8 places (`api/binance/common.rate`), so the operator reads here what a
bot reads from `/sapi/v1/simple-earn/flexible/list`.

`apr_history` is the one place the panel reads a product's APR history from: a real-time product's
recorded changes (Binance's model, `services/realtime_apr.py`), else the catalog rate now.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flexearn.api.binance.common import STATUSES, listed_bands, rate
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, PeriodType, Product, Status, day_start
from flexearn.domain.errors import NotFound
from flexearn.domain.money import ascii_digits, plain
from flexearn.services import catalog, realtime_apr
from flexearn.services import clock as clock_service

KINDS = {PeriodType.FLEXIBLE: "flexible", PeriodType.FIXED: "locked"}
CHART_SPAN_MS = 365 * DAY_MS  # the APR chart's reach back (Binance's rateHistory: a year at most)


@dataclass(frozen=True)
class AprChange:
    """From `ts` on, the product's APR was `apr` (a fraction)."""

    ts: int
    apr: Decimal


def apr_history(app: Flexearn, product: Product) -> list[AprChange]:
    """The one point where the dashboard reads a product's APR history, oldest first.

    A product with a real-time APR (Binance's model) has every change recorded
    (`services.realtime_apr.apr_history`). A product of Bitget's model keeps no history of its
    rates (an operator's change takes effect at once): its first band's rate now, dated at the
    start of the current business day, as the Binance façade's `rateHistory` dates it."""
    now = clock_service.show(app.read_uow()).now
    if product.realtime:  # at most a year of it (a walk moves each hour: 8,760 changes)
        since = now - CHART_SPAN_MS
        history = realtime_apr.apr_history(app.read_uow(), product.id, since, now)
        return [AprChange(ts, apr / 100) for ts, apr in history]
    return [AprChange(day_start(now), product.tiers[0].apy / 100)]


def _product(app: Flexearn, ref: str) -> Product:
    """The product whose id `ref` is (as the path gives it: not read as a number unless it is a
    short one, so `int()` never meets 5,000 digits)."""
    if ascii_digits(ref):
        for view in catalog.list_products(app.read_uow(), None, None, "all"):
            if view.product.id == int(ref):
                return view.product
    raise NotFound(f"no product {ref[:40]}", param="productId")


def _bands(product: Product) -> list[dict[str, Any]]:
    """The bands with each one's APR, as Binance's `tierAnnualPercentageRate` lists them."""
    bands = listed_bands(product)
    return [{"min": plain(t.min_step), "max": plain(t.max_step), "apr": rate(t.apy)} for t in bands]


def products(app: Flexearn) -> list[dict[str, Any]]:
    """Every catalog product as Binance's Simple Earn lists it: asset, flexible or locked, the
    locked term in days, the APR now (a real-time product's, else the first band's), the bands
    and Binance's status."""
    views = catalog.list_products(app.read_uow(), None, None, "all")
    now = realtime_apr.current_aprs(app.read_uow(), [v.product.id for v in views if v.product.realtime])
    return [
        {
            "productId": str(v.product.id),
            "asset": v.product.coin,
            "kind": KINDS[v.product.period_type],
            "durationDays": v.product.period_days if v.product.period_type is PeriodType.FIXED else None,
            "apr": rate(now[v.product.id] if v.product.realtime else v.product.tiers[0].apy),
            "bands": _bands(v.product),
            "status": STATUSES[v.status],
            "canPurchase": v.status is Status.IN_PROGRESS,
        }
        for v in views
    ]


def apr(app: Flexearn, ref: str) -> dict[str, Any]:
    """One product's APR history, with the business time now (where the chart's last step ends)."""
    product = _product(app, ref)
    return {
        "productId": str(product.id),
        "asset": product.coin,
        "now": clock_service.show(app.read_uow()).now,
        "changes": [{"ts": c.ts, "apr": plain(c.apr)} for c in apr_history(app, product)],
    }
