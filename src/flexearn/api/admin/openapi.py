"""The OpenAPI 3.1 document of the admin API, generated from the route table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from flexearn.api.admin.routes import ACTOR, IDEMPOTENCY_KEY, PATH_PARAMETERS, AdminRoute
from flexearn.api.admin.schema import Schema, obj, schema_of

PREFIX = "/admin/v1"
COMMON_ERRORS = (400, 401, 503)
KEYED_ERRORS = (409, 422)  # idempotency_key_in_use, idempotency_key_reused
REPLAYED = {
    "description": "`true`: the stored answer to an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}
ERROR = obj(
    {
        "error": {"type": "string", "description": "a stable code: invalid_parameter, not_found, …"},
        "message": {"type": "string"},
        "param": {"type": ["string", "null"], "description": "the parameter at fault, if one is"},
    },
    ("error", "message", "param"),
)
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def openapi_path(template: str) -> str:
    """A Starlette template as an OpenAPI path: `/users/{user_id:int}` → `/users/{user_id}`."""
    return _PARAM.sub(r"{\1}", template)


def _operation(route: AdminRoute, components: dict[str, Schema]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in _PARAM.findall(route.path)
    ]
    if route.query is not None:
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in route.query["properties"].items()
        ]
    errors = {*COMMON_ERRORS, *route.errors}
    if route.changes_state:
        parameters += [ACTOR, IDEMPOTENCY_KEY]
        errors.update(KEYED_ERRORS)
    success: dict[str, Any] = {
        "description": HTTPStatus(route.status).phrase,
        "content": {"application/json": {"schema": schema_of(route.result, components)}},
    }
    responses: dict[str, Any] = {str(route.status): success}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    if route.changes_state:  # a replayed answer may be any of them
        for response in responses.values():
            response["headers"] = {"Idempotent-Replayed": REPLAYED}
    operation: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "tags": [route.path.split("/")[1]],
        "parameters": parameters,
        "responses": responses,
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    return operation


def document(routes: Sequence[AdminRoute]) -> dict[str, Any]:
    components: dict[str, Schema] = {"Error": ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route, components)
    for schema in components.values():
        schema.pop("x-type", None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flexearn admin API",
            "version": "1",
            "description": (
                "Operate a flexearn engine: users, keys, funds, currencies, markets, demand, catalog "
                "products, prices, the clock, settlement, the ledger check and the audit log. Every "
                "operation needs `Authorization: Bearer <token>` (FLEXEARN_ADMIN_TOKEN); every "
                "state-changing one is recorded in the audit log and accepts an `Idempotency-Key` "
                "that makes a retry safe. Amounts and rates are decimal "
                "strings (`0.05` is 5%); times are integer milliseconds since the epoch, UTC."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
