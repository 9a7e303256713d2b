"""The operator dashboard: a static page at `/` drawing charts from JSON under `/dashboard/api/`.

The page needs no build step: plain HTML, CSS and JavaScript shipped in `static/`, charts drawn as
SVG by `static/charts.js`. A user's data (`/dashboard/api/users/…`) needs an admin bearer token,
exactly as the admin API does (open only in a demo started without one); the market and
catalog views are public, as the exchanges' are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from flexearn.api.admin.auth import AdminTokens
from flexearn.api.dashboard import views
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import FlexearnError, NotFound, UnsupportedCurrency

STATIC = Path(__file__).with_name("static")
NO_CACHE = {"Cache-Control": "no-store"}


def _json(produce: Callable[[], Any]) -> Response:
    try:
        return JSONResponse(produce(), headers=NO_CACHE)
    except (NotFound, UnsupportedCurrency) as error:
        return JSONResponse({"error": error.code, "message": error.message}, 404)
    except FlexearnError as error:
        return JSONResponse({"error": error.code, "message": error.message}, 400)


def routes(app: Flexearn, admin_tokens: AdminTokens) -> list[BaseRoute]:
    """The page, its files and its JSON; a user's data is for the holders of `admin_tokens`."""

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_CACHE)

    def overview(request: Request) -> Response:
        return _json(lambda: views.overview(app))

    def market(request: Request) -> Response:
        window = request.query_params.get("window", "24h")
        return _json(lambda: views.market(app, request.path_params["ccy"].upper(), window))

    def products(request: Request) -> Response:
        return _json(lambda: views.products(app))

    def user(request: Request) -> Response:
        if admin_tokens.identify(request.headers.get("authorization")) is None:
            return JSONResponse(
                {"error": "unauthorized", "message": "a user's data needs the admin bearer token"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return _json(lambda: views.user(app, request.path_params["ref"]))

    return [
        Route("/", index),
        Route("/dashboard/api/overview", overview),
        Route("/dashboard/api/markets/{ccy}", market),
        Route("/dashboard/api/products", products),
        Route("/dashboard/api/users/{ref}", user),
        Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
    ]
