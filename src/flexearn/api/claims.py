"""The replay-window claims of the signed reads an event loop answers in one turn, made together.

On a SQLite file a signed read runs on the event loop (`api/facade._Endpoint._inline`) and its
signature's claim in the database was its one write: a transaction and a WAL commit of its own,
about half of such a read's CPU (bench/asgi_path.py: 239 µs a read with it, 132 without). Here the
claims of the reads answered in one turn of the loop wait for the turn's end and are made in one
statement and one COMMIT on the loop's own writer (`db.inline`, `services/replays.firsts`); each
read is answered once that COMMIT is done, so no answer goes out before its claim is durable (as
durable as SQLite's `synchronous = NORMAL` makes any commit). Under load a turn answers several
reads; alone, a read waits one turn more than it did.

When the loop's writer cannot take SQLite's write lock at once nothing was claimed: the group
waits on the loop for the writer holding it (`db.writable`: a slot of this process, or another
process) and is made then, with the claims that came meanwhile, as long as each request's deadline
allows: a timer per claim, set only once its group waits (a timeout on every claim's wait cost a
signed read ~6 µs of its ~130).

The rows of the signatures that can no longer verify are deleted there too (`prune`), a few
hundred between two turns of the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.services import replays


class _Waiting:
    """A claim held for the end of the loop's turn, the answer its request waits for, the request's
    deadline (`time.monotonic()`) and, once its group waits for another writer, the timer that
    refuses the request at that deadline."""

    __slots__ = ("answer", "at", "claim", "timer")

    def __init__(self, claim: replays.Claim, answer: asyncio.Future[bool | None], at: float) -> None:
        self.claim, self.answer, self.at = claim, answer, at
        self.timer: asyncio.TimerHandle | None = None

    def wait_until_deadline(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is None:
            self.timer = loop.call_later(max(0.0, self.at - time.monotonic()), self.expire)

    def expire(self) -> None:
        if not self.answer.done():  # the claim stays held: it may still be made after
            busy = "another writer held SQLite's write lock past the request's budget"
            self.answer.set_exception(db.DatabaseBusy(busy))

    def answered(self, was_first: bool | None = None, error: BaseException | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.answer.done():  # its request was cancelled or refused meanwhile: the claim stands
            return
        if error is None:
            self.answer.set_result(was_first)
        else:
            self.answer.set_exception(error)


# By loop and engine: the claims held for the end of the loop's turn.
_Held = list[_Waiting]
_HELD: dict[tuple[asyncio.AbstractEventLoop, sa.Engine], _Held] = {}
_TRIES: dict[tuple[asyncio.AbstractEventLoop, sa.Engine], int] = {}  # writer busy, in a row
_PRUNING: set[tuple[asyncio.AbstractEventLoop, sa.Engine]] = set()  # a prune under way

# Expired signatures forgotten between two turns of the loop (`prune`): ~1 ms of SQLite's work.
PRUNE_BATCH = 500

log = logging.getLogger("flexearn.api")


async def first(claim: replays.Claim, deadline: db.Deadline) -> bool | None:
    """Whether `claim` was first, made with the other claims of this turn of the running loop;
    None if the loop cannot write (nothing claimed). `DatabaseBusy` if another writer held the
    write lock past the deadline (the claim may still be made after)."""
    loop = asyncio.get_running_loop()
    key = (loop, claim.engine)
    held = _HELD.get(key)
    if held is None:
        held = _HELD[key] = []
        loop.call_soon(_make, key)
    waiting = _Waiting(claim, loop.create_future(), deadline.at)
    held.append(waiting)
    if key in _TRIES:  # it joins a group that already waits for another writer: its deadline now
        waiting.wait_until_deadline(loop)
    if len(held) == replays.CLAIMS_PER_STATEMENT:
        _make(key)  # this group is full: now (the call scheduled finds nothing, or the next group)
    return await waiting.answer  # cancelled with its request: the claim is made all the same


def _make(key: tuple[asyncio.AbstractEventLoop, sa.Engine]) -> None:
    held = _HELD.pop(key, None)
    if not held:
        return
    if len(held) > replays.CLAIMS_PER_STATEMENT:  # grown while waiting for a writer: the rest next
        _HELD[key] = held[replays.CLAIMS_PER_STATEMENT :]
        key[0].call_soon(_make, key)
        held = held[: replays.CLAIMS_PER_STATEMENT]
    outcome: list[bool | None]
    try:
        with db.inline():
            outcome = [*replays.firsts([waiting.claim for waiting in held])]
    except db.WriterBusy as busy:  # another writer has the lock: the group waits for it, each
        for waiting in held:  # request as long as its deadline allows
            waiting.wait_until_deadline(key[0])
        _HELD.setdefault(key, []).extend(held)
        tries = _TRIES[key] = _TRIES.get(key, 0) + 1
        db.writable(key[1], busy, tries - 1).add_done_callback(lambda _: _make(key))
        return
    except db.NotInline:  # the loop cannot write: each in a slot
        outcome = [None] * len(held)
    except Exception as error:
        for waiting in held:
            waiting.answered(error=error)
        return
    finally:
        if key not in _HELD:  # made (or failed): the next wait starts with a short pause
            _TRIES.pop(key, None)
    for waiting, was_first in zip(held, outcome, strict=True):
        waiting.answered(was_first)


def prune(engine: sa.Engine, now_ms: int) -> None:
    """Forget the signatures that expired before `now_ms` on the running loop's own SQLite writer,
    `PRUNE_BATCH` a transaction, each batch after the callbacks ready before it (the requests of
    that turn), never waiting for the write lock: when another writer holds it, after it lets go.
    A prune already under way on this loop is left to finish. Done in a thread of its own, the
    prune held SQLite's write lock while it waited for the GIL the loop held — every trade and
    claim waited behind it (a sustained run's p99 200-800 ms; bench/README.md, "Sixteenth pass")."""
    loop = asyncio.get_running_loop()
    key = (loop, engine)
    if key not in _PRUNING:
        _PRUNING.add(key)
        loop.call_soon(_prune_batch, key, now_ms, 0, context=contextvars.Context())  # not the request's


def _prune_batch(key: tuple[asyncio.AbstractEventLoop, sa.Engine], now_ms: int, tries: int) -> None:
    loop, engine = key
    try:
        with db.inline():
            done = replays.prune_batch(engine, now_ms, PRUNE_BATCH)
    except db.WriterBusy as busy:
        db.writable(engine, busy, tries).add_done_callback(lambda _: _prune_batch(key, now_ms, tries + 1))
        return
    except Exception:  # the next prune, `PRUNE_MS` on, tries again
        _PRUNING.discard(key)
        log.warning("pruning the replay window failed", exc_info=True)
        return
    if done < PRUNE_BATCH:
        _PRUNING.discard(key)
    else:
        loop.call_soon(_prune_batch, key, now_ms, 0)
