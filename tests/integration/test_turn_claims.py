"""On a SQLite file, the signed reads an event loop answers in one turn have their signatures
claimed together (`api/claims.py`): one statement, one COMMIT on the loop's writer, each answered
after it; a signature another process claimed is refused alone; while another writer (a slot of
this process, another process) holds the lock, the group waits on the loop for it; none is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.api.okx.auth import parse_timestamp
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D
from flexearn.services import accounts, keys, replays, savings
from tests.contract.okx_http import signed_headers
from tests.helpers import saver, writing_in_a_slot

BALANCE = "/api/v5/finance/savings/balance"
READS = 8


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Flexearn]:
    instance = Flexearn(f"sqlite:///{tmp_path / 'claims.db'}")
    yield instance
    instance.close()


def _keys(app: Flexearn) -> tuple[Any, list[keys.NewKey]]:
    """The app served, and keys of READS users holding 5 USDT each (one request each at a time: no
    rate limit is met)."""
    master = generate_master_key()
    users = [saver(app, D(5), "reader0")]
    for n in range(1, READS):
        users.append(accounts.create_user(app.uow(), f"reader{n}"))
        accounts.deposit(app.uow(), users[-1], "USDT", D(100))
        savings.purchase(app.uow(), users[-1], "USDT", D(5), None)
    made = [keys.create_key(app.uow(), SecretBox(master), user, "read") for user in users]
    return create_app(Settings(master_key=master, demo=True), app), made


def _claims(app: Flexearn) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.seen_signature)).scalar_one())


async def _at_once(client: httpx.AsyncClient, signed: list[dict[str, str]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.get(BALANCE, headers=h) for h in signed)))


def test_the_reads_of_one_turn_are_claimed_in_one_statement_each_answered_after_it(
    on_sqlite: Flexearn,
) -> None:
    app = on_sqlite
    served, made = _keys(app)
    sent: list[str] = []

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            # each key and the clock loaded, the loop's connections opened
            await _at_once(client, [signed_headers(key, "GET", BALANCE) for key in made])
            claims = _claims(app)
            writer, _reader = db._LOOP.connections[app.engine]
            signed = [signed_headers(key, "GET", BALANCE) for key in made]
            writer.set_trace_callback(sent.append)
            reads = await _at_once(client, signed)
            writer.set_trace_callback(None)
            claimed = _claims(app) - claims
            return reads, await _at_once(client, signed), claimed

    reads, replayed, claimed = asyncio.run(scenario())
    assert [(r.status_code, r.json()["code"]) for r in reads] == [(200, "0")] * READS
    assert [r.json()["data"][0]["amt"] for r in reads] == ["5"] * READS
    inserts = [s for s in sent if s.startswith("INSERT INTO seen_signature")]
    assert len(inserts) == 1  # all eight in one statement
    assert claimed == READS
    assert [(r.status_code, r.json()["code"]) for r in replayed] == [(401, "50113")] * READS


def test_in_a_group_a_signature_another_process_claimed_is_refused_alone(on_sqlite: Flexearn) -> None:
    app = on_sqlite
    served, made = _keys(app)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            await _at_once(client, [signed_headers(key, "GET", BALANCE) for key in made])
            signed = [signed_headers(key, "GET", BALANCE) for key in made]
            sent = parse_timestamp(signed[3]["OK-ACCESS-TIMESTAMP"])
            taken = {"digest": replays.digest(signed[3]["OK-ACCESS-SIGN"], sent), "expires_at": 2**62}
            with app.engine.begin() as conn:  # as another API process claims it
                conn.execute(sa.insert(t.seen_signature).values(taken))
            return await _at_once(client, signed)

    answers = asyncio.run(scenario())
    codes = [(a.status_code, a.json()["code"]) for a in answers]
    assert codes == [(200, "0")] * 3 + [(401, "50113")] + [(200, "0")] * (READS - 4)


def test_while_another_process_holds_the_lock_the_group_tries_again_on_the_loop(on_sqlite: Flexearn) -> None:
    app = on_sqlite
    served, made = _keys(app)
    other = sqlite3.connect(str(app.engine.url.database), isolation_level=None, check_same_thread=False)
    sent: list[str] = []

    async def scenario() -> tuple[list[httpx.Response], int]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            await _at_once(client, [signed_headers(key, "GET", BALANCE) for key in made])
            claims = _claims(app)
            writer, _reader = db._LOOP.connections[app.engine]
            writer.set_trace_callback(sent.append)
            other.execute("BEGIN IMMEDIATE")  # another process's writer
            threading.Timer(0.3, other.execute, ("ROLLBACK",)).start()  # lets go while they wait
            reads = await _at_once(client, [signed_headers(key, "GET", BALANCE) for key in made])
            writer.set_trace_callback(None)
            return reads, _claims(app) - claims

    reads, claimed = asyncio.run(scenario())
    other.close()
    assert [(r.status_code, r.json()["code"]) for r in reads] == [(200, "0")] * READS
    assert claimed == READS  # none lost: made once the lock was let go
    inserts = [s for s in sent if s.startswith("INSERT INTO seen_signature")]
    assert 2 <= len(inserts) < 100  # tried again after short pauses, all eight each time, on the loop


def test_while_a_slot_of_this_process_writes_the_group_waits_for_it_on_the_loop(on_sqlite: Flexearn) -> None:
    app = on_sqlite
    served, made = _keys(app)
    sent: list[str] = []

    async def scenario() -> tuple[list[httpx.Response], int, bool]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:
            await _at_once(client, [signed_headers(key, "GET", BALANCE) for key in made])
            claims = _claims(app)
            writer, _reader = db._LOOP.connections[app.engine]
            with writing_in_a_slot(app) as leave:
                writer.set_trace_callback(sent.append)
                signed = [signed_headers(key, "GET", BALANCE) for key in made]
                reading = asyncio.ensure_future(_at_once(client, signed))
                await asyncio.sleep(0.2)
                waited = not reading.done()
                leave.set()
                reads = await reading
            writer.set_trace_callback(None)
            return reads, _claims(app) - claims, waited

    reads, claimed, waited = asyncio.run(scenario())
    assert waited  # no answer before its claim
    assert [(r.status_code, r.json()["code"]) for r in reads] == [(200, "0")] * READS
    assert claimed == READS
    inserts = [s for s in sent if s.startswith("INSERT INTO seen_signature")]
    assert len(inserts) == 1  # all eight in one statement on the loop's writer, none in a slot


def test_claims_made_in_one_statement_say_which_were_first(app: Flexearn) -> None:
    """`replays.firsts` on both databases: a new signature is first, one remembered is a replay,
    one remembered but expired (before the earliest claim's time) is first again, as `CLAIM` alone."""
    remembered = [("seen", 2**62), ("expired", 1_000)]
    with app.engine.begin() as conn:
        conn.execute(
            sa.insert(t.seen_signature),
            [{"digest": replays.digest(sig, 1_000), "expires_at": until} for sig, until in remembered],
        )
    made = [
        replays.Claim(app.engine, sig, 1_000, now, now + 60_000)  # all signed at 1,000
        for sig, now in (("new", 5_000), ("seen", 4_000), ("expired", 6_000), ("newer", 2_000))
    ]
    assert replays.firsts(made) == [True, False, True, True]
    assert replays.firsts(made) == [False] * 4  # all remembered now, until 60 s after
    assert replays.firsts([]) == []
