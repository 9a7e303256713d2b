"""A signed read's signature is claimed with its read (one connection, on PostgreSQL one round
trip): a replay is still refused, by the process that answered it and by any other on the database
(real servers, real HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.auth import REVOCATION_CHECK_SECONDS
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, keys
from tests.contract.okx_http import signed_headers
from tests.helpers import market_world, saver
from tests.server import running_server

BALANCE = "/api/v5/finance/savings/balance?ccy=USDT"
REPLAYED = (401, "50113")
UNKNOWN_KEY = (401, "50111")


@contextmanager
def two_processes(database_url: str, master: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two server processes on the one database, and a client of each."""
    with (
        running_server(database_url, master) as first,
        running_server(database_url, master) as second,
        httpx.Client(base_url=first, timeout=10) as one,
        httpx.Client(base_url=second, timeout=10) as other,
    ):
        yield one, other


def answer(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def test_a_signed_read_is_answered_once_by_every_process_on_the_database(database_url: str) -> None:
    app = Flexearn(database_url)
    user = saver(app, D("7.25"))
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read")
    try:
        with two_processes(database_url, master) as (one, other):
            signed = signed_headers(key, "GET", BALANCE)
            read = one.get(BALANCE, headers=signed)
            assert answer(read) == (200, "0")
            assert read.json()["data"][0]["amt"] == "7.25"
            assert answer(one.get(BALANCE, headers=signed)) == REPLAYED  # this process remembers it
            assert answer(other.get(BALANCE, headers=signed)) == REPLAYED  # the database does
            # the other way round, the first answer from the second process
            signed = signed_headers(key, "GET", BALANCE)
            assert answer(other.get(BALANCE, headers=signed)) == (200, "0")
            assert answer(one.get(BALANCE, headers=signed)) == REPLAYED
            # a read refused in its handler (bad currency) still used its signature
            refused = signed_headers(key, "GET", "/api/v5/finance/savings/balance?ccy=NO-PE")
            assert one.get("/api/v5/finance/savings/balance?ccy=NO-PE", headers=refused).json()["code"] != "0"
            assert answer(other.get("/api/v5/finance/savings/balance?ccy=NO-PE", headers=refused)) == REPLAYED
    finally:
        app.close()


def test_a_revoked_key_is_refused_by_every_process_within_about_a_second(database_url: str) -> None:
    """Each process keeps a key it has verified; a revocation made elsewhere (here: by the CLI's
    code on the database) still reaches both within the revocation check's second."""
    app = Flexearn(database_url)
    market_world(app, "USDT", demand=D(0))
    user = accounts.create_user(app.uow(), "revoked")
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read")
    try:
        with two_processes(database_url, master) as (one, other):
            for client in (one, other):  # each process now keeps the key
                assert answer(client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))) == (200, "0")
            keys.revoke_key(app.uow(), key.api_key)
            time.sleep(REVOCATION_CHECK_SECONDS + 0.5)
            for client in (one, other):
                assert answer(client.get(BALANCE, headers=signed_headers(key, "GET", BALANCE))) == UNKNOWN_KEY
    finally:
        app.close()
