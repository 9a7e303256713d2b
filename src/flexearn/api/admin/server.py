"""The admin API as a Starlette application: bearer auth, validation, errors, the audit log.

Errors are `{"error": code, "message": …, "param": …}` with the status of one table below; a
failed request writes nothing (each service runs in one transaction) — except 503
`applied_settlement_pending`: a clock move committed, then settling what it made due failed.
Every state-changing request that passed authentication is recorded in the audit log with how it
was answered: a keyed one in its action's transaction, any other just after its action.

A state-changing request with an `Idempotency-Key` runs through `services.idempotency`: its
handler's units of work become savepoints of one transaction that also stores the key and the
answer. Stored, as Stripe does, is every answer of a request that reached its handler: success,
and the engine's refusals (404, 409, 400 from a service). Not stored, so a retry can succeed:
requests refused before the handler ran (authentication, JSON, schema, header checks), the
database's 409 `conflict` (a race) and 503, and unexpected 500s. A replay is answered with
`Idempotent-Replayed: true` and recorded in the audit log with error `idempotent_replay`, so it
never reads as a second action.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from flexearn.adapters import db
from flexearn.adapters.secrets import SecretBox
from flexearn.api.admin import handlers, openapi, reference
from flexearn.api.admin.auth import AdminTokens
from flexearn.api.admin.routes import ACTOR, IDEMPOTENCY_KEY, PATH_PARAMETERS, ROUTES, AdminRoute
from flexearn.api.admin.schema import jsonable, validate
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog_errors import NotEligible, ProductUnavailable
from flexearn.domain.errors import (
    AlreadyExists,
    AmountTooLarge,
    ClockError,
    Conflict,
    FlexearnError,
    InsufficientBalance,
    InvalidParameter,
    MissingParameter,
    NotFound,
    UnsupportedCurrency,
)
from flexearn.domain.money import ascii_digits
from flexearn.observability import context
from flexearn.services import audit, idempotency
from flexearn.services.idempotency import Answer, KeyedRequest
from flexearn.services.unit_of_work import UnitOfWork

log = logging.getLogger("flexearn.admin")

# Engine errors → HTTP status; the first class that matches wins.
STATUS: tuple[tuple[type[FlexearnError], int], ...] = (
    (idempotency.KeyReused, 422),
    (idempotency.KeyInUse, 409),
    (NotFound, 404),
    (UnsupportedCurrency, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (ClockError, 409),
    (InsufficientBalance, 409),
    (AmountTooLarge, 409),
    (ProductUnavailable, 409),
    (NotEligible, 409),
    (FlexearnError, 400),
)
SECRET_FIELDS = {"passphrase", "secret", "secret_key", "token", "password"}
REPLAYED = "Idempotent-Replayed"


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def engine_error(error: FlexearnError) -> AdminError:
    status = next(code for kind, code in STATUS if isinstance(error, kind))
    return AdminError(status, error.code, error.message, error.param)


def error_body(error: AdminError) -> dict[str, Any]:
    return {"error": error.code, "message": error.message, "param": error.param}


def error_response(error: AdminError) -> Response:
    context.note_code(error.code)
    headers = {"WWW-Authenticate": 'Bearer realm="flexearn-admin"'} if error.status == 401 else None
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


def json_text(value: Any) -> str:
    """JSON as JSONResponse renders it: the text stored for a key is the text first sent."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def answer_response(answer: Answer) -> Response:
    headers = {"Cache-Control": "no-store"}  # a new key's secret must not be kept by caches
    if answer.replayed:
        headers[REPLAYED] = "true"
        if answer.status >= 400:
            context.note_code(json.loads(answer.body).get("error", ""))
    return Response(answer.body, answer.status, headers, media_type="application/json")


def _idempotency_key(header: str | None) -> str | None:
    if header is not None:
        validate(header, IDEMPOTENCY_KEY["schema"], "Idempotency-Key")
    return header


def _actor(header: str | None, token: str) -> str:
    """Who acts: the X-Admin-Actor header when given (printable ASCII), else the token's name."""
    if header is None:
        return token
    validate(header, ACTOR["schema"], "X-Admin-Actor")
    return header


# No admin body is nested more than a few levels (a product spec's tiers: 3); validating, redacting
# and auditing walk a body recursively, so a deeper one (Python's limit is ~1000) is refused here.
MAX_BODY_DEPTH = 16


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        raise MissingParameter("body")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise AdminError(400, "invalid_json", "the body is not JSON", "body") from None
    if _depth(body) > MAX_BODY_DEPTH:
        raise AdminError(400, "invalid_json", f"the body is nested more than {MAX_BODY_DEPTH} deep", "body")
    return body


def _depth(value: Any) -> int:
    """How deeply `value`'s lists and objects nest (walked without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class _IdConvertor(IntegerConvertor):
    """A path's integer id: at most 18 digits (any id here is below 2⁶³), so that Starlette's int()
    never sees the 4,300-digit strings it refuses with an error: a longer path is simply not found."""

    regex = "[0-9]{1,18}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _query(route: AdminRoute, params: Mapping[str, str]) -> dict[str, Any]:
    schema = route.query or {"properties": {}}
    values: dict[str, Any] = {}
    for name, raw in params.items():
        kind = schema["properties"].get(name, {}).get("type")
        if kind is None:
            raise InvalidParameter(name, "unknown query parameter")
        if kind == "integer":
            if not ascii_digits(raw, 20):
                raise InvalidParameter(name, "a whole number")
            values[name] = int(raw)
        else:
            values[name] = raw
    validate(values, {**schema, "type": "object"}, "query")
    return values


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class AdminApi:
    def __init__(self, app: Flexearn, box: SecretBox, tokens: AdminTokens) -> None:
        self.app, self.box, self.tokens = app, box, tokens

    def endpoint(self, by_method: Mapping[str, AdminRoute]) -> Callable[[Request], Awaitable[Response]]:
        """One path's endpoint, serving each of its methods (so a 405 lists them all in Allow)."""

        async def endpoint(request: Request) -> Response:
            route = by_method.get(request.method) or by_method["GET"]  # HEAD is answered as GET
            token = self.tokens.identify(request.headers.get("authorization"))
            if token is None:
                log.warning("admin: refused %s %s (no valid token)", request.method, request.url.path)
                return error_response(AdminError(401, "unauthorized", "a valid bearer token is required"))
            actor, body = token, None
            try:
                actor = _actor(request.headers.get("x-admin-actor"), token)
                raw = await request.body() if route.body is not None else None
                body = _parse_body(raw) if raw is not None else {}
                keyed = None
                if route.changes_state:
                    keyed = self._keyed(request, token, raw)
                response = await run_in_threadpool(self._answer, route, request, body, actor, keyed, token)
            except AdminError as error:
                response = error_response(error)
            except FlexearnError as error:
                response = error_response(engine_error(error))
            except Exception:  # a bug: answered as JSON, logged with the request id
                log.exception("admin: unexpected error in %s %s", route.method, route.path)
                response = error_response(AdminError(500, "internal", "unexpected error; see the logs"))
            if route.changes_state and getattr(request.state, "audited", False):
                self._log(request, actor, token, response.status_code)
            elif route.changes_state:
                await run_in_threadpool(self._audit, request, body, actor, token, response)
            return response

        return endpoint

    @staticmethod
    def _keyed(request: Request, token: str, raw: bytes | None) -> KeyedRequest | None:
        key = _idempotency_key(request.headers.get("idempotency-key"))
        if key is None:
            return None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        fingerprint = idempotency.fingerprint(request.method, target, raw)
        return KeyedRequest(token, key, request.method, target, fingerprint)

    def _answer(
        self,
        route: AdminRoute,
        request: Request,
        body: Any,
        actor: str,
        keyed: KeyedRequest | None,
        token: str,
    ) -> Response:
        try:
            validate(body, route.body or {"type": "object"}, "body")
            path = dict(request.path_params)
            for name, value in path.items():
                validate(value, PATH_PARAMETERS[name], name)
            query = _query(route, request.query_params)
            units = self.app.uow if route.changes_state else self.app.read_uow  # GET: reads only
            call = handlers.Call(self.app, self.box, path, query, body, actor, units)
            if keyed is not None:
                recorded: list[bool] = []

                def record(uow: UnitOfWork, answer: Answer) -> None:  # in the action's transaction
                    audit.record(uow, **self._audit_values(request, body, actor, token, answer.status, False))
                    recorded.append(True)

                answer = self._once(route, call, keyed, record)
                request.state.audited = bool(recorded)  # committed with the action (or not at all)
                return answer_response(answer)
            result = route.handler(call)
            if route.after is not None:
                result = self._after(route, call)
        except FlexearnError as error:
            raise engine_error(error) from None
        except (sa.exc.IntegrityError, sa.exc.DataError) as error:  # a race, or a value the database refused
            log.warning("admin: the database refused %s %s: %s", route.method, route.path, error.orig)
            raise AdminError(409, "conflict", "the database refused the change; nothing written") from None
        except Exception as error:  # unreachable, restarting, pool exhausted: 503; anything else is a bug
            if not db.unavailable(error):
                raise
            log.warning("admin: database unavailable: %s", type(error).__name__)
            raise AdminError(503, "unavailable", "the database is unavailable") from None
        return answer_response(Answer(route.status, json_text(jsonable(result))))

    @staticmethod
    def _after(route: AdminRoute, call: handlers.Call) -> Any:
        """What runs after the handler committed (e.g. settling what a clock move made due): if the
        database fails now, the change stands, and the answer must not say nothing was written."""
        assert route.after is not None
        try:
            return route.after(call)
        except Exception as error:
            if not db.unavailable(error):
                raise
            log.warning("admin: applied, then the database became unavailable: %s", type(error).__name__)
            raise AdminError(
                503,
                "applied_settlement_pending",
                "the change was applied; what it made due settles when the database returns (the "
                "settler catches up); retry only with the same Idempotency-Key",
            ) from None

    def _once(
        self,
        route: AdminRoute,
        call: handlers.Call,
        keyed: KeyedRequest,
        record: Callable[[UnitOfWork, Answer], None],
    ) -> Answer:
        """The answer to a keyed request: run in the key's transaction (with its audit `record`,
        unless its answer comes after that transaction), or replayed."""

        def action(uow: idempotency.UnitsOfWork) -> Answer | None:
            try:
                result = route.handler(replace(call, uow=uow))
            except FlexearnError as error:  # the engine refused: an answer to keep
                refusal = engine_error(error)
                context.note_code(refusal.code)
                return Answer(refusal.status, json_text(error_body(refusal)))
            if route.after is not None:
                return None
            return Answer(route.status, json_text(jsonable(result)))

        after = route.after
        if after is None:
            return idempotency.run(self.app.engine, keyed, self.box, action, record=record)

        def finish() -> Answer:  # after the key's transaction: units of work of its own
            return Answer(route.status, json_text(jsonable(after(call))))

        return idempotency.run(self.app.engine, keyed, self.box, action, finish)

    def _audit(self, request: Request, body: Any, actor: str, token: str, response: Response) -> None:
        values = self._audit_values(
            request, body, actor, token, response.status_code, REPLAYED in response.headers
        )
        try:
            audit.record(self.app.uow(), **values)
        except Exception:  # the action stands; say loudly that its record is missing
            log.exception("admin: could not write the audit log for %s %s", request.method, values["path"])
            return
        self._log(request, actor, token, response.status_code)

    @staticmethod
    def _audit_values(
        request: Request, body: Any, actor: str, token: str, status: int, replayed: bool
    ) -> dict[str, Any]:
        info = context.current()
        error = (info.code or "") if info else ""
        if replayed:  # the action was recorded when it ran; this is its replay
            error = "idempotent_replay"
        return {
            "actor": actor,
            "token": token,
            "method": request.method,
            "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "summary": json.dumps(redact(body), sort_keys=True, default=str) if body else "",
            "status": status,
            "error": error,
            "request_id": info.request_id if info else "",
        }

    @staticmethod
    def _log(request: Request, actor: str, token: str, status: int) -> None:
        log.info(
            "admin: %s %s by %s: %d",
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            actor,
            status,
            extra={"actor": actor, "token": token},
        )

    def openapi(self) -> Callable[[Request], Awaitable[Response]]:
        document = openapi.document(ROUTES)

        async def endpoint(request: Request) -> Response:
            return JSONResponse(document)

        return endpoint

    def reference(self) -> Callable[[Request], Awaitable[Response]]:
        """The reference page, rendered once from the same document."""
        text = reference.page(openapi.document(ROUTES), f"{openapi.PREFIX}/openapi.json")

        async def endpoint(request: Request) -> Response:
            return HTMLResponse(text)

        return endpoint


def admin_app(app: Flexearn, box: SecretBox, tokens: AdminTokens) -> Starlette:
    """The admin API, to mount at /admin/v1 (the OpenAPI document and its rendering as a
    reference page, /docs, need no token)."""
    api = AdminApi(app, box, tokens)
    register_url_convertor("id", _IdConvertor())  # before the routes below compile their paths
    paths: dict[str, dict[str, AdminRoute]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = route
    routes = [Route(path, api.endpoint(methods), methods=list(methods)) for path, methods in paths.items()]
    routes.append(Route("/openapi.json", api.openapi(), methods=["GET"]))
    routes.append(Route("/docs", api.reference(), methods=["GET"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        return admin_not_found(request)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        refusal = AdminError(405, "method_not_allowed", f"{request.method} is not allowed here")
        response = error_response(refusal)
        if isinstance(exc, HTTPException) and exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


def admin_not_found(request: Request) -> Response:
    return error_response(AdminError(404, "not_found", "no such admin endpoint"))
