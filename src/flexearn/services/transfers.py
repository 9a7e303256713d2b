"""Transfers between a user's own accounts (funding ⇄ trading), and an account's bills.

A transfer is one balanced journal entry of two legs, both the user's; its id is the entry's.
Savings are bought from `funding` only (services.savings, services.catalog): money in `trading`
reaches them by a transfer first, as on both exchanges.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.errors import InvalidParameter, UnsupportedCurrency
from flexearn.domain.ledger import WALLET_MOVE, WALLETS, AccountKind, wallet_move
from flexearn.domain.money import ZERO
from flexearn.services import earn_wallets
from flexearn.services.accounts import check_amount
from flexearn.services.unit_of_work import UnitOfWork

ENTRY_KIND = WALLET_MOVE


@dataclass(frozen=True)
class Transfer:
    id: int  # the journal entry
    ccy: str
    amount: Decimal
    source: AccountKind
    target: AccountKind
    ts: int  # business time


def transfer(
    uow: UnitOfWork,
    user_id: int,
    ccy: str,
    amount: Decimal,
    source: AccountKind,
    target: AccountKind,
    *,
    param: str = "amt",
) -> Transfer:
    """Move `amount` of `ccy` from the user's `source` account to its `target` account, at once.

    `param` names the amount in errors (the façade's own name for it). Refused whole when `source`
    holds less (InsufficientBalance)."""
    for account in (source, target):
        if account not in WALLETS:
            raise InvalidParameter("account", " or ".join(k.value for k in WALLETS))
    if source is target:
        raise InvalidParameter("to", "the account to transfer to must differ from the one transferred from")
    with uow:
        try:
            places = repo.currency_precision(uow.conn, ccy)
        except UnsupportedCurrency:  # not a savings matter here: the currency does not exist
            raise InvalidParameter("ccy", f"no currency {ccy}") from None
        check_amount(amount, places, param)
        now = uow.now()
        entry_id = repo.post(uow.conn, wallet_move(user_id, ccy, amount, source, target), now)
        sweep = earn_wallets.auto_products(uow.conn, user_id, ccy) if target is AccountKind.FUNDING else []
        uow.commit()
    if sweep:
        earn_wallets.sweep(uow.engine, user_id, sweep)  # auto-subscribe: money arriving in SPOT, after it
    return Transfer(entry_id, ccy, amount, source, target, now)


@dataclass(frozen=True)
class Bill:
    """One change of one of the user's account balances: a leg of a journal entry."""

    id: int  # the journal leg
    ccy: str
    change: Decimal
    balance: Decimal  # after the change
    kind: str  # the journal entry's kind: deposit, transfer, purchase, redemption, ...
    ts: int  # business time


def bills(
    uow: UnitOfWork,
    user_id: int,
    account: AccountKind,
    ccy: str | None = None,
    *,
    before_ts: int | None = None,
    after_ts: int | None = None,
    limit: int = 100,
) -> list[Bill]:
    """The user's `account` bills, newest first: with `before_ts`, those older than it; with
    `after_ts` alone, the newest `limit` newer than it.

    The balance after each bill is the account's balance now less every later leg, read in one
    snapshot: give a read-only unit of work (one snapshot on both databases)."""
    a, leg, entry = t.account, t.journal_leg, t.journal_entry
    with uow:
        owned = sa.select(a.c.id, a.c.ccy, a.c.balance).where(
            a.c.user_id == user_id, a.c.kind == account.value
        )
        if ccy is not None:
            owned = owned.where(a.c.ccy == ccy)
        accounts = {row.id: (row.ccy, row.balance) for row in uow.conn.execute(owned)}
        if not accounts:
            return []
        query = (
            sa.select(leg.c.id, leg.c.account_id, leg.c.amount, entry.c.kind, entry.c.ts)
            .join(entry, entry.c.id == leg.c.entry_id)
            .where(leg.c.account_id.in_(accounts))
            .order_by(leg.c.id.desc())
            .limit(limit)
        )
        if before_ts is not None:
            query = query.where(entry.c.ts < before_ts)
        if after_ts is not None:
            query = query.where(entry.c.ts > after_ts)
        rows = uow.conn.execute(query).all()
        if not rows:
            return []
        later: dict[int, Decimal] = defaultdict(Decimal)  # per account: the legs after the page
        newer = sa.select(leg.c.account_id, leg.c.amount).where(
            leg.c.account_id.in_(accounts), leg.c.id > rows[0].id
        )
        for account_id, amount in uow.conn.execute(newer):
            later[account_id] += amount
    found = []
    for row in rows:  # newest first: each balance is the one after it, less its own change
        ccy_of, balance_now = accounts[row.account_id]
        after = balance_now - later[row.account_id]
        found.append(Bill(row.id, ccy_of, row.amount, after, row.kind, row.ts))
        later[row.account_id] += row.amount
    return found


def transfer_direction(account: AccountKind, bill: Bill) -> tuple[AccountKind, AccountKind] | None:
    """(from, to) of a bill of `account` that is a transfer; None for any other bill."""
    if bill.kind != ENTRY_KIND:
        return None
    (other,) = (k for k in WALLETS if k is not account)
    return (other, account) if bill.change > ZERO else (account, other)
