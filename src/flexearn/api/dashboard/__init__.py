"""The operator dashboard: a static page at `/` drawing charts from JSON under `/dashboard/api/`.

The page needs no build step: plain HTML, CSS and JavaScript shipped in `static/`, charts drawn as
SVG by `static/charts.js`. A user's data (`/dashboard/api/users/…`) needs an admin bearer token,
exactly as the admin API does (open only in a demo started without one); the market and
catalog views are public, as the exchanges' are. Its JSON is read in the API's database slots
and budget, and answers 503 when the database is unavailable, as the façades do.
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
from flexearn.api.dashboard import views
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import FlexearnError, NotFound, UnsupportedCurrency

STATIC = Path(__file__).with_name("static")
NO_CACHE = {"Cache-Control": "no-store"}
log = logging.getLogger("flexearn.dashboard")


def routes(app: Flexearn, admin_tokens: AdminTokens, admission: Admission) -> list[BaseRoute]:
    """The page, its files and its JSON; a user's data is for the holders of `admin_tokens`."""

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
        return await _json(lambda: views.overview(app))

    async def market(request: Request) -> Response:
        window = request.query_params.get("window", "24h")
        return await _json(lambda: views.market(app, request.path_params["ccy"].upper(), window))

    async def products(request: Request) -> Response:
        return await _json(lambda: views.products(app))

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
        Route("/dashboard/api/users/{ref}", user),
        Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
    ]
