"""What the Binance Simple Earn endpoints share: paging, rates, statuses, the SPOT-only accounts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexearn.api.binance import errors
from flexearn.api.binance.wire import amount
from flexearn.api.params import Params
from flexearn.domain.catalog import Status
from flexearn.domain.money import round_down

RATE_PLACES = 8
# Binance's product statuses: "PREHEATING", "PURCHASING", "END".
STATUSES = {
    Status.NOT_STARTED: "PREHEATING",
    Status.IN_PROGRESS: "PURCHASING",
    Status.PAUSED: "PURCHASING",
    Status.SOLD_OUT: "PURCHASING",
    Status.COMPLETED: "END",
    Status.OFF_LINE: "END",
}
BOOLEANS = ("true", "false")


def page(params: Params, rows: list[Any]) -> dict[str, Any]:
    """Binance's paging: page `current` (from 1) of `size` rows (default 10, at most 100)."""
    current = params.integer("current", low=1, high=10**9) or 1
    size = params.integer("size", low=1, high=100) or 10
    return {"rows": rows[(current - 1) * size : current * size], "total": len(rows)}


def rate(apy_percent: Decimal) -> str:
    """An APY in percent as Binance's APR: a fraction, cut to 8 places."""
    return amount(round_down(apy_percent / 100, RATE_PLACES), RATE_PLACES)


def spot_only(params: Params, name: str, choices: tuple[str, ...]) -> None:
    """The SPOT wallet is where catalog products subscribe from and pay to (`api/binance/wallet.py`)."""
    chosen = params.choice(name, choices)
    if chosen not in (None, "SPOT"):
        raise errors.bad_value(name, "only SPOT: Simple Earn here subscribes from and redeems to SPOT")
