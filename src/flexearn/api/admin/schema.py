"""JSON Schemas for the admin API: built for requests, derived from result types for responses.

Requests are described with the small builders below and checked against that same schema
before a handler runs, so the OpenAPI document and what the server accepts cannot drift.
Responses are the service functions' dataclasses, whose schemas are derived from their type
hints (`Decimal` is a decimal string, times are integer milliseconds).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from decimal import Decimal
from enum import Enum
from typing import Any

from flexearn.domain.errors import InvalidParameter, MissingParameter
from flexearn.domain.money import AMOUNT_PATTERN, plain

Schema = dict[str, Any]

DECIMAL_PATTERN = f"^{AMOUNT_PATTERN}$"  # the one grammar of money.parse_amount
CCY_PATTERN = r"^[A-Z0-9]{1,16}$"
MAX_MS = 4_102_444_800_000  # 2100-01-01: keeps times far inside a BIGINT


def decimal(description: str = "", example: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "pattern": DECIMAL_PATTERN}
    if description:
        schema["description"] = description
    if example is not None:
        schema["examples"] = [example]
    return schema


def text(min_length: int = 1, max_length: int = 64, pattern: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern:
        schema["pattern"] = pattern
    return {**schema, **extra}


def integer(minimum: int = 0, maximum: int = 2**31 - 1, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


def number(minimum: float, maximum: float, **extra: Any) -> Schema:
    return {"type": "number", "minimum": minimum, "maximum": maximum, **extra}


def choice(*values: str, **extra: Any) -> Schema:
    return {"type": "string", "enum": list(values), **extra}


def array(items: Schema, max_items: int = 100, **extra: Any) -> Schema:
    return {"type": "array", "items": items, "maxItems": max_items, **extra}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}


CCY = text(1, 16, CCY_PATTERN, examples=["USDT"])


# --- validation -------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
}


def validate(value: Any, schema: Schema, name: str) -> None:
    """Raise InvalidParameter/MissingParameter naming the field if `value` breaks `schema`."""
    kind = schema.get("type")
    if kind is not None:
        allowed = _TYPES[kind]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise InvalidParameter(name, f"must be of type {kind}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidParameter(name, f"one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        _string(value, schema, name)
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        _number(value, schema, name)
    elif isinstance(value, list):
        _array(value, schema, name)
    elif isinstance(value, dict):
        _object(value, schema, name)


def _string(value: str, schema: Schema, name: str) -> None:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 10**9)
    if not low <= len(value) <= high:
        raise InvalidParameter(name, f"{low} to {high} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise InvalidParameter(name, f"must match {schema['pattern']}")


def _number(value: float | Decimal, schema: Schema, name: str) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise InvalidParameter(name, f"at least {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise InvalidParameter(name, f"at most {schema['maximum']}")
    if "multipleOf" in schema and value % schema["multipleOf"]:
        raise InvalidParameter(name, f"a multiple of {schema['multipleOf']}")


def _array(value: list[Any], schema: Schema, name: str) -> None:
    low, high = schema.get("minItems", 0), schema.get("maxItems", 10**9)
    if not low <= len(value) <= high:
        raise InvalidParameter(name, f"{low} to {high} items")
    if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
        raise InvalidParameter(name, "items must be unique")
    for i, item in enumerate(value):
        validate(item, schema.get("items", {}), f"{name}[{i}]")


def _object(value: dict[str, Any], schema: Schema, name: str) -> None:
    properties: dict[str, Schema] = schema.get("properties", {})

    def field(key: str) -> str:
        return key if name in ("body", "query") else f"{name}.{key}"

    for key in schema.get("required", []):
        if key not in value:
            raise MissingParameter(field(key))
    for key, item in value.items():
        if key in properties:
            validate(item, properties[key], field(key))
        elif schema.get("additionalProperties") is False:
            raise InvalidParameter(field(key), "unknown field")


# --- responses --------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A result as JSON values: decimals as plain strings, enums as their values."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def schema_of(hint: Any, components: dict[str, Schema]) -> Schema:
    """The JSON Schema of a result type; dataclasses become components referenced by name."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(arg, components) for arg in typing.get_args(hint)]}
    if origin in (list, tuple):
        return {"type": "array", "items": schema_of(typing.get_args(hint)[0], components)}
    if hint is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return {"$ref": f"#/components/schemas/{_component(hint, components)}"}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return {"type": "string", "enum": [member.value for member in hint]}
    simple: dict[Any, Schema] = {
        Decimal: {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
        str: {"type": "string"},
    }
    if hint in simple:
        return simple[hint]
    raise TypeError(f"no JSON Schema for {hint!r}")


def _component(cls: type, components: dict[str, Schema]) -> str:
    name = cls.__name__
    if name in components:
        if components[name].get("x-type") != f"{cls.__module__}.{cls.__qualname__}":
            raise TypeError(f"two result types are named {name}")
        return name
    components[name] = {"x-type": f"{cls.__module__}.{cls.__qualname__}"}  # reserved: types may nest
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    components[name] = {
        "type": "object",
        "x-type": f"{cls.__module__}.{cls.__qualname__}",
        "properties": {f: schema_of(hints[f], components) for f in fields},
        "required": fields,
        "additionalProperties": False,
    }
    return name
