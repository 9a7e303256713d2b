"""Settlement of periods: a market's hour (`HOURS`, key the currency) and a catalog product's day
(`DAYS`, key the product id), through one machinery (`period`): plan, apply to ranges of users,
close — in one transaction (`settle_hour`, `settle_day`) or in ranges shared by workers
(`settle`, `open_period`, `apply_next`, `close_period`, `help_open_periods`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flexearn.services.settlement.day import DAYS, DayOutOfOrder, SettledDay, due_days
from flexearn.services.settlement.hour import HOURS, OutOfOrder, SettledHour, due_hours
from flexearn.services.settlement.period import (
    KeepGoing,
    PeriodKind,
    Progress,
    RangesDisagree,
    always,
    apply_next,
    close_period,
    is_open,
    open_period,
    open_periods,
    settle,
    settle_due,
    settle_once,
    split,
)
from flexearn.services.settlement.period import help_open_periods as _help
from flexearn.services.unit_of_work import UnitOfWork

KINDS: dict[str, PeriodKind[Any, Any]] = {HOURS.name: HOURS, DAYS.name: DAYS}

__all__ = [
    "DAYS",
    "HOURS",
    "KINDS",
    "DayOutOfOrder",
    "KeepGoing",
    "OutOfOrder",
    "Progress",
    "RangesDisagree",
    "SettledDay",
    "SettledHour",
    "always",
    "apply_next",
    "close_period",
    "due_days",
    "due_hours",
    "help_open_periods",
    "is_open",
    "open_period",
    "open_periods",
    "settle",
    "settle_day",
    "settle_due",
    "settle_hour",
    "split",
]


def settle_hour(uow: UnitOfWork, ccy: str, hour: int) -> SettledHour | None:
    """Settle `hour` of `ccy` in one transaction; None if it is settled, or open in ranges. Hours
    settle strictly in order (`OutOfOrder`)."""
    return settle_once(uow, HOURS, ccy, hour)


def settle_day(uow: UnitOfWork, product_id: int, day: int) -> SettledDay | None:
    """Settle the day ending at `day` (a day start, 16:00 UTC) for one product in one transaction;
    None if it is settled, or open in ranges. Days settle strictly in order (`DayOutOfOrder`)."""
    return settle_once(uow, DAYS, str(product_id), day)


def help_open_periods(engine: sa.Engine, *, worker: str = "", keep_going: KeepGoing = always) -> int:
    """Apply ranges of every open period, of any kind, that no other worker holds."""
    return _help(engine, KINDS, worker=worker, keep_going=keep_going)
