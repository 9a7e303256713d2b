"""The operator dashboard: a static page at `/` drawing charts from JSON under `/dashboard/api/`.

The page needs no build step: plain HTML, CSS and JavaScript shipped in `static/`, charts drawn as
SVG by `static/charts.js`. A user's data (`/dashboard/api/users/…`) needs an admin bearer token,
exactly as the admin API does (open only in a demo started without one); the market and
catalog views are public, as the exchanges' are, and limited per client IP as the façades' public
endpoints are (429 beyond `PER_SECOND`). Its JSON is read in the API's database slots and budget
(the sums over every position from memory between changes: `services.figures`), and answers 503
when the database is unavailable, as the façades do.

Why hand-written SVG rather than a chart library: uPlot 1.6.32 (the best-kept small one) was
measured against it on the 30-day rate and amount charts (720 hours, 5 series; median of 41
draws, headless Chromium on the shared 2-core build machine, four runs): 12-24 ms here, 10-11 ms
for uPlot in the quietest runs. uPlot draws up to twice as fast; both are far inside the 2 s poll,
and this page redraws only the charts whose data changed. It would add 51 KB (22 KB gzipped) of
script to a page of 46 KB (15 KB gzipped) in all, draw on a canvas (the browser test maps each
SVG vertex back to the value it was drawn from, against the APIs' numbers), and still leave the
stacked areas, the supply staircase and the markers to write here. Its tooltip, legend and zoom
were the draw: here the tooltip survives the redraws (the fault found), a legend entry switches
its series off and on, and a drag across a time chart zooms in on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from flexearn.adapters import db
from flexearn.api.admin.auth import AdminTokens
from flexearn.api.admission import Admission
from flexearn.api.dashboard import earn, views
from flexearn.api.ratelimit import RateLimiter
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import FlexearnError, NotFound, UnsupportedCurrency
from flexearn.observability import context

STATIC = Path(__file__).with_name("static")
NO_CACHE = {"Cache-Control": "no-store"}
# Requests per second per client IP, for each public JSON view. The page asks each view once per
# poll (every 2 s) and once more on a click; a test page polling every 0.5 s while a script reads
# the same view 4 times a second stays under it too.
PER_SECOND = 10
log = logging.getLogger("flexearn.dashboard")


def routes(
    app: Flexearn, admin_tokens: AdminTokens, admission: Admission, limiter: RateLimiter
) -> list[BaseRoute]:
    """The page, its files and its JSON; a user's data is for the holders of `admin_tokens`; the
    public views are limited per client IP by `limiter` (shared through Redis when configured)."""

    async def _public(request: Request, view: str, produce: Callable[[], Any]) -> Response:
        ip = request.client.host if request.client else ""
        if not await limiter.allow(f"dashboard:{view}", f"ip:{ip}", PER_SECOND):
            context.note_code("too_many_requests")  # for the request metrics and the access log
            return JSONResponse(
                {"error": "too_many_requests", "message": f"at most {PER_SECOND} requests a second"},
                429,
                headers={"Retry-After": "1", **NO_CACHE},
            )
        return await _json(produce)

    async def _json(produce: Callable[[], Any]) -> Response:
        try:
            return JSONResponse(await admission.run(admission.budget(), produce), headers=NO_CACHE)
        except (NotFound, UnsupportedCurrency) as error:
            return JSONResponse({"error": error.code, "message": error.message}, 404)
        except FlexearnError as error:
            return JSONResponse({"error": error.code, "message": error.message}, 400)
        except Exception as error:
            if not db.unavailable(error):
                raise
            log.warning("dashboard: database unavailable: %s", type(error).__name__)
            return JSONResponse({"error": "unavailable", "message": "the database is unavailable"}, 503)

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def overview(request: Request) -> Response:
        return await _public(request, "overview", lambda: views.overview(app))

    async def market(request: Request) -> Response:
        window = request.query_params.get("window", "24h")
        ccy = request.path_params["ccy"].upper()
        return await _public(request, "markets", lambda: views.market(app, ccy, window))

    async def products(request: Request) -> Response:
        return await _public(request, "products", lambda: views.products(app))

    async def earn_products(request: Request) -> Response:
        return await _public(request, "earn", lambda: earn.products(app))

    async def earn_apr(request: Request) -> Response:
        product_id = request.path_params["product_id"]
        return await _public(request, "earn-apr", lambda: earn.apr(app, product_id))

    async def user(request: Request) -> Response:
        if admin_tokens.identify(request.headers.get("authorization")) is None:
            return JSONResponse(
                {"error": "unauthorized", "message": "a user's data needs the admin bearer token"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await _json(lambda: views.user(app, request.path_params["ref"]))

    return [
        Route("/", index),
        Route("/dashboard/api/overview", overview),
        Route("/dashboard/api/markets/{ccy}", market),
        Route("/dashboard/api/products", products),
        Route("/dashboard/api/earn/products", earn_products),
        Route("/dashboard/api/earn/products/{product_id}/apr", earn_apr),
        Route("/dashboard/api/users/{ref}", user),
        Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
    ]
