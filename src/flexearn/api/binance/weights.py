"""Binance's request weights: each endpoint costs a weight, counted per IP address in the current
minute; every answer says how much of the minute's weight the address has used
(`X-MBX-USED-WEIGHT-1M`; `/sapi/` answers also `X-SAPI-USED-IP-WEIGHT-1M`), and a request that
would pass the limit is answered 429 with `Retry-After` (the seconds left in the minute) and
-1003, without being run. The `/api/` and `/sapi/` endpoints have limits of their own (6000 and
12000 a minute; sources in docs/fidelity.md). A refused request is not counted.

The minutes are kept where the façades' rate limits are (`api/ratelimit.RateLimiter.spend`): in
Redis when FLEXEARN_REDIS_URL names one, so that several API processes count against one limit, and
in this process without it (or while Redis is away).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flexearn.api.binance import errors
from flexearn.api.facade import Endpoint
from flexearn.api.ratelimit import RateLimiter
from flexearn.observability import context

API_LIMIT, SAPI_LIMIT = 6_000, 12_000  # request weight per IP per minute
MINUTE_S = 60


class _Weighed:
    """An endpoint behind its weight: the weight headers on its answer, or a 429."""

    def __init__(self, app: ASGIApp, weight: int, limiter: RateLimiter, limit: int, sapi: bool) -> None:
        self.app, self.weight, self.limiter, self.limit, self.sapi = app, weight, limiter, limit, sapi
        self.bucket = "binance-weight:sapi" if sapi else "binance-weight:api"

    def _headers(self, used: int) -> list[tuple[bytes, bytes]]:
        value = str(used).encode()
        headers = [(b"x-mbx-used-weight-1m", value)]
        return [*headers, (b"x-sapi-used-ip-weight-1m", value)] if self.sapi else headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        used, left = await self.limiter.spend(
            self.bucket, client[0] if client else "", self.weight, self.limit, MINUTE_S
        )
        headers = self._headers(used)
        if left is not None:
            retry_after = max(1, math.ceil(left))
            error = errors.BinanceError(
                errors.TOO_MANY.code,
                f"Too much request weight used; current limit is {self.limit} request weight per"
                " 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                429,
            )
            context.note_code(error.code)
            body = json.dumps({"code": int(error.code), "msg": error.msg}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(retry_after).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_weighed(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = headers
                if message["status"] == 429:  # the per-second limit (api/facade.py): retry in a second
                    extra = [*extra, (b"retry-after", b"1")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_weighed)


def meter(limiter: RateLimiter, limit_scale: int = 1) -> Callable[[Endpoint, ASGIApp], ASGIApp]:
    """For one façade: each endpoint's app behind its weight (`Endpoint.weight`), metered against
    the limit of its API (`/api/` or `/sapi/`), shared by all of that API's endpoints."""

    def weighed(spec: Endpoint, app: ASGIApp) -> ASGIApp:
        sapi = spec.path.startswith("/sapi/")
        limit = (SAPI_LIMIT if sapi else API_LIMIT) * limit_scale
        return _Weighed(app, spec.weight, limiter, limit, sapi)

    return weighed
