"""The load test of issue 6: two API processes and a worker on PostgreSQL and Redis, many clients.

Thirty traders buy, redeem, change rates and read on both façades (their own API process
chosen at random per request) while the simulated clock runs two business hours per real second;
afterwards every acknowledged write is in the ledger exactly
once, nothing refused is, the ledger check passes, no balance is negative, and every hour and
day is settled once, in order. Run with -s to see the throughput, latency and answer mix.
"""

from __future__ import annotations

import os

import pytest

from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, savings
from tests.deployment.cluster import CCY, cluster
from tests.deployment.traffic import LOAD_MIX, Outcome, Write, check_writes, load_run
from tests.helpers import market_world

SECONDS = float(os.environ.get("FLEXEARN_LOAD_SECONDS", "40"))
TRADERS = 30
SPEED = 7200  # business seconds per real second: an hour every half second


@pytest.mark.postgres
@pytest.mark.parametrize("ranges", [1, 4], ids=["one-transaction", "4-ranges"])
def test_every_acknowledged_write_is_in_the_ledger_once_after_a_load_run(ranges: int) -> None:
    """With 4 ranges, trading in a currency waits while its hour is open (or is answered 503 when
    its budget runs out): the same promises hold."""
    with cluster(apis=2, ranges=ranges) as c:
        run = load_run(c, TRADERS, D(SPEED), LOAD_MIX, SECONDS)
        print(f"\n{run.summary()}")
        alive = [p.alive() for p in [*c.apis, c.worker]]
    tally, writes, hours, days = run.tally, run.writes, run.hours, run.days

    writes.assert_held()
    # No fault was injected: no connection failed. A process out of database slots or time may
    # shed a request with "service unavailable" (backpressure), but only a few.
    failed = {label: n for (_, label), n in tally.answers.items() if label != "ok" and not label[0].isdigit()}
    assert failed == {}
    assert (
        sum(n for (_, label), n in tally.answers.items() if label.startswith("503")) < tally.requests() / 50
    )
    assert writes.acknowledged > 20 * SECONDS  # real traffic, not mostly refusals
    assert alive == [True, True, True]
    assert hours >= SECONDS * SPEED / 3600 / 2  # the clock really moved, and each hour was settled
    assert days >= 1


def test_the_oracle_sees_lost_doubled_wrongly_applied_and_phantom_writes(app: Flexearn) -> None:
    """The check above can fail: each kind of broken promise is reported, from the journal."""
    market_world(app, CCY, precision=8)
    user = accounts.create_user(app.uow(), "oracle")
    accounts.deposit(app.uow(), user, CCY, D(100))
    for amount in ("5.00000001", "5.00000001", "5.00000003", "5.00000004"):
        savings.purchase(app.uow(), user, CCY, D(amount))

    def write(amount: str, outcome: Outcome) -> Write:
        return Write(user, "purchase", D(amount), outcome, "", 0.0)

    found = check_writes(
        app.engine,
        [
            write("5.00000001", Outcome.ACKNOWLEDGED),  # applied twice
            write("5.00000002", Outcome.ACKNOWLEDGED),  # lost
            write("5.00000003", Outcome.REFUSED),  # applied although refused
        ],
        [user],
    )
    assert found.twice == [(user, "purchase", D("5.00000001"))]
    assert [w.amount for w in found.lost] == [D("5.00000002")]
    assert [w.amount for w in found.wrongly_applied] == [D("5.00000003")]
    assert found.phantom == [(user, "purchase", D("5.00000004"))]  # applied, never sent
    with pytest.raises(AssertionError):
        found.assert_held()
