"""Binance Simple Earn locked products over the catalog's fixed-term products.

A locked product is a fixed catalog product: `projectId` is its id, `duration` its `period` days,
`apr` its (first band's) APY as a fraction. A subscription opens a holding of its own; its
`positionId` is the subscription's order id, which is what redeeming it names (early, where the
product allows it: interest already paid comes back out of the principal, as the catalog rules).
Interest goes to SPOT as the product settles it (daily or at maturity).
"""

from __future__ import annotations

from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance.common import BOOLEANS, STATUSES, page, rate, spot_only
from flexearn.api.binance.wire import amount
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import PeriodType, Status
from flexearn.domain.errors import NotFound
from flexearn.services import catalog, catalog_trading, catalog_views

FIXED = PeriodType.FIXED.value


def locked_list(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    views = catalog.list_products(
        app.read_uow(), _user(caller), params.currency("asset"), "available_and_held"
    )
    rows = []
    for v in views:
        p = v.product
        if p.period_type is not PeriodType.FIXED:
            continue
        left = p.single_max if v.remaining is None else min(v.remaining, p.single_max)
        detail: dict[str, Any] = {
            "asset": p.coin,
            "rewardAsset": p.coin,
            "duration": p.period_days or 0,
            "renewable": False,
            "isSoldOut": v.status is Status.SOLD_OUT,
            "apr": rate(p.tiers[0].apy),
            "status": STATUSES[v.status],
        }
        if p.start_time is not None:
            detail["subscriptionStartTime"] = p.start_time
        rows.append(
            {
                "projectId": str(p.id),
                "detail": detail,
                "quota": {"totalPersonalQuota": amount(left), "minimum": amount(p.single_min)},
            }
        )
    return page(params, rows)


def locked_position(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    project = params.integer("projectId", low=1)
    position = params.integer("positionId", low=1)
    held = catalog_views.assets(app.read_uow(), _user(caller), FIXED, params.currency("asset"))
    rows = [
        {
            "positionId": a.order_id,
            "projectId": str(a.product.id),
            "asset": a.product.coin,
            "amount": amount(a.amount),
            "duration": str(a.product.period_days or 0),
            "accrualDays": str(a.hold_days),
            "rewardAsset": a.product.coin,
            "APY": rate(a.product.tiers[0].apy),
            "rewardAmt": amount(a.total_profit),
            "payPeriod": "1" if a.product.settle_method.value == "daily" else str(a.product.period_days or 0),
            "redeemTo": "SPOT",
            "canRedeemEarly": a.allow_redemption,
            "canFastRedemption": False,
            "autoSubscribe": False,
            "type": "NORMAL",
            "status": "HOLDING",
            "canReStake": False,
        }
        for a in held
        if (project is None or a.product.id == project) and (position is None or a.order_id == position)
    ]
    return page(params, rows)


def locked_subscribe(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    spot_only(params, "sourceAccount", ("SPOT", "FUND", "ALL"))
    spot_only(params, "redeemTo", ("SPOT", "FLEXIBLE"))
    params.choice("autoSubscribe", BOOLEANS)  # read, not kept (the next slice)
    order = catalog_trading.subscribe(
        app.uow(),
        _user(caller),
        params.required_integer("projectId", low=1),
        FIXED,
        params.required_decimal("amount"),
    )
    return {"purchaseId": order.id, "positionId": str(order.id), "success": True}


def locked_redeem(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """The whole position, early (where its product allows it)."""
    position, user = params.required_integer("positionId", low=1), _user(caller)
    held = [a for a in catalog_views.assets(app.read_uow(), user, FIXED) if a.order_id == position]
    if not held:
        raise NotFound(f"no locked position {position}", param="positionId")
    order = catalog_trading.redeem(app.uow(), user, held[0].product.id, FIXED, held[0].amount, position)
    return {"redeemId": order.id, "success": True}
