"""Which of a user's wallets a catalog order takes its money from or pays it to, and how much of
a wallet's balance auto-subscribe can put into a product.

Savings are bought from and redeemed to `funding` (`domain/ledger.py`). Binance lets a
subscription name its source (its SPOT wallet, FUNDING wallet, or both: SPOT first) and a
redemption its destination (`api/binance/wallet.py` maps the wallets onto flexearn's `funding`
and `trading` accounts); the part from `trading` moves to `funding` first, by the same booking as
a transfer, in the subscription's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from flexearn.domain.catalog import Level, Product
from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import ZERO, round_down


class Wallet(StrEnum):
    """Where an order's money comes from (a subscription) or goes to (a redemption)."""

    FUNDING = "funding"
    TRADING = "trading"
    ALL = "all"  # a subscription only: funding first, the rest from trading


@dataclass(frozen=True)
class Split:
    """How much of an order's amount comes from (or goes to) each account."""

    funding: Decimal
    trading: Decimal


def split(source: Wallet, amount: Decimal, funding_available: Decimal) -> Split:
    """The parts of a subscription of `amount` from `source`: `ALL` takes what `funding` has
    first and the rest from `trading` (Binance documents no order: docs/fidelity.md). Whether
    either account holds its part is the ledger's to refuse."""
    if source is Wallet.FUNDING:
        return Split(amount, ZERO)
    if source is Wallet.TRADING:
        return Split(ZERO, amount)
    from_funding = min(amount, max(funding_available, ZERO))
    return Split(from_funding, amount - from_funding)


def sweepable(
    product: Product, available: Decimal, now: int, held: Decimal, user_level: Level, currency_places: int
) -> Decimal:
    """What auto-subscribe puts of `available` into `product` now: as much as the product takes
    in one subscription (cut to its precision, its single maximum and the quota left), or ZERO
    where `Product.check_subscription` would refuse that (not open, not for this user, below its
    minimum), which auto-subscribe skips silently as an exchange does."""
    places = min(product.subscribe_precision, currency_places)
    limits = [available, product.single_max]
    remaining = product.remaining(held)
    if remaining is not None:
        limits.append(remaining)
    amount = round_down(min(limits), places)
    try:
        product.check_subscription(amount, now, held, user_level, currency_places)
    except FlexearnError:
        return ZERO
    return amount
