"""The dashboard's JSON: each view calls the services and shapes their records; amounts stay text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import PeriodType
from flexearn.domain.errors import InvalidParameter
from flexearn.domain.money import plain
from flexearn.domain.vocabulary import values
from flexearn.services import (
    accounts,
    catalog,
    catalog_views,
    leader,
    market_data,
    markets,
    operator_views,
    savings,
    stats,
)
from flexearn.services import clock as clock_service

WINDOWS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
RECENT = 50  # rows of a user's histories shown
EARNINGS_HOURS = 30 * 24  # a user's earnings over the lending history's month
# A product created without a per-order maximum has this one (catalog.DEFAULTS): shown as none.
NO_LIMIT = catalog.DEFAULTS["single_max"]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def _limit(value: Decimal) -> str | None:
    return None if value >= NO_LIMIT else plain(value)


def _hour(h: operator_views.MarketHour) -> dict[str, Any]:
    return {
        "ts": h.hour,
        "rate": plain(h.borrow_rate),
        "lendingRate": plain(h.lending_rate),
        "demand": plain(h.demand),
        "supply": plain(h.supply),
        "lent": plain(h.lent),
        "pending": plain(h.pending),
        "interest": plain(h.interest_paid),
    }


def _since(app: Flexearn, hours: int) -> int:
    now = clock_service.show(app.read_uow()).now
    return floor_hour(now) - (hours - 1) * HOUR_MS


def overview(app: Flexearn) -> dict[str, Any]:
    """The clock, and per market its rates now, what is lent and pending, and a day of borrow rates."""
    view = clock_service.show(app.read_uow())
    summaries = {s.ccy: s for s in market_data.rate_summary(app.read_uow(), None, app.figures)}
    snapshot = stats.snapshot(app.read_uow(), app.figures)
    now = {s.ccy: s for s in snapshot.currencies}
    since = floor_hour(view.now) - 23 * HOUR_MS
    cards = []
    for market in markets.list_markets(app.read_uow()):
        summary, current = summaries[market.ccy], now[market.ccy]
        cards.append(
            {
                "ccy": market.ccy,
                "mode": market.mode.value,
                "avgRate": plain(summary.avg_rate),
                "preRate": plain(summary.pre_rate),
                "estRate": plain(summary.est_rate),
                "lendingRate": _text(current.lending_rate),
                "demand": _text(current.demand),
                "lent": plain(current.lent),
                "pending": plain(current.pending),
                "spark": [
                    [h.hour, plain(h.borrow_rate)]
                    for h in operator_views.market_hours(app.read_uow(), market.ccy, since)
                ],
            }
        )
    clock = {"mode": view.mode, "now": view.now, "speed": plain(view.speed)}
    return {"clock": clock, "markets": cards, "engine": _engine(app, snapshot)}


def _engine(app: Flexearn, snapshot: stats.Snapshot) -> dict[str, Any]:
    """What the engine is doing: who settles, how far settlement has come, when the ledger last
    checked green (real time), and since when a period is open (settled in ranges)."""
    hours = [c.last_hour for c in snapshot.currencies if c.last_hour is not None]
    return {
        "settler": leader.current_holder(app.engine, leader.SETTLER),
        "lastSettledHour": min(hours) if hours else None,  # every market has settled up to here
        "ledgerCheckedAt": snapshot.last_green_check,
        "settlingSince": snapshot.open_since,
    }


def market(app: Flexearn, ccy: str, window: str) -> dict[str, Any]:
    """One market: its supply curve with the current match, and its hours over the window."""
    if window not in WINDOWS:
        raise InvalidParameter("window", f"one of {', '.join(WINDOWS)}")
    depth = operator_views.market_depth(app.read_uow(), ccy, app.figures)
    (summary,) = market_data.rate_summary(app.read_uow(), ccy, app.figures)
    (current,) = [s for s in stats.snapshot(app.read_uow(), app.figures).currencies if s.ccy == ccy]
    hours = operator_views.market_hours(app.read_uow(), ccy, _since(app, WINDOWS[window]))
    last = depth.last
    return {
        "ccy": ccy,
        "mode": depth.mode,
        "precision": depth.precision,
        "supply": [
            {"rate": plain(s.rate), "amount": plain(s.amount), "cumulative": plain(s.cumulative)}
            for s in depth.steps
        ],
        "lent": plain(current.lent),
        "pending": plain(current.pending),
        "match": _hour(last) if last else None,
        "estRate": plain(summary.est_rate),
        "window": window,
        "hours": [_hour(h) for h in hours],
    }


def products(app: Flexearn) -> list[dict[str, Any]]:
    """Every catalog product with its tiers, limits, quota used and status."""
    out = []
    for view in catalog.list_products(app.read_uow(), None, None, "all"):
        p = view.product
        used = None if p.quota is None or view.remaining is None else p.quota - view.remaining
        out.append(
            {
                "id": p.id,
                "coin": p.coin,
                "periodType": p.period_type.value,
                "periodDays": p.period_days,
                "apyType": p.apy_type.value,
                "tiers": [
                    {"min": plain(x.min_step), "max": _limit(x.max_step), "apy": plain(x.apy)}
                    for x in p.tiers
                ],
                "level": p.level.value,
                "singleMin": plain(p.single_min),
                "singleMax": _limit(p.single_max),
                "quota": _text(p.quota),
                "quotaUsed": _text(used),
                "redeemDelayDays": p.redeem_delay_days,
                "status": view.status.value,
            }
        )
    return out


def user(app: Flexearn, ref: str) -> dict[str, Any]:
    """A user's funding and trading balances, savings positions, catalog holdings and recent records."""
    info = operator_views.find_user(app.read_uow(), ref)
    uid = info.id
    kinds = values(PeriodType)
    holdings = [a for kind in kinds for a in catalog_views.assets(app.read_uow(), uid, kind)]
    orders = [r for kind in kinds for r in catalog_views.records(app.read_uow(), uid, kind)[0]]
    lending = market_data.lending_history(app.read_uow(), uid, None, market_data.Page(limit=RECENT))
    earnings = operator_views.user_earnings(app.read_uow(), uid, _since(app, EARNINGS_HOURS))
    return {
        "user": {"id": uid, "name": info.name, "level": info.level},
        "funding": [
            {"ccy": b.ccy, "available": plain(b.available), "frozen": plain(b.frozen)}
            for b in accounts.funding_balances(app.read_uow(), uid)
        ],
        "trading": [
            {"ccy": b.ccy, "balance": plain(b.balance)}
            for b in accounts.trading_balances(app.read_uow(), uid)
            if b.balance
        ],
        "positions": [
            {
                "ccy": p.ccy,
                "amt": plain(p.amt),
                "lent": plain(p.loan),
                "pending": plain(p.pending),
                "earnings": plain(p.earnings),
                "rate": plain(p.rate),
            }
            for p in savings.positions(app.read_uow(), uid)
        ],
        "holdings": [
            {
                "productId": a.product.id,
                "coin": a.product.coin,
                "periodType": a.product.period_type.value,
                "amount": plain(a.amount),
                "lastProfit": plain(a.last_profit),
                "totalProfit": plain(a.total_profit),
                "holdDays": a.hold_days,
            }
            for a in holdings
        ],
        "lending": [
            {
                "ccy": r.ccy,
                "amt": plain(r.amt),
                "earnings": plain(r.earnings),
                "rate": plain(r.rate),
                "ts": r.ts,
            }
            for r in lending
        ],
        "earnings": [
            {
                "ccy": e.ccy,
                "total": plain(e.total),
                "realisedApy": plain(e.realised_apy),
                "hours": [[h.hour, plain(h.held), plain(h.lent), plain(h.earned)] for h in e.hours],
            }
            for e in earnings
        ],
        "orders": [
            {
                "id": r.order_id,
                "productId": r.product.id,
                "coin": r.product.coin,
                "type": r.order_type,
                "amount": plain(r.amount),
                "status": r.status,
                "ts": r.ts,
            }
            for r in sorted(orders, key=lambda r: -r.order_id)[:RECENT]
        ],
    }
