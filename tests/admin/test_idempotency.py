"""Idempotency-Key on the admin API, over real HTTP on SQLite and PostgreSQL.

A retry with the same key and body answers as the first request did and acts once; the same key
with another request is refused; concurrent duplicates act once; an answer survives a kill -9 of
the server that gave it; keys expire after a day and are pruned.

The module's tests share one server (the `admin` fixture) and run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from collections import Counter
from contextlib import AbstractContextManager
from typing import Any

import httpx
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.adapters.secrets import generate_master_key
from flexearn.bootstrap import Flexearn
from flexearn.services import accounts, idempotency
from tests.admin.conftest import PREFIX, Admin, admin_client
from tests.server import ADMIN_TOKEN, server_process

REPLAYED = "idempotent-replayed"
HOUR = 3_600_000


def key() -> str:
    return f"test-{uuid.uuid4()}"


def deposits(app: Flexearn, user_id: int) -> int:
    """Deposit entries booked for the user: what the ledger says happened."""
    entry = t.journal_entry
    with app.uow() as uow:
        query = sa.select(sa.func.count()).where(entry.c.kind == "deposit", entry.c.ref == f"user:{user_id}")
        return int(uow.conn.execute(query).scalar_one())


def funding(client: httpx.Client, user_id: int, ccy: str = "USDT") -> str:
    balances = client.get(f"/users/{user_id}").json()["funding"]
    return next((b["available"] for b in balances if b["ccy"] == ccy), "0")


def user_id(admin: Admin, name: str = "ida") -> int:
    with admin.app.uow() as uow:
        return int(uow.conn.execute(sa.select(t.user.c.id).where(t.user.c.name == name)).scalar_one())


def stored_key(app: Flexearn, token: str, name: str) -> Any:
    k = t.idempotency_key
    with app.uow() as uow:
        return uow.conn.execute(sa.select(k).where(k.c.token == token, k.c.key == name)).first()


def test_a_repeat_with_the_same_key_and_body_deposits_once_and_answers_the_same(admin: Admin) -> None:
    c = admin.client
    assert c.post("/currencies", json={"ccy": "USDT", "precision": 8}).status_code == 201
    uid = c.post("/users", json={"name": "ida"}, headers={"Idempotency-Key": key()}).json()["id"]
    k = {"Idempotency-Key": key()}

    first = c.post(f"/users/{uid}/deposits", json={"ccy": "USDT", "amount": "100"}, headers=k)
    again = c.post(f"/users/{uid}/deposits", content=b'{ "amount": "100",  "ccy": "USDT" }', headers=k)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # the same entry id: the first answer, byte for byte
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"] == "application/json"
    assert deposits(admin.app, uid) == 1
    assert funding(c, uid) == "100"
    replay, original = c.get("/audit", params={"limit": 2}).json()
    assert (original["status"], original["error"]) == (201, "")
    assert (replay["status"], replay["error"]) == (201, "idempotent_replay")  # visible as a replay


def test_the_same_key_with_another_body_or_path_is_refused_and_nothing_is_applied(admin: Admin) -> None:
    c, uid, k = admin.client, user_id(admin), {"Idempotency-Key": key()}
    assert c.post(f"/users/{uid}/deposits", json={"ccy": "USDT", "amount": "5"}, headers=k).status_code == 201

    for method, path, body in [
        ("POST", f"/users/{uid}/deposits", {"ccy": "USDT", "amount": "6"}),
        ("POST", f"/users/{uid}/withdrawals", {"ccy": "USDT", "amount": "5"}),
        ("PUT", "/prices/USDT", {"usdt": "1"}),
    ]:
        refused = c.request(method, path, json=body, headers=k)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "idempotency_key_reused"
        assert refused.json()["param"] == "Idempotency-Key"
    assert deposits(admin.app, uid) == 2
    assert funding(c, uid) == "105"
    assert c.get("/prices").json() == []


def test_without_a_key_every_request_acts(admin: Admin) -> None:
    c, uid = admin.client, user_id(admin)
    for _ in range(2):
        answer = c.post(f"/users/{uid}/deposits", json={"ccy": "USDT", "amount": "1"})
        assert answer.status_code == 201
        assert REPLAYED not in answer.headers
    assert deposits(admin.app, uid) == 4
    assert funding(c, uid) == "107"


def test_engine_refusals_are_kept_and_refusals_before_the_action_are_not(admin: Admin) -> None:
    c, uid = admin.client, user_id(admin)
    k = {"Idempotency-Key": key()}
    too_much = {"ccy": "USDT", "amount": "1000"}
    first = c.post(f"/users/{uid}/withdrawals", json=too_much, headers=k)
    assert first.status_code == 409
    assert first.json()["error"] == "insufficient_balance"
    c.post(f"/users/{uid}/deposits", json=too_much)  # now it would succeed …
    again = c.post(f"/users/{uid}/withdrawals", json=too_much, headers=k)
    assert (again.status_code, again.content, again.headers[REPLAYED]) == (409, first.content, "true")
    assert funding(c, uid) == "1107"  # … but the key answers as it did first (Stripe's rule)

    k = {"Idempotency-Key": key()}
    invalid = c.post(f"/users/{uid}/withdrawals", json={"ccy": "USDT", "amount": "-1"}, headers=k)
    assert invalid.status_code == 400  # refused by the schema, before the action: not kept
    assert stored_key(admin.app, "admin", k["Idempotency-Key"]) is None
    fixed = c.post(f"/users/{uid}/withdrawals", json={"ccy": "USDT", "amount": "7"}, headers=k)
    assert fixed.status_code == 201
    assert funding(c, uid) == "1100"


def test_a_keyed_action_commits_with_its_audit_record_or_not_at_all(admin: Admin) -> None:
    """The audit row of a keyed request is written in its action's transaction: when the audit log
    refuses it, the deposit is not made either; the retry with the same key then acts once."""
    c = admin.client
    uid = c.post("/users", json={"name": "audited"}).json()["id"]  # its own: the others' sums hold
    refuse = (
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit log refused'; END $$; "
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        if admin.app.engine.dialect.name == "postgresql"
        else "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with admin.app.engine.begin() as conn:
        conn.exec_driver_sql(refuse)
    k = {"Idempotency-Key": key()}
    try:
        refused = c.post(f"/users/{uid}/deposits", json={"ccy": "USDT", "amount": "7"}, headers=k)
    finally:
        with admin.app.engine.begin() as conn:
            conn.exec_driver_sql(
                "DROP TRIGGER refuse_audit" + (" ON audit_log" if "FUNCTION" in refuse else "")
            )
    assert refused.status_code >= 400
    assert (deposits(admin.app, uid), funding(c, uid)) == (0, "0")  # nothing half-written
    assert stored_key(admin.app, "admin", k["Idempotency-Key"]) is None  # so the retry acts
    done = c.post(f"/users/{uid}/deposits", json={"ccy": "USDT", "amount": "7"}, headers=k)
    assert done.status_code == 201
    assert (deposits(admin.app, uid), funding(c, uid)) == (1, "7")
    (record,) = c.get("/audit", params={"limit": 1}).json()
    assert (record["path"], record["status"], record["error"]) == (f"/admin/v1/users/{uid}/deposits", 201, "")


def test_a_key_must_be_printable_ascii_of_at_most_255_characters(admin: Admin) -> None:
    c, uid = admin.client, user_id(admin)
    body = {"ccy": "USDT", "amount": "1"}
    for bad in [b"k" * 256, b"tab\there", "clé".encode()]:
        refused = c.post(f"/users/{uid}/deposits", json=body, headers={"Idempotency-Key": bad})
        assert refused.status_code == 400, bad
        assert refused.json()["param"] == "Idempotency-Key"
    assert funding(c, uid) == "1100"
    for good in ["k" * 255, '"8e03978e-40d5-43e8-bc93-6894a57f9324"']:  # bare (Stripe) or quoted (draft)
        first = c.post(f"/users/{uid}/deposits", json=body, headers={"Idempotency-Key": good})
        again = c.post(f"/users/{uid}/deposits", json=body, headers={"Idempotency-Key": good})
        assert (first.status_code, again.status_code, again.headers[REPLAYED]) == (201, 201, "true")
    assert funding(c, uid) == "1102"
    assert c.get("/users", headers={"Idempotency-Key": "k" * 300}).status_code == 200  # reads ignore it


def test_a_new_api_keys_secret_is_replayed_but_stored_encrypted(admin: Admin) -> None:
    c, uid, k = admin.client, user_id(admin), {"Idempotency-Key": key()}
    first = c.post(f"/users/{uid}/keys", json={"permissions": ["read"]}, headers=k)
    again = c.post(f"/users/{uid}/keys", json={"permissions": ["read"]}, headers=k)
    assert first.status_code == again.status_code == 201
    assert again.json()["secret_key"] == first.json()["secret_key"]
    assert len(c.get(f"/users/{uid}/keys").json()) == 1
    row = stored_key(admin.app, "admin", k["Idempotency-Key"])
    assert first.json()["secret_key"] not in row.response
    assert first.json()["passphrase"] not in row.response


def test_advancing_the_clock_with_a_key_moves_it_once(admin: Admin) -> None:
    c, k = admin.client, {"Idempotency-Key": key()}
    before = c.get("/clock").json()["now"]
    first = c.post("/clock/advance", json={"hours": 1}, headers=k)
    again = c.post("/clock/advance", json={"hours": 1}, headers=k)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"
    assert first.json()["clock"]["now"] == before + HOUR
    assert c.get("/clock").json()["now"] == before + HOUR


def test_a_key_left_pending_by_a_crash_is_finished_by_its_retry_without_acting_again(admin: Admin) -> None:
    """The process died after the clock moved (the key's transaction) and before it settled."""
    c = admin.client
    before = c.get("/clock").json()["now"]
    body = b'{"hours":1}'
    for path, raw in [("/clock/advance", body), ("/settle", None)]:
        name = key()
        with admin.app.uow() as uow:
            uow.conn.execute(
                sa.insert(t.idempotency_key).values(
                    token="admin",
                    key=name,
                    method="POST",
                    path=PREFIX + path,
                    body_sha256=idempotency.fingerprint("POST", PREFIX + path, raw),
                    status=idempotency.PENDING,
                    response="",
                    created_at=wall_ms(),
                )
            )
            uow.commit()
        finished = c.post(path, content=raw or b"", headers={"Idempotency-Key": name})
        assert finished.status_code == 200, finished.text
        assert REPLAYED not in finished.headers
        again = c.post(path, content=raw or b"", headers={"Idempotency-Key": name})
        assert (again.content, again.headers[REPLAYED]) == (finished.content, "true")
        assert stored_key(admin.app, "admin", name).status == 200
    assert c.get("/clock").json()["now"] == before  # the retry did not move the clock again


def test_expired_keys_act_afresh_and_are_pruned(admin: Admin) -> None:
    c, uid, k = admin.client, user_id(admin), {"Idempotency-Key": key()}
    body = {"ccy": "USDT", "amount": "1"}
    assert c.post(f"/users/{uid}/deposits", json=body, headers=k).status_code == 201
    count = deposits(admin.app, uid)
    day_ago = wall_ms() - idempotency.KEY_TTL_MS - 1
    with admin.app.uow() as uow:  # the key was first used a day ago
        uow.conn.execute(sa.update(t.idempotency_key).where(t.idempotency_key.c.key == k["Idempotency-Key"])
                         .values(created_at=day_ago))
        uow.commit()
    afresh = c.post(f"/users/{uid}/deposits", json=body, headers=k)
    assert afresh.status_code == 201
    assert REPLAYED not in afresh.headers
    assert deposits(admin.app, uid) == count + 1

    kept = stored_key(admin.app, "admin", k["Idempotency-Key"])
    everything = idempotency.prune(admin.app.engine, now_ms=wall_ms() + idempotency.KEY_TTL_MS + 1)
    assert everything >= 10  # every key this module made is older than a day by then
    assert stored_key(admin.app, "admin", k["Idempotency-Key"]) is None
    assert kept is not None
    assert idempotency.prune(admin.app.engine) == 0


def test_the_openapi_document_declares_the_header_on_state_changing_operations(admin: Admin) -> None:
    document = httpx.get(f"{admin.base_url}{PREFIX}/openapi.json").json()
    for item in document["paths"].values():
        for method, operation in item.items():
            names = [p["name"] for p in operation["parameters"]]
            assert ("Idempotency-Key" in names) == (method != "get"), (method, operation["operationId"])
            if method != "get":
                assert {"409", "422"} <= set(operation["responses"])


# --- several requests at once, and a crash --------------------------------------------------------


Server = AbstractContextManager[tuple[subprocess.Popen[bytes], str]]


def serve(database_url: str, master_key: str, tokens: str) -> Server:
    """`flexearn serve` in a session of its own, so a kill -9 takes all of its processes."""
    return server_process(database_url, master_key, env={"FLEXEARN_ADMIN_TOKEN": tokens})


def _world(database_url: str) -> tuple[Flexearn, int]:
    app = Flexearn(database_url)
    accounts.add_currency(app.uow(), "USDT", 8)
    return app, accounts.create_user(app.uow(), "ida")


def _at_once(base: str, path: str, body: dict[str, str], threads: int) -> list[httpx.Response]:
    """`threads` clients send the same request with the same new key, released together."""
    headers, start, answers = {"Idempotency-Key": key()}, threading.Barrier(threads), []

    def send() -> None:
        with admin_client(base) as client:
            start.wait()
            answers.append(client.post(path, json=body, headers=headers))

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def test_concurrent_duplicates_act_once_and_answer_the_first_answer_or_in_use(database_url: str) -> None:
    app, uid = _world(database_url)
    threads, rounds, seen = 16, 4, Counter[str]()
    try:
        with serve(database_url, generate_master_key(), ADMIN_TOKEN) as (_, base):
            for round_ in range(rounds):
                answers = _at_once(base, f"/users/{uid}/deposits", {"ccy": "USDT", "amount": "1"}, threads)
                assert len(answers) == threads
                firsts = [a for a in answers if a.status_code == 201 and REPLAYED not in a.headers]
                assert len(firsts) == 1, [a.status_code for a in answers]
                for answer in answers:
                    if answer.status_code == 201:
                        assert answer.content == firsts[0].content
                        seen["first" if answer is firsts[0] else "replayed"] += 1
                    else:
                        assert answer.status_code == 409, answer.text
                        assert answer.json()["error"] == "idempotency_key_in_use"
                        seen["in use"] += 1
                assert deposits(app, uid) == round_ + 1
        backend = database_url.split(":", maxsplit=1)[0]
        print(f"\n{backend}: {threads} threads x {rounds} rounds: {dict(seen)}")
        assert seen["first"] == rounds
    finally:
        app.close()


def test_an_acknowledged_keyed_deposit_survives_a_kill_9_and_its_retry_replays(database_url: str) -> None:
    app, uid = _world(database_url)
    master, other = generate_master_key(), "ops:another-admin-token-0123456789"
    tokens = f"{ADMIN_TOKEN},{other}"
    k = {"Idempotency-Key": key()}
    body = {"ccy": "USDT", "amount": "42"}
    try:
        with serve(database_url, master, tokens) as (proc, base), admin_client(base) as client:
            first = client.post(f"/users/{uid}/deposits", json=body, headers=k)
            assert first.status_code == 201
            os.killpg(proc.pid, signal.SIGKILL)  # right after the answer arrived
            assert proc.wait(timeout=10) == -signal.SIGKILL
        with serve(database_url, master, tokens) as (_, base):
            with admin_client(base) as client:
                again = client.post(f"/users/{uid}/deposits", json=body, headers=k)
                assert (again.status_code, again.headers[REPLAYED]) == (201, "true")
                assert again.content == first.content
                assert deposits(app, uid) == 1
                assert funding(client, uid) == "42"
            with admin_client(base, other.split(":")[1]) as ops:  # the same key of another token: its own
                assert ops.post(f"/users/{uid}/deposits", json=body, headers=k).status_code == 201
                assert deposits(app, uid) == 2
        assert json.loads(first.content)["amount"] == "42"
    finally:
        app.close()
