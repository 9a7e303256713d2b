"""The client's address behind trusted proxies (FLEXEARN_TRUSTED_PROXIES).

Public endpoints are rate-limited, and API keys' IP allow-lists checked, by the client's address.
Behind an HTTP load balancer the connecting address is the balancer's, so every client would
share one limit and no allow-list could match. When the connecting address is a trusted proxy,
the client is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
(each proxy appends the address it saw; anything left of a trusted hop was written by the client
and may be forged). Without trusted proxies the header is ignored, so it cannot be spoofed.
"""

from __future__ import annotations

import functools
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.7` → networks; ValueError on anything else."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


class TrustedProxies:
    """ASGI middleware: rewrite `scope["client"]` to the forwarded client when a trusted proxy
    connected (the port is kept: the proxy's, which no check uses)."""

    def __init__(self, app: ASGIApp, networks: tuple[Network, ...]) -> None:
        self.app, self.networks = app, networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and self._trusted(client[0]):
            forwarded = self._forwarded_client(scope)
            if forwarded is not None:
                scope = {**scope, "client": (forwarded, client[1])}
        await self.app(scope, receive, send)

    def _trusted(self, address: str) -> bool:
        found = _address(address, self.networks)
        return found is not None and found[1]

    def _forwarded_client(self, scope: Scope) -> str | None:
        hops = [
            hop.strip()
            for name, value in scope["headers"]
            if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            found = _address(hop, self.networks)
            if found is None:
                return None  # a malformed hop: trust nothing further left
            if not found[1]:
                return found[0]
        return None


MAX_ADDRESS_TEXT = 64  # an IPv6 address with an IPv4 tail is 45 characters; longer is no address


@functools.lru_cache(maxsize=4096)  # the addresses seen lately: parsing costs more than the lookup
def _address(text: str, networks: tuple[Network, ...]) -> tuple[str, bool] | None:
    """`text` as an address (written as `ipaddress` writes it) and whether it is one of `networks`'
    (a trusted proxy); None if it is no address."""
    if len(text) > MAX_ADDRESS_TEXT:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ip), any(ip in network for network in networks)
