"""The Binance façade serves every endpoint of Binance's Simple Earn SDK (binance-sdk-simple-earn),
with the method and the request weight (`Weight(IP)`) the SDK documents for it: read from the SDK's
generated code, so an endpoint it adds or a weight it changes fails here."""

from __future__ import annotations

import re
from pathlib import Path

import binance_sdk_simple_earn.rest_api.api as sdk_api

from flexearn.api.binance.routes import ENDPOINTS

ENDPOINT = re.compile(r'Weight\(IP\): (\d+).*?method="(\w+)",\s*path="([^"]+)"', re.DOTALL)


def sdk_endpoints() -> dict[tuple[str, str], int]:
    """(method, path) → weight, of each endpoint of the SDK's REST API."""
    found: dict[tuple[str, str], int] = {}
    for module in sorted(Path(sdk_api.__file__).parent.glob("*_api.py")):
        for function in module.read_text().split("\n    def ")[1:]:
            match = ENDPOINT.search(function)
            if match:
                weight, method, path = match.groups()
                found[(method, path)] = int(weight)
    return found


def test_every_sdk_endpoint_is_served_with_the_sdks_method_and_weight() -> None:
    documented = sdk_endpoints()
    assert len(documented) == 41  # binance-sdk-simple-earn 9.7.0
    served = {(e.method, e.path): e.weight for e in ENDPOINTS}
    assert {route: served.get(route) for route in documented} == documented
