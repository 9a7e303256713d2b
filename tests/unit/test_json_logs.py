"""Log records as JSON lines, with the id of the request (or scheduler run) they belong to."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flexearn.observability import context
from flexearn.observability.logs import JsonFormatter, info_line


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("flexearn.test", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_line_outside_any_request_has_a_null_request_id() -> None:
    line = json.loads(JsonFormatter().format(record("hello")))
    assert line["message"] == "hello"
    assert line["request_id"] is None
    assert line["level"] == "INFO"


def test_a_line_inside_a_request_carries_its_id_and_extra_fields() -> None:
    with context.request_scope(context.RequestInfo("abc")):
        line = json.loads(JsonFormatter().format(record("in", status=201)))
    assert (line["request_id"], line["status"]) == ("abc", 201)


def test_work_outside_a_request_gets_an_id_of_its_own_and_keeps_a_request_s() -> None:
    with context.ensure_request_scope() as fresh:
        assert context.request_id() == fresh.request_id
    with context.request_scope(context.RequestInfo("outer")), context.ensure_request_scope() as inner:
        assert inner.request_id == "outer"


def test_request_ids_from_callers_are_kept_only_when_sane() -> None:
    assert context.accept_request_id("a-B_9.z:1") == "a-B_9.z:1"
    assert len(context.accept_request_id("has space")) == 32
    assert len(context.accept_request_id("x" * 200)) == 32
    assert len(context.accept_request_id(None)) == 32


def test_the_timestamp_is_datetime_s_to_the_millisecond_for_any_time() -> None:
    """The formatter caches the text of the second; the line's `ts` must stay what
    `datetime.isoformat` says, rounding included (x.9999996 s is the next second)."""
    formatter = JsonFormatter()
    edges = [1_764_646_027.0, 1_764_646_027.9999996, 1_764_646_027.0004995, 1_764_646_027.0005, 0.0]
    spread = [1_764_646_027 + n * 0.0137 + (n % 7) * 1e-7 for n in range(20_000)]  # crosses seconds
    for created in edges + spread:
        made = record("t")
        made.created = created
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(made))["ts"] == expected, created


def test_an_info_line_written_straight_to_its_stream_is_the_line_logging_writes() -> None:
    """`info_line` skips the LogRecord when its one destination is a JSON stream handler; the line
    must be the one `logger.info(message, extra=fields)` writes (only its time may differ)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flexearn.test.straight")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    records: list[logging.LogRecord] = []
    make = logger.makeRecord

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(make(*args, **kwargs))
        return records[-1]

    logger.makeRecord = counted  # type: ignore[method-assign]
    fields = {"method": "GET", "path": '/a"b\\c%s', "status": 200, "code": None, "duration_ms": 1.5, "ü": "ß"}
    with context.request_scope(context.RequestInfo("req-1")):
        info_line(logger, "GET /x 200", fields)  # straight
        assert records == []
        logger.addFilter(lambda _record: True)  # a filter on the way: through logging
        info_line(logger, "GET /x 200", fields)
        assert len(records) == 1
        logger.filters.clear()
        handler.setLevel(logging.WARNING)  # the one handler does not take INFO: nothing written
        info_line(logger, "GET /x 200", fields)
    straight, logged = (json.loads(line) for line in stream.getvalue().splitlines())
    assert straight.pop("ts")[:10] == logged.pop("ts")[:10]
    assert list(straight.items()) == list(logged.items())  # the same fields, in the same order
    assert straight["request_id"] == "req-1"
    assert straight["path"] == '/a"b\\c%s'


def test_an_info_line_reaches_every_handler_when_there_are_several() -> None:
    streams = [io.StringIO(), io.StringIO()]
    logger = logging.getLogger("flexearn.test.several")
    logger.handlers = [logging.StreamHandler(s) for s in streams]
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
    logger.propagate, logger.level = False, logging.INFO
    info_line(logger, "hello", {"status": 1})
    assert [json.loads(s.getvalue())["status"] for s in streams] == [1, 1]


def test_info_lines_on_an_event_loop_are_written_together_at_the_end_of_its_turn() -> None:
    """On a loop's thread the lines of one turn go out in one write, after the turn's callbacks;
    in order, none lost, and a turn's lines never wait for the next request."""
    writes: list[str] = []

    class Counted(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    stream = Counted()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flexearn.test.loop")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO

    async def requests() -> list[int]:
        seen = []
        for n in range(3):  # three requests answered in one turn
            info_line(logger, "GET /x 200", {"n": n})
        seen.append(len(writes))  # nothing written yet: the turn is not over
        await asyncio.sleep(0)  # the loop's next turn: the three lines, in one write
        seen.append(len(writes))
        info_line(logger, "GET /y 200", {"n": 3})
        await asyncio.sleep(0)
        seen.append(len(writes))
        return seen

    assert asyncio.run(requests()) == [0, 1, 2]
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2, 3]
    assert writes[0].count("\n") == 3


def test_a_line_held_for_its_loop_s_turn_goes_to_the_handler_it_was_made_for() -> None:
    """The logging set-up changing within a turn writes what was held to the old handler first."""
    streams = [io.StringIO(), io.StringIO()]
    logger = logging.getLogger("flexearn.test.loop.switch")
    logger.propagate, logger.level = False, logging.INFO

    async def turn() -> None:
        for n, stream in enumerate(streams):
            handler = logging.StreamHandler(stream)
            handler.setFormatter(JsonFormatter())
            logger.handlers = [handler]
            info_line(logger, "line", {"n": n})
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert [[json.loads(line)["n"] for line in s.getvalue().splitlines()] for s in streams] == [[0], [1]]


def test_a_value_json_cannot_write_is_logged_as_its_text() -> None:
    """A Decimal, a datetime, a dataclass: their `str`; an integer past 64 bits and a key that is
    not a string as `json` writes them (orjson refuses them)."""
    when = datetime(2026, 12, 5, 3, 4, 5, tzinfo=UTC)
    info = context.RequestInfo("r")
    texts = {"amt": Decimal("0.10"), "at": when, "info": info}
    for refused in ({}, {"big": 2**70}, {"keyed": {1: "a"}}):  # orjson's line, then json's
        line = json.loads(JsonFormatter().format(record("x", **texts, **refused)))
        assert {key: line[key] for key in texts} == {key: str(value) for key, value in texts.items()}
        assert {key: line[key] for key in refused} == json.loads(json.dumps(refused))
