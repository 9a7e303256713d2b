"""Around every HTTP request: its id (echoed as X-Request-Id), metrics, and one access log line."""

from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flexearn.observability import context, logs
from flexearn.observability.metrics import observe_request

log = logging.getLogger("flexearn.access")
_CONVERTOR = re.compile(r":\w+}")

# The code of a request whose client went away before it could be answered (api/limits.py).
CLIENT_CLOSED = "client_disconnected"

# Which façade a path belongs to, by prefix (the first match wins): the label of its metrics, and
# the envelope of the answers no handler gives (404, 413, 408: api/app.py, api/limits.py).
FACADES = (
    ("/api/v5/", "okx"),
    ("/api/v2/", "bitget"),
    ("/api/v3/account/settings", "bitget"),  # Bitget's one v3 path, before Binance's /api/v3/
    ("/api/v3/", "binance"),
    ("/sapi/", "binance"),
    ("/admin/", "admin"),
    ("/dashboard/", "dashboard"),
    ("/metrics", "ops"),
    ("/healthz", "ops"),
)


def facade_of(path: str) -> str:
    return next((name for prefix, name in FACADES if path.startswith(prefix)), "web")


def endpoint_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), or `unmatched`."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    return _endpoint(template, str(scope.get("root_path", "")))


@functools.lru_cache(maxsize=1024)  # one entry per route (and mount): a bounded set
def _endpoint(template: str, mounted: str) -> str:
    full = template if template.startswith(mounted) else mounted + template  # mounted: its prefix
    return _CONVERTOR.sub("}", full)  # `{user_id:int}` → `{user_id}`, as in the OpenAPI document


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)  # names: lower case
        request_id = context.accept_request_id(None if given is None else given.decode("latin-1"))
        info = context.RequestInfo(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", info.request_id.encode()),
                ]
            await send(message)

        with context.request_scope(info):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if info.code == CLIENT_CLOSED and status == 500:  # left before it was answered
                    status = 499  # nginx's "client closed request": not a server error
                self._record(scope, info, status, time.perf_counter() - started)

    def _record(self, scope: Scope, info: context.RequestInfo, status: int, seconds: float) -> None:
        path = str(scope.get("path", ""))
        facade, endpoint = facade_of(path), endpoint_of(scope)
        method = str(scope.get("method", ""))
        observe_request(facade, endpoint, method, status, info.code, seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "code": info.code,
            "facade": facade,
            "endpoint": endpoint,
            "duration_ms": round(seconds * 1000, 3),
            "client": (scope.get("client") or ("", 0))[0],
        }
        logs.info_line(log, f"{method} {path} {status}", fields)  # no args: a % in the path is no format
