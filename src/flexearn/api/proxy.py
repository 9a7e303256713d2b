"""The client's address behind trusted proxies (FLEXEARN_TRUSTED_PROXIES).

Public endpoints are rate-limited, and API keys' IP allow-lists checked, by the client's address.
Behind an HTTP load balancer the connecting address is the balancer's, so every client would
share one limit and no allow-list could match. When the connecting address is a trusted proxy,
the client is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
(each proxy appends the address it saw; anything left of a trusted hop was written by the client
and may be forged). Without trusted proxies the header is ignored, so it cannot be spoofed.
"""

from __future__ import annotations

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
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def _forwarded_client(self, scope: Scope) -> str | None:
        hops = [
            hop.strip()
            for name, value in scope["headers"]
            if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                return None  # a malformed hop: trust nothing further left
            if not self._trusted(address):
                return address
        return None
