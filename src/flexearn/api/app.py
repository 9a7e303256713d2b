"""The ASGI application factory: one app serving every façade over one engine."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flexearn.adapters.secrets import SecretBox
from flexearn.api.auth import Verifier
from flexearn.api.bitget.errors import BitgetError
from flexearn.api.bitget.routes import ENDPOINTS as BITGET_ENDPOINTS
from flexearn.api.bitget.wire import BitgetDialect
from flexearn.api.facade import Facade
from flexearn.api.okx.errors import OkxError
from flexearn.api.okx.routes import ENDPOINTS as OKX_ENDPOINTS
from flexearn.api.okx.wire import OkxDialect
from flexearn.api.ratelimit import RateLimiter
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.services import keys


def create_app(settings: Settings, flexearn: Flexearn | None = None) -> Starlette:
    engine_app = flexearn or Flexearn(settings.database_url)
    box = SecretBox(settings.master_key)
    limiter = RateLimiter()
    # One verifier for every façade: a key works on each, and a replayed signature is refused on all.
    verifier = Verifier(lambda api_key: keys.load_key(engine_app.uow(), box, api_key))
    facades = [
        Facade(OkxDialect(), OKX_ENDPOINTS, engine_app, limiter, verifier),
        Facade(BitgetDialect(), BITGET_ENDPOINTS, engine_app, limiter, verifier),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(("/api/v2/", "/api/v3/")):
            return JSONResponse(
                BitgetDialect().failure(BitgetError("40404", "Request URL NOT FOUND", 404)), 404
            )
        return JSONResponse(OkxDialect().failure(OkxError("404", "Not Found", 404)), status_code=404)

    routes = [route for facade in facades for route in facade.routes()]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.flexearn = engine_app
    return app


def factory() -> Starlette:
    """For ASGI servers: `granian --interface asgi --factory flexearn.api.app:factory`."""
    return create_app(Settings.from_env())
