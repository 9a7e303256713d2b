"""The request being served: its id (from X-Request-Id or made here) and how it was answered."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class RequestInfo:
    request_id: str
    code: str | None = None  # the error code answered (façade or admin), None when it succeeded


_current: ContextVar[RequestInfo | None] = ContextVar("flexearn_request", default=None)


def new_request_id() -> str:
    """32 random hex digits. An id, not a secret: no system call for it (`uuid4` reads the OS's
    randomness on every request)."""
    return f"{random.getrandbits(128):032x}"


def accept_request_id(header: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token; a new id otherwise."""
    if header and _ACCEPTABLE_ID.fullmatch(header):
        return header
    return new_request_id()


def current() -> RequestInfo | None:
    return _current.get()


def request_id() -> str | None:
    info = _current.get()
    return None if info is None else info.request_id


def note_code(code: str) -> None:
    """Remember the error code the request is answered with (for metrics and the access log)."""
    info = _current.get()
    if info is not None:
        info.code = code


@contextmanager
def request_scope(info: RequestInfo) -> Iterator[RequestInfo]:
    token = _current.set(info)
    try:
        yield info
    finally:
        _current.reset(token)


@contextmanager
def ensure_request_scope() -> Iterator[RequestInfo]:
    """The current request, or a new id for work started outside one (a scheduler run)."""
    info = _current.get()
    if info is not None:
        yield info
        return
    with request_scope(RequestInfo(new_request_id())) as fresh:
        yield fresh
