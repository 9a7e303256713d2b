"""What every exchange façade does around its handlers: limits, authentication, errors.

A façade is a `Dialect` (its envelope, headers, parameters and error codes) and a table of
`Endpoint`s. Handlers are plain functions run in one of the process's database slots
(`Admission`): they read parameters, call one service and shape the records; nothing a client sends
can make them answer 500 or write half. When the database is unreachable, restarting or too slow
for the request's budget, the answer is the exchange's "service unavailable", within that budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple, NoReturn, Protocol

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from flexearn.adapters import db, loop_postgres
from flexearn.adapters.clock import ClockCache, ClockState, floor_hour, wall_ms
from flexearn.api import claims
from flexearn.api.admission import Admission
from flexearn.api.answers import PublicAnswers
from flexearn.api.auth import AuthFailure, Caller, Failure, SignedRequest, Verifier, raw_target
from flexearn.api.params import Params, json_object
from flexearn.api.ratelimit import RateLimiter
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import FlexearnError
from flexearn.observability import context
from flexearn.services.replays import Claim
from flexearn.services.unit_of_work import Joining, joining_first

log = logging.getLogger("flexearn.api")


class Replay(NamedTuple):
    """What a signed request's claim in the replay window needs: its signature
    (`SignedRequest.once`), until when its timestamp holds (wall ms), and that timestamp."""

    once: str
    until_ms: int
    sent_ms: int


class WireError(Exception):
    """An answer in the exchange's error envelope."""

    def __init__(self, code: str, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


class Dialect(Protocol):
    name: str
    too_many: WireError
    unavailable: WireError
    system_error: WireError

    def success(self, data: Any) -> Any: ...  # an envelope, or (Binance) the data itself
    def failure(self, error: WireError) -> dict[str, Any]: ...
    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest: ...
    def auth_error(self, failure: AuthFailure) -> WireError: ...
    def engine_error(self, error: FlexearnError) -> WireError: ...
    def params(self, values: Mapping[str, Any]) -> Params: ...
    def body(self, raw: bytes) -> Mapping[str, Any]: ...
    def values(self, method: str, query: bytes, body: bytes) -> Mapping[str, Any]: ...
    def metered(self, limiter: RateLimiter, limit_scale: int) -> Callable[[Endpoint, ASGIApp], ASGIApp]: ...


@dataclass(frozen=True)
class ErrorTable:
    """An exchange's answers to bad parameters, bad bodies, engine errors and failed signatures."""

    empty: Callable[[str], WireError]
    invalid: Callable[[str, str], WireError]
    json_syntax: WireError
    from_engine: Callable[[FlexearnError], WireError]
    from_auth: Callable[[AuthFailure], WireError]


class TableDialect:
    """What dialects share: parameters, bodies and errors read through the exchange's table, from
    its errors module (`api/<exchange>/errors.py`: `empty`, `invalid`, `JSON_SYNTAX`, `from_engine`,
    `from_auth`, and the answers `TOO_MANY`, `UNAVAILABLE`, `SYSTEM_ERROR`)."""

    def __init__(self, errors: ModuleType) -> None:
        self.table = ErrorTable(
            errors.empty, errors.invalid, errors.JSON_SYNTAX, errors.from_engine, errors.from_auth
        )
        self.too_many: WireError = errors.TOO_MANY
        self.unavailable: WireError = errors.UNAVAILABLE
        self.system_error: WireError = errors.SYSTEM_ERROR

    def auth_error(self, failure: AuthFailure) -> WireError:
        return self.table.from_auth(failure)

    def engine_error(self, error: FlexearnError) -> WireError:
        return self.table.from_engine(error)

    def params(self, values: Mapping[str, Any]) -> Params:
        return Params(values, self.table.empty, self.table.invalid)

    def body(self, raw: bytes) -> Mapping[str, Any]:
        return json_object(raw, self.table.json_syntax)

    def values(self, method: str, query: bytes, body: bytes) -> Mapping[str, Any]:
        """The request's parameters: a POST's JSON body, else the query string."""
        return self.body(body) if method == "POST" else QueryParams(query)

    def metered(self, limiter: RateLimiter, limit_scale: int) -> Callable[[Endpoint, ASGIApp], ASGIApp]:
        """What the exchange puts around each endpoint's app beyond its per-second limit, for one
        façade: nothing, unless it meters request weights (Binance: `api/binance/weights.py`)."""
        return _unmetered


Handler = Callable[[Flexearn, Caller | None, Params], Any]

# Guessing a passphrase (with a leaked secret) or a secret, throttled: after FAILURES_PER_ADDRESS
# bad signatures or passphrases from one address, or FAILURES_PER_KEY from anywhere, within
# FAILURE_WINDOW_S, the key's requests (from that address, or from all) are answered "too many
# requests" unchecked until the window holds fewer. Refusals are not counted, so a lock lasts at
# most the window; the per-address limit is the lower one so that someone who only knows the key
# (it travels in headers and logs) cannot lock its owner out from one address.
FAILURES_PER_ADDRESS, FAILURES_PER_KEY = 10, 100
FAILURE_WINDOW_S = 60.0
FAILURES_BUCKET = "auth-failures"
COUNTED_FAILURES = frozenset({Failure.BAD_SIGNATURE, Failure.BAD_PASSPHRASE})
TOO_MANY_FAILURES = (
    f"Too many failed signatures or passphrases for this API key: try again within {FAILURE_WINDOW_S:.0f} s"
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    permission: str | None  # None: public (limited per IP); else limited per user
    per_second: int
    cached: bool = False  # public, from stored data and the business hour only: `api/answers.py`
    weight: int = 1  # the request weight, where the exchange meters by weight (`Dialect.metered`)
    # A trade whose handler commits one unit of work, as its last step: it may run on the event
    # loop (`_Endpoint._inline_write`). One that commits twice (a transfer, then its auto-subscribe
    # sweep) must not say so: work after a COMMIT on the loop cannot move to a slot.
    commits_once: bool = False


def _unmetered(spec: Endpoint, app: ASGIApp) -> ASGIApp:
    return app


class Facade:
    def __init__(
        self,
        dialect: Dialect,
        endpoints: Sequence[Endpoint],
        app: Flexearn,
        limiter: RateLimiter,
        verifier: Verifier,
        admission: Admission,
        clock: ClockCache | None = None,
        limit_scale: int = 1,
    ) -> None:
        self.dialect, self.endpoints, self.app = dialect, endpoints, app
        self.limiter, self.verifier, self.admission = limiter, verifier, admission
        # business time for the answers (and a simulated clock's signing band), read in a slot
        self.clock = clock or ClockCache(app.engine)
        self._clock_refresh: asyncio.Task[ClockState] | None = None  # `clock_kept`'s, under way
        self.limit_scale = limit_scale  # FLEXEARN_RATE_LIMIT_SCALE: benchmarks only

    def routes(self) -> list[Route]:
        """A Starlette route per endpoint, each an ASGI app (`dispatch_table` serves the same apps
        without the router), behind what the dialect meters (`Dialect.metered`)."""
        metered = self.dialect.metered(self.limiter, self.limit_scale)
        return [Route(e.path, metered(e, _Endpoint(self, e)), methods=[e.method]) for e in self.endpoints]

    async def _limit(self, spec: Endpoint, who: str) -> None:
        limit = spec.per_second * self.limit_scale
        if not await self.limiter.allow(f"{self.dialect.name}:{spec.path}", who, limit):
            raise self.dialect.too_many

    async def _authenticate(
        self, deadline: db.Deadline, scope: Scope, body: bytes, ip: str, permission: str
    ) -> tuple[SignedRequest, Caller, int]:
        """The signed request, its caller and until when its timestamp holds (for the replay
        check, made with the handler: `_handle`), or the exchange's refusal. A key (and a key from
        one address) that failed too often lately is refused before its signature is even checked
        (see `FAILURES_PER_KEY`).

        With the key, its passphrase and the business clock already in memory, nothing here waits:
        the signature is checked on the event loop; else in a database slot, which loads them."""
        signed = self.dialect.signed_request(
            scope["method"], raw_target(scope), body, Headers(scope=scope), ip
        )
        counted = ((f"{signed.api_key}@{ip}", FAILURES_PER_ADDRESS), (signed.api_key, FAILURES_PER_KEY))
        for who, limit in counted:
            if not await self.limiter.allow(FAILURES_BUCKET, who, limit, FAILURE_WINDOW_S, record=False):
                raise WireError(self.dialect.too_many.code, TOO_MANY_FAILURES, self.dialect.too_many.status)
        try:
            if self.clock_kept() and self.verifier.ready(signed.api_key, signed.passphrase):
                caller, until = self.verifier.check(signed, wall_ms(), permission, self.dialect.name)
            else:
                caller, until = await self.admission.run(deadline, self._check, signed, permission)
        except AuthFailure as failure:
            if failure.failure in COUNTED_FAILURES:
                for who, limit in counted:
                    await self.limiter.allow(FAILURES_BUCKET, who, limit, FAILURE_WINDOW_S)
            raise self.dialect.auth_error(failure) from None
        return signed, caller, until

    def _claim(self, replay: Replay | None) -> Claim | None:
        """`replay` refused if this process (or Redis) has seen it; else the claim left to make."""
        if replay is None:
            return None
        return self.verifier.claim_replay(replay.once, wall_ms(), replay.until_ms, sent_ms=replay.sent_ms)

    def clock_kept(self) -> bool:
        """Whether the business clock kept in memory may answer a request on the event loop: read
        within its `max_age`; or, once older, while a refresh is under way in a database slot (one
        at a time, started here) and for at most `max_age` more. Else (the row never read, or no
        refresh done in time: the database is slow or away) the request goes to a slot, which
        reads it. Each second the first request to find the row old went to a slot, and those
        arriving before it was read again followed it: a trade there took SQLite's write lock
        from under the event loop's trades, which waited for it (bench/README.md, "Thirteenth
        request pass")."""
        clock = self.clock
        if clock.fresh():
            return True
        if self._clock_refresh is None:
            refresh = asyncio.ensure_future(self.admission.run(self.admission.budget(), clock.refresh))
            refresh.add_done_callback(self._clock_refreshed)
            self._clock_refresh = refresh
        return clock.within(2 * clock.max_age)

    def _clock_refreshed(self, refresh: asyncio.Task[ClockState]) -> None:
        self._clock_refresh = None
        failed = None if refresh.cancelled() else refresh.exception()
        if failed is not None:  # the next request past `max_age` starts another
            log.debug("reading the business clock failed: %s: %s", type(failed).__name__, failed)

    async def _claimed(self, deadline: db.Deadline, replay: Replay) -> None:
        """Claim a signature after its request's handler ran on the event loop (`_Endpoint._inline`):
        there too, with the other claims of the loop's turn in one COMMIT (`api/claims.py`); in a
        database slot if the loop cannot write at all."""
        with db.inline():
            claim = self._claim(replay)  # refused if seen here
        if claim is None:
            return
        first = await claims.first(claim, deadline)
        if first is None:
            first = await self.admission.run(deadline, claim.alone)
        if not first:
            raise AuthFailure(Failure.REPLAYED)

    def _check(self, signed: SignedRequest, permission: str) -> tuple[Caller, int]:
        self.clock.refresh()
        return self.verifier.check(signed, wall_ms(), permission, self.dialect.name)

    def _handle(
        self, handler: Handler, caller: Caller | None, params: Params, replay: Replay | None
    ) -> Any:
        """The handler, in a database slot. A signed request's signature is claimed with it: in
        the handler's first write transaction if it writes (one COMMIT for both: a replay found
        there rolls the write back), or right after its first read of one statement (same
        connection and round trip), else on its own afterwards, whatever the handler's outcome."""
        self.clock.refresh()
        return self._handle_claimed(handler, caller, params, self._claim(replay))

    def _handle_claimed(
        self, handler: Handler, caller: Caller | None, params: Params, claim: Claim | None
    ) -> Any:
        """`_handle` once the signature was claimed in this process's memory (`claim`: what is left
        to claim in the database). On the event loop (`_Endpoint._inline_write`), a handler that
        raises `NotInline` did nothing, and its claim is left for the slot that runs it again."""
        if claim is None:
            return handler(self.app, caller, params)

        def first(rows: list[Any]) -> None:
            if not rows:
                raise AuthFailure(Failure.REPLAYED)

        with joining_first(*claim.statement(), first) as joining:
            try:
                answer = handler(self.app, caller, params)
            except db.NotInline:
                raise
            except BaseException as error:
                if joining.lost:
                    _after_a_lost_commit(claim, error)
                if joining.taken and not joining.committed and db.unavailable(error):
                    _after_a_lost_read(claim, error)
                _claim_after(joining, claim)
                raise
            _claim_after(joining, claim)
            return answer


def _claim_after(joining: Joining, claim: Claim) -> None:
    """Claim the signature on its own if the handler's work did not take the claim with it; a
    replay's refusal wins over the handler's outcome."""
    if not joining.committed and not claim.alone():
        raise AuthFailure(Failure.REPLAYED)


def _after_a_lost_read(claim: Claim, error: BaseException) -> NoReturn:
    """The handler's read failed with the database's unavailability, its signature's claim sent
    with it (`UnitOfWork.read_alone`), in a transaction that may have committed before the
    connection was lost: a row found now may be its own, so the answer stays the database's
    unavailability (`error`), never "already used"; the claim is made if it can be."""
    try:
        claim.alone()
    except Exception as again:
        if not db.unavailable(again):
            raise
    raise error


# How often the outcome of a lost COMMIT is asked again while the database cannot answer.
LOST_COMMIT_RETRY_S = 0.05


def _after_a_lost_commit(claim: Claim, error: BaseException) -> NoReturn:
    """The handler's COMMIT, its signature's claim in the same transaction, was sent and the
    connection lost before the answer (the database restarting or crashing, say): the claim's row
    says what happened, once the database answers again within the request's budget. Absent, the
    transaction rolled back: the claim is made now, nothing was written, and the answer is the
    database's unavailability (`error`). Present, it committed: the outcome stands but its answer
    is lost, a system error logged as such. No answer in time: a system error, outcome unknown.
    Only a claim in the database (not Redis's) that went with the write's own transaction tells."""
    while True:
        started = time.monotonic()
        try:
            first = claim.alone()
        except Exception as again:
            left, took = db.seconds_left(), time.monotonic() - started
            # Asked again only while another try (as long as this one) fits in the budget: a try
            # can take a connect timeout when the database's host does not answer at all.
            again_fits = left is not None and left > took + LOST_COMMIT_RETRY_S
            if not (db.unavailable(again) and again_fits) or db.inlined():
                # `again`, then (its context) `error`, in the traceback
                raise RuntimeError("a COMMIT was lost with its connection: outcome unknown") from again
            time.sleep(LOST_COMMIT_RETRY_S)
            continue
        if first:
            db.did_not_commit()
            raise error
        raise RuntimeError("a COMMIT was lost with its connection after it took: answer lost") from error


class _Endpoint:
    """One endpoint as an ASGI app (a class, so that the router calls it as one rather than as a
    request handler): the request bounded, authenticated, limited, handled in a database slot and
    answered in the exchange's envelope."""

    def __init__(self, facade: Facade, spec: Endpoint) -> None:
        self.facade, self.spec = facade, spec
        self.answers = PublicAnswers() if spec.cached else None
        # Whether to try the handler on the event loop (`_inline`, `_inline_write`): on a SQLite
        # file, with signatures claimed in the database (not Redis, which would be asked on the loop).
        verifier, engine = facade.verifier, facade.app.engine
        self.writes = spec.method != "GET"
        loop_safe = not self.writes or spec.commits_once
        self.inline = loop_safe and db.inline_capable(engine) and verifier.claims_in_database
        # Whether to try a read on the event loop, awaited (`_awaited`): on PostgreSQL, likewise.
        self.awaits = not self.writes and loop_postgres.capable(engine) and verifier.claims_in_database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, *await self._answer(scope))

    async def _answer(self, scope: Scope) -> tuple[int, bytes]:
        facade, spec, answers = self.facade, self.spec, self.answers
        dialect = facade.dialect
        deadline = facade.admission.budget()
        try:
            body = request_body(scope)
            client = scope.get("client")
            ip = client[0] if client else ""
            caller = signed = None
            if spec.permission is None:
                await facade._limit(spec, f"ip:{ip}")
            else:
                signed, caller, until = await facade._authenticate(deadline, scope, body, ip, spec.permission)
                await facade._limit(spec, f"user:{caller.user_id}")
            if answers is not None:
                key = (scope["query_string"], floor_hour(facade.clock.now()))
                kept = answers.get(key)
                if kept is not None:
                    return 200, kept
                since = answers.since()
            params = dialect.params(dialect.values(spec.method, scope["query_string"], body))
            replay = None if signed is None else Replay(signed.once, until, signed.sent_ms)
            data = await self._run(deadline, caller, params, replay)
            rendered = _json(dialect.success(data))
            if answers is not None:
                answers.keep(key, since, rendered)
            return 200, rendered
        except AuthFailure as failure:  # a replay, found in the handler's slot
            error = dialect.auth_error(failure)
        except WireError as wire_error:
            error = wire_error
        except FlexearnError as engine_error:
            error = dialect.engine_error(engine_error)
        except Exception as unexpected:
            if db.unavailable(unexpected):  # expected while the database is down: one line, no trace
                log.warning(
                    "database unavailable: %s: %s", type(unexpected).__name__, _first_line(unexpected)
                )
                error = dialect.unavailable
            else:
                log.exception("unexpected error in %s %s", spec.method, spec.path)
                error = dialect.system_error
        context.note_code(error.code)  # for the request metrics and the access log
        return error.status, _json(dialect.failure(error))

    async def _run(
        self, deadline: db.Deadline, caller: Caller | None, params: Params, replay: Replay | None
    ) -> Any:
        """The handler's result: on the event loop if it can be had there (`_inline`), else from a
        database slot (`Facade._handle`)."""
        facade = self.facade
        if self.inline and facade.clock_kept():
            if self.writes:
                return await self._inline_write(deadline, caller, params, replay)
            try:
                return await self._inline(deadline, caller, params, replay)
            except db.NotInline:  # this handler opens a unit of work: to a slot, now and from now on
                self.inline = False
        if self.awaits and facade.clock_kept():
            return await self._awaited(deadline, caller, params, replay)
        return await facade.admission.run(deadline, facade._handle, self.spec.handler, caller, params, replay)

    async def _inline(
        self, deadline: db.Deadline, caller: Caller | None, params: Params, replay: Replay | None
    ) -> Any:
        """The handler on the event loop (`db.inline`: its reads of one statement on the loop's own
        connection, which never waits in WAL mode), then the signature's claim (`Facade._claimed`)
        whatever the handler's outcome, as in a slot. A handler that needs more (a unit of work)
        raises `NotInline` before it has done anything through one, and nothing is claimed."""
        needs_slot = False
        try:
            with db.inline():
                return self.spec.handler(self.facade.app, caller, params)
        except db.NotInline:
            needs_slot = True
            raise
        finally:
            if replay is not None and not needs_slot:  # a replay's refusal wins over the outcome
                await self.facade._claimed(deadline, replay)


    async def _inline_write(
        self, deadline: db.Deadline, caller: Caller | None, params: Params, replay: Replay | None
    ) -> Any:
        """A handler that may write, on the event loop (`db.inline(units=True)`): its one unit of
        work on the loop's own SQLite writer, its signature's claim joined to that COMMIT — when
        SQLite's write lock is free at once (a write is short; handing it to a thread and back, and
        the threads' turns at the GIL, cost more than the write). Else (`NotInline`: the lock is
        taken, a period is being settled, the handler needs more than one unit of work that
        writes) nothing was done, and it runs in a slot; the signature stays claimed in memory.
        When the lock is another writer's (`WriterBusy`), the loop waits for it (`db.writable`),
        as long as the deadline allows, and tries again."""
        facade, handler = self.facade, self.spec.handler
        claim = facade._claim(replay)
        tries = 0
        while True:
            with db.deadline(deadline), db.inline(units=True):
                try:
                    return facade._handle_claimed(handler, caller, params, claim)
                except db.WriterBusy as busy:
                    writable = db.writable(facade.app.engine, busy, tries)
                except db.WouldWait:
                    break  # this time: the period is being settled
                except db.NotInline:
                    self.inline = False  # this handler needs a slot: from now on
                    break
            tries += 1
            try:  # time's up: the slot refuses it (`DatabaseBusy`) as it would have
                await asyncio.wait_for(writable, deadline.at - time.monotonic())
            except TimeoutError:
                break
        return await facade.admission.run(deadline, facade._handle_claimed, handler, caller, params, claim)

    async def _awaited(
        self, deadline: db.Deadline, caller: Caller | None, params: Params, replay: Replay | None
    ) -> Any:
        """A read on PostgreSQL, on the event loop (`Admission.on_loop`): its statements, with the
        signature's claim joined to the first, sent on the loop's own connections and awaited —
        no thread, no pool (a signed balance read over HTTP: ×0.6–0.75 of its CPU). A handler that
        needs more (a unit of work) raises `NotInline` before it has done anything through one,
        and runs in a slot, now and from now on; its signature stays claimed in memory."""
        facade, handler = self.facade, self.spec.handler
        claim = facade._claim(replay)
        args = (handler, caller, params, claim)
        try:
            return await facade.admission.on_loop(deadline, facade.app.engine, facade._handle_claimed, *args)
        except db.NotInline:
            self.awaits = False
        return await facade.admission.run(deadline, facade._handle_claimed, *args)


# Where `api/limits.BodyLimits` leaves the request's body, read whole and bounded, for the façades'
# endpoints (other apps read it from `receive`, where it is handed over again).
BODY = "flexearn.body"


def request_body(scope: Scope) -> bytes:
    """The request's body, as `BodyLimits` read it (every façade endpoint is served behind it)."""
    body = scope.get(BODY)
    if body is None:
        raise RuntimeError("a façade endpoint is served without api.limits.BodyLimits in front of it")
    return body  # type: ignore[no-any-return]


class Number(float):
    """A JSON number of an answer (a Binance band's rate), written as Python's `json` writes a
    float: its `repr` (`1e-05`, where orjson would write `0.00001`)."""

    __slots__ = ()


def _json(content: Any) -> bytes:
    """As Starlette's `JSONResponse` renders it (`json.dumps`, compact, UTF-8, no NaN), by orjson:
    0.3 µs for a signed read's answer against 4.9. What orjson refuses — an integer beyond 64 bits,
    a key that is not a string — is rendered by `json`, as before. An answer's numbers are integers
    and `Number`s: a plain float would be written as orjson writes it (`0.00001`, NaN as null)."""
    try:
        return orjson.dumps(content, default=_number, option=_REFUSED)
    except orjson.JSONEncodeError:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode()


# What `json` refuses and orjson would write, sent to `_number` (which refuses it): a datetime, a dataclass.
_REFUSED = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _number(value: Any) -> orjson.Fragment:
    if isinstance(value, Number) and math.isfinite(value):
        return orjson.Fragment(float.__repr__(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


async def _send_json(send: Send, status: int, body: bytes) -> None:
    """The answer, with the headers Starlette's `JSONResponse` sends."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dispatch_table(routes: Sequence[Route]) -> dict[tuple[str, str], tuple[Route, ASGIApp]]:
    """Each façade route and its app by method and exact path, for `Dispatch` (HEAD, which the
    router adds to a GET route, stays with the router)."""
    return {
        (method, route.path): (route, route.app)
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"
    }


class Dispatch:
    """ASGI middleware: a façade request goes straight to its endpoint, found by method and exact
    path in one dictionary lookup; everything else (the admin API, the dashboard, a wrong method or
    an unknown path, with their 404 envelopes) goes on to the router. The route is recorded in the
    scope as the router records it, for the request's metrics label."""

    def __init__(self, app: ASGIApp, table: Mapping[tuple[str, str], tuple[Route, ASGIApp]]) -> None:
        self.app, self.table = app, table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            self.table.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        scope["route"], endpoint = found
        await endpoint(scope, receive, send)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0][:200]


def user_of(caller: Caller | None) -> int:
    assert caller is not None, "private endpoints are authenticated"
    return caller.user_id
