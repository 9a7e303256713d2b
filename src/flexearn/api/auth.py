"""Signed-request authentication shared by the façades.

OKX and Bitget sign alike: sign = Base64(HMAC-SHA256(secret, timestamp + METHOD + path[?query] +
body)) over the request exactly as received. Binance signs its parameters instead: sign =
hex(HMAC-SHA256(secret, query string + body)) as sent, without the `signature` parameter, and has
no passphrase (`SignedRequest.payload`, `passphrase` None). Each façade reads its own headers and
timestamp format and maps the `AuthFailure` raised here to its exchange's code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote_to_bytes

from flexearn.adapters.clock import REAL, ClockState, wall_ms
from flexearn.adapters.redis_store import SharedStore
from flexearn.adapters.secrets import verify_passphrase
from flexearn.observability.metrics import observe_redis_fallback
from flexearn.services.keys import KeyRecord
from flexearn.services.replays import Claim

log = logging.getLogger("flexearn.api")

WINDOW_MS = 30_000
SYNCED_REPLAY_MS = 24 * 3_600_000  # the longest a signature is remembered (see `accepted_until`)
# A key is kept in memory for long (its record only changes by revocation, and expiry is checked
# against `expires_at`); the database is asked at most every REVOCATION_CHECK_SECONDS which keys
# were revoked since. An unknown key is remembered as unknown for UNKNOWN_KEY_SECONDS.
KEY_KEEP_SECONDS = 600.0
UNKNOWN_KEY_SECONDS = 5.0
REVOCATION_CHECK_SECONDS = 1.0
# How far back each check looks before the previous one began: a revocation is stamped with the
# revoking process's wall clock before it commits, so one committed late or by a process whose
# clock lags ours by less than this is still seen.
REVOCATION_OVERLAP_MS = 60_000
CACHE_LIMIT = 10_000


class Failure(Enum):
    EXPIRED_TIMESTAMP = "expired_timestamp"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_KEY = "expired_key"
    BAD_PASSPHRASE = "bad_passphrase"
    BAD_SIGNATURE = "bad_signature"
    IP_REFUSED = "ip_refused"
    NO_PERMISSION = "no_permission"
    OTHER_FACADE = "other_facade"  # the key does not work on this façade (`KeyInfo.facades`)
    REPLAYED = "replayed"


class AuthFailure(Exception):
    def __init__(self, failure: Failure, detail: str = "") -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure, self.detail = failure, detail


@dataclass(frozen=True)
class Caller:
    user_id: int
    api_key: str


@dataclass(frozen=True)
class SignedRequest:
    api_key: str
    signature: str
    timestamp: str  # as sent: part of what was signed
    sent_ms: int
    passphrase: str | None  # None: the wire has none (Binance): the secret alone signs
    method: str
    target: bytes  # raw path and query as received
    body: bytes
    client_ip: str
    payload: bytes | None = None  # Binance: what the hex signature covers, as sent
    window_ms: int | None = None  # how old the timestamp may be (Binance's recvWindow); else the Verifier's
    ahead_ms: int | None = None  # how far ahead of ours it may be; else the same window

    @property
    def once(self) -> str:
        """What the replay window lets through once: the signature — with the method and path
        where the signature does not cover them (Binance signs its parameters only, so one client
        asking two endpoints the same parameters within a millisecond signs both alike)."""
        if self.payload is None:
            return self.signature
        path = self.target.partition(b"?")[0].decode("latin-1")
        return f"{self.method} {path} {self.signature}"


def read_signed_request(
    headers: Mapping[str, str],
    names: tuple[str, str, str, str],
    missing: Callable[[str], Exception],
    parse_timestamp: Callable[[str], int],
    method: str,
    target: bytes,
    body: bytes,
    client_ip: str,
) -> SignedRequest:
    """The signed request from the exchange's headers, named (key, sign, timestamp, passphrase)."""
    for header in names:
        if not headers.get(header):
            raise missing(header)
    key, sign_, timestamp, passphrase = (headers[name] for name in names)
    return SignedRequest(
        key, sign_, timestamp, parse_timestamp(timestamp), passphrase, method, target, body, client_ip
    )


def sign(secret: str, timestamp: str, method: str, target: bytes, body: bytes) -> str:
    message = timestamp.encode() + method.upper().encode() + target + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hex_sign(secret: str, payload: bytes) -> str:
    """Binance's HMAC-SHA256 signature, in hex."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _expected(secret: str, request: SignedRequest) -> Iterator[str]:
    """The signatures that would prove `request` was signed with `secret` (computed as asked)."""
    if request.payload is not None:
        yield hex_sign(secret, request.payload)
        return
    for target in _signed_targets(request.target):
        yield sign(secret, request.timestamp, request.method, target, request.body)


class Verifier:
    """Checks keys, passphrases, signatures, permissions, IPs, expiry and replays."""

    def __init__(
        self,
        load_key: Callable[[str], KeyRecord | None],
        revoked_since: Callable[[int], Iterable[str]],
        window_ms: int = WINDOW_MS,
        replays: ReplayMemory | None = None,
        clock: Callable[[], ClockState] = lambda: REAL,
    ) -> None:
        """`load_key` reads a key (None: unknown); `revoked_since(ms)` the keys revoked at or
        after that wall time (`keys.revoked_since`): both query."""
        self._load_key, self._revoked_since = load_key, revoked_since
        self._clock = clock  # the business clock's state: a simulated one widens what is accepted
        self._window_ms = window_ms
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}  # key → (keep until, record)
        # the next revocation check (monotonic s) and the wall time (ms) it looks back from
        self._check_due, self._checked_from = time.monotonic() + REVOCATION_CHECK_SECONDS, wall_ms()
        self._checking = threading.Lock()
        self._passphrases: set[tuple[str, str, bytes]] = set()  # verified (key, hash, sha256(passphrase))
        self._replays = replays or ReplayMemory()

    def verify(self, request: SignedRequest, now_ms: int, permission: str, facade: str) -> Caller:
        caller, until = self.check(request, now_ms, permission, facade)
        self.refuse_replay(request.once, now_ms, until, sent_ms=request.sent_ms)
        return caller

    @property
    def claims_in_database(self) -> bool:
        """Whether a signature's claim is made in the database (or in this process), not in Redis."""
        return not isinstance(self._replays, SharedReplayMemory)

    def ready(self, api_key: str, passphrase: str | None) -> bool:
        """Whether `check` can run without a query or a slow hash: the key is kept, the revocation
        check is not due, and this passphrase was verified for it (then it may run on the event
        loop; else in a database slot, where the check or the load queries)."""
        now = time.monotonic()
        cached = self._keys.get(api_key)
        if cached is None or cached[0] <= now or cached[1] is None or self._check_due <= now:
            return False
        record = cached[1]
        return passphrase is None or self._passphrase_token(record, passphrase) in self._passphrases

    def check(self, request: SignedRequest, now_ms: int, permission: str, facade: str) -> tuple[Caller, int]:
        """Everything `verify` checks but the replay: the caller, and until when (wall ms) the
        request's timestamp could still be accepted (`refuse_replay` needs it). `facade` is the
        façade asked (`Dialect.name`): the key must work there."""
        window = self._window_ms if request.window_ms is None else request.window_ms
        until = accepted_until(self._clock(), request.sent_ms, now_ms, window, request.ahead_ms)
        if until is None:
            raise AuthFailure(Failure.EXPIRED_TIMESTAMP)
        record = self._key(request.api_key)
        if record is None or record.info.revoked_at is not None:
            raise AuthFailure(Failure.UNKNOWN_KEY)
        info = record.info
        if info.expires_at is not None and now_ms >= info.expires_at:
            raise AuthFailure(Failure.EXPIRED_KEY)
        # The signature first: it is cheap and proves the caller holds the secret, so only such a
        # caller can make this process run the passphrase's slow hash (scrypt: ~0.1 s of CPU and
        # 16 MB) — knowing an API key, which travels in headers and logs, is not enough.
        # Binance: "Signatures generated using HMAC are not case-sensitive" (hex)
        given = request.signature if request.payload is None else request.signature.lower()
        if not any(
            hmac.compare_digest(  # as bytes: a str with non-ASCII characters would raise TypeError
                expected.encode(), given.encode("utf-8", "surrogateescape")
            )
            for expected in _expected(record.secret, request)
        ):
            raise AuthFailure(Failure.BAD_SIGNATURE)
        if request.passphrase is not None and not self._passphrase_ok(record, request.passphrase):
            raise AuthFailure(Failure.BAD_PASSPHRASE)
        if info.ip_allowlist and not _ip_allowed(request.client_ip, info.ip_allowlist):
            raise AuthFailure(Failure.IP_REFUSED, request.client_ip)
        if permission not in info.permissions:
            raise AuthFailure(Failure.NO_PERMISSION)
        if facade not in info.facades:
            raise AuthFailure(Failure.OTHER_FACADE, facade)
        return Caller(info.user_id, request.api_key), until

    def _key(self, api_key: str) -> KeyRecord | None:
        now = time.monotonic()
        if self._check_due <= now:
            self._forget_revoked(now)
        cached = self._keys.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = self._load_key(api_key)
        if len(self._keys) > CACHE_LIMIT:
            self._keys.clear()
        usable = record is not None and record.info.revoked_at is None
        kept = KEY_KEEP_SECONDS if usable else UNKNOWN_KEY_SECONDS
        self._keys[api_key] = (now + kept, record)
        return record

    def _forget_revoked(self, now: float) -> None:
        """Forget the kept keys revoked since the last check: one query a second for the whole
        process, not one per request. One thread asks; the others meanwhile go on with what is
        kept (it was checked at most a second and a query ago)."""
        if not self._checking.acquire(blocking=False):
            return
        try:
            since, started = self._checked_from - REVOCATION_OVERLAP_MS, wall_ms()
            for api_key in self._revoked_since(since):
                self._keys.pop(api_key, None)
            self._checked_from, self._check_due = started, now + REVOCATION_CHECK_SECONDS
        finally:
            self._checking.release()

    @staticmethod
    def _passphrase_token(record: KeyRecord, passphrase: str) -> tuple[str, str, bytes]:
        return record.info.api_key, record.passphrase_hash, hashlib.sha256(passphrase.encode()).digest()

    def _passphrase_ok(self, record: KeyRecord, passphrase: str) -> bool:
        # The slow hash is verified once per process and passphrase, not on every request.
        token = self._passphrase_token(record, passphrase)
        if token in self._passphrases:
            return True
        if not verify_passphrase(passphrase, record.passphrase_hash):
            return False
        if len(self._passphrases) > CACHE_LIMIT:
            self._passphrases.clear()
        self._passphrases.add(token)
        return True

    def refuse_replay(self, signature: str, now_ms: int, until_ms: int, *, sent_ms: int) -> None:
        """Refuse a signature already used (`Failure.REPLAYED`), else remember it: may query."""
        claim = self.claim_replay(signature, now_ms, until_ms, sent_ms=sent_ms)
        if claim is not None and not claim.alone():
            raise AuthFailure(Failure.REPLAYED)

    def claim_replay(self, signature: str, now_ms: int, until_ms: int, *, sent_ms: int) -> Claim | None:
        """Refuse a signature this process (or Redis) knows was used (`Failure.REPLAYED`), else
        remember it; the claim left to make in the database (a replay if it is not first), if any.
        `sent_ms` is the request's own time, which its signature covers (the database's key)."""
        # Remembered for as long as its timestamp could still be accepted (at least the window on
        # either side of now), at most SYNCED_REPLAY_MS.
        ttl = min(max(until_ms - now_ms, 2 * self._window_ms), SYNCED_REPLAY_MS)
        first, claim = self._replays.deferred(signature, now_ms, ttl, sent_ms=sent_ms)
        if not first:
            raise AuthFailure(Failure.REPLAYED)
        return claim


def accepted_until(
    clock: ClockState, sent_ms: int, now_ms: int, window_ms: int, ahead_ms: int | None = None
) -> int | None:
    """Whether a request signed at `sent_ms` is timely at wall time `now_ms`: None if not, else
    the wall time until which that timestamp would still be accepted. It may be `window_ms` old
    and `ahead_ms` (default: `window_ms`) ahead of ours.

    Clients sign with their own wall clock: within `window_ms` of ours. Some correct their clock by
    the server's time once (ccxt's `adjustForTimeDifference`): they sign with the business time
    they read plus the wall time elapsed since. With a simulated clock that is neither our wall
    clock nor our business time, but lies between what a client that read the time when the clock
    was last set would send and what one that read it just now would send; that band (and the
    window around it) is accepted too. On a real clock the band is empty.
    """
    ahead = window_ms if ahead_ms is None else ahead_ms
    until = sent_ms + window_ms if -ahead <= now_ms - sent_ms <= window_ms else None
    if clock.mode != "simulated":
        return until
    offset = clock.business_anchor - clock.real_anchor  # business − wall when the clock was set
    earliest, latest = sorted((now_ms + offset, clock.now(now_ms)))
    if not earliest - window_ms <= sent_ms <= latest + window_ms:
        return until
    if clock.speed >= 1:  # the band's lower edge moves at wall speed: past it after this long
        return max(until or 0, sent_ms - offset + window_ms)
    return now_ms + SYNCED_REPLAY_MS  # a slow clock's band can hold a timestamp for ever


class ReplayMemory:
    """The signatures this process has accepted, each until it could no longer verify.

    Forgetting is ordered by time (a heap of expiries): each new signature pops the ones whose time
    has passed, so a request costs O(log n) however many are remembered, never a scan of them all.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}  # signature → when it may be forgotten (ms)
        self._expiries: list[tuple[int, str]] = []  # (when, signature): a heap, soonest first
        self._lock = threading.Lock()

    def deferred(
        self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int
    ) -> tuple[bool, Claim | None]:
        """`first_use`, but what only the database can answer is left to the caller: the claim
        to make (in the request's own transaction or alone), or None if nothing is left."""
        return self.first_use(signature, now_ms, ttl_ms, sent_ms=sent_ms), None

    def first_use(self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int) -> bool:
        """Remember `signature` (signed at `sent_ms`) for `ttl_ms`; False if it was already
        remembered. Only the database's window keys by `sent_ms` as well (`services/replays`)."""
        with self._lock:
            expiries = self._expiries
            while expiries and expiries[0][0] < now_ms:
                until, old = heapq.heappop(expiries)
                if self._seen.get(old) == until:
                    del self._seen[old]
            if signature in self._seen:
                return False
            self._seen[signature] = now_ms + ttl_ms
            heapq.heappush(expiries, (now_ms + ttl_ms, signature))
            return True


class DatabaseReplayMemory(ReplayMemory):
    """The signatures every process on the database has accepted (services/replays.py): the
    replay window of API processes without Redis. This process's own are refused without asking
    the database; expired ones are deleted every `PRUNE_MS`."""

    PRUNE_MS = 10_000
    # In its own thread, the prune pauses this long between its transactions: the writers it
    # kept waiting (the event loop's claims and trades, woken when it lets go of SQLite's write
    # lock) go in before it takes the lock again (bench/README.md, "Thirteenth request pass").
    PRUNE_PAUSE_S = 0.002

    def __init__(
        self,
        claim: Callable[[str, int, int, int], Claim],
        prune: Callable[[int, float], object],
        loop_prune: Callable[[int], object] | None = None,
    ) -> None:
        """`claim(signature, sent_ms, now_ms, ttl_ms)` makes a signature's claim;
        `prune(now_ms, pause_s)` forgets the expired ones, pausing between its transactions;
        `loop_prune(now_ms)`, if given, does it on the running event loop (`api/claims.prune`):
        asked in a database slot, on the loop that last ran it (the slot's requests come from it)."""
        super().__init__()
        self._claim, self._prune, self._loop_prune = claim, prune, loop_prune
        self._pruned_at = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the last that ran `loop_prune`

    def first_use(self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int) -> bool:
        return super().first_use(signature, now_ms, ttl_ms, sent_ms=sent_ms) and self.claim(
            signature, now_ms, ttl_ms, sent_ms=sent_ms
        )

    def deferred(
        self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int
    ) -> tuple[bool, Claim | None]:
        if not ReplayMemory.first_use(self, signature, now_ms, ttl_ms, sent_ms=sent_ms):
            return False, None
        self._prune_now_and_then(now_ms)
        return True, self._claim(signature, sent_ms, now_ms, ttl_ms)

    def claim(self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int) -> bool:
        """The database's answer alone."""
        self._prune_now_and_then(now_ms)
        return self._claim(signature, sent_ms, now_ms, ttl_ms).alone()

    def _prune_now_and_then(self, now_ms: int) -> None:
        if now_ms - self._pruned_at <= self.PRUNE_MS:
            return
        self._pruned_at = now_ms
        loop = _running_loop()
        if self._loop_prune is not None:  # a SQLite file: on the event loop, between its turns
            if loop is not None:
                self._loop = loop
                self._loop_prune(now_ms)
                return
            if self._loop is not None:  # from a slot: to the loop it serves
                try:
                    self._loop.call_soon_threadsafe(self._loop_prune, now_ms)
                    return
                except RuntimeError:  # that loop is closed: here
                    self._loop = None
        if loop is None:  # a database slot's thread (no loop known): here, as its request's own work
            self._prune(now_ms, 0.0)
            return
        # On an event loop's thread, where its DELETEs would hold up every request of the loop
        # (they wait for round trips): in a thread of its own; the request does not wait for it.
        pruning = threading.Thread(target=self._prune_quietly, args=(now_ms,), name="flexearn-prune")
        pruning.daemon = True
        pruning.start()

    def _prune_quietly(self, now_ms: int) -> None:
        try:
            self._prune(now_ms, self.PRUNE_PAUSE_S)
        except Exception:  # the next prune, 10 s on, tries again
            log.warning("pruning the replay window failed", exc_info=True)


class SharedReplayMemory(ReplayMemory):
    """The signatures every process sharing `store` (Redis) has accepted.

    This process remembers its own as well: they are refused here even across a Redis restart
    (Redis keeps nothing on disk). While Redis is unreachable the database decides (`fallback`,
    shared by every process; without one, only the local memory); the signatures accepted
    meanwhile are written to Redis once it answers again, so from then on a replay of one of them
    is refused by every process.
    """

    def __init__(self, store: SharedStore, fallback: DatabaseReplayMemory | None = None) -> None:
        super().__init__()
        self.store, self.fallback = store, fallback
        self._unshared: dict[str, int] = {}  # accepted while Redis was away → forget at (ms)
        self._unshared_lock = threading.Lock()

    def first_use(self, signature: str, now_ms: int, ttl_ms: int, *, sent_ms: int) -> bool:
        if not super().first_use(signature, now_ms, ttl_ms, sent_ms=sent_ms):
            return False
        first = self.store.claim(f"replay:{signature}", ttl_ms)
        if first is None:
            observe_redis_fallback("replay")
            fallback = self.fallback
            if fallback is not None and not fallback.claim(signature, now_ms, ttl_ms, sent_ms=sent_ms):
                return False
            with self._unshared_lock:
                if len(self._unshared) < CACHE_LIMIT:
                    self._unshared[signature] = now_ms + ttl_ms
            return True
        if self._unshared:
            self._share_backlog(now_ms)
        return first

    def _share_backlog(self, now_ms: int) -> None:
        with self._unshared_lock:
            backlog, self._unshared = self._unshared, {}
        live = {f"replay:{s}": until - now_ms for s, until in backlog.items() if until > now_ms}
        if not self.store.claim_all(live):
            with self._unshared_lock:  # away again: try once more when it answers
                self._unshared.update(backlog)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _signed_targets(target: bytes) -> list[bytes]:
    """The target as received; and with its query percent-decoded, as python-okx signs it.

    python-okx signs `?ccy=a b` while its HTTP client sends `?ccy=a%20b`; ccxt signs what it sends.
    Both spellings name the same parameters, so accepting either admits nothing new.
    """
    path, _, query = target.partition(b"?")
    decoded = unquote_to_bytes(query)
    if decoded == query:
        return [target]
    return [target, path + b"?" + decoded]


def _ip_allowed(ip: str, allowlist: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowlist)


def raw_target(scope: MutableMapping[str, Any]) -> bytes:
    """The request path and query string as the client sent them (ASGI raw_path, query_string)."""
    raw_path = scope.get("raw_path") or str(scope["path"]).encode()
    query = scope.get("query_string") or b""
    assert isinstance(raw_path, bytes)
    assert isinstance(query, bytes)
    return raw_path + (b"?" + query if query else b"")
