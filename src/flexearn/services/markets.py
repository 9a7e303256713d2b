"""Market settings per currency, and where each hour's borrow demand comes from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import ceil_hour
from flexearn.domain.demand import HourDemand, SimulatedDemand, simulate_hour
from flexearn.domain.errors import InvalidParameter
from flexearn.domain.market import DEFAULT_INSURANCE_FEE, DemandSource, MatchingMode, check_insurance_fee
from flexearn.domain.money import ZERO, D, plain
from flexearn.services.unit_of_work import UnitOfWork


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
                "insurance_fee": DEFAULT_INSURANCE_FEE,
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


def hour_demand(market: MarketSettings, hour: int, previous_state: str, places: int) -> HourDemand:
    """The borrow demand (and pro-rata borrow rate) for the hour starting at `hour`."""
    if market.demand_source is DemandSource.SIMULATED:
        params = market.simulation or SimulatedDemand(mean=market.demand)
        return simulate_hour(params, market.ccy, hour, previous_state, places)
    return HourDemand(market.demand, market.borrow_rate, "")
