"""The forwarded client as `TrustedProxies` finds it, in process (tests/contract/test_trusted_proxies.py
serves it over HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

from flexearn.api.proxy import MAX_ADDRESS_TEXT, TrustedProxies, parse_networks


def client_seen(proxies: str, connecting: str, forwarded_for: str | None) -> str:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    headers = [] if forwarded_for is None else [(b"x-forwarded-for", forwarded_for.encode("latin-1"))]
    scope = {"type": "http", "client": (connecting, 5000), "headers": headers}
    asyncio.run(TrustedProxies(app, parse_networks(proxies))(scope, None, None))
    return seen[0]


def test_the_right_most_hop_that_is_no_trusted_proxy_is_the_client() -> None:
    assert client_seen("10.0.0.0/8", "10.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert client_seen("10.0.0.0/8", "10.0.0.1", "198.51.100.1, 203.0.113.9, 10.2.2.2") == "203.0.113.9"
    assert client_seen("10.0.0.0/8", "10.0.0.1", "2001:DB8:0:0::1") == "2001:db8::1"  # as ipaddress writes it
    assert client_seen("10.0.0.0/8", "10.0.0.1", "10.3.3.3") == "10.0.0.1"  # only proxies: the connecting one


def test_from_an_untrusted_address_the_header_is_ignored() -> None:
    assert client_seen("10.0.0.0/8", "192.0.2.1", "203.0.113.9") == "192.0.2.1"
    assert client_seen("", "10.0.0.1", "203.0.113.9") == "10.0.0.1"
    # the same addresses, remembered for one set of proxies, are judged afresh for another
    assert client_seen("192.0.2.0/24", "192.0.2.1", "203.0.113.9") == "203.0.113.9"


def test_a_malformed_or_overlong_hop_stops_the_search() -> None:
    assert client_seen("10.0.0.0/8", "10.0.0.1", "203.0.113.9, not-an-address") == "10.0.0.1"
    overlong = "1" * (MAX_ADDRESS_TEXT + 1)
    assert client_seen("10.0.0.0/8", "10.0.0.1", f"203.0.113.9, {overlong}") == "10.0.0.1"
    assert client_seen("10.0.0.0/8", overlong, "203.0.113.9") == overlong  # no address: not trusted
