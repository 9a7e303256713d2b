"""The ASGI application factory: one app serving every façade over one engine."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Router

from flexearn.adapters import db, loop_postgres
from flexearn.adapters.clock import ClockCache
from flexearn.adapters.redis_store import SharedStore
from flexearn.adapters.secrets import SecretBox
from flexearn.api import claims
from flexearn.api.admin.auth import parse_tokens
from flexearn.api.admin.server import admin_app, admin_not_found
from flexearn.api.admission import Admission
from flexearn.api.auth import DatabaseReplayMemory, ReplayMemory, SharedReplayMemory, Verifier
from flexearn.api.binance import errors as binance_errors
from flexearn.api.binance.routes import ENDPOINTS as BINANCE_ENDPOINTS
from flexearn.api.binance.wire import BinanceDialect
from flexearn.api.bitget import errors as bitget_errors
from flexearn.api.bitget.routes import ENDPOINTS as BITGET_ENDPOINTS
from flexearn.api.bitget.wire import BitgetDialect
from flexearn.api.dashboard import routes as dashboard_routes
from flexearn.api.facade import Dispatch, Facade, dispatch_table
from flexearn.api.limits import BodyLimits
from flexearn.api.okx import errors as okx_errors
from flexearn.api.okx.routes import ENDPOINTS as OKX_ENDPOINTS
from flexearn.api.okx.wire import OkxDialect
from flexearn.api.ops import ops_routes
from flexearn.api.proxy import TrustedProxies, parse_networks
from flexearn.api.ratelimit import RateLimiter, SharedRateLimiter
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.observability.logs import configure_logging
from flexearn.observability.middleware import ObservabilityMiddleware, facade_of
from flexearn.services import keys, replays


def create_app(settings: Settings, flexearn: Flexearn | None = None, *, demo: bool = False) -> Starlette:
    """The ASGI app: the OKX, Bitget and Binance façades, the admin API at /admin/v1, /metrics, /healthz.

    `flexearn` is the engine to serve (default: one on `settings.database_url`). The admin API
    needs a bearer token from `settings.admin_token` (FLEXEARN_ADMIN_TOKEN): without one this
    raises `AdminTokenError`, unless `demo=True` (or `settings.demo`, FLEXEARN_DEMO=1) — then a
    sandbox starts with its admin API open (every action audited as "demo"); a token, if given,
    is still required. Logging is the caller's: `observability.logs.configure_logging()`.
    """
    engine_app = flexearn or Flexearn(settings.database_url, migrate_schema=False)  # serve migrated
    box = SecretBox(settings.master_key)
    admin_tokens = parse_tokens(settings.admin_token, demo=demo or settings.demo)
    limiter, replay_window = _limits(settings, engine_app)
    # One verifier for every façade: a key works on each, and a replayed signature is refused on all.
    # Business time, read again at most every second: what the answers' times say, and on a
    # simulated clock also what a client that set its clock by ours signs with.
    clock = _business_clock(engine_app)
    verifier = Verifier(
        lambda api_key: keys.load_key(engine_app.read_uow(), box, api_key),
        lambda since_ms: keys.revoked_since(engine_app.read_uow(), since_ms),
        replays=replay_window,
        clock=clock.state,
    )
    admission = Admission.from_settings(settings)  # the process's database slots, shared by all
    bitget = BitgetDialect(clock.now)
    binance = BinanceDialect()
    facades = [
        Facade(dialect, endpoints, engine_app, limiter, verifier, admission, clock, settings.rate_limit_scale)
        for dialect, endpoints in (
            (OkxDialect(), OKX_ENDPOINTS),
            (bitget, BITGET_ENDPOINTS),
            (binance, BINANCE_ENDPOINTS),
        )
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        facade = facade_of(request.url.path)
        if facade == "admin":  # e.g. a path the admin mount cannot match
            return admin_not_found(request)
        if facade == "bitget":
            return JSONResponse(bitget.failure(bitget_errors.NOT_FOUND), 404)
        if facade == "binance":
            return JSONResponse(binance.failure(binance_errors.NOT_FOUND), 404)
        return JSONResponse(OkxDialect().failure(okx_errors.NOT_FOUND), status_code=404)

    facade_routes = [route for facade in facades for route in facade.routes()]
    routes: list[BaseRoute] = [*facade_routes]
    # a user's data: as the admin API; the public views limited per IP, as the façades' are
    routes += dashboard_routes(engine_app, admin_tokens, admission, limiter)
    routes += ops_routes(engine_app.engine, admission, engine_app.figures)
    routes.append(Mount("/admin/v1", admin_app(engine_app, box, admin_tokens)))
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        # A worker that stops ends its connections itself, rather than leave them to drop with
        # its process: its event loop's own (PostgreSQL's reads), and its engine's if it made one.
        await loop_postgres.close()
        if flexearn is None:
            engine_app.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)
    # No 307 to the path without its trailing slash, in any router (the admin API is an app of its
    # own): it has no envelope, and Starlette builds its Location from the client's Host header
    # (an open redirect). Such a path is not found.
    for router in _routers(app.router):
        router.redirect_slashes = False
    # The façades' endpoints without the router's walk over every route (the hot path).
    app.add_middleware(Dispatch, table=dispatch_table(facade_routes))
    # Inside the observability layer (a refusal is logged and counted), outside every route: a
    # body is bounded before any handler or authentication reads it.
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
    app.add_middleware(ObservabilityMiddleware)
    proxies = parse_networks(settings.trusted_proxies)
    if proxies:  # outermost: every layer, limits and allow-lists included, sees the real client
        app.add_middleware(TrustedProxies, networks=proxies)
    app.state.flexearn = engine_app
    return app


def _routers(router: Router) -> Iterator[Router]:
    """`router` and every router mounted under it."""
    yield router
    for route in router.routes:
        inner = route.app if isinstance(route, Mount) else None
        if isinstance(inner, Starlette):
            inner = inner.router
        if isinstance(inner, Router):
            yield from _routers(inner)


def _business_clock(engine_app: Flexearn) -> ClockCache:
    clock = ClockCache(engine_app.engine)
    try:
        clock.refresh()
    except Exception as error:  # the database away at start: the first request reads it
        if not db.unavailable(error):
            raise
    return clock


def _limits(settings: Settings, engine_app: Flexearn) -> tuple[RateLimiter, ReplayMemory]:
    """Rate limits and replay memory: shared through Redis when FLEXEARN_REDIS_URL names one
    (several processes then hold one limit; the replay window falls back to the database while
    Redis is away); else the limits are kept in this process and the replay window in the
    database, which every process shares."""
    in_database = DatabaseReplayMemory(
        lambda signature, sent, now, ttl: replays.Claim(engine_app.engine, signature, sent, now, now + ttl),
        lambda now_ms, pause_s: replays.prune(engine_app.engine, now_ms, pause_s=pause_s),
        partial(claims.prune, engine_app.engine) if db.inline_capable(engine_app.engine) else None,
    )
    if not settings.redis_url:
        return RateLimiter(), in_database
    store = SharedStore(settings.redis_url)
    return SharedRateLimiter(store), SharedReplayMemory(store, fallback=in_database)


def factory() -> Starlette:
    """For ASGI servers: `granian --interface asgi --factory flexearn.api.app:factory`.

    Bodies are bounded by the app itself; the connection limits `flexearn serve` sets
    (`api/listener.py`) are then the server's flags: with granian `--http 1`,
    `--http1-header-read-timeout`, `--http1-buffer-size`, `--backlog`, `--backpressure`.
    """
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # What a worker holds from its start to its end (modules, tables, routes: some 100,000
    # objects) is moved out of the collector's reach: a full collection no longer walks it, and
    # took 35-65 ms each time it did — every request in flight waited (bench/README.md, "p99").
    gc.collect()
    gc.freeze()
    return app
