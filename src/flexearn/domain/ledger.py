"""Double-entry journal entries: every balance change is a set of legs summing to zero.

Accounts are named by a key. User accounts (`funding`, `frozen` and `trading` per user and
currency) carry a materialised balance that may never go negative:

- `funding`   where savings are bought from and redeemed to: OKX's funding account ("6"), Bitget's
              spot account (Bitget Earn subscribes from spot)
- `frozen`    funds held back from `funding`
- `trading`   what the user trades from: OKX's trading account ("18"), Bitget's USDT-M futures
              account (`usdt_futures`); money reaches savings only by a transfer to `funding`

System accounts are per currency:

- `external`  money that entered or left the system (deposits, withdrawals); goes negative
- `borrowers` interest paid by margin borrowers; goes negative
- `savings`   control account of the market savings positions, which form its subsidiary ledger:
              its balance equals the sum of every position's `amt`
- `insurance` the insurance fund's share of borrower interest
- `rounding`  what was left when user interest was rounded down
- `earn`      control account of the catalog holdings (principal and compounded interest)
- `accrued`   interest of maturity-settled holdings, earned but not yet paid
- `redeeming` catalog redemptions on their way to the funding account (redemption delay)
- `interest_expense` what the operator pays for catalog interest; goes negative
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from flexearn.domain.money import ZERO, exact_sum


class AccountKind(StrEnum):
    FUNDING = "funding"
    FROZEN = "frozen"
    TRADING = "trading"
    EXTERNAL = "external"
    BORROWERS = "borrowers"
    SAVINGS = "savings"
    INSURANCE = "insurance"
    ROUNDING = "rounding"
    EARN = "earn"
    ACCRUED = "accrued"
    REDEEMING = "redeeming"
    INTEREST_EXPENSE = "interest_expense"

    @property
    def user_owned(self) -> bool:
        return self in USER_KINDS

    @property
    def may_go_negative(self) -> bool:
        return self in (AccountKind.EXTERNAL, AccountKind.BORROWERS, AccountKind.INTEREST_EXPENSE)


USER_KINDS = frozenset({AccountKind.FUNDING, AccountKind.FROZEN, AccountKind.TRADING})
# The accounts a user moves money between by transfer (OKX asset/transfer, Bitget wallet/transfer).
WALLETS = (AccountKind.FUNDING, AccountKind.TRADING)


@dataclass(frozen=True)
class AccountRef:
    kind: AccountKind
    ccy: str
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind.user_owned != (self.user_id is not None):
            raise ValueError(
                f"{self.kind.value} accounts {'need' if self.kind.user_owned else 'take no'} user"
            )

    @property
    def key(self) -> str:
        owner = f":{self.user_id}" if self.user_id is not None else ""
        return f"{self.kind.value}{owner}:{self.ccy}"

    @classmethod
    def funding(cls, user_id: int, ccy: str) -> AccountRef:
        return cls(AccountKind.FUNDING, ccy, user_id)

    @classmethod
    def trading(cls, user_id: int, ccy: str) -> AccountRef:
        return cls(AccountKind.TRADING, ccy, user_id)

    @classmethod
    def system(cls, kind: AccountKind, ccy: str) -> AccountRef:
        return cls(kind, ccy)


@dataclass(frozen=True)
class Leg:
    account: AccountRef
    amount: Decimal
    # For legs on the savings control account: the position this part of the control belongs to.
    position_id: int | None = None
    # For legs on the catalog control accounts: the holding this part belongs to.
    holding_id: int | None = None


class UnbalancedEntry(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    """A balanced journal entry in one currency."""

    kind: str
    ccy: str
    legs: tuple[Leg, ...]
    ref: str = ""

    def __post_init__(self) -> None:
        if not self.legs:
            raise UnbalancedEntry(f"{self.kind}: an entry needs legs")
        for leg in self.legs:
            if leg.account.ccy != self.ccy:
                raise UnbalancedEntry(f"{self.kind}: leg in {leg.account.ccy} in a {self.ccy} entry")
            if leg.amount == ZERO:
                raise UnbalancedEntry(f"{self.kind}: zero leg on {leg.account.key}")
        total = exact_sum(leg.amount for leg in self.legs)  # a rounded sum could pass as 0
        if total != ZERO:
            raise UnbalancedEntry(f"{self.kind}: legs sum to {total}, not 0")


CATALOG_CONTROLS = (AccountKind.EARN, AccountKind.ACCRUED, AccountKind.REDEEMING)


def leg(
    account: AccountRef, amount: Decimal, *, position_id: int | None = None, holding_id: int | None = None
) -> Leg:
    """A leg, tagged with its position or holding when it is on a control account."""
    return Leg(
        account,
        amount,
        position_id if account.kind is AccountKind.SAVINGS else None,
        holding_id if account.kind in CATALOG_CONTROLS else None,
    )


def transfer(
    kind: str,
    ccy: str,
    source: AccountRef,
    target: AccountRef,
    amount: Decimal,
    *,
    ref: str = "",
    position_id: int | None = None,
    holding_id: int | None = None,
) -> Entry:
    """An entry moving `amount` from `source` to `target`, control legs tagged with their owner."""
    tags = {"position_id": position_id, "holding_id": holding_id}
    return Entry(kind, ccy, (leg(source, -amount, **tags), leg(target, amount, **tags)), ref)


WALLET_MOVE = "transfer"  # the entry kind of a move between a user's own wallets


def wallet_move(user_id: int, ccy: str, amount: Decimal, source: AccountKind, target: AccountKind) -> Entry:
    """A user's own money from one of its wallets to another: a transfer (services/transfers.py),
    or the part of a catalog order taken from, or paid to, the trading account (`domain/earn_wallets.py`)."""
    return transfer(
        WALLET_MOVE,
        ccy,
        AccountRef(source, ccy, user_id),
        AccountRef(target, ccy, user_id),
        amount,
        ref=f"user:{user_id}",
    )


def compound(kind: str, ccy: str, legs: Iterable[Leg], ref: str = "") -> Entry:
    """An entry of several legs; legs of zero are left out."""
    return Entry(kind, ccy, tuple(leg for leg in legs if leg.amount != ZERO), ref)
