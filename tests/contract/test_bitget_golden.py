"""Every Bitget savings endpoint answers with the documented fields, all strings, in Bitget's envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flexearn.services import scheduler
from tests.contract.bitget_http import BitgetHttp
from tests.contract.conftest import FLEXIBLE_USDT, World
from tests.helpers import advance

GOLDEN = Path(__file__).parent / "golden" / "bitget"
S = "/api/v2/earn/savings"


def shape(value: Any) -> Any:
    """Field names and leaf types, recursively (first element of each list)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_every_savings_endpoint_has_the_documented_shape(world: World) -> None:
    client = BitgetHttp(world.base_url, world.key)
    subscribed = client.post(
        f"{S}/subscribe", {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "100"}
    ).json()
    advance(world.app, 48)
    scheduler.settle_due_days(world.app.engine)
    redeemed = client.post(
        f"{S}/redeem", {"productId": str(FLEXIBLE_USDT), "periodType": "flexible", "amount": "10"}
    ).json()
    order_id, redeem_id = subscribed["data"]["orderId"], redeemed["data"]["orderId"]
    calls = {
        "product": ("GET", f"{S}/product?coin=USDT&filter=all"),
        "subscribe-info": ("GET", f"{S}/subscribe-info?productId={FLEXIBLE_USDT}&periodType=flexible"),
        "records": ("GET", f"{S}/records?periodType=flexible"),
        "subscribe-result": ("GET", f"{S}/subscribe-result?orderId={order_id}&periodType=flexible"),
        "redeem-result": ("GET", f"{S}/redeem-result?orderId={redeem_id}&periodType=flexible"),
        "assets": ("GET", f"{S}/assets?periodType=flexible"),
        "account": ("GET", f"{S}/account"),
    }
    answers = {"subscribe": subscribed, "redeem": redeemed}
    answers |= {name: client.get(target).json() for name, (_, target) in calls.items()}
    for name, payload in answers.items():
        expected = json.loads((GOLDEN / f"{name}.json").read_text())
        assert (payload["code"], payload["msg"]) == ("00000", "success"), (name, payload)
        assert isinstance(payload["requestTime"], int)
        assert shape(payload["data"]) == shape(expected["data"]), name
