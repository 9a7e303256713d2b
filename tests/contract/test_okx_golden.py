"""Every OKX endpoint answers with exactly the fields of the seed's example, all strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.contract.conftest import World
from tests.contract.okx_http import OkxHttp
from tests.helpers import advance

GOLDEN = Path(__file__).parent / "golden" / "okx"


def shape(payload: dict[str, Any]) -> tuple[list[str], list[dict[str, type]]]:
    return sorted(payload), [{k: type(v) for k, v in row.items()} for row in payload["data"][:1]]


ENDPOINTS = [
    ("balance", "GET", "/api/v5/finance/savings/balance?ccy=USDT", None),
    (
        "purchase-redempt",
        "POST",
        "/api/v5/finance/savings/purchase-redempt",
        {"ccy": "USDT", "amt": "1", "side": "purchase", "rate": "0.01"},
    ),
    ("set-lending-rate", "POST", "/api/v5/finance/savings/set-lending-rate", {"ccy": "USDT", "rate": "0.02"}),
    ("lending-history", "GET", "/api/v5/finance/savings/lending-history", None),
    ("lending-rate-summary", "GET", "/api/v5/finance/savings/lending-rate-summary", None),
    ("lending-rate-history", "GET", "/api/v5/finance/savings/lending-rate-history?ccy=USDT", None),
    ("time", "GET", "/api/v5/public/time", None),
    ("asset-balances", "GET", "/api/v5/asset/balances", None),
]


def test_every_endpoint_has_the_seed_fields_and_types(world: World) -> None:
    client = OkxHttp(world.base_url, world.key)
    client.post("/api/v5/finance/savings/purchase-redempt", {"ccy": "USDT", "amt": "100", "side": "purchase"})
    advance(world.app, 2)  # matched, then paid: every record type exists
    for golden, method, target, body in ENDPOINTS:
        response = client.get(target) if method == "GET" else client.post(target, body or {})
        assert response.status_code == 200, golden
        assert response.headers["content-type"].startswith("application/json")
        payload = response.json()
        assert payload["code"] == "0", (golden, payload)
        assert payload["data"], f"{golden}: no record to compare"
        expected = json.loads((GOLDEN / f"{golden}.json").read_text())
        assert shape(payload) == shape(expected), golden
        assert all(isinstance(v, str) for row in payload["data"] for v in row.values()), golden
