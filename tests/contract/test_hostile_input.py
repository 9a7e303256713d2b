"""Hostile amounts, integers, paths and credentials over real HTTP, on SQLite and PostgreSQL.

Each amount below was once accepted, misread or answered 500 (issue 11); one of them (`1E-60`, a
Bitget redemption on PostgreSQL) made the ledger check fail for good. Every one must now be
refused with the exchange's own parameter error naming the parameter, write nothing, and leave
the whole ledger check green.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from flexearn.api.app import create_app
from flexearn.api.facade import FAILURES_PER_ADDRESS
from flexearn.config import Settings
from flexearn.services import accounts, ledger_check, savings
from tests.contract.bitget_http import BitgetHttp
from tests.contract.conftest import FLEXIBLE_USDT, World
from tests.contract.okx_http import OkxHttp
from tests.server import ADMIN_TOKEN

PURCHASE = "/api/v5/finance/savings/purchase-redempt"
BALANCE = "/api/v5/finance/savings/balance"
SUBSCRIBE = "/api/v2/earn/savings/subscribe"
REDEEM = "/api/v2/earn/savings/redeem"

# Text that Decimal() reads (or chokes on) but no exchange client sends as an amount.
BATTERY = [
    "1E-60",
    "1E-999000",
    "1E-999999999",
    "1E+999999999",
    "1E-20000",
    "1e2",
    " 1",
    "\t2",
    "1 ",
    "1\n",
    "１",  # full-width one
    "٣",  # Arabic-Indic three
    "1_0",
    "+3",
    "-3",
    "-0",
    "0x10",
    "NaN",
    "Infinity",
    "1.",
    ".5",
    "1.2.3",
    "1" * 21,  # more integer digits than any amount has
    "1." + "0" * 19,  # more decimal places than any currency has
]
# JSON numbers the body may carry instead of strings: read by their value, which must fit the same
# grammar (1e-7 is 0.0000001, as JSON encoders write it; 1E-60 has too many places).
JSON_NUMBERS = ["1E-60", "1E+999999999", "-5", "1e-19", "1e20"]


def battery_bodies(template: dict[str, Any], field: str) -> list[str]:
    bodies = [json.dumps({**template, field: text}) for text in BATTERY]
    stem = json.dumps({**template, field: 0})
    bodies += [stem.replace(f'"{field}": 0', f'"{field}": {number}') for number in JSON_NUMBERS]
    return bodies


def paced(send: Callable[..., httpx.Response], *args: Any) -> httpx.Response:
    """`send(*args)`, again while the endpoint's per-user rate limit (6 or 10 a second) refuses it."""
    for _ in range(50):
        response = send(*args)
        if response.status_code != 429:
            return response
        time.sleep(0.2)
    raise AssertionError("rate-limited for 10 s")


def money_of(world: World) -> tuple[list[accounts.FundingBalance], list[savings.Position]]:
    return accounts.funding_balances(world.app.uow(), world.user_id), savings.positions(
        world.app.uow(), world.user_id
    )


def test_the_okx_battery_is_refused_with_51000_and_writes_nothing(user: World) -> None:
    okx = OkxHttp(user.base_url, user.key)
    assert okx.post(PURCHASE, {"ccy": "USDT", "amt": "100", "side": "purchase"}).json()["code"] == "0"
    before = money_of(user)
    for side in ("purchase", "redempt"):
        for body in battery_bodies({"ccy": "USDT", "side": side, "rate": ""}, "amt"):
            response = paced(okx.post, PURCHASE, body)
            payload = response.json()
            assert (response.status_code, payload["code"]) == (400, "51000"), body
            assert payload["msg"].startswith("Parameter amt error: must be a plain decimal"), payload
    for rate in ("1E-60", " 0.05", "+0.05", "0.05e0"):
        body = {"ccy": "USDT", "amt": "1", "side": "purchase", "rate": rate}
        response = paced(okx.post, PURCHASE, body)
        assert (response.status_code, response.json()["code"]) == (400, "51000"), rate
        assert "Parameter rate error" in response.json()["msg"]
    # finer than the currency's 16 places: its own refusal, before any arithmetic
    fine = paced(okx.post, PURCHASE, {"ccy": "USDT", "amt": "0.00000000000000001", "side": "redempt"})
    assert fine.json()["msg"] == "Parameter amt error: at most 16 decimal places"
    assert money_of(user) == before
    assert ledger_check.check(user.app.uow()) == []


def test_the_bitget_battery_is_refused_with_40017_and_writes_nothing(user: World) -> None:
    bitget = BitgetHttp(user.base_url, user.key)
    product = {"productId": str(FLEXIBLE_USDT), "periodType": "flexible"}
    assert bitget.post(SUBSCRIBE, {**product, "amount": "100"}).json()["code"] == "00000"
    with user.app.uow() as uow:
        entries = uow.conn.exec_driver_sql("SELECT count(*) FROM journal_entry").scalar()
    for path in (SUBSCRIBE, REDEEM):
        for body in battery_bodies(product, "amount"):
            response = paced(bitget.post, path, body)
            payload = response.json()
            assert (response.status_code, payload["code"]) == (400, "40017"), (path, body)
            assert "amount" in payload["msg"], payload
    # Redemptions are checked against the product's places and the currency's as subscriptions
    # are (the product: 6 places to subscribe, 6 of profit; USDT: 16): this was the ledger's hole.
    # Bitget's Earn codes say so: 59034 for a redemption, 59010 for a subscription.
    for path, amount, code in (
        (REDEEM, "0.0000001", "59034"),
        (REDEEM, "0.000000001", "59034"),
        (SUBSCRIBE, "10.0000001", "59010"),
    ):
        payload = paced(bitget.post, path, {**product, "amount": amount}).json()
        assert payload["code"] == code, (path, amount)
        assert "cannot exceed 6 digits" in payload["msg"]
    with user.app.uow() as uow:
        assert uow.conn.exec_driver_sql("SELECT count(*) FROM journal_entry").scalar() == entries
    redeemed = paced(bitget.post, REDEEM, {**product, "amount": "0.000001"}).json()
    assert redeemed["code"] == "00000"  # as fine as the product allows is fine
    assert ledger_check.check(user.app.uow()) == []


def test_integers_in_query_strings_are_ascii_digits(user: World) -> None:
    okx = OkxHttp(user.base_url, user.key)
    for limit in ("²", "٣", " 5", "+5", "5_0", "1" * 40):
        response = paced(okx.get, f"/api/v5/finance/savings/lending-history?limit={limit}")
        assert (response.status_code, response.json()["code"]) == (400, "51000"), limit
    admin = httpx.Client(base_url=user.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    for name, value in (("limit", "²"), ("limit", "%C2%B2"), ("after_id", "٣"), ("after_id", "%D9%A3")):
        response = admin.get(f"/admin/v1/users?{name}={value}")
        assert response.status_code == 400, (name, value, response.text)
        assert response.json()["error"] == "invalid_parameter"
    assert admin.get("/admin/v1/users?after_id=3").status_code == 200


def test_admin_money_follows_the_same_grammar(user: World) -> None:
    admin = httpx.Client(base_url=user.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    before = money_of(user)
    for text in BATTERY:
        for action in ("deposits", "withdrawals"):
            response = admin.post(
                f"/admin/v1/users/{user.user_id}/{action}", json={"ccy": "USDT", "amount": text}
            )
            assert response.status_code == 400, (text, response.text)
            assert response.json()["param"] == "amount"
    response = admin.post(
        "/admin/v1/markets/USDT/demand", json={"hour": 1_800_000_000_000, "demand": "1E-60"}
    )
    assert (response.status_code, response.json()["param"]) == (400, "demand"), response.text
    assert money_of(user) == before
    assert ledger_check.check(user.app.uow()) == []


def every_path(world: World) -> list[str]:
    """Each route of the app (as `create_app` builds it), path parameters filled in, mounts included."""
    app = create_app(Settings(master_key=world.master_key, admin_token=ADMIN_TOKEN), world.app)
    paths = []
    for route in app.routes:
        inner = getattr(getattr(route, "app", None), "routes", None)
        for leaf in inner or [route]:
            path = (route.path if inner else "") + getattr(leaf, "path", "")
            paths.append(path.replace("{ccy}", "USDT").replace("{ref}", "1").replace("{user_id:int}", "1"))
    return sorted({p.split("{")[0] for p in paths if p})


def test_no_path_redirects_a_trailing_slash_even_to_a_foreign_host(user: World) -> None:
    client = httpx.Client(base_url=user.base_url, follow_redirects=False)
    paths = every_path(user)
    assert {"/admin/v1/users", "/api/v5/finance/savings/balance", "/dashboard/api/overview"} <= set(paths)
    for path in paths:
        for method in ("GET", "POST"):
            response = client.request(method, path.rstrip("/") + "/", headers={"Host": "evil.example"})
            assert response.status_code < 300 or response.status_code >= 400, (method, path)
            assert "location" not in response.headers, (method, path, response.headers["location"])


def test_failed_passphrases_lock_the_key_from_that_address_only_for_a_while(user: World) -> None:
    okx = OkxHttp(user.base_url, user.key)
    for _ in range(FAILURES_PER_ADDRESS):
        assert okx.get(BALANCE, passphrase="guess").json()["code"] == "50105"
    locked = okx.get(BALANCE)  # the right passphrase, from the guesser's address: refused unchecked
    assert (locked.status_code, locked.json()["code"]) == (429, "50011")
    assert "failed signatures or passphrases" in locked.json()["msg"]
    bitget = BitgetHttp(user.base_url, user.key)
    assert bitget.get("/api/v2/earn/savings/account").status_code == 429  # one key, both façades
    # The owner on another address is served: someone who knows only the key cannot lock them out.
    elsewhere = OkxHttp(user.base_url, user.key)
    elsewhere.client = httpx.Client(
        base_url=user.base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )
    assert elsewhere.get(BALANCE).json()["code"] == "0"
    # Another key from the guesser's address is not touched either.
    other = OkxHttp(user.base_url, user.new_key())
    assert other.get(BALANCE).json()["code"] == "0"


def test_forged_signatures_count_too(user: World) -> None:
    from flexearn.services.keys import NewKey

    forged = OkxHttp(user.base_url, NewKey(user.key.api_key, "F" * 32, user.key.passphrase))
    for _ in range(FAILURES_PER_ADDRESS):
        assert forged.get(BALANCE).json()["code"] == "50113"
    assert forged.get(BALANCE).status_code == 429
    assert OkxHttp(user.base_url, user.key).get(BALANCE).status_code == 429


def test_admin_ids_and_bodies_too_big_for_python_are_refused_as_json(user: World) -> None:
    admin = httpx.Client(base_url=user.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    for path in (f"/admin/v1/users/{'9' * 5000}", f"/admin/v1/users/{'1' * 19}/keys"):
        response = admin.get(path)  # int() refuses 4,300+ digits: this was a plain-text 500
        assert (response.status_code, response.json()["error"]) == (404, "not_found"), path[:40]
    response = admin.patch(f"/admin/v1/products/{'9' * 5000}", json={"status": "paused"})
    assert response.status_code == 404
    for depth in (17, 600, 5000):  # validating and auditing walk the body: 600 deep was a 500
        body = "[" * depth + "]" * depth
        response = admin.post(
            f"/admin/v1/users/{user.user_id}/deposits",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["error"]) == (400, "invalid_json"), depth
    nested = {"ccy": "USDT", "amount": "1", "x": [[[[[]]]]]}  # shallow: refused by the schema instead
    response = admin.post(f"/admin/v1/users/{user.user_id}/deposits", json=nested)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_parameter")


def test_a_json_number_is_read_by_its_value_as_encoders_write_small_ones(user: World) -> None:
    """ccxt sends some amounts as JSON numbers, and Python's encoder writes 0.00001 as 1e-05."""
    okx = OkxHttp(user.base_url, user.key)
    body = '{"ccy": "BTC", "amt": 1e-05, "side": "purchase", "rate": ""}'
    bought = paced(okx.post, PURCHASE, body).json()
    assert (bought["code"], bought["data"][0]["amt"]) == ("0", "0.00001"), bought
    body = '{"ccy": "BTC", "amt": 1e-09, "side": "purchase", "rate": ""}'  # finer than BTC's 8 places
    assert paced(okx.post, PURCHASE, body).json()["msg"] == "Parameter amt error: at most 8 decimal places"
    assert ledger_check.check(user.app.uow()) == []
