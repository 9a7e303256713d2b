"""JSON log lines (stdlib logging), each carrying the id of the request it belongs to.

One line per record: `ts`, `level`, `logger`, `message`, `request_id` (null outside any request
or scheduler run), the record's `extra` fields, and `exc` with the traceback if there is one.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import logging.config
import math
import time
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from flexearn.observability import context

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# A record's thread, process and multiprocessing names are never logged (they are in _STANDARD): not
# looking them up saves each record three lookups and a system call (the logging docs' "Optimization").
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
# A line's JSON, compact: by orjson (0.5 µs for an access line, against 4.2 by `json`), anything it
# does not write as a plain value (a Decimal, a datetime, a dataclass) as its `str`; what it refuses
# (an integer beyond 64 bits, a key that is not a string) by `json`, likewise. Unlike `json`, it writes
# a float under 1e-4 without an exponent, NaN and infinities as null, and an Enum as its value.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_json_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


def _encode(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _json_encode(line)


class JsonFormatter(logging.Formatter):
    # The last second formatted, and its text up to the seconds: one datetime per second, not per line.
    _second: tuple[float, str] = (-1.0, "")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": context.request_id(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line)

    def _timestamp(self, created: float) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`, exactly
        (microseconds rounded half to even, then cut to milliseconds), at a fraction of its cost."""
        fraction, second = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached, text = self._second
        if cached != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"


def info_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """Log `message` with `fields` at INFO, as `logger.info(message, extra=fields)` would (the
    caller asked `isEnabledFor`). When the record's one destination is a stream handler formatting
    with JsonFormatter, and no filter is on the way (as `dict_config` sets it up), the same line is
    written straight to that stream: no LogRecord and no handler machinery, about half the cost of
    the access log's line of every request (`ObservabilityMiddleware`). On a thread running an event
    loop the line is written at the end of the loop's current turn, with the other lines of that
    turn, in one write (`_HELD`)."""
    handler = _lone_json_stream(logger)
    if handler is None:
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, message, (), None, extra=fields))
        return
    formatter = cast(JsonFormatter, handler.formatter)
    line: dict[str, Any] = {
        "ts": formatter._timestamp(time.time()),
        "level": "INFO",
        "logger": logger.name,
        "message": message,
        "request_id": context.request_id(),
    }
    for key, value in fields.items():
        line.setdefault(key, value)
    text = _encode(line) + handler.terminator
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on an event loop's thread: now
        _write(handler, text)
    else:
        _hold(loop, handler, text)


def _write(handler: logging.StreamHandler[Any], text: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.flush()
    except Exception:  # as `StreamHandler.emit` handles it
        handler.handleError(logging.LogRecord(__name__, logging.INFO, "", 0, text, (), None))
    finally:
        handler.release()


# Lines written on an event loop's thread, held until the end of the loop's turn and then written in
# one write: under load a turn answers several requests, and their access lines then cost one write
# system call, not one each — each call released the GIL, which then often went to the server's own
# threads (on a served public read: 1.5 → 0.6 writes and 0.74 → 0.42 futex calls per request,
# measured with perf). A line waits at most for its turn's other callbacks; those held when the
# process exits are written at exit. A record logged the ordinary way in the meantime (a warning) is
# written at once, so it may come before an earlier request's access line; the lines of one request
# keep their order, its access line being its last. By loop: the handler and the lines held for it.
_HELD: dict[asyncio.AbstractEventLoop, tuple[logging.StreamHandler[Any], list[str]]] = {}


def _hold(loop: asyncio.AbstractEventLoop, handler: logging.StreamHandler[Any], text: str) -> None:
    held = _HELD.get(loop)
    if held is None or held[0] is not handler:  # the turn's first line, or the logging set-up changed
        _write_held(loop)
        held = _HELD[loop] = (handler, [])
        loop.call_soon(_write_held, loop)
    held[1].append(text)


def _write_held(loop: asyncio.AbstractEventLoop) -> None:
    held = _HELD.pop(loop, None)
    if held is not None:
        _write(held[0], "".join(held[1]))


@atexit.register
def _write_all_held() -> None:
    for loop in list(_HELD):
        _write_held(loop)


def _lone_json_stream(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The one handler an INFO record of `logger` reaches, if that is a plain StreamHandler with a
    JsonFormatter and neither the logger nor the handler filters; else None."""
    if logger.filters:
        return None
    found: logging.StreamHandler[Any] | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler.level > logging.INFO:
                continue
            plain = type(handler) is logging.StreamHandler and isinstance(handler.formatter, JsonFormatter)
            if found is not None or not plain or handler.filters:
                return None
            found = handler  # type: ignore[assignment]
        current = current.parent if current.propagate else None
    return found


def dict_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` sending every logger, granian's too, through JsonFormatter."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["json"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["json"], "level": level, "propagate": False},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}")
    logging.config.dictConfig(dict_config(level))
