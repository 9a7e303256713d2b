"""The real engine (services on SQLite) against a small reference model, under random operations.

A hypothesis state machine deposits, withdraws, buys and redeems savings, sets rates, changes the
static demand, switches between auction and pro-rata matching and moves the clock (settling the
hours that become due), for a few users in two currencies of small precision, so interest accrues.

The model is plain Decimal bookkeeping: per user and currency the funding balance, the position's
`amt`, `loan` and minimum rate, and the deposits, withdrawals and interest so far. It tracks every
purchase, redemption, deposit and withdrawal exactly and predicts which operations the engine must
refuse; interest it takes from the engine's earnings at each settlement, after checking them
against the SPEC §2 formula, the lending history and the hour's match (SPEC §2, §4).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import AmountTooLarge, InsufficientBalance, InvalidParameter, UnsupportedCurrency
from flexearn.domain.money import HOURS_PER_YEAR, ZERO, D, round_down
from flexearn.services import accounts, ledger_check, markets, savings, scheduler
from tests.helpers import T0, advance, market_world

MIN_RATE, MAX_RATE, DEFAULT_FEE = D("0.01"), D("3.65"), D("0.15")
CURRENCIES = {"USDT": 6, "BTC": 8}  # code → precision (decimal places)
USER_NAMES = ("alice", "bob", "carol")
FIRST_HOUR = T0 + HOUR_MS  # market_world starts the clock just after T0

# --- strategies ---------------------------------------------------------------------------------

currencies = st.sampled_from(sorted(CURRENCIES))
user_indexes = st.integers(0, len(USER_NAMES) - 1)
valid_rates = st.one_of(
    st.sampled_from([MIN_RATE, D("0.02"), D("0.05"), D("0.1"), D("0.5"), MAX_RATE]),
    st.integers(100, 36500).map(lambda n: D(n).scaleb(-4)),
)
invalid_rates = st.sampled_from([D("0.0099"), D("3.6501"), D(0), D("-0.05"), D(10)])
demands = st.one_of(
    st.sampled_from([D(0), D(50), D(1000), D(100_000)]),
    st.integers(0, 5000).map(D),
    st.integers(0, 5000 * 10**9).map(lambda n: D(n).scaleb(-9)),  # finer than either precision
)
borrow_rates = st.sampled_from([D(0), MIN_RATE, D("0.03"), D("0.05"), D("0.12"), D("0.8"), MAX_RATE])
insurance_fees = st.sampled_from([D(0), D("0.1"), DEFAULT_FEE, D("0.5"), D("0.99")])
modes = st.sampled_from(["auction", "pro_rata"])


def ulp(places: int) -> Decimal:
    return D(1).scaleb(-places)


def amounts(places: int) -> st.SearchStrategy[Decimal]:
    """Valid amounts: whole ones, and ones using every decimal place the currency allows.

    Most are large enough that an hour's interest on them survives rounding to the precision.
    """
    return st.one_of(
        st.integers(10, 100_000).map(D),
        st.tuples(st.integers(0, 100_000), st.integers(1, 10**places - 1)).map(
            lambda parts: parts[0] + D(parts[1]).scaleb(-places)
        ),
    )


def amounts_around(limit: Decimal, places: int, *landmarks: Decimal) -> st.SearchStrategy[Decimal]:
    """Amounts near a balance: all of it, a share or a few units of it, a landmark, one unit too much,
    or anything."""
    options = [amounts(places), st.just(limit + ulp(places))]
    options += [st.just(x) for x in landmarks if 0 < x <= limit]
    if limit > 0:
        units = int(limit / ulp(places))
        options += [
            st.just(limit),
            st.sampled_from([D("0.1"), D("0.5"), D("0.9")]).map(
                lambda share: max(round_down(limit * share, places), ulp(places))
            ),
            st.integers(1, units).map(lambda n: D(n) * ulp(places)),
        ]
    return st.one_of(options)


def hour_interest(lent: Decimal, lender_rate: Decimal, places: int) -> Decimal:
    with localcontext(prec=100):
        return round_down(lent * lender_rate / HOURS_PER_YEAR, places)


def share_of(amt: Decimal, demand: Decimal, eligible: Decimal, places: int) -> Decimal:
    with localcontext(prec=100):
        return round_down(amt * demand / eligible, places)


@functools.cache
def migrated_database() -> Path:
    """An empty database at the current schema, migrated once and copied for every example."""
    folder = Path(tempfile.mkdtemp(prefix="flexearn-model-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    Flexearn(f"sqlite:///{folder / 'template.db'}").close()  # closing the last connection folds the WAL in
    return folder / "template.db"


# --- the model ----------------------------------------------------------------------------------


@dataclass
class Holding:
    """What the model knows of one user in one currency."""

    funding: Decimal = ZERO
    amt: Decimal = ZERO
    loan: Decimal = ZERO
    interest: Decimal = ZERO
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    rate: Decimal | None = None  # None: no position yet

    @property
    def pending(self) -> Decimal:
        return self.amt - self.loan


@dataclass
class MarketModel:
    places: int
    mode: str = "auction"
    demand: Decimal = ZERO
    borrow_rate: Decimal = ZERO
    insurance_fee: Decimal = DEFAULT_FEE


class SavingsEngineAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="flexearn-model-"))
        shutil.copyfile(migrated_database(), self.tmp / "flexearn.db")  # a fresh database per example
        self.app = Flexearn(f"sqlite:///{self.tmp / 'flexearn.db'}", migrate_schema=False)
        self.users: list[int] = []
        self.holdings: dict[tuple[int, str], Holding] = {}
        self.markets: dict[str, MarketModel] = {}
        self.now = T0 + 1

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- setup --------------------------------------------------------------------------------

    @initialize(data=st.data())
    def open_two_markets_and_three_users_who_save(self, data: st.DataObject) -> None:
        for ccy, places in CURRENCIES.items():
            mode = data.draw(modes, label=f"{ccy} mode")
            market_world(self.app, ccy, precision=places, mode=mode, borrow_rate=D("0.05"))
            # created with its mode: the insurance fee defaults to the mode's (none for a pro-rata pool)
            fee = D(0) if mode == "pro_rata" else DEFAULT_FEE
            self.markets[ccy] = MarketModel(places, mode=mode, borrow_rate=D("0.05"), insurance_fee=fee)
        for name in USER_NAMES:
            user_id = accounts.create_user(self.app.uow(), name)
            self.users.append(user_id)
            for ccy in CURRENCIES:
                self.holdings[user_id, ccy] = Holding()
        # Most users start with savings, so that rules that follow have something to lend.
        for index, ccy in data.draw(
            st.lists(st.tuples(user_indexes, currencies), min_size=2, unique=True), label="savers"
        ):
            self.deposit_credits_the_funding_account(index, ccy, data)
            self.purchase_moves_funding_into_pending_savings(
                index, ccy, data.draw(valid_rates, label="rate"), data
            )
        for ccy in CURRENCIES:  # demand that usually lends part of the supply
            self.operator_changes_static_demand(ccy, None, D("0.05"), None, data)
        if data.draw(st.booleans(), label="first hour matched"):
            self.an_hour_passes_and_is_settled()

    # --- helpers --------------------------------------------------------------------------------

    def _holding(self, index: int, ccy: str) -> tuple[int, Holding]:
        user_id = self.users[index]
        return user_id, self.holdings[user_id, ccy]

    def _rows(self, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[sa.Row[Any]]:
        with self.app.engine.connect() as conn:
            return list(conn.execute(sa.select(table).where(*where)).all())

    def _footprint(self) -> tuple[object, ...]:
        """Everything an operation could write: compared before and after a refusal."""
        with self.app.engine.connect() as conn:
            rows = tuple(
                tuple(
                    tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
                )
                for table in (t.account, t.position, t.rate_setting, t.user, t.market, t.market_hour)
            )
            counts = tuple(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in (t.journal_entry, t.journal_leg, t.lending_history)
            )
        return rows, counts

    def _refused(self, error: type[Exception], action: Any, *args: Any) -> None:
        event(f"refused: {action.__name__} with {error.__name__}")
        before = self._footprint()
        with pytest.raises(error):
            action(self.app.uow(), *args)
        assert self._footprint() == before, f"a refused {action.__name__} changed the database"

    def _engine_positions(self) -> dict[tuple[int, str], savings.Position]:
        return {
            (row.user_id, row.ccy): savings.Position(row.ccy, row.amt, row.loan, row.earnings, row.rate)
            for row in self._rows(t.position)
        }

    def _engine_funding(self) -> dict[tuple[int, str], accounts.FundingBalance]:
        by_key: dict[tuple[int, str], dict[str, Decimal]] = {}
        for row in self._rows(t.account, t.account.c.user_id.is_not(None)):
            by_key.setdefault((row.user_id, row.ccy), {})[row.kind] = row.balance
        return {
            key: accounts.FundingBalance(key[1], kinds.get("funding", ZERO), kinds.get("frozen", ZERO))
            for key, kinds in by_key.items()
        }

    def _settled_hours_due(self) -> list[int]:
        return list(range(FIRST_HOUR, floor_hour(self.now) + 1, HOUR_MS))

    # --- funding --------------------------------------------------------------------------------

    @rule(user=user_indexes, ccy=currencies, data=st.data())
    def deposit_credits_the_funding_account(self, user: int, ccy: str, data: st.DataObject) -> None:
        user_id, h = self._holding(user, ccy)
        amount = data.draw(amounts(CURRENCIES[ccy]), label="amount")
        accounts.deposit(self.app.uow(), user_id, ccy, amount)
        h.funding += amount
        h.deposits += amount

    @rule(user=user_indexes, ccy=currencies, data=st.data())
    def withdrawal_succeeds_only_within_the_funding_balance(
        self, user: int, ccy: str, data: st.DataObject
    ) -> None:
        user_id, h = self._holding(user, ccy)
        amount = data.draw(amounts_around(h.funding, CURRENCIES[ccy]), label="amount")
        if amount > h.funding:
            self._refused(InsufficientBalance, accounts.withdraw, user_id, ccy, amount)
            return
        accounts.withdraw(self.app.uow(), user_id, ccy, amount)
        h.funding -= amount
        h.withdrawals += amount

    # --- savings --------------------------------------------------------------------------------

    @rule(user=user_indexes, ccy=currencies, rate=st.none() | valid_rates, data=st.data())
    def purchase_moves_funding_into_pending_savings(
        self, user: int, ccy: str, rate: Decimal | None, data: st.DataObject
    ) -> None:
        user_id, h = self._holding(user, ccy)
        amount = data.draw(amounts_around(h.funding, CURRENCIES[ccy]), label="amount")
        if amount > h.funding:
            self._refused(InsufficientBalance, savings.purchase, user_id, ccy, amount, rate)
            return
        result = savings.purchase(self.app.uow(), user_id, ccy, amount, rate)
        h.funding -= amount
        h.amt += amount
        h.rate = rate if rate is not None else (h.rate or MIN_RATE)
        assert (result.amt, result.loan, result.rate) == (h.amt, h.loan, h.rate)

    @rule(data=st.data())
    def redemption_takes_pending_first_and_never_more_than_held(self, data: st.DataObject) -> None:
        anyone = st.tuples(st.sampled_from(self.users), currencies)
        lenders = sorted(key for key, h in self.holdings.items() if h.loan > 0)
        holders = st.one_of(st.sampled_from(lenders), anyone) if lenders else anyone  # favour lenders
        user_id, ccy = data.draw(holders, label="user and currency")
        h = self.holdings[user_id, ccy]
        if h.loan > 0 and h.pending > 0:
            event("redemption from a position both lent and pending")
        unit = ulp(CURRENCIES[ccy])  # landmarks: all the pending part, and one unit of the lent part more
        amount = data.draw(
            amounts_around(h.amt, CURRENCIES[ccy], h.pending, h.pending + unit), label="amount"
        )
        if amount > h.amt:
            self._refused(AmountTooLarge, savings.redeem, user_id, ccy, amount)
            return
        result = savings.redeem(self.app.uow(), user_id, ccy, amount)
        if amount > h.pending:
            event("redemption takes from the lent part")
        h.loan -= max(ZERO, amount - h.pending)
        h.amt -= amount
        h.funding += amount
        assert (result.amt, result.loan) == (h.amt, h.loan)

    @rule(user=user_indexes, ccy=currencies, rate=valid_rates)
    def set_rate_changes_the_minimum_rate_only(self, user: int, ccy: str, rate: Decimal) -> None:
        user_id, h = self._holding(user, ccy)
        result = savings.set_rate(self.app.uow(), user_id, ccy, rate)
        h.rate = rate
        assert (result.amt, result.loan, result.rate) == (h.amt, h.loan, rate)

    @rule(user=user_indexes, ccy=currencies, rate=invalid_rates, in_purchase=st.booleans())
    def rate_out_of_bounds_is_refused_in_a_purchase_or_set_rate(
        self, user: int, ccy: str, rate: Decimal, in_purchase: bool
    ) -> None:
        user_id, h = self._holding(user, ccy)
        if in_purchase:  # even one the funding balance would cover
            amount = h.funding if h.funding > 0 else D(1)
            self._refused(InvalidParameter, savings.purchase, user_id, ccy, amount, rate)
        else:
            self._refused(InvalidParameter, savings.set_rate, user_id, ccy, rate)

    @rule(
        user=user_indexes,
        ccy=currencies,
        action=st.sampled_from([accounts.deposit, accounts.withdraw, savings.purchase, savings.redeem]),
        data=st.data(),
    )
    def malformed_amount_or_unknown_currency_is_refused(
        self, user: int, ccy: str, action: Any, data: st.DataObject
    ) -> None:
        places = CURRENCIES[ccy]
        bad = data.draw(
            st.sampled_from([ZERO, D(-1), -ulp(places), ulp(places + 1), D(1) + ulp(places + 2), None]),
            label="bad amount (None: a good amount in an unknown currency)",
        )
        if bad is None:
            self._refused(UnsupportedCurrency, action, self.users[user], "ETH", D(1))
        else:
            self._refused(InvalidParameter, action, self.users[user], ccy, bad)

    # --- market settings --------------------------------------------------------------------------

    @rule(
        ccy=currencies,
        demand=st.none() | demands,
        borrow_rate=borrow_rates,
        fee=st.none() | insurance_fees,
        data=st.data(),
    )
    def operator_changes_static_demand(
        self, ccy: str, demand: Decimal | None, borrow_rate: Decimal, fee: Decimal | None, data: st.DataObject
    ) -> None:
        if demand is None:  # a share of what is on offer
            m = self.markets[ccy]
            supply = sum((h.amt for (_, c), h in self.holdings.items() if c == ccy), ZERO)
            share = data.draw(st.sampled_from([D("0.5"), D("0.9"), D("0.999"), D(2)]), label="demand/supply")
            demand = round_down(supply * share, m.places + 1)
        markets.set_market(self.app.uow(), ccy, demand=demand, borrow_rate=borrow_rate, insurance_fee=fee)
        m = self.markets[ccy]
        m.demand, m.borrow_rate = demand, borrow_rate
        if fee is not None:
            m.insurance_fee = fee

    @rule(ccy=currencies, mode=modes)
    def operator_switches_matching_mode(self, ccy: str, mode: str) -> None:
        markets.set_market(self.app.uow(), ccy, mode=mode)
        self.markets[ccy].mode = mode

    # --- time -----------------------------------------------------------------------------------

    @rule()
    def an_hour_passes_and_is_settled(self) -> None:
        self.clock_advance_settles_each_due_hour_once(1)

    @rule(hours=st.sampled_from([0.25, 0.5, 1.5, 2, 3]))
    def clock_advance_settles_each_due_hour_once(self, hours: float) -> None:
        already = self._settled_hours_due()
        self.now += int(hours * HOUR_MS)
        due = self._settled_hours_due()[len(already) :]
        settled = advance(self.app, hours)
        for ccy in CURRENCIES:  # in order per currency; how currencies interleave is not specified
            assert [s.hour for s in settled if s.ccy == ccy] == due, ccy
        assert len(settled) == len(due) * len(CURRENCIES)
        assert scheduler.settle_due_hours(self.app.engine) == [], "a second run settled an hour again"
        if not due:
            return
        positions = self._engine_positions()
        with self.app.engine.connect() as conn:
            ids = {
                (row.user_id, row.ccy): row.id
                for row in conn.execute(sa.select(t.position.c.id, t.position.c.user_id, t.position.c.ccy))
            }
        for ccy in sorted(CURRENCIES):
            self._check_first_hour_paid_on_the_previous_loans(ccy, due[0], ids)
            self._check_every_settled_hour_is_booked_soundly(ccy, due)
            self._check_last_match_follows_the_rules(ccy, due[-1], positions)
        for (user_id, ccy), p in positions.items():
            h = self.holdings[user_id, ccy]
            earned = p.earnings - h.interest
            assert earned >= 0, f"user {user_id} {ccy}: earnings went down by {-earned}"
            history = self._rows(
                t.lending_history,
                t.lending_history.c.position_id == ids[user_id, ccy],
                t.lending_history.c.ts >= due[0] - HOUR_MS,
            )
            assert earned == sum((row.earnings for row in history), ZERO), (
                "earnings differ from lending history"
            )
            if earned > 0:
                event(f"interest accrued in {ccy}")
            h.interest += earned
            h.amt += earned  # interest compounds into the position
            h.loan = p.loan

    def _check_first_hour_paid_on_the_previous_loans(
        self, ccy: str, hour: int, ids: dict[tuple[int, str], int]
    ) -> None:
        """The first hour settled pays, per position, floor(loan × lender rate / 8760) on the model's loan."""
        places = CURRENCIES[ccy]
        previous = self._rows(
            t.market_hour, t.market_hour.c.ccy == ccy, t.market_hour.c.hour == hour - HOUR_MS
        )
        lender_rate = previous[0].lender_rate if previous else ZERO
        history = {
            row.position_id: row
            for row in self._rows(
                t.lending_history, t.lending_history.c.ccy == ccy, t.lending_history.c.ts == hour - HOUR_MS
            )
        }
        for (user_id, c), h in self.holdings.items():
            if c != ccy or h.rate is None:
                continue
            row = history.pop(ids[user_id, ccy], None)
            expected = hour_interest(h.loan, lender_rate, places)
            if h.loan > 0 and lender_rate > 0 and (expected > 0 or row is not None):
                assert row is not None, f"user {user_id} {ccy}: lent {h.loan} but no lending history"
                assert (row.amt, row.earnings, row.rate) == (h.loan, expected, lender_rate)
            else:
                assert row is None, f"user {user_id} {ccy}: history without a loan: {row}"
        assert not history, f"lending history for unknown positions: {history}"

    def _check_every_settled_hour_is_booked_soundly(self, ccy: str, hours: list[int]) -> None:
        fee = self.markets[ccy].insurance_fee
        for row in self._rows(t.market_hour, t.market_hour.c.ccy == ccy, t.market_hour.c.hour.in_(hours)):
            assert min(row.interest_paid, row.insurance_fee, row.rounding, row.lent) >= 0, row
            assert row.borrower_paid == row.interest_paid + row.insurance_fee + row.rounding, row
            assert row.lent <= row.supply, row
            announced = row.borrow_rate * (1 - fee)
            if row.lent > 0:
                assert row.lender_rate == announced, row
            else:  # e.g. every pro-rata share rounded to 0: the rate may still be announced; it pays nothing
                assert row.lender_rate in (announced, ZERO), row

    def _check_last_match_follows_the_rules(
        self, ccy: str, hour: int, positions: dict[tuple[int, str], savings.Position]
    ) -> None:
        """The match of the last hour settled, against SPEC §2 step 3, on the positions as they now stand."""
        m = self.markets[ccy]
        (row,) = self._rows(t.market_hour, t.market_hour.c.ccy == ccy, t.market_hour.c.hour == hour)
        mine = [p for (_, c), p in positions.items() if c == ccy]
        supply = sum((p.amt for p in mine), ZERO)
        lent = sum((p.loan for p in mine), ZERO)
        demand = round_down(m.demand, m.places)
        assert (row.supply, row.lent, row.demand) == (supply, lent, m.demand)
        event(
            f"{m.mode}: {'nothing' if lent == 0 else 'all' if lent == supply else 'part'} of the supply lent"
        )
        if m.mode == "auction":
            assert lent == min(demand, supply)
            if lent == 0:
                assert row.borrow_rate == 0
                return
            marginal = row.borrow_rate
            assert marginal == max(p.rate for p in mine if p.loan > 0)
            for p in mine:
                if p.rate < marginal:
                    assert p.loan == p.amt, f"{ccy}: offer at {p.rate} below r* {marginal} not lent in full"
                elif p.rate > marginal:
                    assert p.loan == 0, f"{ccy}: offer at {p.rate} above r* {marginal} lent"
            return
        eligible = sum((p.amt for p in mine if p.rate <= m.borrow_rate), ZERO)
        for p in mine:
            if demand <= 0 or m.borrow_rate <= 0 or p.rate > m.borrow_rate:
                expected = ZERO
            else:
                expected = p.amt if demand >= eligible else share_of(p.amt, demand, eligible, m.places)
            assert p.loan == expected, f"{ccy} pro rata: offer {p} should lend {expected}"
        if lent > 0:
            assert row.borrow_rate == m.borrow_rate

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def ledger_check_finds_no_violation(self) -> None:
        assert ledger_check.check(self.app.uow()) == []

    @invariant()
    def no_balance_or_position_is_negative_and_loan_stays_within_amt(self) -> None:
        for key, b in self._engine_funding().items():
            assert min(b.available, b.frozen) >= 0, (key, b)
        for key, p in self._engine_positions().items():
            assert 0 <= p.loan <= p.amt, (key, p)
            assert p.earnings >= 0, (key, p)
            assert MIN_RATE <= p.rate <= MAX_RATE, (key, p)

    @invariant()
    def every_users_money_is_conserved(self) -> None:
        """deposits + interest earned − withdrawals == funding available + savings amt."""
        funding, positions = self._engine_funding(), self._engine_positions()
        for key, h in self.holdings.items():
            available = funding[key].available if key in funding else ZERO
            amt, earned = (positions[key].amt, positions[key].earnings) if key in positions else (ZERO, ZERO)
            assert h.deposits + earned - h.withdrawals == available + amt, key

    @invariant()
    def funding_and_positions_agree_with_the_model(self) -> None:
        funding, positions = self._engine_funding(), self._engine_positions()
        for key, h in self.holdings.items():
            available = funding[key].available if key in funding else ZERO
            assert available == h.funding, (key, available, h)
            if h.rate is None:
                assert key not in positions, (key, positions.get(key))
                continue
            p = positions[key]
            assert (p.amt, p.loan, p.earnings, p.rate) == (h.amt, h.loan, h.interest, h.rate), (key, p, h)
        assert set(positions) <= set(self.holdings)

    @invariant()
    def earnings_add_up_to_the_interest_booked_per_hour(self) -> None:
        positions = self._engine_positions()
        for ccy in CURRENCIES:
            booked = sum(
                (row.interest_paid for row in self._rows(t.market_hour, t.market_hour.c.ccy == ccy)), ZERO
            )
            earned = sum((p.earnings for (_, c), p in positions.items() if c == ccy), ZERO)
            assert earned == booked, ccy

    @invariant()
    def each_elapsed_hour_is_settled_exactly_once(self) -> None:
        due = self._settled_hours_due()
        for ccy in CURRENCIES:
            hours = [row.hour for row in self._rows(t.market_hour, t.market_hour.c.ccy == ccy)]
            assert sorted(hours) == due, ccy


SavingsEngineAgainstModel.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestSavingsEngineMatchesReferenceModel = SavingsEngineAgainstModel.TestCase
