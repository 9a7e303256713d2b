"""A purchase whose COMMIT is lost with its connection — sent, and the connection cut before the
database's answer, as a restart or a crash of the database does — is answered by what happened:
its outcome is read off the signature's claim, written in the same transaction, once the database
answers again. Against a real `flexearn serve` and PostgreSQL, through a proxy that cuts the one
COMMIT at the chosen moment (`pg_cut.py`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.admission import GRACE_S
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, keys, replays
from flexearn.services.keys import NewKey
from tests.contract import okx_http
from tests.deployment.pg_cut import AFTER, BEFORE, Cutter, cutter
from tests.helpers import market_world, position
from tests.server import FLEXEARN, running_server

pytestmark = pytest.mark.postgres

PURCHASE = "/api/v5/finance/savings/purchase-redempt"
UNAVAILABLE, SYSTEM_ERROR, REPLAYED = (503, "50001"), (500, "50026"), (401, "50113")


@dataclass
class Setup:
    base: str
    key: NewKey
    user_id: int
    cut: Cutter
    app: Flexearn  # straight to the database, not through the proxy


@contextmanager
def served(postgres_url: str, env: dict[str, str] | None = None) -> Iterator[Setup]:
    """A `flexearn serve` whose every connection to `postgres_url` goes through a `Cutter`, and
    one funded user with a key; one purchase of 1 USDT made, so that the next ones are warm."""
    app = Flexearn(postgres_url)
    try:
        market_world(app, "USDT", demand=D(150))
        master = generate_master_key()
        user_id = accounts.create_user(app.uow(), "buyer")
        accounts.deposit(app.uow(), user_id, "USDT", D(1_000))
        key = keys.create_key(app.uow(), SecretBox(master), user_id, "read,trade")
        with (
            cutter(postgres_url) as cut,
            running_server(cut.proxied_url(postgres_url), master, env=env) as base,
            httpx.Client(base_url=base, timeout=20) as client,
        ):
            assert purchase(client, key, "1")[0] == (200, "0")
            yield Setup(base, key, user_id, cut, app)
    finally:
        app.close()


def purchase(client: httpx.Client, key: NewKey, amt: str, headers: dict[str, str] | None = None) -> tuple[
    tuple[int, str], float, dict[str, str]
]:
    """A purchase of `amt` USDT (signed anew unless `headers` are given): its (HTTP status, OKX
    code), its seconds, and the headers it was signed with."""
    body = json.dumps({"ccy": "USDT", "amt": amt, "side": "purchase"})
    headers = headers or okx_http.signed_headers(key, "POST", PURCHASE, body)
    started = time.monotonic()
    answer = client.post(PURCHASE, content=body.encode(), headers=headers)
    return (answer.status_code, answer.json()["code"]), time.monotonic() - started, headers


def holdings(s: Setup) -> tuple[Decimal, Decimal]:
    """The user's savings and funding USDT, read straight from the database."""
    (funding,) = [b.available for b in accounts.funding_balances(s.app.uow(), s.user_id) if b.ccy == "USDT"]
    return position(s.app, s.user_id).amt, funding


def claimed(s: Setup, headers: dict[str, str]) -> bool:
    """Whether the signature of a request signed with `headers` is in the database's replay window
    (the server's memory would refuse a resend before asking the database)."""
    at = datetime.fromisoformat(headers["OK-ACCESS-TIMESTAMP"].replace("Z", "+00:00"))
    key = replays.digest(headers["OK-ACCESS-SIGN"], round(at.timestamp() * 1000))
    with s.app.engine.connect() as conn:
        found = conn.execute(sa.select(t.seen_signature.c.digest).where(t.seen_signature.c.digest == key))
        return found.first() is not None


def ledger_ok(postgres_url: str) -> None:
    check = subprocess.run(
        [FLEXEARN, "ledger", "check", "--db", postgres_url], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr


# The purchase's COMMIT goes out with its last writes (`db.commit`), its journal legs among them.
PURCHASES_COMMIT = b"INSERT INTO journal_leg"


def test_a_commit_lost_before_the_database_saw_it_is_answered_unavailable_once_the_database_says_so(
    postgres_url: str,
) -> None:
    with served(postgres_url) as s, httpx.Client(base_url=s.base, timeout=20) as client:
        s.cut.arm(BEFORE, PURCHASES_COMMIT, down_s=1.0)
        answer, seconds, headers = purchase(client, s.key, "5")
        assert s.cut.cuts, "the COMMIT was not cut"
        assert answer == UNAVAILABLE  # true: nothing was written
        assert seconds > 0.9  # it waited for the database to answer again, to be sure of that
        assert holdings(s) == (D(1), D(999))
        assert claimed(s, headers)  # the signature was used all the same: claimed once it could be
        assert purchase(client, s.key, "5", headers)[0] == REPLAYED
        assert purchase(client, s.key, "5")[0] == (200, "0")
        assert holdings(s) == (D(6), D(994))
    ledger_ok(postgres_url)


def test_a_commit_lost_after_it_took_is_a_system_error_and_booked_once(postgres_url: str) -> None:
    with served(postgres_url) as s, httpx.Client(base_url=s.base, timeout=20) as client:
        s.cut.arm(AFTER, PURCHASES_COMMIT, down_s=1.0)
        answer, seconds, headers = purchase(client, s.key, "7")
        assert s.cut.cuts, "the COMMIT was not cut"
        assert s.cut.answered == [True]  # the server did answer the COMMIT
        assert answer == SYSTEM_ERROR  # never "unavailable": it was booked; nor "replayed"
        assert 0.9 < seconds < 2.5  # told once the database answered again, not at the budget's end (3 s)
        assert holdings(s) == (D(8), D(992))
        assert claimed(s, headers)  # committed with the purchase
        assert purchase(client, s.key, "7", headers)[0] == REPLAYED  # and a resend is not booked again
        assert holdings(s) == (D(8), D(992))
    ledger_ok(postgres_url)


def test_a_lost_commit_whose_database_stays_away_past_the_budget_is_answered_within_it(
    postgres_url: str,
) -> None:
    """Outcome unknown: a system error, not "unavailable" (it might have taken), within the budget
    and its grace."""
    with (
        served(postgres_url, env={"FLEXEARN_API_TIMEOUT": "2"}) as s,
        httpx.Client(base_url=s.base, timeout=20) as client,
    ):
        s.cut.arm(BEFORE, PURCHASES_COMMIT, down_s=4.0)
        answer, seconds, _ = purchase(client, s.key, "3")
        assert answer == SYSTEM_ERROR
        assert seconds < 2 + GRACE_S + 1.0  # the budget, its grace, a loaded machine
        s.cut.wait_up()
        assert holdings(s) == (D(1), D(999))  # as it happens, it had not taken
        assert purchase(client, s.key, "3")[0] == (200, "0")
    ledger_ok(postgres_url)



def test_a_read_whose_claim_took_before_the_connection_was_lost_is_answered_unavailable_not_used(
    postgres_url: str,
) -> None:
    """A signed read and its claim went out together and both ran, but the answer was lost: the
    claim's row is there, and it is the request's own — "already used" would tell ccxt the key is
    bad (AuthenticationError)."""
    target = "/api/v5/finance/savings/balance?ccy=USDT"
    with served(postgres_url) as s, httpx.Client(base_url=s.base, timeout=20) as client:
        # no outage: the database answers at once, and the claim's row is found
        s.cut.arm(AFTER, b"INSERT INTO seen_signature", b"FROM savings_position")
        headers = okx_http.signed_headers(s.key, "GET", target)
        answer = client.get(target, headers=headers)
        assert s.cut.cuts, "the read was not cut"
        assert (answer.status_code, answer.json()["code"]) == UNAVAILABLE
        again = client.get(target, headers=headers)  # a replay of it is still refused
        assert (again.status_code, again.json()["code"]) == REPLAYED
        fresh = client.get(target, headers=okx_http.signed_headers(s.key, "GET", target))
        assert fresh.status_code == 200
        assert fresh.json()["data"][0]["amt"] == "1"
