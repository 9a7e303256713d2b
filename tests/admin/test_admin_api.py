"""Every admin endpoint over real HTTP, on SQLite and PostgreSQL: what it does, what it refuses.

The tests of a module share one server (and its database), so they run in file order and each
builds on what the one before left: currencies, then users and funds, markets, the clock, demand.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.api.admin.routes import ROUTES
from flexearn.domain.money import D
from flexearn.services.keys import NewKey
from tests.admin.conftest import Admin, admin_client
from tests.contract.okx_http import OkxHttp
from tests.helpers import T0, lender

HOUR = 3_600_000
EXAMPLE_PATH = {"user_id": "1", "product_id": "1", "ccy": "USDT", "api_key": "no-such-key"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def refused(response: httpx.Response, status: int, error: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert set(body) == {"error", "message", "param"}
    if param is not None:
        assert body["param"] == param, body


def audit_count(admin: Admin) -> int:
    with admin.app.uow() as uow:
        return int(uow.conn.execute(sa.select(sa.func.count()).select_from(t.audit_log)).scalar_one())


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef"], ids=["no token", "wrong token"])
def test_every_endpoint_refuses_a_missing_or_wrong_token(admin: Admin, route: Any, token: str | None) -> None:
    path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: EXAMPLE_PATH[m[1]], route.path)
    before = audit_count(admin)
    with admin_client(admin.base_url, token) as client:
        response = client.request(route.method, path, json={} if route.body else None)
    refused(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert audit_count(admin) == before  # refused requests change nothing, not even the audit log


def test_a_bearer_scheme_other_than_bearer_is_refused(admin: Admin) -> None:
    with admin_client(admin.base_url, None, Authorization="Basic dGVzdDp0ZXN0") as client:
        refused(client.get("/users"), 401, "unauthorized")


def test_currencies_are_added_and_listed(admin: Admin) -> None:
    c = admin.client
    usdt = {"ccy": "USDT", "precision": 8}
    assert ok(c.post("/currencies", json=usdt), 201) == usdt
    assert ok(c.post("/currencies", json={"ccy": "USDC"}), 201) == {"ccy": "USDC", "precision": 16}
    refused(c.post("/currencies", json={"ccy": "USDT"}), 409, "already_exists", "ccy")
    refused(c.post("/currencies", json={"ccy": "usdt!"}), 400, "invalid_parameter", "ccy")
    refused(c.post("/currencies", json={"precision": 2}), 400, "missing_parameter", "ccy")
    refused(c.post("/currencies", content=b"{not json"), 400, "invalid_json")
    refused(c.post("/currencies", content=b"[" * 50_000), 400, "invalid_json")  # too deep for json
    assert ok(c.get("/currencies")) == [{"ccy": "USDC", "precision": 16}, {"ccy": "USDT", "precision": 8}]


def test_users_are_created_listed_and_shown(admin: Admin) -> None:
    c = admin.client
    alice = ok(c.post("/users", json={"name": "alice"}), 201)
    assert alice["name"] == "alice"
    assert alice["level"] == "beginner"
    vip = ok(c.post("/users", json={"name": "vera", "level": "VIP"}), 201)
    refused(c.post("/users", json={"name": "alice"}), 409, "already_exists", "name")
    refused(c.post("/users", json={"name": "x", "level": "king"}), 400, "invalid_parameter", "level")
    refused(c.post("/users", json={"name": "x", "extra": 1}), 400, "invalid_parameter", "extra")
    assert [u["name"] for u in ok(c.get("/users"))] == ["alice", "vera"]
    assert [u["name"] for u in ok(c.get("/users", params={"after_id": alice["id"], "limit": 5}))] == ["vera"]
    refused(c.get("/users", params={"limit": 0}), 400, "invalid_parameter", "limit")
    refused(c.get("/users", params={"bogus": 1}), 400, "invalid_parameter", "bogus")
    shown = ok(c.get(f"/users/{vip['id']}"))
    assert shown == {"user": vip, "funding": [], "trading": [], "savings": []}
    refused(c.get("/users/999999"), 404, "not_found")


def test_deposits_and_withdrawals_move_funding_balances(admin: Admin) -> None:
    c = admin.client
    user_id = ok(c.get("/users"))[0]["id"]
    moved = ok(c.post(f"/users/{user_id}/deposits", json={"ccy": "USDT", "amount": "1000"}), 201)
    assert moved["kind"] == "deposit"
    assert moved["amount"] == "1000"
    assert moved["entry_id"] > 0
    ok(c.post(f"/users/{user_id}/withdrawals", json={"ccy": "USDT", "amount": "100.5"}), 201)
    refused(c.post(f"/users/{user_id}/withdrawals", json={"ccy": "USDT", "amount": "5000"}), 409,
            "insufficient_balance")
    refused(c.post(f"/users/{user_id}/deposits", json={"ccy": "USDT", "amount": "0.000000001"}), 400,
            "invalid_parameter", "amount")  # more decimals than USDT's 8
    refused(c.post(f"/users/{user_id}/deposits", json={"ccy": "DOGE", "amount": "1"}), 404,
            "unsupported_currency")
    refused(c.post("/users/999999/deposits", json={"ccy": "USDT", "amount": "1"}), 404, "not_found")
    refused(c.post(f"/users/{user_id}/deposits", json={"ccy": "USDT", "amount": 5}), 400,
            "invalid_parameter", "amount")  # amounts are decimal strings, never JSON numbers
    funding = ok(c.get(f"/users/{user_id}"))["funding"]
    assert funding == [{"ccy": "USDT", "available": "899.5", "frozen": "0"}]  # refusals wrote nothing


def test_deposits_land_in_funding_unless_the_trading_account_is_named(admin: Admin) -> None:
    c = admin.client
    user_id = ok(c.post("/users", json={"name": "tina"}), 201)["id"]
    moved = ok(c.post(f"/users/{user_id}/deposits", json={"ccy": "USDT", "amount": "10"}), 201)
    assert moved["account"] == "funding"
    to_trading = {"ccy": "USDT", "amount": "250", "account": "trading"}
    assert ok(c.post(f"/users/{user_id}/deposits", json=to_trading), 201)["account"] == "trading"
    ok(c.post(f"/users/{user_id}/withdrawals", json={**to_trading, "amount": "50"}), 201)
    refused(c.post(f"/users/{user_id}/withdrawals", json={**to_trading, "amount": "201"}), 409,
            "insufficient_balance")
    refused(c.post(f"/users/{user_id}/deposits", json={**to_trading, "account": "savings"}), 400,
            "invalid_parameter", "account")
    shown = ok(c.get(f"/users/{user_id}"))
    assert shown["funding"] == [{"ccy": "USDT", "available": "10", "frozen": "0"}]
    assert shown["trading"] == [{"ccy": "USDT", "balance": "200"}]


def test_api_keys_are_created_once_listed_without_secrets_and_revoked(admin: Admin) -> None:
    c = admin.client
    user_id = ok(c.get("/users"))[0]["id"]
    response = c.post(f"/users/{user_id}/keys", json={"permissions": ["read", "trade"], "expires_days": 30})
    created = ok(response, 201)
    assert response.headers["cache-control"] == "no-store"
    assert created["key"]["permissions"] == ["read", "trade"]
    assert created["key"]["expires_at"] is not None
    assert created["key"]["facades"] == ["binance", "bitget", "okx"]  # every façade unless named
    kept_off_binance = ok(
        c.post(f"/users/{user_id}/keys", json={"permissions": ["read"], "facades": ["okx", "bitget"]}), 201
    )
    assert kept_off_binance["key"]["facades"] == ["bitget", "okx"]
    refused(c.post(f"/users/{user_id}/keys", json={"permissions": ["read"], "facades": []}), 400,
            "invalid_parameter")
    refused(c.post(f"/users/{user_id}/keys", json={"permissions": ["read"], "facades": ["kraken"]}), 400,
            "invalid_parameter")
    key = NewKey(created["api_key"], created["secret_key"], created["passphrase"])
    okx = OkxHttp(admin.base_url, key)
    assert okx.get("/api/v5/asset/balances").json()["code"] == "0"  # the secret shown works

    listed = ok(c.get(f"/users/{user_id}/keys"))
    assert [k["api_key"] for k in listed] == [key.api_key, kept_off_binance["api_key"]]
    assert "secret_key" not in listed[0]
    assert "passphrase" not in listed[0]
    refused(c.post(f"/users/{user_id}/keys", json={"permissions": ["admin"]}), 400, "invalid_parameter")
    refused(c.post(f"/users/{user_id}/keys", json={"permissions": ["read"], "ips": ["nope"]}), 400,
            "invalid_parameter")
    refused(c.post("/users/999999/keys", json={"permissions": ["read"]}), 404, "not_found")

    revoked = ok(c.post(f"/keys/{key.api_key}/revoke"))
    assert revoked["revoked_at"] is not None
    refused(c.post("/keys/no-such-key/revoke"), 404, "not_found", "key")
    summary = admin.app.uow()
    with summary as uow:
        texts = uow.conn.execute(sa.select(t.audit_log.c.summary)).scalars().all()
    assert all(key.secret_key not in text and key.passphrase not in text for text in texts)


def test_markets_are_created_changed_and_listed(admin: Admin) -> None:
    c = admin.client
    market = ok(c.put("/markets/USDT", json={"mode": "auction", "demand": "150", "insurance_fee": "0.15"}))
    assert market["demand_source"] == "static"
    assert market["demand"] == "150"
    assert market["first_hour"] == T0 + HOUR
    simulated = ok(c.put("/markets/USDC", json={
        "mode": "pro_rata", "demand_source": "simulated",
        "simulation": {"mean": "500", "base_rate": "0.04", "seed": 3, "volatility": 0.1},
    }))
    assert simulated["simulation"]["mean"] == "500"
    assert simulated["simulation"]["volatility"] == 0.1
    refused(c.put("/markets/USDT", json={"mode": "lottery"}), 400, "invalid_parameter", "mode")
    refused(c.put("/markets/USDT", json={"insurance_fee": "1.5"}), 400, "invalid_parameter", "insurance_fee")
    refused(c.put("/markets/DOGE", json={"mode": "auction"}), 404, "unsupported_currency", "ccy")
    refused(c.put("/markets/USDT", json={"simulation": {"mean": "1", "reversion": 7}}), 400,
            "invalid_parameter", "simulation.reversion")
    assert [m["ccy"] for m in ok(c.get("/markets"))] == ["USDC", "USDT"]
    assert ok(c.get("/markets"))[1]["mode"] == "auction"  # the refused changes wrote nothing


def test_the_clock_is_shown_sped_up_and_advanced_settling_what_became_due(admin: Admin) -> None:
    c = admin.client
    for name, rate in (("lender-a", D("0.02")), ("lender-b", D("0.05")), ("lender-c", D("0.10"))):
        lender(admin.app, name, "USDT", D(100), rate)
    clock = ok(c.get("/clock"))
    assert clock == {"mode": "simulated", "now": T0 + 1_800_000, "speed": "0"}

    advanced = ok(c.post("/clock/advance", json={"hours": 2}))
    assert advanced["clock"]["now"] == T0 + 2 * HOUR + 1_800_000
    usdt = [h for h in advanced["settled"]["hours"] if h["ccy"] == "USDT"]
    assert [h["hour"] for h in usdt] == [T0 + HOUR, T0 + 2 * HOUR]
    assert [h["borrow_rate"] for h in usdt] == ["0.05", "0.05"]  # the worked example: A 100, B 50
    assert Decimal(usdt[1]["interest_paid"]) > 0
    assert ok(c.post("/settle")) == {"hours": [], "days": []}  # nothing more is due

    assert ok(c.post("/clock/speed", json={"speed": "0"}))["speed"] == "0"
    refused(c.post("/clock/advance", json={"hours": 0}), 400, "invalid_parameter", "hours")
    refused(c.post("/clock/advance", json={}), 400, "missing_parameter", "hours")
    refused(c.post("/clock/speed", json={"speed": "-1"}), 400, "invalid_parameter", "speed")


def test_external_demand_is_posted_per_hour_and_lent(admin: Admin) -> None:
    c = admin.client
    now = ok(c.get("/clock"))["now"]
    next_hour = now - now % HOUR + HOUR
    refused(c.post("/markets/USDT/demand", json={"hour": next_hour, "demand": "10"}), 409, "conflict",
            "demand_source")  # USDT's demand is static
    ok(c.put("/markets/USDT", json={"demand_source": "external"}))
    post = {"hour": next_hour, "demand": "120", "borrow_rate": "0.07"}
    margin = {"X-Admin-Actor": "margin"}
    ok(c.post("/markets/USDT/demand", json={**post, "demand": "999"}, headers=margin), 201)
    posted = ok(c.post("/markets/USDT/demand", json=post, headers=margin), 201)
    assert posted == {**post, "ccy": "USDT", "posted_at": posted["posted_at"], "posted_by": "margin"}
    refused(c.post("/markets/USDT/demand", json={"hour": next_hour - HOUR, "demand": "1"}), 409,
            "conflict", "hour")  # already settled
    refused(c.post("/markets/USDT/demand", json={"hour": next_hour + 1, "demand": "1"}), 400,
            "invalid_parameter", "hour")  # not on the hour
    refused(c.post("/markets/DOGE/demand", json={"hour": next_hour, "demand": "1"}), 404,
            "unsupported_currency")

    settled = ok(c.post("/clock/advance", json={"hours": 2}))["settled"]["hours"]
    hours = [h for h in settled if h["ccy"] == "USDT"]
    assert [(h["hour"], h["demand"], h["lent"]) for h in hours] == [
        (next_hour, "120", "120"),  # A 100 and B 20 lent at the auction's r* = 5%
        (next_hour + HOUR, "0", "0"),  # no post: no demand
    ]
    assert [p["hour"] for p in ok(c.get("/markets/USDT/demand", params={"limit": 10}))] == [next_hour]
    refused(c.get("/markets/DOGE/demand"), 404, "unsupported_currency")


PRODUCT = {
    "coin": "USDT",
    "periodType": "flexible",
    "apyType": "ladder",
    "apyList": [
        {"minStepVal": "0", "maxStepVal": "200", "currentApy": "6"},
        {"minStepVal": "200", "maxStepVal": "5000", "currentApy": "3"},
    ],
    "singleMinAmount": "10",
    "singleMaxAmount": "2000",
    "quota": "4900",
}


def test_catalog_products_are_created_updated_paused_and_listed(admin: Admin) -> None:
    c = admin.client
    product = ok(c.post("/products", json=PRODUCT), 201)
    assert product["apy_type"] == "ladder"
    assert [t["apy"] for t in product["tiers"]] == ["6", "3"]
    changed = ok(c.patch(f"/products/{product['id']}", json={
        "apyList": [{"minStepVal": "0", "maxStepVal": "5000", "currentApy": "4.5"}], "apyType": "single",
        "quota": "10000",
    }))
    assert [t["apy"] for t in changed["tiers"]] == ["4.5"]
    assert changed["quota"] == "10000"
    paused = ok(c.post(f"/products/{product['id']}/status", json={"status": "paused"}))
    assert paused["operator_status"] == "paused"
    refused(c.patch(f"/products/{product['id']}", json={"coin": "BTC"}), 400, "invalid_parameter", "coin")
    refused(c.patch(f"/products/{product['id']}", json={"apyList": [
        {"minStepVal": "5", "maxStepVal": "10", "currentApy": "1"}]}), 400, "invalid_parameter", "apyList")
    refused(c.post("/products/999999/status", json={"status": "paused"}), 404, "not_found")
    refused(c.post("/products", json={**PRODUCT, "coin": "DOGE"}), 404, "unsupported_currency")
    refused(c.post(f"/products/{product['id']}/status", json={"status": "sold_out"}), 400,
            "invalid_parameter")
    listed = ok(c.get("/products", params={"coin": "USDT"}))
    assert [(v["product"]["id"], v["status"], v["remaining"]) for v in listed] == [
        (product["id"], "paused", "10000")
    ]
    assert ok(c.get("/products", params={"coin": "USDC"})) == []


def test_a_real_time_product_takes_its_apr_source_and_changes_its_apr(admin: Admin) -> None:
    """Binance's flexible model through the admin API: a simulated walk, then a manual APR."""
    c = admin.client
    spec = {**PRODUCT, "coin": "USDC", "aprSource": "simulated", "apr": "4", "aprLow": "3",
            "aprHigh": "5", "aprStep": "0.25", "aprSeed": 7}
    product = ok(c.post("/products", json=spec), 201)
    assert (product["apr_source"], product["walk"]) == (
        "simulated", {"low": "3", "high": "5", "step": "0.25", "seed": 7}
    )
    refused(c.post("/products", json={**spec, "aprSource": "weekly"}), 400, "invalid_parameter", "aprSource")
    refused(c.post("/products", json={**spec, "apr": "6"}), 400, "invalid_parameter", "apr")
    refused(c.post("/products", json={**spec, "apr": "1e1"}), 400, "invalid_parameter", "apr")
    refused(c.patch(f"/products/{product['id']}", json={"aprSource": "manual", "apr": "-2"}), 400,
            "invalid_parameter", "apr")
    manual = ok(c.patch(f"/products/{product['id']}", json={"aprSource": "manual", "apr": "2.5"}))
    assert manual["apr_source"] == "manual"
    with admin.app.uow() as uow:
        rows = uow.conn.execute(
            sa.select(t.product_apr.c.apr).where(t.product_apr.c.product_id == product["id"])
            .order_by(t.product_apr.c.ts)
        ).scalars()
        assert list(rows)[-1] == D("2.5")


def test_reference_prices_are_set_and_listed(admin: Admin) -> None:
    c = admin.client
    assert ok(c.put("/prices/USDC", json={"usdt": "0.9998"}))["usdt"] == "0.9998"
    assert ok(c.put("/prices/USDC", json={"usdt": "1.0001"}))["usdt"] == "1.0001"
    refused(c.put("/prices/USDC", json={"usdt": "0"}), 400, "invalid_parameter", "price")
    refused(c.put("/prices/DOGE", json={"usdt": "1"}), 404, "unsupported_currency")
    assert [(p["ccy"], p["usdt"]) for p in ok(c.get("/prices"))] == [("USDC", "1.0001")]


def test_the_ledger_check_passes_after_all_of_it(admin: Admin) -> None:
    assert ok(admin.client.get("/ledger/check")) == {"ok": True, "violations": []}


def test_the_audit_log_records_every_state_change_with_who_what_and_how(admin: Admin) -> None:
    c = admin.client
    ok(c.post("/users", json={"name": "audited"}, headers={"X-Admin-Actor": "carol@ops"}), 201)
    refused(c.post("/users", json={"name": "audited"}), 409, "already_exists")
    newest, refusal = ok(c.get("/audit", params={"limit": 2}))[::-1]
    assert (newest["actor"], newest["token"], newest["method"], newest["path"], newest["status"]) == (
        "carol@ops", "admin", "POST", "/admin/v1/users", 201
    )
    assert newest["summary"] == '{"name": "audited"}'
    assert newest["error"] == ""
    assert (refusal["actor"], refusal["status"], refusal["error"]) == ("admin", 409, "already_exists")
    assert refusal["id"] > newest["id"]
    assert refusal["at"] >= newest["at"]
    assert len(refusal["request_id"]) == 32

    entries = ok(c.get("/audit", params={"limit": 1000}))
    assert all(e["method"] != "GET" for e in entries)  # reads are not actions
    assert {"/admin/v1/clock/advance", "/admin/v1/settle", "/admin/v1/markets/USDT/demand"} <= {
        e["path"] for e in entries
    }
    older = ok(c.get("/audit", params={"before_id": entries[0]["id"], "limit": 1}))
    assert older == [entries[1]]


def test_unknown_admin_paths_and_methods_answer_json(admin: Admin) -> None:
    refused(admin.client.get("/nothing-here"), 404, "not_found")
    refused(admin.client.delete("/users"), 405, "method_not_allowed")
