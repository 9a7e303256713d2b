"""Market settings per currency, and where each hour's borrow demand comes from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, ceil_hour, wall_ms
from flexearn.domain.demand import HourDemand, SimulatedDemand, simulate_hour
from flexearn.domain.errors import Conflict, InvalidParameter
from flexearn.domain.market import DemandSource, MatchingMode, check_insurance_fee, default_insurance_fee
from flexearn.domain.money import ZERO, D, decimal_places, plain
from flexearn.services import gate
from flexearn.services.accounts import MAX_AMOUNT
from flexearn.services.unit_of_work import UnitOfWork

MAX_BORROW_RATE = D(10)  # 1000% a year: far above any real borrow rate, a guard against typos


@dataclass(frozen=True)
class MarketSettings:
    ccy: str
    mode: MatchingMode
    insurance_fee: Decimal
    demand_source: DemandSource
    demand: Decimal
    borrow_rate: Decimal
    simulation: SimulatedDemand | None
    first_hour: int


def _simulation_to_json(sim: SimulatedDemand) -> str:
    return json.dumps({k: plain(v) if isinstance(v, Decimal) else v for k, v in asdict(sim).items()})


def _simulation_from_json(text: str) -> SimulatedDemand | None:
    raw: dict[str, Any] = json.loads(text or "{}")
    if not raw:
        return None
    kinds = {f.name: f.type for f in fields(SimulatedDemand)}
    values: dict[str, Any] = {k: D(v) if kinds[k] == "Decimal" else v for k, v in raw.items() if k in kinds}
    return SimulatedDemand(**values)


def settings_from_row(row: sa.Row[Any]) -> MarketSettings:
    return MarketSettings(
        ccy=row.ccy,
        mode=MatchingMode(row.mode),
        insurance_fee=row.insurance_fee,
        demand_source=DemandSource(row.demand_source),
        demand=row.demand,
        borrow_rate=row.borrow_rate,
        simulation=_simulation_from_json(row.simulation),
        first_hour=row.first_hour,
    )


def set_market(
    uow: UnitOfWork,
    ccy: str,
    *,
    mode: str | None = None,
    demand: Decimal | None = None,
    borrow_rate: Decimal | None = None,
    insurance_fee: Decimal | None = None,
    demand_source: str | None = None,
    simulation: SimulatedDemand | None = None,
) -> MarketSettings:
    """Create the currency's market (first hour settled: the next full hour) or change it."""
    changes: dict[str, Any] = {}
    if mode is not None:
        changes["mode"] = _enum(MatchingMode, mode, "mode").value
    if demand_source is not None:
        changes["demand_source"] = _enum(DemandSource, demand_source, "demand_source").value
    if demand is not None:
        if demand < 0:
            raise InvalidParameter("demand", "must not be negative")
        changes["demand"] = demand
    if borrow_rate is not None:
        if borrow_rate < 0:
            raise InvalidParameter("borrow_rate", "must not be negative")
        changes["borrow_rate"] = borrow_rate
    if insurance_fee is not None:
        changes["insurance_fee"] = check_insurance_fee(insurance_fee)
    if simulation is not None:
        changes["simulation"] = _simulation_to_json(simulation)
    with uow:
        repo.currency_precision(uow.conn, ccy)
        exists = uow.conn.execute(sa.select(t.market.c.ccy).where(t.market.c.ccy == ccy)).first()
        if exists:
            if changes:
                uow.conn.execute(sa.update(t.market).where(t.market.c.ccy == ccy).values(**changes))
        else:
            defaults: dict[str, Any] = {
                "mode": MatchingMode.AUCTION.value,
                "insurance_fee": default_insurance_fee(MatchingMode(changes.get("mode", "auction"))),
                "demand_source": DemandSource.STATIC.value,
                "demand": ZERO,
                "borrow_rate": ZERO,
                "simulation": "{}",
                "first_hour": ceil_hour(uow.now()),
            }
            uow.conn.execute(sa.insert(t.market).values(ccy=ccy, **{**defaults, **changes}))
        row = repo.market(uow.conn, ccy)
        uow.commit()
    return settings_from_row(row)


def _enum(
    kind: type[MatchingMode] | type[DemandSource], value: str, param: str
) -> MatchingMode | DemandSource:
    try:
        return kind(value)
    except ValueError:
        raise InvalidParameter(param, f"one of {', '.join(k.value for k in kind)}") from None


def list_markets(uow: UnitOfWork) -> list[MarketSettings]:
    with uow:
        rows = uow.conn.execute(sa.select(t.market).order_by(t.market.c.ccy)).all()
    return [settings_from_row(row) for row in rows]


def hour_demand(
    market: MarketSettings, hour: int, previous_state: str, places: int, conn: sa.Connection | None = None
) -> HourDemand:
    """The borrow demand (and pro-rata borrow rate) for the hour starting at `hour`.

    An `external` market lends what its margin engine posted for the hour (read on `conn`); an
    hour with no post has no demand.
    """
    if market.demand_source is DemandSource.SIMULATED:
        params = market.simulation or SimulatedDemand(mean=market.demand)
        return simulate_hour(params, market.ccy, hour, previous_state, places)
    if market.demand_source is DemandSource.EXTERNAL:
        post = None if conn is None else _post(conn, market.ccy, hour)
        return HourDemand(post.demand, post.borrow_rate, "") if post else HourDemand(ZERO, ZERO, "")
    return HourDemand(market.demand, market.borrow_rate, "")


# --- demand posted by the operator's margin engine ---------------------------------------------


@dataclass(frozen=True)
class DemandPost:
    ccy: str
    hour: int
    demand: Decimal
    borrow_rate: Decimal
    posted_at: int
    posted_by: str


def _post(conn: sa.Connection, ccy: str, hour: int) -> DemandPost | None:
    p = t.demand_post
    row = conn.execute(sa.select(p).where(p.c.ccy == ccy, p.c.hour == hour)).first()
    return None if row is None else DemandPost(*row)


@gate.waits_for_settlement
def post_demand(
    uow: UnitOfWork,
    ccy: str,
    hour: int,
    demand: Decimal,
    borrow_rate: Decimal = ZERO,
    posted_by: str = "",
) -> DemandPost:
    """Record what borrowers take in [hour, hour + 1h) (and r_b, pro rata); replaces an earlier post.

    Refused once the hour is settled: settlement reads the post under the market's lock, so a
    post either arrives before its hour is settled or is refused, never silently ignored.
    """
    if hour <= 0 or hour % HOUR_MS:
        raise InvalidParameter("hour", "a business time in ms, on the hour")
    if demand < 0 or demand >= MAX_AMOUNT:
        raise InvalidParameter("demand", f"at least 0 and below {MAX_AMOUNT:,}")
    if borrow_rate < 0 or borrow_rate > MAX_BORROW_RATE:
        raise InvalidParameter("borrow_rate", f"0 to {MAX_BORROW_RATE}")
    with uow:
        market = settings_from_row(gate.lock_market(uow.conn, ccy))  # an open hour has its demand
        if decimal_places(demand) > repo.currency_precision(uow.conn, ccy):
            raise InvalidParameter("demand", "more decimal places than the currency has")
        if market.demand_source is not DemandSource.EXTERNAL:
            raise Conflict(
                f"the {ccy} market takes its demand from {market.demand_source.value}", param="demand_source"
            )
        last = repo.last_settled_hour(uow.conn, ccy)
        if hour < (market.first_hour if last is None else last + HOUR_MS):
            raise Conflict(f"hour {hour} of {ccy} is settled or before the market's first", param="hour")
        values = {
            "demand": demand,
            "borrow_rate": borrow_rate,
            "posted_at": wall_ms(),
            "posted_by": posted_by[:128],
        }
        p, key = t.demand_post, (t.demand_post.c.ccy == ccy, t.demand_post.c.hour == hour)
        if uow.conn.execute(sa.update(p).where(*key).values(**values)).rowcount == 0:
            uow.conn.execute(sa.insert(p).values(ccy=ccy, hour=hour, **values))
        post = _post(uow.conn, ccy, hour)
        uow.commit()
    assert post is not None
    return post


def demand_posts(uow: UnitOfWork, ccy: str, *, limit: int = 100) -> list[DemandPost]:
    """The latest posts of a market, newest hour first."""
    p = t.demand_post
    with uow:
        repo.market(uow.conn, ccy)
        rows = uow.conn.execute(
            sa.select(p).where(p.c.ccy == ccy).order_by(p.c.hour.desc()).limit(limit)
        ).all()
    return [DemandPost(*row) for row in rows]
