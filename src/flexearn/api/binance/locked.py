"""Binance Simple Earn locked products over the catalog's fixed-term products.

A locked product is a fixed catalog product: `projectId` is its id, `duration` its `period` days,
`apr` its (first band's) APY as a fraction. A subscription opens a holding of its own; its
`positionId` is the subscription's order id, which is what redeeming it names (early, where the
product allows it: interest already paid comes back out of the principal, as the catalog rules).
Interest goes to SPOT as the product settles it (daily or at maturity), and so does the principal
at maturity: fixed products here neither renew nor move into a flexible product, so the options
that would ask for either are refused. Histories take Binance's 30-day windows (`common.window`).
"""

from __future__ import annotations

from typing import Any

from flexearn.api.auth import Caller
from flexearn.api.binance import errors
from flexearn.api.binance.common import (
    BOOLEANS,
    SOURCES,
    STATUSES,
    chosen_wallet,
    destination,
    left_quota,
    page,
    paged,
    rate,
    records,
    spot_only,
    subscription_fields,
)
from flexearn.api.binance.wire import amount
from flexearn.api.facade import user_of as _user
from flexearn.api.params import Params
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, OrderStatus, PeriodType, SettleMethod, Status, day_interest
from flexearn.domain.errors import NotFound
from flexearn.domain.money import ZERO
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
    """From SPOT, FUND or both (`sourceAccount`). `autoSubscribe` (renewal at maturity) is read
    and not kept: fixed products here do not renew (docs/fidelity.md)."""
    project, size = _project(params), params.required_decimal("amount")
    source = chosen_wallet(params, "sourceAccount", SOURCES)
    spot_only(params, "redeemTo", ("SPOT", "FLEXIBLE"))
    params.choice("autoSubscribe", BOOLEANS)
    order = catalog_trading.subscribe(app.uow(), _user(caller), project, FIXED, size, source)
    return {"purchaseId": order.id, "positionId": str(order.id), "success": True}


def locked_redeem(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """The whole position, early (where its product allows it)."""
    held = _held_position(app, caller, params)
    order = catalog_trading.redeem(
        app.uow(), _user(caller), held.product.id, FIXED, held.amount, held.order_id
    )
    return {"redeemId": order.id, "success": True}


def _project(params: Params) -> int:
    return params.required_integer("projectId", low=1)


def personal_left_quota(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, str]:
    return {"leftPersonalQuota": left_quota(app, _project(params), FIXED)}


def subscription_preview(app: Flexearn, caller: Caller | None, params: Params) -> list[dict[str, Any]]:
    """What subscribing `amount` now would earn: a day's interest at the product's rates (rounded
    down as it is paid), the term's (each day's, as the catalog pays them), and the dates."""
    project, size = _project(params), params.required_decimal("amount")
    params.choice("autoSubscribe", BOOLEANS)
    info = catalog.subscribe_info(app.read_uow(), project, FIXED)
    product, when = info.product, info.schedule
    daily = day_interest(size, product.tiers, product.profit_precision)
    term = daily * (product.period_days or 0)
    pays_daily = product.settle_method is SettleMethod.DAILY
    end = when.expire_time if when.expire_time is not None else when.settle_time
    return [
        {
            "rewardAsset": product.coin,
            "totalRewardAmt": amount(term),
            "extraRewardAsset": product.coin,
            "estTotalExtraRewardAmt": "0",
            "boostRewardAsset": product.coin,
            "estDailyRewardAmt": amount(daily),
            "nextPay": amount(daily if pays_daily else term),
            "nextPayDate": when.settle_time if pays_daily else end,
            "valueDate": when.interest_time,
            "rewardsEndDate": end,
            "deliverDate": end + product.redeem_delay_days * DAY_MS,
        }
    ]


def _positions(app: Flexearn, rows: list[catalog_views.Record]) -> dict[int, int]:
    """Each row's holding's position id (its first subscription's order id)."""
    return catalog_views.first_subscriptions(app.read_uow(), [r.holding_id for r in rows if r.holding_id])


def _position_filter(
    params: Params, positions: dict[int, int], rows: list[catalog_views.Record]
) -> list[catalog_views.Record]:
    wanted = params.integer("positionId", low=1)
    return [r for r in rows if wanted is None or positions.get(r.holding_id or 0) == wanted]


def subscription_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """Each fixed subscription: its own position (`positionId` is its `purchaseId`)."""
    found = records(app, caller, params, FIXED, "subscribe", "purchaseId")
    result, wallets = paged(app, params, found)
    result["rows"] = [
        {
            "positionId": r.order_id,
            "purchaseId": str(r.order_id),
            "projectId": str(r.product.id),
            "time": r.ts,
            "asset": r.product.coin,
            "amount": amount(r.amount),
            "lockPeriod": str(r.product.period_days or 0),
            **subscription_fields(r, wallets.get(r.order_id)),
            "status": "SUCCESS" if r.status == OrderStatus.SUCCESS else "PURCHASING",
        }
        for r in result["rows"]
    ]
    return result


def redemption_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """Early redemptions (`AHEAD`): the principal (`originalAmount`) less the interest already
    paid, kept back (`lossAmount`), is `amount`. Expiries are paid by the catalog day without an
    order, so they are not listed (docs/fidelity.md)."""
    found = records(app, caller, params, FIXED, "redeem", "redeemId")
    deductions = records(app, caller, params, FIXED, "deduction")
    kept = {(r.holding_id, r.ts): r.amount for r in deductions}
    positions = _positions(app, found)
    result, wallets = paged(app, params, _position_filter(params, positions, found))
    rows = []
    for r in result["rows"]:
        loss = kept.get((r.holding_id, r.ts), ZERO)
        paid = r.status == OrderStatus.SUCCESS
        rows.append(
            {
                "positionId": positions.get(r.holding_id or 0, r.order_id),
                "redeemId": r.order_id,
                "time": r.ts,
                "asset": r.product.coin,
                "lockPeriod": str(r.product.period_days or 0),
                "amount": amount(r.amount - loss),
                "originalAmount": amount(r.amount),
                "type": "AHEAD",
                "deliverDate": r.ts + r.product.redeem_delay_days * DAY_MS,
                "lossAmount": amount(loss),
                "isComplete": paid,
                "rewardAsset": r.product.coin,
                "rewardAmt": "0",
                "destAccount": destination(wallets.get(r.order_id)),
                "status": "PAID" if paid else "PAYING",
            }
        )
    result["rows"] = rows
    return result


def rewards_record(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, Any]:
    """Each day's (or the maturity's) interest paid on a fixed holding."""
    found = records(app, caller, params, FIXED, "pay_interest", None)
    positions = _positions(app, found)
    result = page(params, _position_filter(params, positions, found))
    result["rows"] = [
        {
            "positionId": positions.get(r.holding_id or 0, 0),
            "time": r.ts,
            "asset": r.product.coin,
            "lockPeriod": str(r.product.period_days or 0),
            "amount": amount(r.amount),
            "type": "Locked Rewards",
        }
        for r in result["rows"]
    ]
    return result


def _held_position(app: Flexearn, caller: Caller | None, params: Params) -> catalog_views.Asset:
    """The user's position `positionId` names (-6020 otherwise, as Binance: "Project not exists")."""
    position = params.required_integer("positionId", low=1)
    for held in catalog_views.assets(app.read_uow(), _user(caller), FIXED):
        if held.order_id == position:
            return held
    raise NotFound(f"no locked position {position}", param="positionId")


def set_auto_subscribe(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, bool]:
    """Renewal at maturity: fixed products here do not renew, so only `false` (what every
    position already is) is taken; `true` is refused (-1130)."""
    _held_position(app, caller, params)
    if params.required_choice("autoSubscribe", BOOLEANS) == "true":
        raise errors.bad_value("autoSubscribe", "locked positions here do not renew at maturity")
    return {"success": True}


def set_redeem_option(app: Flexearn, caller: Caller | None, params: Params) -> dict[str, bool]:
    """Where the principal goes at maturity: SPOT, as every position here does (FLEXIBLE: -1130)."""
    _held_position(app, caller, params)
    if params.required_choice("redeemTo", ("SPOT", "FLEXIBLE")) != "SPOT":
        raise errors.bad_value("redeemTo", "only SPOT: a locked position here is redeemed to SPOT")
    return {"success": True}
