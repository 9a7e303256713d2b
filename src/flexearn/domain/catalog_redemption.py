"""Redeeming a catalog holding (SPEC §3): what comes back, what is taken back, and its journal entry.

A flexible holding gives back any part of itself. A fixed holding is redeemed whole, before it
expires only where the product allows early redemption; the interest it was paid already comes
back out of the principal (a *deduction*), and interest accrued but never paid (maturity
products) is forfeited. With a redemption delay the money waits in `redeeming` until it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flexearn.domain.catalog import PeriodType, Product
from flexearn.domain.catalog_errors import RedemptionRefused
from flexearn.domain.errors import InvalidParameter
from flexearn.domain.ledger import AccountKind, AccountRef, Entry, leg, transfer
from flexearn.domain.money import ZERO


@dataclass(frozen=True)
class Redemption:
    amount: Decimal  # taken out of the holding
    deduction: Decimal  # interest paid already, kept back from the principal
    forfeited: Decimal  # accrued interest never paid

    @property
    def paid_out(self) -> Decimal:
        return self.amount - self.deduction


def redemption(
    product: Product, amount: Decimal, held: Decimal, total_profit: Decimal, accrued: Decimal
) -> Redemption:
    """The redemption of `amount` from a holding of `held` (with `total_profit` earned, `accrued`
    of it unpaid); refused where the product's rules refuse it."""
    if product.period_type is not PeriodType.FIXED:
        return Redemption(amount, ZERO, ZERO)
    if not product.advance_redeem:
        raise RedemptionRefused("this fixed product cannot be redeemed before it expires", param="productId")
    if amount != held:
        raise InvalidParameter("amount", f"a fixed holding is redeemed whole: {held}")
    return Redemption(amount, min(total_profit - accrued, amount), accrued)


def redemption_entry(
    product: Product, holding_id: int, user_id: int, taken: Redemption, to: AccountKind = AccountKind.FUNDING
) -> Entry:
    """The holding's control → the user's `to` account, funding unless the user chose its trading
    account (Binance's `destAccount`), or `redeeming` if delayed; the deduction and the forfeited
    interest back to interest expense."""
    coin = product.coin

    def system(kind: AccountKind) -> AccountRef:
        return AccountRef.system(kind, coin)

    delayed = product.redeem_delay_days > 0
    target = system(AccountKind.REDEEMING) if delayed else AccountRef(to, coin, user_id)
    expense = system(AccountKind.INTEREST_EXPENSE)
    legs = [
        leg(system(AccountKind.EARN), -taken.amount, holding_id=holding_id),
        leg(target, taken.paid_out, holding_id=holding_id),
        leg(expense, taken.deduction),
    ]
    if taken.forfeited:
        legs += [
            leg(system(AccountKind.ACCRUED), -taken.forfeited, holding_id=holding_id),
            leg(expense, taken.forfeited),
        ]
    return Entry("redeem", coin, tuple(x for x in legs if x.amount != 0), f"holding:{holding_id}")


def arrival_entry(
    coin: str,
    order_id: int,
    user_id: int,
    holding_id: int,
    amount: Decimal,
    deduction: Decimal,
    to: AccountKind = AccountKind.FUNDING,
) -> Entry | None:
    """A delayed redemption arriving: `redeeming` → the user's `to` account (funding unless it
    chose trading), what the redemption paid out (its amount less the deduction recorded beside
    it); None if nothing was paid out."""
    paid_out = amount - deduction
    if paid_out <= 0:
        return None
    return transfer(
        "redeem_arrival",
        coin,
        AccountRef.system(AccountKind.REDEEMING, coin),
        AccountRef(to, coin, user_id),
        paid_out,
        ref=f"order:{order_id}",
        holding_id=holding_id,
    )
