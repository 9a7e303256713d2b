"""Everything that falls due on the business clock: market hours, catalog days, redemptions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from flexearn.observability import context
from flexearn.observability.metrics import CATALOG_DAY, MARKET_HOUR, observe_settlement
from flexearn.services import catalog_settlement, settlement

log = logging.getLogger("flexearn.settlement")


@dataclass(frozen=True)
class Settled:
    hours: list[settlement.SettledHour] = field(default_factory=list)
    days: list[catalog_settlement.SettledDay] = field(default_factory=list)


def settle_all_due(engine: sa.Engine) -> Settled:
    """Market hours first (hourly, oldest first), then catalog days and due redemptions."""
    with context.ensure_request_scope():
        started = time.perf_counter()
        hours = settlement.settle_due(engine)
        middle = time.perf_counter()
        days = catalog_settlement.settle_due_days(engine)
        ended = time.perf_counter()
        if hours:
            observe_settlement(MARKET_HOUR, middle - started, [h.positions_changed for h in hours])
        if days:
            observe_settlement(CATALOG_DAY, ended - middle, [d.holdings for d in days])
        if hours or days:
            log.info(
                "settled %d currency-hours and %d product-days",
                len(hours),
                len(days),
                extra={"hours": len(hours), "days": len(days), "seconds": round(ended - started, 6)},
            )
    return Settled(hours, days)
