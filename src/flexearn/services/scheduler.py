"""Everything that falls due on the business clock: market hours, catalog days, redemptions."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from flexearn.services import catalog_settlement, settlement


@dataclass(frozen=True)
class Settled:
    hours: list[settlement.SettledHour] = field(default_factory=list)
    days: list[catalog_settlement.SettledDay] = field(default_factory=list)


def settle_all_due(engine: sa.Engine) -> Settled:
    """Market hours first (hourly, oldest first), then catalog days and due redemptions."""
    return Settled(settlement.settle_due(engine), catalog_settlement.settle_due_days(engine))
