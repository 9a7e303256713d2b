"""A production-shaped flexearn on loopback: PostgreSQL, Redis, several API processes, one worker.

`cluster()` starts a private PostgreSQL and Redis (`services.py`), migrates the database, puts the
business clock on a simulated clock, and starts N `flexearn serve --no-scheduler` processes on
free ports (FLEXEARN_REDIS_URL set) plus one `flexearn worker`. Every process runs in a session of
its own, so `kill9()` takes a server's granian workers down with it, as losing a machine or a
container would.

`verify()` is the closing check every load and fault test makes: once the clock is stopped and
the worker has caught up, the ledger check passes, no balance is negative, and every market hour
and catalog day up to now was settled exactly once, in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, day_start
from flexearn.domain.money import ZERO, D
from flexearn.services import accounts, catalog, keys, ledger_check, markets
from flexearn.services import clock as clock_service
from flexearn.services.keys import NewKey
from flexearn.services.settlement import due_days, due_hours
from tests.deployment.services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.helpers import T0
from tests.server import ADMIN_TOKEN, FLEXEARN, free_port

CCY = "USDT"


class Process:
    """One flexearn process, started in its own session, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, port: int | None) -> None:
        self.name, self.argv, self.env, self.log, self.port = name, argv, env, log, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        if self.port is not None:
            self._wait_answering(timeout)

    def _wait_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return  # answering at all (even "database unavailable") is up
            except httpx.TransportError:
                if not self.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start:\n{self.output()}") from None
                time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL the whole process group: the server and every worker it spawned, no goodbyes."""
        assert self.proc is not None
        with suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill9()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass(frozen=True)
class Member:
    """A user of the cluster with a read+trade key that works on both façades."""

    user_id: int
    key: NewKey


class Cluster:
    def __init__(
        self, pg: PrivatePostgres, redis: PrivateRedis | None, root: Path, apis: int, ranges: int = 1
    ) -> None:
        self.pg, self.redis, self.root = pg, redis, root
        self.url = pg.url
        self.master_key = generate_master_key()
        self.app = Flexearn(self.url)  # migrates, and reads the database for the checks
        env = {
            **os.environ,
            "FLEXEARN_DATABASE_URL": self.url,
            "FLEXEARN_MASTER_KEY": self.master_key,
            "FLEXEARN_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLEXEARN_LOG_LEVEL": "WARNING",  # access logs of thousands of requests cost CPU
            "FLEXEARN_POLL_SECONDS": "0.2",
            "FLEXEARN_SETTLEMENT_RANGES": str(ranges),  # the worker's
        }
        if redis is None:  # signatures claimed in the database (on the event loop), whatever ours says
            env.pop("FLEXEARN_REDIS_URL", None)
        else:
            env["FLEXEARN_REDIS_URL"] = redis.url
        self.apis = []
        for i in range(apis):
            port = free_port()
            argv = [FLEXEARN, "serve", "--port", str(port), "--db", self.url, "--no-scheduler"]
            self.apis.append(Process(f"api{i}", argv, env, root / f"api{i}.log", port))
        argv = [FLEXEARN, "worker", "--db", self.url]
        self.worker = Process("worker", argv, env, root / "worker.log", None)

    @property
    def urls(self) -> list[str]:
        return [api.url for api in self.apis]

    # --- the world the traffic runs in -----------------------------------------------------------
    # Written through the services, in this process: the same rows the admin API would write,
    # without depending on the API processes being up (the fault tests take them down).

    def seed(self, speed: Decimal) -> int:
        """USDT (8 places) with a static-demand market and a flexible catalog product that
        redeems at once; the clock runs `speed` business seconds per real second from just
        before 22:00, so that the first catalog day falls due within seconds. Returns the product id."""
        clock_service.set_simulated(self.app.uow(), D(0), T0 - 2 * HOUR_MS - 1)
        accounts.add_currency(self.app.uow(), CCY, 8)
        markets.set_market(self.app.uow(), CCY, mode="auction", demand=D(20000))
        product = catalog.create_product(
            self.app.uow(),
            product_spec.parse(
                {
                    "coin": CCY,
                    "periodType": "flexible",
                    "apyType": "ladder",
                    "apyList": [
                        {"rateLevel": "0", "minStepVal": "0", "maxStepVal": "1000", "currentApy": "8"},
                        {
                            "rateLevel": "1",
                            "minStepVal": "1000",
                            "maxStepVal": "100000000",
                            "currentApy": "3",
                        },
                    ],
                    "singleMinAmount": "1",
                    "singleMaxAmount": "100000",
                    "subscribePrecision": "8",
                    "profitPrecision": "8",
                    "redeemDelay": "0",
                }
            ),
        )
        self.set_speed(speed)
        return product.id

    def members(self, count: int, deposit: Decimal = D(1_000_000)) -> list[Member]:
        """Users with `deposit` USDT each and a read+trade key."""
        box, found = SecretBox(self.master_key), []
        for i in range(count):
            user_id = accounts.create_user(self.app.uow(), f"trader{i}")
            accounts.deposit(self.app.uow(), user_id, CCY, deposit)
            found.append(Member(user_id, keys.create_key(self.app.uow(), box, user_id, "read,trade")))
        return found

    def set_speed(self, speed: Decimal) -> None:
        clock_service.set_speed(self.app.uow(), speed)

    def now(self) -> int:
        return clock_service.show(self.app.uow()).now

    # --- the closing check -------------------------------------------------------------------------

    def wait_settled(self, timeout: float = 60) -> None:
        """Stop the clock and wait until the worker has settled every hour and day now due."""
        self.set_speed(D(0))
        deadline = time.monotonic() + timeout
        while True:
            hours = {c: h for c, h in due_hours(self.app.uow()).items() if h}
            days = {p: d for p, d in due_days(self.app.uow()).items() if d}
            if not hours and not days:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the worker did not catch up: due {hours} {days}; worker alive: {self.worker.alive()}"
                    f"\n{self.worker.output()[-3000:]}"
                )
            time.sleep(0.2)

    def verify(self) -> tuple[int, int]:
        """The invariants after traffic and faults; returns (hours, days) settled."""
        self.wait_settled()
        assert ledger_check.check(self.app.uow(), full=True) == []  # the whole journal, no checkpoint
        now = self.now()
        with self.app.engine.connect() as conn:
            # The worker checked the ledger after its settlements, green, and kept a checkpoint.
            assert conn.execute(sa.select(sa.func.count()).select_from(t.ledger_checkpoint)).scalar()
            assert conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar() == 0
            negative = (
                conn.execute(sa.select(t.account.c.key).where(t.account.c.balance < ZERO)).scalars().all()
            )
            assert negative == [], f"negative balances: {negative}"
            assert conn.execute(sa.select(sa.func.count()).where(t.position.c.amt < ZERO)).scalar() == 0
            assert conn.execute(sa.select(sa.func.count()).where(t.holding.c.amount < ZERO)).scalar() == 0
            hours = _periods_settled_once(
                conn,
                t.market_hour,
                t.market_hour.c.ccy,
                t.market_hour.c.hour,
                {r.ccy: r.first_hour for r in conn.execute(sa.select(t.market.c.ccy, t.market.c.first_hour))},
                floor_hour(now),
                HOUR_MS,
            )
            days = _periods_settled_once(
                conn,
                t.product_day,
                t.product_day.c.product_id,
                t.product_day.c.day,
                {r.id: r.first_day for r in conn.execute(sa.select(t.product.c.id, t.product.c.first_day))},
                day_start(now),
                DAY_MS,
            )
        return hours, days


def _periods_settled_once(
    conn: sa.Connection,
    table: sa.Table,
    owner: sa.Column[object],
    period: sa.Column[int],
    first: dict[object, int],
    last: int,
    step: int,
) -> int:
    """Each owner's periods are exactly first..last, one row each, settled in period order."""
    total = 0
    for who, start in first.items():
        rows = conn.execute(sa.select(period, table.c.created_at).where(owner == who).order_by(period)).all()
        assert [r[0] for r in rows] == list(range(start, last + 1, step)), (
            f"{table.name} {who}: gaps or extras"
        )
        stamps = [r[1] for r in rows]
        assert stamps == sorted(stamps), f"{table.name} {who}: settled out of order"
        total += len(rows)
    return total


@contextmanager
def cluster(apis: int = 2, ranges: int = 1, redis: bool = True) -> Iterator[Cluster]:
    """The whole deployment, its worker settling each period in `ranges` ranges; signatures
    claimed in Redis, or (`redis=False`) in the database; everything is stopped and removed
    afterwards."""
    with ExitStack() as stack:
        pg = stack.enter_context(private_postgres())
        store = stack.enter_context(private_redis()) if redis else None
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flexearn-cluster-")))
        c = Cluster(pg, store, root, apis, ranges)
        stack.callback(c.app.close)
        for process in [*c.apis, c.worker]:
            stack.callback(_stop_and_report, process)
            process.start()
        yield c


def _stop_and_report(process: Process) -> None:
    process.stop()
    output = process.output()
    if "Traceback" in output:  # shown by pytest with a failing test
        print(f"--- {process.name} logged errors ---\n{output[-6000:]}")
