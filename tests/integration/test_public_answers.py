"""Public answers served from memory (api/answers.py): an unchanged answer costs no query; what this
process commits is seen by the very next answer; what another process commits, within `MAX_AGE_S`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flexearn.adapters.clock import CLOCK_MAX_AGE_S
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import answers
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, keys, unit_of_work
from tests.contract.okx_http import OkxHttp
from tests.helpers import advance, lender, market_world
from tests.integration.test_public_reads import client, statements
from tests.server import running_server

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
SAVINGS = "/api/v5/finance/savings"
HISTORY = f"{SAVINGS}/lending-rate-history?ccy=USDT"
SUMMARY = f"{SAVINGS}/lending-rate-summary?ccy=USDT"


def world(app: Flexearn) -> None:
    """USDT lent at 20 %, the demand (2M) far above it: the next match clears at 20 %."""
    market_world(app, "USDT", demand=D(2_000_000))
    lender(app, "early", "USDT", D(100), D("0.2"))
    advance(app)


def test_an_unchanged_answer_sends_no_statement_and_a_commit_here_moves_it(app: Flexearn) -> None:
    world(app)
    http = client(app)
    with statements(app.engine) as sent:
        first = http.get(SUMMARY)
        assert first.status_code == 200
        assert sent
        sent.clear()
        assert http.get(SUMMARY).content == first.content
        assert sent == []  # served from memory
        # a different query is another answer, computed on its own
        assert http.get(f"{SAVINGS}/lending-rate-summary").status_code == 200
        assert sent
        # a purchase committed by this process: the next answer sees it, without waiting
        lender(app, "buyer", "USDT", D(2_000_000), D("0.01"))
        after = http.get(SUMMARY).json()["data"][0]["estRate"]
    assert first.json()["data"][0]["estRate"] == "0.2"
    assert after == "0.01"


def until(read: Callable[[], Any], changed_from: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while (value := read()) == changed_from and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_another_process_commits_are_seen_within_max_age(database_url: str, tmp_path: Any) -> None:
    """A real server; this test's process is the other process: it settles an hour (as the worker
    would) and the server's kept answer gives way within `MAX_AGE_S`; a purchase made through the
    server itself is in the very next answer."""
    app = Flexearn(database_url)
    world(app)
    master = generate_master_key()
    user = accounts.create_user(app.uow(), "trader")
    accounts.deposit(app.uow(), user, "USDT", D(2_000_000))
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    env = {"FLEXEARN_DEMO": "1", "FLEXEARN_RATE_LIMIT_SCALE": "100"}
    try:
        with running_server(database_url, master, "--no-scheduler", env=env) as base, httpx.Client(
            base_url=base
        ) as http:

            def hours() -> list[str]:
                return [r["ts"] for r in http.get(HISTORY).json()["data"]]

            before = hours()
            assert hours() == before
            assert len(before) == 1
            advance(app)  # committed by this process: the server cannot know but by looking
            settled_at = time.monotonic()
            after = until(hours, before, seconds=answers.MAX_AGE_S + 5)
            seen_after = time.monotonic() - settled_at
            assert len(after) == 2
            assert after[1:] == before
            # Within the promise: a settled hour shows once the server's business clock has moved
            # (its row is read again when `CLOCK_MAX_AGE_S` old) and its kept answer has aged out
            # (`MAX_AGE_S`); + half a second for the polling's own time.
            assert seen_after < CLOCK_MAX_AGE_S + answers.MAX_AGE_S + 0.5

            est = http.get(SUMMARY).json()["data"][0]["estRate"]
            order = {"ccy": "USDT", "amt": "2000000", "side": "purchase", "rate": "0.01"}
            bought = OkxHttp(base, key).post(f"{SAVINGS}/purchase-redempt", order)
            assert bought.json()["code"] == "0"
            assert (est, http.get(SUMMARY).json()["data"][0]["estRate"]) == ("0.2", "0.01")
    finally:
        app.close()


def test_the_table_is_bounded_and_entries_age(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = answers.PublicAnswers(max_age=60, max_entries=3)
    for i in range(3):
        kept.keep(i, kept.since(), b"%d" % i)
    assert [kept.get(i) for i in range(3)] == [b"0", b"1", b"2"]
    kept.keep(3, kept.since(), b"3")  # the fourth: the table is emptied and refills
    assert [kept.get(i) for i in range(4)] == [None, None, None, b"3"]

    since = kept.since()
    monkeypatch.setattr(unit_of_work, "commits", lambda: since[0] + 1)  # a commit after `since`
    kept.keep("late", since, b"x")
    assert kept.get("late") is None

    aged = answers.PublicAnswers(max_age=0.05)
    aged.keep("k", aged.since(), b"x")
    assert aged.get("k") == b"x"
    time.sleep(0.06)
    assert aged.get("k") is None


def test_commits_counts_outcomes_not_bookkeeping(app: Flexearn) -> None:
    before = unit_of_work.commits()
    accounts.create_user(app.uow(), "someone")
    assert unit_of_work.commits() > before
    moved = unit_of_work.commits()
    with app.uow() as uow:
        uow.commit(outcome=False)  # e.g. a signature's claim in the replay window
    assert unit_of_work.commits() == moved
